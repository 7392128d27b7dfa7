// History and recovery under stress: 200 official clients join one topic
// with history while the server broadcasts 10,000 numbered messages and
// disconnects clients server-side again and again (Server.Disconnect: close
// 1001, phoenix.js reconnects and rejoins by itself). Each channel's join
// params come from the example's phx_history.js helper, a params function
// that phoenix.js evaluates on every rejoin. Every client must end with
// every message exactly once and in order: lost, duplicated and reordered
// messages are counted from the raw payloads (before the helper's
// duplicate filter) and printed, and must all be 0.
import {scenario, connect, until, ctl, disconnect, assert, log, ID, opened, sleep} from "./lib.mjs"
import {Positions} from "../../examples/chat/static/phx_history.js"

const CLIENTS = Number(process.env.STRESS_CLIENTS || 200)
const MESSAGES = Number(process.env.STRESS_MESSAGES || 10000)
const EVERY_US = Number(process.env.STRESS_EVERY_US || 2000) // 500 msgs/s
const KICKS_PER_TICK = 8, TICK_MS = 150

scenario("history_stress", async () => {
  const topic = `hist:${ID}`
  const clients = []
  for(let i = 0; i < CLIENTS; i++){
    const user = `${ID}_u${i}`
    const socket = connect({user}, {rejoinAfterMs: () => 20, reconnectAfterMs: () => 20})
    const positions = new Positions()
    const c = {user, socket, positions, seen: new Uint8Array(MESSAGES + 1), last: 0,
      got: 0, dup: 0, reordered: 0, joins: 0, timeouts: 0, recovered: 0, notRecovered: 0, replayed: 0}
    c.channel = socket.channel(topic, positions.params(topic, {user}))
    c.channel.on("msg", p => {
      const n = p.n
      if(p.phx_offset !== n){ throw new Error(`${user}: message ${n} has phx_offset ${p.phx_offset}`) }
      if(c.seen[n]){ c.dup++; if(c.dup < 3){ log(`${user}: dup ${n}, last ${c.last}, joins ${c.joins}, pos ${JSON.stringify(positions.position(topic))}, state ${c.channel.state}`) } } else { c.seen[n] = 1; c.got++ }
      if(n < c.last){ c.reordered++ }
      c.last = Math.max(c.last, n)
      positions.seen(topic, p)
    })
    c.channel.join().receive("timeout", () => { c.timeouts++ }).receive("ok", reply => {
      c.joins++
      const r = positions.joined(topic, reply)
      if(process.env.STRESS_DEBUG && c.joins > 1){ log(c.user, "rejoin", JSON.stringify(reply), "last", c.last) }
      if(c.joins > 1){ r.recovered ? c.recovered++ : c.notRecovered++ }
      c.replayed += r.replayed
    })
    clients.push(c)
  }
  await Promise.all(clients.map(c => opened(c.socket, 15000)))
  await until(() => clients.every(c => c.joins > 0), "every client to join", 15000)
  log(`${CLIENTS} clients joined ${topic}`)

  const started = Date.now()
  await ctl(`publish?topic=${encodeURIComponent(topic)}&n=${MESSAGES}&every=${EVERY_US}` +
    `&users=${CLIENTS}&kicks=${KICKS_PER_TICK}&tick_ms=${TICK_MS}&user_prefix=${encodeURIComponent(`${ID}_u`)}`, {})
  // The server publishes and disconnects; this loop only waits (the event
  // loop is busy with the messages).
  let kicks = 0
  for(;;){
    const {n, kicked} = await ctl("published")
    kicks = kicked
    if(n >= MESSAGES){ break }
    await sleep(200)
  }
  log(`published ${MESSAGES} in ${Date.now() - started} ms with ${kicks} server-side disconnects`)
  await until(() => clients.every(c => c.got === MESSAGES || c.dup > 0 || c.reordered > 0), "every client to have every message", 20000)
    .catch(err => log(err.message))

  let timeouts = 0, lost = 0, dup = 0, reordered = 0, rejoins = 0, recovered = 0, notRecovered = 0, replayed = 0, gaps = 0
  for(const c of clients){
    lost += MESSAGES - c.got
    dup += c.dup
    reordered += c.reordered
    rejoins += c.joins - 1
    timeouts += c.timeouts
    recovered += c.recovered
    notRecovered += c.notRecovered
    replayed += c.replayed
    gaps += c.positions.gaps
  }
  log(`${CLIENTS} clients x ${MESSAGES} messages: lost ${lost}, duplicated ${dup}, reordered ${reordered}; ` +
      `${rejoins} rejoins, ${timeouts} join timeouts (${recovered} recovered, ${notRecovered} not), ${replayed} messages replayed, helper gaps ${gaps}; ` +
      `${Date.now() - started} ms`)
  assert.equal(lost, 0, "lost")
  assert.equal(dup, 0, "duplicated")
  assert.equal(reordered, 0, "reordered")
  assert.equal(notRecovered, 0, "rejoins not recovered")
  assert.ok(rejoins > 0 && recovered === rejoins, "clients were disconnected and recovered")
  await Promise.all(clients.map(c => disconnect(c.socket)))
}, {timeoutMs: 44000})
