// Duplicate join of one topic on one socket, two ways:
//
// raw:  phoenix.js itself never sends a second phx_join for a joined topic
//       (see objs), so the scenario sends one with the socket's own push
//       method, as a buggy or non-JS client would. The server must close the
//       first instance (phx_close with the old join_ref, which phoenix.js
//       delivers to the first Channel object), accept the new join, and keep
//       exactly one subscription: a broadcast arrives once.
// objs: two Channel objects for one topic; joining the second makes the
//       client leave the first. Only the second receives broadcasts, once.
import {scenario, conformance, connect, joined, collect, frames, until, sleep, ctl, disconnect, assert, log, ID} from "./lib.mjs"

scenario("duplicate_join", async () => {
  const socket = connect({user: `${ID}_a`})
  const raw = frames(socket)

  // raw
  const rawTopic = `room:${ID}_raw`
  const first = socket.channel(rawTopic)
  let firstClosed = 0
  first.onClose(() => firstClosed++)
  await joined(first)
  const oldRef = first.joinRef()
  const ref = socket.makeRef()
  socket.push({topic: rawTopic, event: "phx_join", payload: {}, ref, join_ref: ref})
  await until(() => raw.some(m => m.ref === ref), "the reply to the duplicate join")
  const reply = raw.find(m => m.ref === ref)
  log("duplicate join reply", JSON.stringify(reply))
  assert.equal(reply.event, "phx_reply")
  assert.equal(reply.join_ref, ref)
  assert.equal(reply.payload.status, "ok")
  await until(() => firstClosed === 1, "phx_close for the first instance")
  const close = raw.find(m => m.event === "phx_close" && m.topic === rawTopic)
  assert.equal(close.join_ref, oldRef)
  conformance("docs/protocol.md §5.8: phx_close for the replaced instance has ref = its join_ref", () =>
    assert.equal(close.ref, oldRef))
  let stats = await ctl(`joins?topic=${encodeURIComponent(rawTopic)}`)
  log("raw topic server-side", JSON.stringify(stats))
  assert.deepEqual(stats, {joins: 2, live: 1, subscribers: 1})
  await ctl(`broadcast?topic=${encodeURIComponent(rawTopic)}&event=dup_check`, {n: 1})
  await until(() => raw.some(m => m.event === "dup_check"), "the broadcast")
  await sleep(100)
  assert.equal(raw.filter(m => m.event === "dup_check").length, 1, "broadcast delivered once")

  // objs
  const objsTopic = `room:${ID}_objs`
  const one = socket.channel(objsTopic)
  const two = socket.channel(objsTopic)
  const gotOne = collect(one, "dup_check"), gotTwo = collect(two, "dup_check")
  let oneClosed = 0
  one.onClose(() => oneClosed++)
  await joined(one)
  await joined(two)
  assert.equal(oneClosed, 1, "the client left the first object")
  await until(async () => (await ctl(`joins?topic=${encodeURIComponent(objsTopic)}`)).subscribers === 1,
    "one subscriber left server-side")
  stats = await ctl(`joins?topic=${encodeURIComponent(objsTopic)}`)
  log("objs topic server-side", JSON.stringify(stats))
  assert.deepEqual(stats, {joins: 2, live: 1, subscribers: 1})
  await ctl(`broadcast?topic=${encodeURIComponent(objsTopic)}&event=dup_check`, {n: 2})
  await until(() => gotTwo.length === 1, "the broadcast at the second object")
  await sleep(100)
  assert.deepEqual(gotTwo, [{n: 2}])
  assert.deepEqual(gotOne, [])
  assert.equal(raw.filter(m => m.event === "dup_check" && m.topic === objsTopic).length, 1, "broadcast delivered once")
  await disconnect(socket)
})
