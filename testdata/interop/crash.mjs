// A panic in HandleIn crashes only that channel: the client gets phx_error
// {"reason":"channel_crash"} (with the crashed incarnation's join_ref),
// onError fires, and the client rejoins by itself; a second topic on the
// same socket keeps working throughout.
import {scenario, conformance, connect, joined, push, frames, until, sleep, disconnect, assert, log, ID} from "./lib.mjs"

scenario("crash", async () => {
  const socket = connect({user: `${ID}_a`})
  const raw = frames(socket)
  const crashing = socket.channel(`room:${ID}_crash`)
  const other = socket.channel(`room:${ID}_other`)
  const errors = [], otherErrors = []
  crashing.onError(reason => errors.push(reason))
  other.onError(reason => otherErrors.push(reason))
  let oks = 0
  const jp = crashing.join()
  jp.receive("ok", () => oks++)
  await until(() => oks === 1, "the first join")
  await joined(other)
  const firstRef = crashing.joinRef()

  crashing.push("crash", {}, 500) // no reply: the channel dies
  await until(() => errors.length === 1, "onError after the crash")
  log("onError", JSON.stringify(errors[0]))
  assert.deepEqual(errors[0], {reason: "channel_crash"})
  const ef = raw.find(m => m.event === "phx_error")
  assert.equal(ef.topic, `room:${ID}_crash`)
  assert.equal(ef.join_ref, firstRef)
  conformance("docs/protocol.md §5.6: phx_error after a crash has ref = join_ref", () =>
    assert.equal(ef.ref, firstRef))

  await until(() => oks === 2, "the automatic rejoin")
  assert.notEqual(crashing.joinRef(), firstRef)
  log("rejoined with join_ref", crashing.joinRef())
  assert.deepEqual(await push(crashing, "echo", {after: "crash"}), {status: "ok", response: {after: "crash"}})
  assert.deepEqual(await push(other, "echo", {other: true}), {status: "ok", response: {other: true}})

  // docs/protocol.md §5.7: a message carrying the crashed incarnation's join_ref
  // is dropped without a reply; one with a null join_ref is delivered.
  const stale = socket.makeRef(), fresh = socket.makeRef()
  socket.push({topic: `room:${ID}_crash`, event: "echo", payload: {stale: true}, ref: stale, join_ref: firstRef})
  socket.push({topic: `room:${ID}_crash`, event: "echo", payload: {fresh: true}, ref: fresh, join_ref: null})
  await until(() => raw.some(m => m.ref === fresh), "the reply to the push with a null join_ref")
  assert.deepEqual(raw.find(m => m.ref === fresh).payload, {status: "ok", response: {fresh: true}})
  await sleep(100)
  assert.ok(!raw.some(m => m.ref === stale), "no reply to a push with a stale join_ref")
  await sleep(50)
  assert.deepEqual(otherErrors, [])
  assert.equal(errors.length, 1)
  assert.ok(socket.isConnected())
  await disconnect(socket)
})
