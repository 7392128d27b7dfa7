// Two pages in headless Chromium on different copies of a clustered chat
// (the rooms' history in the broker: Redis or NATS JetStream). ann's page,
// on a copy of its own, sends a message every 50 ms; bob's page reaches the
// chat through the test's proxy, which the scenario asks to move bob twice
// while ann keeps sending:
//
//   POST <bob-url>/__test/drain  the proxy points at the next copy, and bob's
//                                copy is stopped with SIGTERM (it closes
//                                bob's WebSocket with 1012: a server-side
//                                disconnect)
//   POST <bob-url>/__test/kill   the proxy points at the next copy, and bob's
//                                copy is killed with SIGKILL
//
// After each move the proxy is unavailable for a while (a balancer noticing
// the copy is gone), so bob's page misses a dozen messages or so: after
// the drain it holds requests (the WebSocket reconnects, late), after the
// kill it answers 502 (phoenix.js falls back to long-poll).
//
// Each time bob's page reconnects to another copy, rejoins with its history
// position and must recover: at the end it has received every message ann
// sent exactly once, in order (counted on the WebSocket frames it received,
// and in what it shows), and ann's page shows the same list.
//
//   node e2e/browser_nodes.mjs <ann-url> <bob-url> [artifacts-dir]
//
// CHROMIUM overrides the browser path (default /usr/bin/chromium).
import assert from "node:assert/strict"
import {mkdirSync} from "node:fs"
import {join} from "node:path"
import {launch, logger, shown, sleep, until} from "./browser_lib.mjs"

const [annURL, bobURL] = process.argv.slice(2, 4).map(u => (u || "").replace(/\/+$/, ""))
const artifacts = process.argv[4] || "."
if(!/^https?:\/\//.test(annURL) || !/^https?:\/\//.test(bobURL)){
  console.error("usage: node e2e/browser_nodes.mjs http://ANN-COPY http://BOB-PROXY [artifacts-dir]")
  process.exit(64)
}
mkdirSync(artifacts, {recursive: true})
const log = logger()
const hardTimeout = setTimeout(() => { console.error("FAIL: hard timeout"); process.exit(2) }, 80000)
const browser = await launch()
const problems = []

// openAs signs in as name on base and waits until #lobby is joined.
// page.received lists the phx_offset of every new_msg frame the page's
// WebSockets received, in order; page.longpolls counts long-poll requests.
async function openAs(base, name){
  const context = await browser.newContext({viewport: {width: 1100, height: 620}})
  const page = await context.newPage()
  page.setDefaultTimeout(10000)
  page.on("pageerror", err => problems.push(`${name}: page error: ${err.message}`))
  page.received = []
  page.sockets = 0
  page.longpolls = 0
  page.on("websocket", ws => {
    page.sockets++
    ws.on("framereceived", f => {
      let m
      try { m = JSON.parse(f.payload) } catch(_){ return }
      if(Array.isArray(m) && m[3] === "new_msg"){ page.received.push(m[4].phx_offset) }
    })
  })
  page.on("request", req => { if(req.url().includes("/socket/longpoll")){ page.longpolls++ } })
  await page.goto(base + "/")
  await page.locator("#name").fill(name)
  await page.locator("#login-button").click()
  await page.locator("#status.connected").waitFor()
  await page.locator('#messages[data-state="joined"]').waitFor()
  log(`${name} signed in on ${base} and joined #lobby`)
  return page
}

const chatState = page => page.evaluate(() => ({
  joins: window.phxChat.joins,
  gaps: window.phxChat.positions.gaps,
  duplicates: window.phxChat.positions.duplicates,
  transport: window.phxChat.transport(),
}))

async function control(what){
  const res = await fetch(`${bobURL}/__test/${what}`, {method: "POST"})
  const body = await res.text()
  assert.equal(res.status, 200, `${what}: ${res.status} ${body}`)
  log(`proxy: ${what}: ${body}`)
}

let sending = false
try {
  const ann = await openAs(annURL, "ann")
  const bob = await openAs(bobURL, "bob")

  // ann sends m1, m2, … every 50 ms until told to stop.
  const sent = []
  sending = true
  const sender = (async () => {
    for(let i = 1; sending; i++){
      const next = Date.now() + 50
      const text = `m${i}`
      await ann.locator("#body").fill(text)
      await ann.locator("#body").press("Enter")
      sent.push(text)
      await sleep(Math.max(0, next - Date.now()))
    }
  })()

  // Each move: bob's page must reconnect, rejoin on the new copy and
  // recover what was sent meanwhile.
  const moved = async (what, joinsBefore) => {
    await until(async () => (await chatState(bob)).joins.length > joinsBefore, `bob's rejoin after ${what}`, 15000)
    const j = (await chatState(bob)).joins.at(-1)
    assert.ok(j.recovered && !j.reset && j.replayed > 0, `bob's rejoin after ${what}: ${JSON.stringify(j)}`)
    log(`bob rejoined after ${what}: recovered, ${j.replayed} replayed; ann has sent ${sent.length}`)
  }
  await sleep(1000)
  let joins = (await chatState(bob)).joins.length
  await control("drain")
  await moved("the server-side disconnect", joins)
  await sleep(1000)
  joins = (await chatState(bob)).joins.length
  const wsOnly = {longpolls: bob.longpolls, sockets: bob.sockets, received: bob.received.length}
  await control("kill")
  await moved("the node kill", joins)
  await sleep(1000)
  sending = false
  await sender
  log(`ann sent ${sent.length} messages`)

  // Everything sent reaches both pages: each message once, in order.
  const want = sent.map(text => ["ann", text])
  await until(async () => (await shown(ann)).length === sent.length, "ann's page to show every message", 10000)
  await until(async () => (await shown(bob)).length === sent.length, "bob's page to show every message", 10000)
  assert.deepEqual(await shown(ann), want, "ann's page")
  assert.deepEqual(await shown(bob), want, "bob's page")
  const state = await chatState(bob)
  assert.equal(state.gaps, 0, "offsets skipped on bob's page")
  assert.equal(state.duplicates, 0, "duplicates received by bob's page")
  // Up to the kill every frame came over WebSockets (the drained copy's,
  // then the next copy's): offsets 1..K, each once, in order.
  assert.equal(wsOnly.longpolls, 0, "bob's page used long-poll before the kill")
  assert.equal(wsOnly.sockets, 2, "bob's page had one WebSocket per copy before the kill")
  const ws = bob.received.slice(0, wsOnly.received)
  assert.deepEqual(ws, ws.map((_, i) => i + 1), "new_msg frames on bob's WebSockets: offsets 1..K, each once, in order")
  // After the kill, phoenix.js falls back to long-poll when the reconnect's
  // WebSocket fails (the proxy's 502) and stays on it for the browser
  // session; the page's counters (gaps and duplicates: 0) and what it
  // shows stand for the frames in long-poll responses.
  log(`bob: offsets 1..${ws.length} once each over 2 WebSockets; after the kill over ${state.transport} (${bob.longpolls} long-poll requests)`)
  log(`joins of bob's page: ${JSON.stringify(state.joins.map(j => j.replayed))} replayed, all recovered; gaps 0, duplicates 0`)
  await bob.screenshot({path: join(artifacts, "chat-nodes-bob.png")})

  assert.deepEqual(problems, [], "errors in the pages")
  console.log("PASS browser nodes")
} catch(err){
  sending = false
  console.error(`FAIL browser nodes: ${err && err.stack || err}`)
  if(problems.length){ console.error(problems.join("\n")) }
  process.exitCode = 1
} finally {
  clearTimeout(hardTimeout)
  await browser.close()
}
