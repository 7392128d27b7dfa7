// History catch-up: a client that loses its connection rejoins with the
// last id it saw (the join params are a function) and gets exactly what it
// missed, without duplicates.
import {assert, ID, bodies, connect, disconnect, login, openRoom, say, scenario, token, until} from "./lib.mjs"

scenario("history catch-up with last_seen_id after a reconnect", async () => {
  const roomName = `history_${ID}`
  const ann = await login(`ann_${ID}`)
  const bob = await login(`bob_${ID}`)
  const a = openRoom(ann, roomName)
  const b = openRoom(bob, roomName)
  await a.joined()
  await b.joined()
  assert.deepEqual(b.joinParams, [{}], "the first join has no last_seen_id")

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

  // Bob comes back: the channel rejoins by itself, sending last_seen_id 2.
  bob.connect()
  await b.joined(2)
  assert.deepEqual(b.joinParams.at(-1), {last_seen_id: 2})
  assert.deepEqual(bodies(b.joinReplies[1].messages), ["m3", "m4", "m5"], "the rejoin reply holds exactly what was missed")
  assert.deepEqual(b.joinReplies[1].messages.map(m => m.id), [3, 4, 5])

  // Live messages flow again, and nothing is shown twice.
  await say(a, "m6")
  await b.has(6)
  assert.deepEqual(bodies(b.messages), ["m1", "m2", "m3", "m4", "m5", "m6"])

  // A second outage: the params function sends the new last id.
  await disconnect(bob)
  await until(() => b.channel.state === "errored", "bob's channel to be errored again")
  await say(a, "m7")
  bob.connect()
  await b.joined(3)
  assert.deepEqual(b.joinParams.at(-1), {last_seen_id: 6})
  assert.deepEqual(bodies(b.joinReplies[2].messages), ["m7"])
  assert.deepEqual(bodies(b.messages), ["m1", "m2", "m3", "m4", "m5", "m6", "m7"])

  // A new client asking from id 4 gets 5..7; without last_seen_id, all.
  const carol = connect(await token(`carol_${ID}`))
  carol.user = `carol_${ID}`
  const ch = carol.channel(`room:${roomName}`, {last_seen_id: 4})
  const reply = await new Promise(resolve => ch.join().receive("ok", resolve))
  assert.deepEqual(bodies(reply.messages), ["m5", "m6", "m7"])
  ch.leave()
  const c = openRoom(carol, `${roomName}`)
  await c.joined()
  assert.equal(c.joinReplies[0].messages.length, 7)
})
