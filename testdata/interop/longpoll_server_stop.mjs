// Server-side end of a channel over LongPoll: s.Stop(nil) in HandleIn sends
// the reply, then phx_close; the client closes the channel and does not
// rejoin; the session and other channels carry on.
import {scenario, connect, joined, push, frames, sleep, until, ctl, disconnect, assert, log, ID, CLIENT} from "./lib.mjs"

const {LongPoll} = await import(CLIENT)

scenario("longpoll_server_stop", async () => {
  const topic = `room:${ID}`
  const socket = connect({user: `${ID}_a`}, {transport: LongPoll})
  const raw = frames(socket)
  const channel = socket.channel(topic)
  const other = socket.channel(`${topic}_other`)
  await joined(channel)
  await joined(other)
  const joinRef = channel.joinRef()
  let closed = 0, errored = 0, socketCloses = 0
  channel.onClose(() => closed++)
  channel.onError(() => errored++)
  socket.onClose(() => socketCloses++)

  const r = await push(channel, "stop", {})
  assert.deepEqual(r, {status: "ok", response: {stopping: true}})
  await until(() => closed === 1, "onClose after phx_close")
  const close = raw.find(m => m.event === "phx_close" && m.topic === topic)
  assert.equal(close.join_ref, joinRef)
  assert.equal(channel.state, "closed")
  await sleep(200)
  assert.equal(errored, 0, "no error, so no rejoin")
  assert.deepEqual(await ctl(`joins?topic=${encodeURIComponent(topic)}`), {joins: 1, live: 0, subscribers: 0})
  assert.equal(socketCloses, 0)
  assert.deepEqual(await push(other, "echo", {still: "here"}), {status: "ok", response: {still: "here"}})

  // A crash: phx_error, then the client rejoins by itself.
  const crashTopic = `${topic}_crash`
  const crashing = socket.channel(crashTopic)
  await joined(crashing)
  crashing.onError(() => log("crash: phx_error"))
  const before = (await ctl(`joins?topic=${encodeURIComponent(crashTopic)}`)).joins
  crashing.push("crash", {})
  await until(async () => (await ctl(`joins?topic=${encodeURIComponent(crashTopic)}`)).joins === before + 1, "the rejoin after the crash")
  await until(() => crashing.state === "joined", "the channel joined again")
  assert.deepEqual(await push(crashing, "echo", {again: true}), {status: "ok", response: {again: true}})
  await disconnect(socket)
})
