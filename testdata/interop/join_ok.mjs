// Join accepted with a reply payload built from the join params and the
// connection's assigns. A push made inside Join arrives after the reply.
import {scenario, connect, join, frames, until, disconnect, assert, log, ID} from "./lib.mjs"

scenario("join_ok", async () => {
  const user = `${ID}_a`
  const socket = connect({user})
  const raw = frames(socket)
  const channel = socket.channel(`room:${ID}`, {hello: "world", n: 42, nested: {list: [1, 2]}, welcome: true})
  const r = await join(channel)
  log("join", JSON.stringify(r))
  assert.equal(r.status, "ok")
  assert.deepEqual(r.response.params, {hello: "world", n: 42, nested: {list: [1, 2]}, welcome: true})
  assert.equal(r.response.topic, `room:${ID}`)
  assert.equal(r.response.user, user)
  assert.equal(r.response.transport, "websocket")
  // The reply carries the join's join_ref and ref (both = the join ref).
  const reply = raw.find(m => m.event === "phx_reply" && m.topic === `room:${ID}`)
  assert.equal(reply.join_ref, channel.joinRef())
  assert.equal(reply.ref, channel.joinRef())
  assert.equal(r.response.join_ref, channel.joinRef(), "Socket.JoinRef is the client's join ref")
  assert.equal(channel.state, "joined")
  await until(() => raw.some(m => m.event === "welcome"), "the push made during Join")
  const wi = raw.findIndex(m => m.event === "welcome")
  assert.ok(raw.indexOf(reply) < wi, "the join reply precedes pushes made during Join")
  assert.equal(raw[wi].join_ref, channel.joinRef())
  assert.deepEqual(raw[wi].payload, {hello: user})
  await disconnect(socket)
})
