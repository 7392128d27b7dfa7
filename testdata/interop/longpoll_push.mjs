// The official client over LongPoll (transport: LongPoll): the session
// opens (the authToken option travels in the X-Phoenix-AuthToken header),
// the join reaches a channel that sees Transport() == "longpoll", and
// pushes get their replies (ok, error, async, none), server pushes and
// HandleInfo pushes arrive, all in order, through GET polls; pushes travel
// as ndjson POST batches.
import {scenario, connect, joined, push, collect, frames, until, sleep, ctl, disconnect, assert, log, ID, CLIENT} from "./lib.mjs"

const {LongPoll} = await import(CLIENT)

scenario("longpoll_push", async () => {
  const user = `${ID}_a`
  const topic = `room:${ID}`
  const socket = connect({user}, {transport: LongPoll, authToken: "~~~>lp.tok"})
  const raw = frames(socket)
  const channel = socket.channel(topic, {hello: "lp"})
  const r = await joined(channel)
  log("join", JSON.stringify(r))
  assert.ok(socket.conn instanceof LongPoll, "the socket uses the LongPoll transport")
  assert.equal(r.transport, "longpoll")
  assert.equal(r.user, user)
  assert.deepEqual(r.params, {hello: "lp"})
  assert.equal(r.auth_token, "~~~>lp.tok")
  const reply = raw.find(m => m.event === "phx_reply" && m.topic === topic)
  assert.equal(reply.join_ref, channel.joinRef())

  assert.deepEqual(await push(channel, "echo", {n: 1, s: "é\n\"x\""}), {status: "ok", response: {n: 1, s: "é\n\"x\""}})
  assert.deepEqual(await push(channel, "fail", {x: 1}), {status: "error", response: {reason: "failed", got: {x: 1}}})
  assert.deepEqual(await push(channel, "custom_status", {}, {statuses: ["warn", "timeout"]}), {status: "warn", response: {level: "yellow"}})
  assert.deepEqual(await push(channel, "async", {n: 7}), {status: "ok", response: {async: true, n: 7}})
  assert.equal((await push(channel, "noreply", {}, {timeout: 300})).status, "timeout")

  // Many pushes in one tick go out as one batch (more than the 100-line
  // POST limit: the client splits them); every reply arrives, in order.
  const N = 150
  const results = await Promise.all(Array.from({length: N}, (_, i) => push(channel, "echo", {i})))
  assert.deepEqual(results.map(x => x.response.i), Array.from({length: N}, (_, i) => i))
  assert.ok(results.every(x => x.status === "ok"))

  // Server-side pushes: Socket.Push via the control API, and Send ->
  // HandleInfo -> Push.
  const pushed = collect(channel, "srv")
  const info = collect(channel, "from_info")
  assert.deepEqual(await ctl(`push?topic=${encodeURIComponent(topic)}&user=${encodeURIComponent(user)}&event=srv`, {k: "v"}), {pushed: 1})
  assert.deepEqual(await push(channel, "push_me", {event: "from_info", payload: {via: "info"}}), {status: "ok", response: {}})
  await until(() => pushed.length === 1 && info.length === 1, "the server pushes")
  assert.deepEqual(pushed, [{k: "v"}])
  assert.deepEqual(info, [{via: "info"}])

  // A push after a quiet spell longer than the server's poll window.
  await sleep(1300)
  assert.deepEqual(await push(channel, "echo", {late: true}), {status: "ok", response: {late: true}})
  assert.ok(socket.isConnected())
  await disconnect(socket)
})
