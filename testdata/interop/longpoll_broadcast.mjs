// A LongPoll client and a WebSocket client in the same topic: broadcasts,
// broadcast_from, intercepted events and server broadcasts cross the two
// transports; the channels cannot tell them apart.
import {scenario, connect, joined, push, collect, until, sleep, ctl, disconnect, assert, log, ID, CLIENT} from "./lib.mjs"

const {LongPoll} = await import(CLIENT)

scenario("longpoll_broadcast", async () => {
  const topic = `room:${ID}`
  const lp = connect({user: `${ID}_lp`}, {transport: LongPoll})
  const ws = connect({user: `${ID}_ws`})
  const lpCh = lp.channel(topic)
  const wsCh = ws.channel(topic)
  const [lpJoin, wsJoin] = await Promise.all([joined(lpCh), joined(wsCh)])
  assert.equal(lpJoin.transport, "longpoll")
  assert.equal(wsJoin.transport, "websocket")
  const lpGot = collect(lpCh, "shout"), wsGot = collect(wsCh, "shout")

  const N = 20
  for(let i = 1; i <= N; i++){ push(lpCh, "broadcast", {seq: i, from: "lp"}) }
  await until(() => lpGot.length >= N && wsGot.length >= N, `${N} broadcasts from the LongPoll client at both`)
  for(let i = 1; i <= N; i++){ push(wsCh, "broadcast", {seq: i, from: "ws"}) }
  await until(() => lpGot.length >= 2 * N && wsGot.length >= 2 * N, `${N} broadcasts from the WebSocket client at both`)
  await sleep(100)
  for(const [name, got] of [["lp", lpGot], ["ws", wsGot]]){
    const seqs = from => got.filter(m => m.from === from).map(m => m.seq)
    const want = Array.from({length: N}, (_, i) => i + 1)
    assert.deepEqual(seqs("lp"), want, `${name}: broadcasts from lp, in order, once`)
    assert.deepEqual(seqs("ws"), want, `${name}: broadcasts from ws, in order, once`)
  }

  // broadcast_from skips the sender, whatever its transport.
  assert.deepEqual(await push(lpCh, "broadcast_from", {from: "lp_only_others"}), {status: "ok", response: {}})
  assert.deepEqual(await push(wsCh, "broadcast_from", {from: "ws_only_others"}), {status: "ok", response: {}})
  await until(() => wsGot.some(m => m.from === "lp_only_others") && lpGot.some(m => m.from === "ws_only_others"), "broadcast_from")
  await sleep(100)
  assert.ok(!lpGot.some(m => m.from === "lp_only_others"), "the LongPoll sender does not get its own broadcast_from")
  assert.ok(!wsGot.some(m => m.from === "ws_only_others"), "the WebSocket sender does not get its own broadcast_from")

  // Intercepted event: HandleOut pushes a per-client copy.
  const lpCens = collect(lpCh, "censored"), wsCens = collect(wsCh, "censored")
  await push(wsCh, "censored", {text: "hi", hide_from: `${ID}_nobody`})
  await until(() => lpCens.length === 1 && wsCens.length === 1, "the intercepted broadcast at both")
  assert.deepEqual(lpCens[0], {text: "HI", for: `${ID}_lp`})
  assert.deepEqual(wsCens[0], {text: "HI", for: `${ID}_ws`})

  // Server.Broadcast reaches both.
  const lpSrv = collect(lpCh, "news"), wsSrv = collect(wsCh, "news")
  await ctl(`broadcast?topic=${encodeURIComponent(topic)}&event=news`, {n: 1})
  await until(() => lpSrv.length === 1 && wsSrv.length === 1, "the server broadcast at both")
  log("ok: broadcasts cross transports")
  await Promise.all([disconnect(lp), disconnect(ws)])
})
