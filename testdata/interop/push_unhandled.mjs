// A channel without HandleIn: pushes get {"reason":"unhandled event"}; a push
// to a topic the client has not joined on this connection gets
// {"reason":"unmatched topic"} (sent with the socket's raw push, as phoenix.js
// never pushes to a channel it has not joined).
import {scenario, connect, joined, push, frames, until, disconnect, assert, log, ID} from "./lib.mjs"

scenario("push_unhandled", async () => {
  const socket = connect({user: `${ID}_a`})
  const raw = frames(socket)
  const channel = socket.channel(`bare:${ID}`)
  await joined(channel)
  const r = await push(channel, "anything", {x: 1})
  log("bare push", JSON.stringify(r))
  assert.deepEqual(r, {status: "error", response: {reason: "unhandled event"}})

  const ref = socket.makeRef()
  socket.push({topic: `room:${ID}_never`, event: "echo", payload: {}, ref, join_ref: null})
  await until(() => raw.some(m => m.ref === ref), "the reply to a push on an unjoined topic")
  const reply = raw.find(m => m.ref === ref)
  log("unjoined push", JSON.stringify(reply))
  assert.equal(reply.event, "phx_reply")
  assert.equal(reply.join_ref, null)
  assert.deepEqual(reply.payload, {status: "error", response: {reason: "unmatched topic"}})
  await disconnect(socket)
})
