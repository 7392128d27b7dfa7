// Async reply: HandleIn returns NoReply and a goroutine answers later with
// ReplyRef.Reply. Pushes made meanwhile are answered first.
import {scenario, connect, joined, push, disconnect, assert, log, ID} from "./lib.mjs"

scenario("push_async", async () => {
  const socket = connect({user: `${ID}_a`})
  const channel = socket.channel(`room:${ID}`)
  await joined(channel)
  const order = []
  const a = push(channel, "async", {n: 7}).then(r => { order.push("async"); return r })
  const e = push(channel, "echo", {sync: true}).then(r => { order.push("echo"); return r })
  const [ar, er] = await Promise.all([a, e])
  log("async", JSON.stringify(ar), "order", order)
  assert.deepEqual(ar, {status: "ok", response: {async: true, n: 7}})
  assert.deepEqual(er, {status: "ok", response: {sync: true}})
  assert.deepEqual(order, ["echo", "async"], "the synchronous reply overtakes the delayed one")
  // Several async replies in flight, each to its own ref.
  const many = await Promise.all([1, 2, 3, 4, 5].map(n => push(channel, "async", {n})))
  many.forEach((r, i) => assert.deepEqual(r, {status: "ok", response: {async: true, n: i + 1}}))
  await disconnect(socket)
})
