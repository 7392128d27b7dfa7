// Join of a topic no route matches: {"reason":"unmatched topic"} with a null
// join_ref, which phoenix.js still accepts for the channel.
import {scenario, connect, join, frames, disconnect, assert, log, ID} from "./lib.mjs"

scenario("join_unmatched", async () => {
  const socket = connect({user: `${ID}_a`})
  const raw = frames(socket)
  const channel = socket.channel(`nowhere:${ID}`)
  const r = await join(channel)
  log("join", JSON.stringify(r))
  assert.deepEqual(r, {status: "error", response: {reason: "unmatched topic"}})
  const reply = raw.find(m => m.topic === `nowhere:${ID}`)
  assert.equal(reply.join_ref, null)
  assert.equal(reply.ref, channel.joinRef())
  channel.leave()
  await disconnect(socket)
})
