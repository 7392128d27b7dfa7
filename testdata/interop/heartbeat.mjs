// Heartbeats: with heartbeatIntervalMs = 200 the client sends one every
// 200 ms once the previous was answered, and reconnects if an answer is not
// in within the interval. The connection must stay up across many
// heartbeats, with and without joined channels, and socket.ping works.
import {scenario, connect, joined, push, frames, until, disconnect, assert, log, ID} from "./lib.mjs"

scenario("heartbeat", async () => {
  const socket = connect({user: `${ID}_a`}, {heartbeatIntervalMs: 200})
  let opens = 0, closes = 0, errors = 0
  socket.onOpen(() => opens++)
  socket.onClose(() => closes++)
  socket.onError(() => errors++)
  const raw = frames(socket)
  const beats = () => raw.filter(m => m.topic === "phoenix" && m.event === "phx_reply")
  await until(() => beats().length >= 2, "2 heartbeat replies with no channel joined")
  const channel = socket.channel(`room:${ID}`)
  await joined(channel)
  await until(() => beats().length >= 6, "6 heartbeat replies", 5000)
  for(const m of beats()){
    assert.equal(m.join_ref, null)
    assert.deepEqual(m.payload, {status: "ok", response: {}})
  }
  const rtt = await new Promise(resolve => assert.ok(socket.ping(resolve), "ping sent"))
  log(`${beats().length} heartbeat replies; ping rtt ${rtt} ms; opens ${opens}, closes ${closes}, errors ${errors}`)
  assert.equal(opens, 1, "no reconnect")
  assert.equal(closes, 0)
  assert.equal(errors, 0)
  assert.deepEqual(await push(channel, "echo", {alive: true}), {status: "ok", response: {alive: true}})
  await disconnect(socket)
})
