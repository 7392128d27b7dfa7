// Binary payloads both ways (V2 binary frames): the client pushes an
// ArrayBuffer; the server replies with phx.Binary (reply frame, kind 1),
// pushes phx.Binary (push frame, kind 0, carrying the join_ref) and
// broadcasts phx.Binary (broadcast frame, kind 2). With phoenix.js >= 1.8
// the topic holds multi-byte UTF-8, whose lengths are framed in bytes;
// phoenix.js 1.7 framed UTF-16 lengths, so it gets an ASCII topic.
import {scenario, connect, joined, push, collect, frames, until, sleep, disconnect, bytes, assert, log, ID, IS_18} from "./lib.mjs"

const buf = arr => new Uint8Array(arr).buffer

scenario("binary", async () => {
  const topic = IS_18 ? `room:${ID}_bïnary_✓` : `room:${ID}_binary`
  const [a, b] = ["a", "b"].map(name => {
    const socket = connect({user: `${ID}_${name}`})
    const channel = socket.channel(topic)
    return {socket, channel, raw: frames(socket), pushes: collect(channel, "bin_push"), bcasts: collect(channel, "bin_bcast")}
  })
  await joined(a.channel)
  await joined(b.channel)

  const data = [1, 2, 3, 250, 0, 255, 0x7b, 0x22]
  const r = await push(a.channel, "binary", buf(data))
  log("binary reply", r.status, bytes(r.response))
  assert.equal(r.status, "ok")
  assert.deepEqual(bytes(r.response), data.slice().reverse())
  await until(() => a.pushes.length === 1, "the binary push")
  assert.deepEqual(bytes(a.pushes[0]), [0xfe, 0x00, ...data])
  const pf = a.raw.find(m => m.event === "bin_push")
  assert.equal(pf.join_ref, a.channel.joinRef(), "binary push carries the join_ref")
  assert.equal(pf.topic, topic)

  // Empty binary payload.
  const e = await push(a.channel, "binary", new ArrayBuffer(0))
  assert.equal(e.status, "ok")
  assert.deepEqual(bytes(e.response), [])
  await until(() => a.pushes.length === 2, "the second binary push")
  assert.deepEqual(bytes(a.pushes[1]), [0xfe, 0x00])

  // Binary broadcast reaches both, as a kind-2 frame (null refs).
  const big = Array.from({length: 3000}, (_, i) => i % 256)
  assert.equal((await push(b.channel, "binary_broadcast", buf(big))).status, "ok")
  await until(() => a.bcasts.length === 1 && b.bcasts.length === 1, "the binary broadcast at both clients")
  assert.deepEqual(bytes(a.bcasts[0]), big)
  assert.deepEqual(bytes(b.bcasts[0]), big)
  const bf = a.raw.find(m => m.event === "bin_bcast")
  assert.equal(bf.join_ref, null)
  assert.equal(bf.ref, null)
  assert.equal(bf.topic, topic)

  // JSON keeps working on the same channel.
  assert.deepEqual(await push(a.channel, "echo", {json: "again"}), {status: "ok", response: {json: "again"}})
  await sleep(50)
  assert.equal(b.pushes.length, 0, "the binary push went to a only")
  await disconnect(a.socket)
  await disconnect(b.socket)
})
