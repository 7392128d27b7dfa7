// typing goes to the other members of the room, not to the sender.
import {assert, ID, login, openRoom, say, scenario, send, until} from "./lib.mjs"

scenario("typing", async () => {
  const roomName = `typing_${ID}`
  const ann = await login(`ann_${ID}`)
  const bob = await login(`bob_${ID}`)
  const carol = await login(`carol_${ID}`)
  const rooms = [openRoom(ann, roomName), openRoom(bob, roomName), openRoom(carol, roomName)]
  for(const r of rooms){ await r.joined() }
  const [a, b, c] = rooms

  assert.equal((await send(a.channel, "typing", {})).status, "ok")
  await until(() => b.typing.length === 1 && c.typing.length === 1, "bob and carol to see ann typing")
  assert.deepEqual(b.typing[0], {user: `ann_${ID}`})
  assert.deepEqual(c.typing[0], {user: `ann_${ID}`})

  // Everything sent to ann before her next message's broadcast has arrived:
  // no typing among it.
  const id = await say(a, "done")
  await a.has(id)
  assert.deepEqual(a.typing, [], "the sender must not get its own typing event")
  assert.equal(b.typing.length, 1)
})
