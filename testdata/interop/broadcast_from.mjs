// Socket.BroadcastFrom: every subscriber but the sender's own channel.
import {scenario, connect, joined, push, collect, until, sleep, disconnect, assert, log, ID} from "./lib.mjs"

scenario("broadcast_from", async () => {
  const topic = `room:${ID}`
  const clients = ["a", "b", "c"].map(name => {
    const socket = connect({user: `${ID}_${name}`})
    const channel = socket.channel(topic)
    return {name, socket, channel, got: collect(channel, "shout")}
  })
  await Promise.all(clients.map(c => joined(c.channel)))
  const [a, b, c] = clients
  for(let i = 1; i <= 3; i++){
    const r = await push(a.channel, "broadcast_from", {seq: i})
    assert.equal(r.status, "ok")
  }
  await until(() => b.got.length >= 3 && c.got.length >= 3, "3 broadcasts at b and c")
  await sleep(150)
  log("a", a.got.length, "b", b.got.length, "c", c.got.length)
  assert.deepEqual(b.got, [{seq: 1}, {seq: 2}, {seq: 3}])
  assert.deepEqual(c.got, [{seq: 1}, {seq: 2}, {seq: 3}])
  assert.deepEqual(a.got, [], "the sender must not receive its own broadcast_from")
  // ...but a plain broadcast from b reaches a.
  await push(b.channel, "broadcast", {seq: 4})
  await until(() => a.got.length === 1, "b's broadcast at a")
  await Promise.all(clients.map(c => disconnect(c.socket)))
})
