// The V1 (object) serializer: phoenix.js speaks only V2 by default, so this
// scenario passes the Socket's own encode/decode options with a small V1
// codec and vsn "1.0.0". One V1 socket sends join_ref (as the JS always
// has it), another omits it as legacy clients do. A V2 socket on the same
// topic gets the same broadcast in its own format.
import {scenario, connect, opened, joined, push, collect, until, sleep, ctl, disconnect, assert, log, ID} from "./lib.mjs"

function v1Socket(user, {sendJoinRef}){
  const received = [] // raw text frames from the server
  const socket = connect({user}, {
    vsn: "1.0.0",
    encode: (msg, callback) => {
      const obj = {topic: msg.topic, event: msg.event, payload: msg.payload, ref: msg.ref}
      if(sendJoinRef){ obj.join_ref = msg.join_ref }
      callback(JSON.stringify(obj))
    },
    decode: (rawPayload, callback) => {
      received.push(rawPayload)
      const m = JSON.parse(rawPayload)
      callback({join_ref: m.join_ref ?? null, ref: m.ref, topic: m.topic, event: m.event, payload: m.payload})
    },
  })
  return {socket, received}
}

scenario("v1_serializer", async () => {
  const topic = `room:${ID}`
  const a = v1Socket(`${ID}_a`, {sendJoinRef: true})
  const b = v1Socket(`${ID}_b`, {sendJoinRef: false})
  const v2 = connect({user: `${ID}_v2`})
  await opened(a.socket)
  assert.match(a.socket.endPointURL(), /vsn=1\.0\.0$/)

  const chans = [a, b].map(x => x.socket.channel(topic))
  const v2ch = v2.channel(topic)
  const replies = await Promise.all([...chans.map(joined), joined(v2ch)])
  assert.equal(replies[0].connect_params.vsn, "1.0.0")
  assert.equal(replies[2].connect_params.vsn, "2.0.0")
  // Without a join_ref the server uses the join's ref.
  assert.equal(replies[1].join_ref, chans[1].joinRef())

  for(const ch of chans){
    assert.deepEqual(await push(ch, "echo", {v: 1, s: "é"}), {status: "ok", response: {v: 1, s: "é"}})
    assert.deepEqual(await push(ch, "fail", {}), {status: "error", response: {reason: "failed", got: {}}})
  }
  const news = [...chans, v2ch].map(ch => collect(ch, "news"))
  await ctl(`broadcast?topic=${encodeURIComponent(topic)}&event=news`, {n: 1})
  // An intercepted event: HandleOut pushes to the V1 clients too.
  const cens = chans.map(ch => collect(ch, "censored"))
  await push(v2ch, "censored", {text: "v1", hide_from: "nobody"})
  await until(() => news.every(n => n.length === 1) && cens.every(c => c.length === 1), "broadcast + intercepted push everywhere")
  news.forEach(n => assert.deepEqual(n, [{n: 1}]))
  assert.deepEqual(cens[0], [{text: "V1", for: `${ID}_a`}])
  assert.deepEqual(cens[1], [{text: "V1", for: `${ID}_b`}])

  // A binary broadcast reaches the V2 subscriber only: V1 cannot carry
  // binary, and its connection must not suffer for it.
  const v2bin = collect(v2ch, "bin_bcast")
  const v1bin = chans.map(ch => collect(ch, "bin_bcast"))
  assert.equal((await push(v2ch, "binary_broadcast", new Uint8Array([1, 2, 3]).buffer)).status, "ok")
  await ctl(`broadcast?topic=${encodeURIComponent(topic)}&event=news`, {n: 2})
  await until(() => news.every(n => n.length === 2), "the JSON broadcast after the binary one")
  assert.equal(v2bin.length, 1)
  assert.deepEqual(Array.from(new Uint8Array(v2bin[0])), [1, 2, 3])
  v1bin.forEach(b => assert.deepEqual(b, [], "no binary broadcast for V1 clients"))
  assert.ok(a.socket.isConnected() && b.socket.isConnected())

  const rtt = await new Promise(resolve => assert.ok(a.socket.ping(resolve)))
  log("V1 heartbeat rtt", rtt, "ms")

  await sleep(20)
  for(const x of [a, b]){
    for(const text of x.received){
      const m = JSON.parse(text)
      assert.ok(!Array.isArray(m) && typeof m === "object", `V1 frame must be an object: ${text}`)
      assert.deepEqual(Object.keys(m).sort(), ["event", "payload", "ref", "topic"], `V1 frame keys: ${text}`)
    }
    log(`${x.received.length} V1 frames, e.g.`, x.received[0])
  }
  await Promise.all([disconnect(a.socket), disconnect(b.socket), disconnect(v2)])
})
