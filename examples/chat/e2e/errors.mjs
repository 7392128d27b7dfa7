// Refused messages: blank and too long bodies get an error reply and are
// neither broadcast nor stored.
import {assert, ID, login, openRoom, say, scenario, send, until} from "./lib.mjs"

scenario("errors", async () => {
  const roomName = `errors_${ID}`
  const ann = await login(`ann_${ID}`)
  const bob = await login(`bob_${ID}`)
  const a = openRoom(ann, roomName)
  const b = openRoom(bob, roomName)
  await a.joined()
  await b.joined()

  const cases = [
    [{body: ""}, "empty"],
    [{body: "   \n "}, "empty"],
    [{body: "x".repeat(2001)}, "too long"],
    [{body: "é".repeat(1001)}, "too long"], // 2002 bytes
  ]
  for(const [payload, reason] of cases){
    const r = await send(a.channel, "new_msg", payload)
    assert.deepEqual(r, {status: "error", response: {reason}}, `new_msg of ${payload.body.length} chars`)
  }

  // The next accepted message is the first one anyone receives: id 1.
  const ok = "y".repeat(2000)
  assert.equal(await say(a, ok), 1)
  await until(() => b.messages.length > 0 && a.messages.length > 0, "the accepted message")
  assert.equal(b.messages[0].body, ok)
  assert.equal(b.messages[0].id, 1)
})
