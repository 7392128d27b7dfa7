// For TestPrometheusScrape: one user connects, joins a room, sends three
// messages and a typing event, then keeps the connection open until a line
// (or the end) comes on stdin, while the Go test reads the metrics through
// Prometheus; then it leaves the room and disconnects.
import {ID, assert, disconnect, log, login, openRoom, result, say, scenario, send} from "./lib.mjs"

scenario("metrics", async () => {
  const ann = await login(`ann_${ID}`)
  const room = openRoom(ann, `metrics_${ID}`)
  await room.joined()
  for(const body of ["one", "two", "three"]){ await say(room, body) }
  const typed = await send(room.channel, "typing", {})
  assert.equal(typed.status, "ok", `typing: ${JSON.stringify(typed)}`)
  log("HOLDING: joined, 3 messages sent; waiting for stdin")
  await new Promise(resolve => {
    process.stdin.once("data", resolve)
    process.stdin.once("end", resolve)
  })
  const left = await result(room.channel.leave())
  assert.equal(left.status, "ok", `leave: ${JSON.stringify(left)}`)
  await disconnect(ann)
  log("left and disconnected")
}, {timeoutMs: 40000})
