// Long-poll across nodes: <base-url> is a round-robin reverse proxy in front
// of two phx nodes (A, then B) that share LongPoll.Secret and a PubSub, so
// the LongPoll client's consecutive requests land on different nodes and
// those for the session are relayed to the node that owns it (A, where the
// first request landed). A WebSocket client on node B (PHX_WS_URL, its
// socket mount) shares the topic. Then the proxy's /ctl/kill makes A die
// mid-session (cut off the proxy and the PubSub, or crashed as well): the
// client finds its session gone, reconnects through B and rejoins, and
// everything works again. Run by pubsub/internal/clustertest (RunLongPoll).
import {scenario, connect, joined, push, collect, until, sleep, ctl, disconnect, assert, log, ID, CLIENT} from "./lib.mjs"

const {LongPoll, Socket, Presence} = await import(CLIENT)

const WS_URL_B = process.env.PHX_WS_URL
if(!WS_URL_B){
  console.error("PHX_WS_URL (node B's ws://host/socket) is not set")
  process.exit(64)
}

scenario("longpoll_cluster", async () => {
  const topic = `room:${ID}`
  const lpUser = `${ID}_lp`, wsUser = `${ID}_ws`
  const lp = connect({user: lpUser}, {transport: LongPoll})
  const ws = new Socket(WS_URL_B, {params: {user: wsUser}, timeout: 5000, reconnectAfterMs: () => 50, rejoinAfterMs: () => 50})
  ws.connect()
  let lpOpens = 0, lpErrors = 0
  lp.onOpen(() => lpOpens++)
  lp.onError(() => lpErrors++)

  const lpCh = lp.channel(topic), wsCh = ws.channel(topic)
  const lpPresence = new Presence(lpCh), wsPresence = new Presence(wsCh)
  const users = p => p.list(id => id).sort()
  // Successful join replies (a join's ref is its join_ref).
  let lpJoins = 0
  lp.onMessage(m => {
    if(m.topic === topic && m.event === "phx_reply" && m.ref === m.join_ref && m.payload.status === "ok"){ lpJoins++ }
  })
  await Promise.all([joined(lpCh), joined(wsCh)])
  assert.equal(lp.transport, LongPoll)

  const both = [lpUser, wsUser].sort()
  await until(() => JSON.stringify(users(lpPresence)) === JSON.stringify(both) &&
    JSON.stringify(users(wsPresence)) === JSON.stringify(both), "both users in both presence lists")

  // Pushes, replies and broadcasts, both ways across the nodes.
  const exchange = async (round, n) => {
    const lpGot = collect(lpCh, "shout"), wsGot = collect(wsCh, "shout")
    const from = (got, who) => got.filter(m => m.round === round && m.from === who).map(m => m.n)
    const want = Array.from({length: n}, (_, i) => i + 1)
    const replies = []
    for(let i = 1; i <= n; i++){ replies.push(push(lpCh, "shout", {round, from: "lp", n: i})) }
    for(const r of await Promise.all(replies)){ assert.deepEqual(r, {status: "ok", response: {}}) }
    for(let i = 1; i <= n; i++){ push(wsCh, "shout", {round, from: "ws", n: i}) }
    await until(() => from(lpGot, "lp").length >= n && from(wsGot, "lp").length >= n &&
      from(lpGot, "ws").length >= n && from(wsGot, "ws").length >= n, `round ${round}: ${n} shouts each way at both`)
    await sleep(100)
    for(const [name, got] of [["lp", lpGot], ["ws", wsGot]]){
      assert.deepEqual(from(got, "lp"), want, `${name}: shouts from lp, in order, once`)
      assert.deepEqual(from(got, "ws"), want, `${name}: shouts from ws, in order, once`)
    }
    // broadcast_from skips only the sender.
    assert.deepEqual(await push(lpCh, "shout_from", {round, from: "lp_from"}), {status: "ok", response: {}})
    await until(() => wsGot.some(m => m.round === round && m.from === "lp_from"), `round ${round}: lp's shout_from at ws`)
    await sleep(100)
    assert.ok(!lpGot.some(m => m.round === round && m.from === "lp_from"), "the sender does not get its shout_from")
  }
  await exchange(1, 20)
  assert.equal(lpOpens, 1, "no reconnection while both nodes live: every request reached the session")
  assert.equal(lpErrors, 0)
  assert.equal(lpJoins, 1)
  log("ok: one session served through both nodes")

  // The owner dies mid-session.
  await ctl("kill")
  log("A cut off")
  await until(() => lpOpens >= 2 && lpJoins >= 2 && lpCh.state === "joined", "the reconnection and rejoin through B", 15000)
  log(`reconnected and rejoined (opens ${lpOpens}, joins ${lpJoins}, errors ${lpErrors})`)
  await until(() => users(wsPresence).includes(lpUser) && users(lpPresence).includes(wsUser), "presence after the rejoin")
  await exchange(2, 10)
  log("ok: carries on through B")
  await Promise.all([disconnect(lp), disconnect(ws)])
}, {timeoutMs: 40000})
