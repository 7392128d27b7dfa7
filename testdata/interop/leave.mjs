// channel.leave(): the client gets ok and closes the channel; the server
// answers the phx_leave with ok and then phx_close (ref = join_ref),
// unsubscribes, and runs Terminate with ErrLeft (checked by the Go test).
// A leave for a topic that is not joined is acknowledged too.
import {scenario, conformance, connect, joined, push, frames, until, ctl, disconnect, assert, log, ID} from "./lib.mjs"

scenario("leave", async () => {
  const topic = `room:${ID}`
  const socket = connect({user: `${ID}_a`})
  const raw = frames(socket)
  const channel = socket.channel(topic)
  await joined(channel)
  const joinRef = channel.joinRef()
  let closed = 0
  channel.onClose(() => closed++)
  const leavePush = channel.leave()
  const r = await new Promise(resolve => leavePush.receive("ok", resolve).receive("timeout", () => resolve("timeout")))
  assert.deepEqual(r, {})
  assert.equal(closed, 1, "onClose fired")
  assert.equal(channel.state, "closed")

  await until(() => raw.some(m => m.event === "phx_close" && m.topic === topic), "the server's phx_close")
  const ri = raw.findIndex(m => m.event === "phx_reply" && m.ref === leavePush.ref)
  const ci = raw.findIndex(m => m.event === "phx_close" && m.topic === topic)
  log("server frames after leave:", JSON.stringify(raw.slice(ri)))
  assert.ok(ri >= 0, "the server replied to phx_leave")
  assert.deepEqual(raw[ri].payload, {status: "ok", response: {}})
  assert.equal(raw[ri].join_ref, joinRef)
  assert.ok(ri < ci, "reply before phx_close")
  assert.equal(raw[ci].join_ref, joinRef)
  conformance("docs/protocol.md §5.5: phx_close after a leave has ref = join_ref", () =>
    assert.equal(raw[ci].ref, joinRef))
  await until(async () => (await ctl(`terminated?topic=${encodeURIComponent(topic)}`)).length === 1, "Terminate")
  assert.deepEqual(await ctl(`terminated?topic=${encodeURIComponent(topic)}`), ["left"])
  assert.deepEqual(await ctl(`joins?topic=${encodeURIComponent(topic)}`), {joins: 1, live: 0, subscribers: 0})

  // Leave of a topic never joined: ok with the given refs.
  const ref = socket.makeRef()
  socket.push({topic: `room:${ID}_unknown`, event: "phx_leave", payload: {}, ref, join_ref: "999"})
  await until(() => raw.some(m => m.ref === ref), "the reply to the unknown leave")
  assert.deepEqual(raw.find(m => m.ref === ref).payload, {status: "ok", response: {}})

  // The socket is fine: join again with a new Channel object.
  const again = socket.channel(topic)
  await joined(again)
  assert.deepEqual(await push(again, "echo", {n: 2}), {status: "ok", response: {n: 2}})
  again.leave()
  await until(async () => (await ctl(`terminated?topic=${encodeURIComponent(topic)}`)).length === 2, "second Terminate")
  await disconnect(socket)
})
