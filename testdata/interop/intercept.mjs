// An intercepted event goes through each subscriber's HandleOut, which
// drops it for one user and pushes a per-user transformed copy to the
// others; that copy is a channel push carrying the subscriber's join_ref,
// unlike fastlane broadcasts (null join_ref).
import {scenario, connect, joined, push, collect, frames, until, sleep, disconnect, assert, log, ID} from "./lib.mjs"

scenario("intercept", async () => {
  const topic = `room:${ID}`
  const clients = ["a", "b", "c"].map(name => {
    const user = `${ID}_${name}`
    const socket = connect({user})
    const channel = socket.channel(topic)
    return {name, user, socket, channel, raw: frames(socket), got: collect(channel, "censored"), shouts: collect(channel, "shout")}
  })
  await Promise.all(clients.map(c => joined(c.channel)))
  const [a, b, c] = clients
  assert.equal((await push(a.channel, "censored", {text: "hello", hide_from: b.user})).status, "ok")
  assert.equal((await push(a.channel, "censored", {text: "again", hide_from: "nobody"})).status, "ok")
  assert.equal((await push(a.channel, "broadcast", {plain: true})).status, "ok")
  await until(() => a.got.length >= 2 && c.got.length >= 2 && b.got.length >= 1, "the intercepted copies")
  await until(() => clients.every(x => x.shouts.length >= 1), "the plain broadcast everywhere")
  await sleep(150)
  log("a", JSON.stringify(a.got), "b", JSON.stringify(b.got), "c", JSON.stringify(c.got))
  assert.deepEqual(a.got, [{text: "HELLO", for: a.user}, {text: "AGAIN", for: a.user}])
  assert.deepEqual(b.got, [{text: "AGAIN", for: b.user}], "b is filtered out of the first")
  assert.deepEqual(c.got, [{text: "HELLO", for: c.user}, {text: "AGAIN", for: c.user}])
  for(const x of clients){
    for(const m of x.raw.filter(m => m.event === "censored")){
      assert.equal(m.join_ref, x.channel.joinRef(), "HandleOut's push carries the join_ref")
      assert.equal(m.ref, null)
    }
    const shout = x.raw.find(m => m.event === "shout")
    assert.equal(shout.join_ref, null, "a non-intercepted broadcast is fastlane")
    assert.deepEqual(x.shouts, [{plain: true}])
  }
  await Promise.all(clients.map(x => disconnect(x.socket)))
})
