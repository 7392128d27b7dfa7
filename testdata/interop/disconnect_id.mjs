// Server.Disconnect(socket ID) via the control API closes that user's
// connection with 1001; the client reconnects and rejoins by itself. An
// anonymous connection (no ID) is unaffected.
import {scenario, connect, joined, push, until, sleep, ctl, disconnect, assert, log, ID} from "./lib.mjs"

scenario("disconnect_id", async () => {
  const user = `${ID}_a`
  const socket = connect({user})
  const codes = []
  let opens = 0
  socket.onClose(e => codes.push(e.code))
  socket.onOpen(() => opens++)
  const channel = socket.channel(`room:${ID}`)
  let oks = 0
  channel.join().receive("ok", () => oks++)

  const anon = connect({user: `anon_${ID}`})
  const anonCodes = []
  anon.onClose(e => anonCodes.push(e.code))
  const anonCh = anon.channel(`room:${ID}_anon`)
  await joined(anonCh)
  await until(() => oks === 1, "the join")

  await ctl(`disconnect?id=${encodeURIComponent("user_socket:" + user)}`, {})
  await until(() => codes.length === 1, "the server's close")
  log("close code", codes[0])
  assert.equal(codes[0], 1001)
  await until(() => opens === 2 && oks === 2, "reconnect and rejoin")
  log("reconnected and rejoined")
  assert.deepEqual(await push(channel, "echo", {back: true}), {status: "ok", response: {back: true}})
  const seen = await ctl(`connects?user=${encodeURIComponent(user)}`)
  assert.equal(seen.length, 2, "Connect ran again for the reconnect")

  await sleep(50)
  assert.deepEqual(anonCodes, [], "the anonymous socket stays connected")
  assert.ok(anon.isConnected())
  assert.deepEqual(await push(anonCh, "echo", {anon: true}), {status: "ok", response: {anon: true}})
  await Promise.all([disconnect(socket), disconnect(anon)])
})
