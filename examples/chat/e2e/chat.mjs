// Two users chat in one room: each message reaches both, sender included,
// with increasing ids, the author's name and a time.
import {assert, ID, bodies, login, openRoom, say, scenario, until} from "./lib.mjs"

scenario("two users chat", async () => {
  const ann = await login(`ann_${ID}`)
  const bob = await login(`bob_${ID}`)
  const roomName = `chat_${ID}`
  const a = openRoom(ann, roomName)
  const b = openRoom(bob, roomName)
  await a.joined()
  await b.joined()
  assert.equal(a.joinReplies[0].phx_position.offset, 0, "a new room has no history")
  assert.equal(a.joinReplies[0].replayed, 0)

  const before = Date.now()
  assert.equal(await say(a, "hello bob"), 1)
  await b.has(1)
  await a.has(1) // the sender gets the broadcast too
  const m = b.messages[0]
  assert.deepEqual(Object.keys(m).sort(), ["at", "body", "id", "phx_offset", "user"]) // id: set from phx_offset
  assert.equal(m.user, `ann_${ID}`)
  assert.equal(m.body, "hello bob")
  assert.ok(m.at >= before - 1000 && m.at <= Date.now() + 1000, `at ${m.at} is not the send time`)

  assert.equal(await say(b, "hi ann 👋"), 2)
  assert.equal(await say(a, "how are you?"), 3)
  await until(() => a.messages.length === 3 && b.messages.length === 3, "three messages on both sides")
  for(const r of [a, b]){
    assert.deepEqual(bodies(r.messages), ["hello bob", "hi ann 👋", "how are you?"])
    assert.deepEqual(r.messages.map(m => m.user), [`ann_${ID}`, `bob_${ID}`, `ann_${ID}`])
  }
})
