// The chat page in a real headless Chromium (Debian's chromium, driven by
// playwright-core): two users in one room see each other's messages and
// typing, a refused message shows the error line, a page that loses its
// connection rejoins with its history position (phx_position) and catches
// up without duplicates, saying how many messages it recovered,
// and screenshots are saved.
//
//   node e2e/browser.mjs <base-url> [artifacts-dir]
//
// CHROMIUM overrides the browser path (default /usr/bin/chromium).
import assert from "node:assert/strict"
import {mkdirSync} from "node:fs"
import {join} from "node:path"
import {launch, logger, shown, sleep, until} from "./browser_lib.mjs"

const base = (process.argv[2] || "").replace(/\/+$/, "")
const artifacts = process.argv[3] || "."
if(!/^https?:\/\//.test(base)){
  console.error("usage: node e2e/browser.mjs http://HOST:PORT [artifacts-dir]")
  process.exit(64)
}
mkdirSync(artifacts, {recursive: true})

const log = logger()
const hardTimeout = setTimeout(() => { console.error("FAIL: hard timeout"); process.exit(2) }, 45000)

const browser = await launch()

const problems = []

// openAs opens the page in a fresh browser context, signs in as name and
// waits until #lobby is joined. page.sockets records the page's WebSockets
// and the frames it sends on them. With duplicate, every new_msg the server
// sends reaches the page twice, as can happen when a broadcast overlaps the
// catch-up after a join: the page must show each message once.
async function openAs(name, {duplicate = false} = {}){
  const context = await browser.newContext({viewport: {width: 1100, height: 620}})
  if(duplicate){
    await context.routeWebSocket(/\/socket\/websocket/, ws => {
      const server = ws.connectToServer()
      ws.onMessage(m => server.send(m))
      server.onMessage(m => {
        ws.send(m)
        if(typeof m === "string" && m.includes('"new_msg"')){ ws.send(m) }
      })
    })
  }
  const page = await context.newPage()
  page.setDefaultTimeout(8000)
  // The WebSocket handshake's response headers, from Chromium itself: they
  // say whether permessage-deflate was negotiated.
  page.extensions = []
  const cdp = await context.newCDPSession(page)
  await cdp.send("Network.enable")
  cdp.on("Network.webSocketHandshakeResponseReceived", e => {
    const h = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), v]))
    page.extensions.push(h["sec-websocket-extensions"] || "")
  })
  page.on("pageerror", err => problems.push(`${name}: page error: ${err.message}`))
  page.on("console", msg => { if(msg.type() === "error"){ problems.push(`${name}: console error: ${msg.text()}`) } })
  page.sockets = []
  page.on("websocket", ws => {
    const rec = {url: ws.url(), sent: [], closed: false}
    ws.on("framesent", f => rec.sent.push(f.payload))
    ws.on("close", () => { rec.closed = true })
    page.sockets.push(rec)
  })
  await page.goto(base + "/")
  await page.locator("#name").fill(name)
  await page.locator("#login-button").click()
  await page.locator("#status.connected").waitFor()
  await page.locator('#messages[data-state="joined"]').waitFor()
  log(`${name} signed in and joined #lobby`)
  return page
}

async function sendMessage(page, text){
  await page.locator("#body").fill(text)
  await page.locator("#body").press("Enter")
}

// waitForMessage waits until page shows a message with this author and body.
async function waitForMessage(page, author, body){
  await page.locator(".msg", {has: page.locator(".body", {hasText: body})}).last().waitFor()
  const found = (await shown(page)).filter(([, b]) => b === body)
  assert.equal(found.length, 1, `message ${JSON.stringify(body)} shown ${found.length} times`)
  assert.equal(found[0][0], author, `author of ${JSON.stringify(body)}`)
}

// joinsSent returns the phx_join frames sent on a recorded socket.
function joinsSent(rec){
  return rec.sent.map(p => { try { return JSON.parse(p) } catch(_){ return null } })
    .filter(f => Array.isArray(f) && f[3] === "phx_join")
}

try {
  const ann = await openAs("ann")
  const bob = await openAs("bob", {duplicate: true})

  // The page shows the room and the connection state.
  assert.equal(await ann.locator("#room-title").textContent(), "# lobby")
  assert.equal(await ann.locator("#status").textContent(), "Connected")
  assert.equal(await ann.locator("#rooms .room.active").textContent(), "#lobby")
  assert.deepEqual(joinsSent(bob.sockets[0]).map(f => f[4]), [{phx_position: {epoch: "", offset: 0}}], "the first join asks for the recent messages")

  // Who is online, from the server's presence: both users on both pages.
  for(const page of [ann, bob]){
    await page.locator("#online li", {hasText: "bob"}).waitFor()
    await page.locator("#online li", {hasText: "ann"}).waitFor()
    assert.equal(await page.locator("#online li").count(), 2, "two users online")
  }
  log("both pages list ann and bob online")

  // ann types: bob sees the hint; then ann sends and bob gets the message.
  const hi = "Hi Bob! Did you try the Go server yet?"
  await ann.locator("#body").pressSequentially(hi, {delay: 5})
  await bob.locator("#typing", {hasText: "ann is typing…"}).waitFor()
  assert.equal(await ann.locator("#typing").textContent(), "", "ann must not see her own typing")
  log("bob sees ann typing")
  await ann.locator("#body").press("Enter")
  await waitForMessage(bob, "ann", hi)
  await waitForMessage(ann, "ann", hi)
  assert.equal(await ann.locator("#body").inputValue(), "", "the composer is cleared after sending")
  log("bob got ann's message")

  // A message the server refuses shows the error line, and stays in the
  // composer.
  const tooLong = "x".repeat(2100)
  await ann.locator("#body").fill(tooLong)
  await ann.locator("#body").press("Enter")
  await ann.locator("#error", {hasText: "too long"}).waitFor()
  assert.equal(await ann.locator("#body").inputValue(), tooLong)
  assert.match(await ann.locator("#error-text").textContent(), /Message not sent: too long/)
  await ann.locator("#error-close").click()
  await ann.locator("#body").fill("")
  log("the refused message shows the error line")

  const say = async (page, author, text) => {
    await sendMessage(page, text)
    await waitForMessage(page, author, text)
  }
  await say(bob, "bob", "Yes! It speaks the Phoenix protocol, so this page uses the official phoenix.js client, unmodified.")
  await say(bob, "bob", "Channels, broadcasts, replies and rejoins all just work.")
  await until(async () => (await shown(ann)).length === 3, "ann to see bob's messages")

  // bob's page loses its connection (phoenix.js disconnects on pagehide and
  // reconnects on pageshow, as when a laptop sleeps); ann talks meanwhile.
  const first = bob.sockets.at(-1)
  await bob.evaluate(() => window.dispatchEvent(new PageTransitionEvent("pagehide", {persisted: true})))
  await until(() => first.closed, "bob's WebSocket to close")
  const missed = ["What happens when your laptop sleeps?", "Do you miss messages like these?"]
  for(const text of missed){ await say(ann, "ann", text) }
  await sleep(100)
  assert.equal((await shown(bob)).length, 3, "bob got messages while disconnected")
  await bob.evaluate(() => window.dispatchEvent(new PageTransitionEvent("pageshow", {persisted: true})))
  for(const text of missed){ await waitForMessage(bob, "ann", text) }
  const second = bob.sockets.at(-1)
  assert.notEqual(second, first, "bob reconnected on a new WebSocket")
  const rejoins = joinsSent(second)
  assert.equal(rejoins.length, 1, `joins sent after reconnecting: ${JSON.stringify(rejoins)}`)
  const pos = rejoins[0][4].phx_position
  assert.ok(pos && pos.epoch && pos.offset === 3, `the rejoin sends the last position seen: ${JSON.stringify(rejoins[0][4])}`)
  await bob.locator("#notice", {hasText: "Reconnected — 2 missed messages recovered"}).waitFor()
  await bob.screenshot({path: join(artifacts, "chat-recovered.png")})
  log("bob caught up after reconnecting, and the page says so")

  await say(bob, "bob", "Nope: the page rejoined from its last position and got exactly what I missed.")
  await say(bob, "bob", "No duplicates either: messages are merged by id.")
  await say(ann, "ann", "Let's move the team chat over, then.")

  // Both pages show the same messages, each once, in order.
  await until(async () => (await shown(ann)).length === 8 && (await shown(bob)).length === 8, "8 messages on both pages")
  const list = await shown(ann)
  assert.deepEqual(await shown(bob), list)
  assert.equal(new Set(list.map(([, b]) => b)).size, 8, "a message is shown twice")

  // Switching rooms: another room is empty; coming back loads the history.
  await ann.locator('#rooms a[data-room="random"]').click()
  await ann.locator("#room-title", {hasText: "# random"}).waitFor()
  await ann.locator('#messages[data-state="joined"]').waitFor()
  assert.equal(await ann.locator(".msg").count(), 0, "#random has no messages")
  await ann.locator('#rooms a[data-room="lobby"]').click()
  await ann.locator("#room-title", {hasText: "# lobby"}).waitFor()
  await ann.locator('#messages[data-state="joined"]').waitFor()
  assert.deepEqual(await shown(ann), list, "the lobby's history after switching back")
  log("room switch and history ok")

  // bob starts typing: ann's screenshot shows the hint.
  await bob.locator("#body").pressSequentially("Deal", {delay: 20})
  await ann.locator("#typing", {hasText: "bob is typing…"}).waitFor()

  await ann.screenshot({path: join(artifacts, "chat-ann.png")})
  await bob.screenshot({path: join(artifacts, "chat-bob.png")})
  log(`screenshots saved in ${artifacts}`)

  // ann's page talks to the server directly (bob's goes through the
  // test's WebSocket route): with EXPECT_DEFLATE=1 the server was started
  // with -compress and Chromium must have negotiated permessage-deflate.
  if(process.env.EXPECT_DEFLATE === "1"){
    assert.ok(ann.extensions.length > 0, "no WebSocket handshake seen on ann's page")
    for(const ext of ann.extensions){
      assert.match(ext, /permessage-deflate/, "ann's WebSocket without permessage-deflate")
    }
    log(`permessage-deflate negotiated: ${ann.extensions[0]}`)
  }

  assert.deepEqual(problems, [], "errors in the pages")
  console.log("PASS browser")
} catch(err){
  console.error(`FAIL browser: ${err && err.stack || err}`)
  if(problems.length){ console.error(problems.join("\n")) }
  process.exitCode = 1
} finally {
  await browser.close()
  clearTimeout(hardTimeout)
}
