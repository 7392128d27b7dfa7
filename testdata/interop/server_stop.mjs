// s.Stop(nil) from HandleIn: the reply comes first, then phx_close
// (join_ref as both refs); the client closes the channel and does not
// rejoin. Another channel on the same socket is unaffected.
import {scenario, conformance, connect, joined, push, frames, until, sleep, ctl, disconnect, assert, log, ID} from "./lib.mjs"

scenario("server_stop", async () => {
  const topic = `room:${ID}`
  const socket = connect({user: `${ID}_a`})
  const raw = frames(socket)
  const channel = socket.channel(topic)
  const other = socket.channel(`${topic}_other`)
  await joined(channel)
  await joined(other)
  const joinRef = channel.joinRef()
  let closed = 0, errored = 0, socketCloses = 0
  channel.onClose(() => closed++)
  channel.onError(() => errored++)
  socket.onClose(() => socketCloses++)

  const p = channel.push("stop", {})
  const r = await new Promise(resolve => p.receive("ok", resolve).receive("timeout", () => resolve("timeout")))
  assert.deepEqual(r, {stopping: true})
  await until(() => closed === 1, "onClose after phx_close")
  const ri = raw.findIndex(m => m.event === "phx_reply" && m.ref === p.ref)
  const ci = raw.findIndex(m => m.event === "phx_close")
  log("frames:", JSON.stringify(raw.slice(ri)))
  assert.ok(ri >= 0 && ri < ci, "phx_reply precedes phx_close")
  assert.equal(raw[ci].join_ref, joinRef)
  conformance("docs/protocol.md §5.6: phx_close after a stop has ref = join_ref", () =>
    assert.equal(raw[ci].ref, joinRef))
  assert.equal(channel.state, "closed")

  await sleep(200) // a rejoin would happen within 50 ms
  assert.equal(errored, 0)
  assert.deepEqual(await ctl(`joins?topic=${encodeURIComponent(topic)}`), {joins: 1, live: 0, subscribers: 0})
  assert.ok(!raw.some(m => m.event === "phx_reply" && m.topic === topic && m.ref !== joinRef && m.ref !== p.ref),
    "no rejoin")
  assert.equal(socketCloses, 0)
  assert.ok(socket.isConnected())
  assert.deepEqual(await push(other, "echo", {other: true}), {status: "ok", response: {other: true}})
  await disconnect(socket)
})
