// History and recovery across two phx nodes sharing a history store (run
// by the adapters' tests: pubsub/redispubsub, pubsub/natspubsub). Official
// clients join one topic with history, half on each node, while both
// nodes broadcast numbered messages and clients are disconnected
// server-side again and again; every reconnection goes to the other node
// (the socket's endpoint is switched when it closes). Each client must end
// with every message exactly once and in order, and every rejoin must be
// recovered.
import {scenario, connect, until, ctl, disconnect, assert, log, ID, opened, sleep, WS_URL} from "./lib.mjs"
import {Positions} from "../../examples/chat/static/phx_history.js"

const CLIENTS = Number(process.env.NODES_CLIENTS || 40)
const MESSAGES = Number(process.env.NODES_MESSAGES || 3000)
const EVERY_US = Number(process.env.NODES_EVERY_US || 1000)
const KICKS_PER_TICK = 4, TICK_MS = 150
const WS_B = (process.env.PHX_BASE_B || "").replace(/\/+$/, "").replace(/^http/, "ws") + "/socket"
const ENDPOINTS = [`${WS_URL}/websocket`, `${WS_B}/websocket`]

scenario("history_nodes", async () => {
  assert.ok(process.env.PHX_BASE_B, "PHX_BASE_B (the second node) is set")
  const topic = `hist:${ID}`
  const clients = []
  for(let i = 0; i < CLIENTS; i++){
    const user = `${ID}_u${i}`
    const socket = connect({user}, {rejoinAfterMs: () => 20, reconnectAfterMs: () => 20})
    let on = i % 2
    socket.endPoint = ENDPOINTS[on]
    socket.onClose(() => { on = 1 - on; socket.endPoint = ENDPOINTS[on] })
    const positions = new Positions()
    const c = {user, socket, positions, seen: new Uint8Array(MESSAGES + 1), last: 0, got: 0, dup: 0,
      reordered: 0, joins: 0, recovered: 0, notRecovered: 0, replayed: 0, moved: 0, joinedOn: -1}
    c.channel = socket.channel(topic, positions.params(topic, {user}))
    c.channel.on("msg", p => {
      const n = p.n
      if(p.phx_offset !== n){ throw new Error(`${user}: message ${n} has phx_offset ${p.phx_offset}`) }
      if(c.seen[n]){ c.dup++ } else { c.seen[n] = 1; c.got++ }
      if(n < c.last){ c.reordered++ }
      c.last = Math.max(c.last, n)
      positions.seen(topic, p)
    })
    c.channel.join().receive("ok", reply => {
      c.joins++
      const r = positions.joined(topic, reply)
      if(c.joins > 1){
        r.recovered ? c.recovered++ : c.notRecovered++
        if(on !== c.joinedOn){ c.moved++ }
      }
      c.joinedOn = on
      c.replayed += r.replayed
    })
    clients.push(c)
  }
  await Promise.all(clients.map(c => opened(c.socket, 15000)))
  await until(() => clients.every(c => c.joins > 0), "every client to join", 15000)
  log(`${CLIENTS} clients joined ${topic} on two nodes`)

  const started = Date.now()
  await ctl(`publish?topic=${encodeURIComponent(topic)}&n=${MESSAGES}&every=${EVERY_US}` +
    `&users=${CLIENTS}&kicks=${KICKS_PER_TICK}&tick_ms=${TICK_MS}&user_prefix=${encodeURIComponent(`${ID}_u`)}`, {})
  let kicks = 0
  for(;;){
    const {n, kicked} = await ctl("published")
    kicks = kicked
    if(n >= MESSAGES){ break }
    await sleep(200)
  }
  log(`published ${MESSAGES} from both nodes in ${Date.now() - started} ms with ${kicks} server-side disconnects`)
  await until(() => clients.every(c => c.got === MESSAGES || c.dup > 0 || c.reordered > 0), "every client to have every message", 20000)
    .catch(err => log(err.message))

  let lost = 0, dup = 0, reordered = 0, rejoins = 0, recovered = 0, notRecovered = 0, replayed = 0, moved = 0
  for(const c of clients){
    lost += MESSAGES - c.got
    dup += c.dup
    reordered += c.reordered
    rejoins += c.joins - 1
    recovered += c.recovered
    notRecovered += c.notRecovered
    replayed += c.replayed
    moved += c.moved
  }
  log(`${CLIENTS} clients x ${MESSAGES} messages: lost ${lost}, duplicated ${dup}, reordered ${reordered}; ` +
      `${rejoins} rejoins (${moved} on the other node; ${recovered} recovered, ${notRecovered} not), ${replayed} messages replayed; ` +
      `${Date.now() - started} ms`)
  assert.equal(lost, 0, "lost")
  assert.equal(dup, 0, "duplicated")
  assert.equal(reordered, 0, "reordered")
  assert.equal(notRecovered, 0, "rejoins not recovered")
  assert.ok(rejoins > 0 && recovered === rejoins && moved > 0, "clients moved between nodes and recovered")
  await Promise.all(clients.map(c => disconnect(c.socket)))
}, {timeoutMs: 55000})
