// A message over Options.MaxMessageSize (default 64 KiB) closes the
// connection with 1009; the client reconnects and rejoins by itself, and
// normal-sized pushes work again.
import {scenario, connect, push, until, disconnect, assert, log, ID} from "./lib.mjs"

scenario("too_big", async () => {
  const socket = connect({user: `${ID}_a`})
  const codes = []
  let opens = 0
  socket.onClose(e => codes.push(e.code))
  socket.onOpen(() => opens++)
  const channel = socket.channel(`room:${ID}`)
  let oks = 0
  channel.join().receive("ok", () => oks++)
  await until(() => oks === 1, "the join")

  const p = channel.push("echo", {blob: "x".repeat(80 << 10)}, 1000)
  await until(() => codes.length === 1, "the server's close")
  log("close code", codes[0])
  assert.equal(codes[0], 1009)
  await until(() => opens === 2 && oks === 2, "reconnect and rejoin")
  assert.deepEqual(await push(channel, "echo", {small: true}), {status: "ok", response: {small: true}})
  const big = {blob: "y".repeat(60 << 10)} // under the limit
  assert.deepEqual(await push(channel, "echo", big), {status: "ok", response: big})
  let oversized = null
  p.receive("timeout", () => { oversized = "timeout" }).receive("ok", () => { oversized = "ok" })
  await until(() => oversized !== null, "the oversized push to settle")
  assert.equal(oversized, "timeout", "the oversized push got no reply")
  await disconnect(socket)
})
