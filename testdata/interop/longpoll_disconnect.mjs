// Server.Disconnect(socket ID) closes the LongPoll session: the held poll
// answers 410, the client reconnects with a new session (Connect runs
// again) and rejoins.
import {scenario, connect, joined, push, until, ctl, disconnect, assert, log, ID, CLIENT} from "./lib.mjs"

const {LongPoll} = await import(CLIENT)

scenario("longpoll_disconnect", async () => {
  const user = `${ID}_a`
  const socket = connect({user}, {transport: LongPoll})
  const closes = []
  let opens = 0, oks = 0
  socket.onClose(e => closes.push(e.code))
  socket.onOpen(() => opens++)
  const channel = socket.channel(`room:${ID}`)
  channel.join().receive("ok", () => oks++)
  await until(() => oks === 1, "the join")

  await ctl(`disconnect?id=${encodeURIComponent("user_socket:" + user)}`, {})
  await until(() => opens === 2 && oks === 2, "reconnect and rejoin")
  log("closes", JSON.stringify(closes))
  assert.ok(closes.includes(3410), "the client saw session_gone")
  assert.deepEqual(await push(channel, "echo", {back: true}), {status: "ok", response: {back: true}})
  const seen = await ctl(`connects?user=${encodeURIComponent(user)}`)
  assert.ok(seen.length >= 2 && seen.every(c => c.accepted), "Connect ran again for the reconnect")
  await disconnect(socket)
})
