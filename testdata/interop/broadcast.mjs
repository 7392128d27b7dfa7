// Socket.Broadcast from a channel reaches all 3 subscribers (the sender
// included), in order, exactly once, as fastlane frames with null refs.
import {scenario, connect, joined, push, collect, frames, until, sleep, disconnect, assert, log, ID} from "./lib.mjs"

scenario("broadcast", async () => {
  const topic = `room:${ID}`
  const clients = ["a", "b", "c"].map(name => {
    const socket = connect({user: `${ID}_${name}`})
    const channel = socket.channel(topic)
    return {name, socket, channel, raw: frames(socket), got: collect(channel, "shout")}
  })
  await Promise.all(clients.map(c => joined(c.channel)))
  const N = 20
  const sender = clients[0]
  for(let i = 1; i <= N; i++){
    // not awaited: the pushes are pipelined, their order kept by the socket
    push(sender.channel, "broadcast", {seq: i, from: sender.name})
  }
  await until(() => clients.every(c => c.got.length >= N), `${N} broadcasts at every client`)
  await sleep(150) // anything extra would be a duplicate
  for(const c of clients){
    log(c.name, "got", c.got.map(m => m.seq).join(","))
    assert.deepEqual(c.got.map(m => m.seq), Array.from({length: N}, (_, i) => i + 1), `client ${c.name}: order/duplicates`)
    assert.ok(c.got.every(m => m.from === "a"))
    const shouts = c.raw.filter(m => m.event === "shout")
    assert.ok(shouts.every(m => m.join_ref === null && m.ref === null), "broadcast frames carry null refs")
  }
  await Promise.all(clients.map(c => disconnect(c.socket)))
})
