// Join refused with an error payload: receive("error") gets it, no
// phx_close follows, and the client's automatic rejoin succeeds once the
// app allows it (the params closure is re-evaluated on every rejoin). A join
// whose Join hook panics gets {"reason":"join crashed"}.
import {scenario, connect, join, result, frames, until, sleep, disconnect, assert, log, ID} from "./lib.mjs"

scenario("join_refused", async () => {
  const socket = connect({user: `${ID}_a`})
  const raw = frames(socket)
  let attempts = 0
  const channel = socket.channel(`room:${ID}`, () => ({refuse: attempts++ === 0, reason: "nope"}))
  let closed = 0
  channel.onClose(() => closed++)
  const joinPush = channel.join()
  const first = await result(joinPush)
  log("first join", JSON.stringify(first))
  assert.deepEqual(first, {status: "error", response: {reason: "nope"}})
  const okReply = new Promise(resolve => joinPush.receive("ok", resolve))
  const second = await okReply
  log(`joined after ${attempts} attempts`, JSON.stringify(second))
  assert.equal(attempts, 2)
  assert.equal(second.params.refuse, false)
  assert.equal(closed, 0, "no phx_close after a refused join")
  assert.ok(!raw.some(m => m.event === "phx_close"), "no phx_close frame")

  const crash = socket.channel(`room:${ID}_crash`, {crash: true})
  const c = await join(crash)
  log("crashing join", JSON.stringify(c))
  assert.deepEqual(c, {status: "error", response: {reason: "join crashed"}})
  crash.leave()
  await sleep(50)
  assert.ok(!raw.some(m => m.event === "phx_close"), "no phx_close frame")
  await disconnect(socket)
})
