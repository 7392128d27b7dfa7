// History catch-up with the library's history: a client that loses its
// connection rejoins with its last position (phx_position, from
// phx_history.js's params function, which phoenix.js calls on every
// rejoin) and gets exactly what it missed after the join reply, then live
// messages, without duplicates.
import {assert, ID, bodies, connect, disconnect, login, openRoom, say, scenario, token, until} from "./lib.mjs"

scenario("history catch-up with phx_position after a reconnect", async () => {
  const roomName = `history_${ID}`
  const topic = `room:${roomName}`
  const ann = await login(`ann_${ID}`)
  const bob = await login(`bob_${ID}`)
  const a = openRoom(ann, roomName)
  const b = openRoom(bob, roomName)
  await a.joined()
  await b.joined()
  assert.deepEqual(b.joinParams, [{phx_position: {epoch: "", offset: 0}}], "the first join asks for the recent messages")
  const epoch = b.joinReplies[0].phx_position.epoch
  assert.ok(epoch, "the reply names the room's epoch")

  await say(a, "m1")
  await say(a, "m2")
  await b.has(2)

  // Bob goes away; ann talks meanwhile.
  await disconnect(bob)
  await until(() => b.channel.state === "errored", "bob's channel to be errored")
  await say(a, "m3")
  await say(a, "m4")
  await say(a, "m5")
  assert.equal(b.messages.length, 2, "bob got nothing while disconnected")

  // Bob comes back: the channel rejoins by itself from offset 2.
  bob.connect()
  await b.joined(2)
  assert.deepEqual(b.joinParams.at(-1), {phx_position: {epoch, offset: 2}})
  assert.deepEqual(b.recoveries[1], {recovered: true, reset: false, replayed: 3})
  await b.has(5)
  assert.deepEqual(b.messages.map(m => m.id), [1, 2, 3, 4, 5])

  // Live messages flow again, and nothing is received twice.
  await say(a, "m6")
  await b.has(6)
  assert.deepEqual(bodies(b.messages), ["m1", "m2", "m3", "m4", "m5", "m6"])
  assert.equal(b.duplicates, 0)

  // A second outage: the params function sends the new position.
  await disconnect(bob)
  await until(() => b.channel.state === "errored", "bob's channel to be errored again")
  await say(a, "m7")
  bob.connect()
  await b.joined(3)
  assert.deepEqual(b.joinParams.at(-1).phx_position, {epoch, offset: 6})
  await b.has(7)
  assert.deepEqual(bodies(b.messages), ["m1", "m2", "m3", "m4", "m5", "m6", "m7"])
  assert.equal(b.duplicates, 0)

  // A new client asking from offset 4 gets 5..7; a position from another
  // run of the server gets recovered: false and nothing replayed.
  const carol = connect(await token(`carol_${ID}`))
  carol.user = `carol_${ID}`
  const got = []
  const ch = carol.channel(topic, {phx_position: {epoch, offset: 4}})
  ch.on("new_msg", m => got.push(m.body))
  const reply = await new Promise(resolve => ch.join().receive("ok", resolve))
  assert.equal(reply.recovered, true)
  assert.equal(reply.replayed, 3)
  await until(() => got.length === 3, "carol's replay")
  assert.deepEqual(got, ["m5", "m6", "m7"])
  ch.leave()
  const stale = carol.channel(topic, {phx_position: {epoch: "0000", offset: 4}})
  const r2 = await new Promise(resolve => stale.join().receive("ok", resolve))
  assert.deepEqual([r2.recovered, r2.replayed, r2.phx_position.offset], [false, 0, 7])
  stale.leave()
  const c = openRoom(carol, roomName)
  await c.joined()
  await c.has(7)
  assert.equal(c.messages.length, 7, "a first join gets the recent messages")
})
