// A connection whose expiry passes (Connect set ConnectInfo.ExpiresAt; no
// Refresh) is closed with 4001; the official client reconnects, Connect
// runs again, and the channel rejoins by itself.
import {scenario, connect, push, until, ctl, disconnect, assert, log, ID} from "./lib.mjs"

scenario("expiry", async () => {
  const user = `${ID}_exp`
  const socket = connect({user})
  const codes = []
  let opens = 0
  socket.onClose(e => codes.push(e.code))
  socket.onOpen(() => opens++)
  const channel = socket.channel(`room:${ID}`)
  let oks = 0
  channel.join().receive("ok", () => oks++)
  await until(() => oks === 1, "the join")
  await until(() => codes.length === 1, "the expiry's close", 8000)
  log("close code", codes[0])
  assert.equal(codes[0], 4001)
  await until(() => opens === 2 && oks === 2, "reconnect and rejoin")
  assert.deepEqual(await push(channel, "echo", {again: true}), {status: "ok", response: {again: true}})
  const seen = await ctl(`connects?user=${encodeURIComponent(user)}`)
  assert.equal(seen.length, 2, "Connect ran again for the reconnect")
  await disconnect(socket)
})
