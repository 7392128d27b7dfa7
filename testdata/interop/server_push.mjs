// Server push to one client: Socket.Push from outside the channel (control
// API) and from HandleInfo (HandleIn -> Socket.Send -> HandleInfo -> Push).
// Only the addressed client receives it, with its channel's join_ref.
import {scenario, connect, joined, push, collect, frames, until, sleep, ctl, disconnect, assert, log, ID} from "./lib.mjs"

scenario("server_push", async () => {
  const topic = `room:${ID}`
  const [a, b] = ["a", "b"].map(name => {
    const user = `${ID}_${name}`
    const socket = connect({user})
    const channel = socket.channel(topic)
    return {user, socket, channel, raw: frames(socket), direct: collect(channel, "direct"), info: collect(channel, "info_push")}
  })
  await joined(a.channel)
  await joined(b.channel)

  const res = await ctl(`push?topic=${encodeURIComponent(topic)}&user=${encodeURIComponent(a.user)}&event=direct`, {x: 1})
  assert.deepEqual(res, {pushed: 1})
  await until(() => a.direct.length === 1, "the direct push at a")
  assert.deepEqual(a.direct, [{x: 1}])
  const frame = a.raw.find(m => m.event === "direct")
  assert.equal(frame.join_ref, a.channel.joinRef())
  assert.equal(frame.ref, null)

  const r = await push(b.channel, "push_me", {event: "info_push", payload: {via: "HandleInfo"}})
  assert.equal(r.status, "ok")
  await until(() => b.info.length === 1, "HandleInfo's push at b")
  assert.deepEqual(b.info, [{via: "HandleInfo"}])
  await sleep(150)
  log("a direct", a.direct.length, "info", a.info.length, "| b direct", b.direct.length, "info", b.info.length)
  assert.equal(b.direct.length, 0, "b must not get a's push")
  assert.equal(a.info.length, 0, "a must not get b's push")
  await disconnect(a.socket)
  await disconnect(b.socket)
})
