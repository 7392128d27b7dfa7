// Push with an ok reply: HandleIn's return value comes back as the response;
// the reply carries the push's ref and the channel's join_ref.
import {scenario, connect, joined, push, frames, disconnect, assert, log, ID} from "./lib.mjs"

scenario("push_ok", async () => {
  const socket = connect({user: `${ID}_a`})
  const raw = frames(socket)
  const channel = socket.channel(`room:${ID}`)
  await joined(channel)
  const payload = {text: "héllo ✓ \u{1F600}", n: 1.5, list: [1, "two", null, {deep: true}], quote: "\"\\"}
  const r = await push(channel, "echo", payload)
  log("echo", JSON.stringify(r))
  assert.deepEqual(r, {status: "ok", response: payload})
  const reply = raw.find(m => m.event === "phx_reply" && m.ref !== channel.joinRef())
  assert.equal(reply.join_ref, channel.joinRef())
  // Many pushes in flight at once: each reply matches its own ref.
  const many = await Promise.all(Array.from({length: 20}, (_, i) => push(channel, "echo", {i})))
  many.forEach((r, i) => assert.deepEqual(r, {status: "ok", response: {i}}))
  const who = await push(channel, "whoami")
  assert.deepEqual(who.response, {user: `${ID}_a`, join_ref: channel.joinRef(), socket_id: `user_socket:${ID}_a`})
  await disconnect(socket)
})
