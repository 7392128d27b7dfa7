// Fallback: the server refuses WebSocket upgrades (Options.DisableWebSocket,
// standing in for a proxy that breaks WebSockets). A client with the
// default transport and longPollFallbackMs: 200 gives up on WebSocket and
// ends up on LongPoll, where it joins and pushes as usual.
import {scenario, connect, joined, push, until, disconnect, assert, log, ID, CLIENT} from "./lib.mjs"

const {LongPoll} = await import(CLIENT)

scenario("longpoll_fallback", async () => {
  const logs = []
  const socket = connect({user: `${ID}_a`}, {
    longPollFallbackMs: 200,
    logger: (kind, msg) => { if(kind === "transport"){ logs.push(msg) } },
  })
  assert.notEqual(socket.transport, LongPoll, "starts with WebSocket")
  const channel = socket.channel(`room:${ID}`)
  const r = await joined(channel)
  log("transport log:", JSON.stringify(logs))
  assert.equal(socket.transport, LongPoll, "fell back to LongPoll")
  assert.ok(socket.conn instanceof LongPoll)
  assert.equal(r.transport, "longpoll", "the channel runs over long-poll")
  assert.ok(logs.some(m => m.startsWith("falling back to LongPoll")), "the client logged the fallback")
  assert.deepEqual(await push(channel, "echo", {via: "fallback"}), {status: "ok", response: {via: "fallback"}})
  await until(() => logs.some(m => m.includes("established LongPoll fallback")), "the fallback to be established")
  await disconnect(socket)
})
