// The chat page in a real headless Chromium against a server that refuses
// WebSocket upgrades (chat -disable-websocket): the official phoenix client
// falls back to long-poll (the page sets longPollFallbackMs) and two users
// chat as before, with history on join and the online list.
//
//   node e2e/browser_longpoll.mjs <base-url> [artifacts-dir]
//
// CHROMIUM overrides the browser path (default /usr/bin/chromium).
import assert from "node:assert/strict"
import {mkdirSync} from "node:fs"
import {join} from "node:path"
import {launch, logger} from "./browser_lib.mjs"

const base = (process.argv[2] || "").replace(/\/+$/, "")
const artifacts = process.argv[3] || "."
if(!/^https?:\/\//.test(base)){
  console.error("usage: node e2e/browser_longpoll.mjs http://HOST:PORT [artifacts-dir]")
  process.exit(64)
}
mkdirSync(artifacts, {recursive: true})
const log = logger()
const hardTimeout = setTimeout(() => { console.error("FAIL: hard timeout"); process.exit(2) }, 45000)

const browser = await launch()

const pageErrors = []

async function openAs(name){
  const context = await browser.newContext({viewport: {width: 1100, height: 620}})
  const page = await context.newPage()
  page.setDefaultTimeout(10000)
  page.on("pageerror", err => pageErrors.push(`${name}: ${err.message}`))
  page.transports = {websocketOpened: 0, longpoll: 0}
  page.on("websocket", ws => {
    ws.on("framereceived", () => { page.transports.websocketOpened++ })
  })
  page.on("request", req => { if(req.url().includes("/socket/longpoll")){ page.transports.longpoll++ } })
  await page.goto(base + "/")
  await page.locator("#name").fill(name)
  await page.locator("#login-button").click()
  await page.locator("#status.connected").waitFor()
  await page.locator('#messages[data-state="joined"]').waitFor()
  log(`${name} signed in and joined #lobby over`, page.transports)
  return page
}

try {
  const ann = await openAs("ann")
  await ann.locator("#body").fill("sent over long-poll")
  await ann.locator("#body").press("Enter")
  await ann.locator(".msg .body", {hasText: "sent over long-poll"}).waitFor()

  // bob joins later: the join reply's history carries ann's message.
  const bob = await openAs("bob")
  await bob.locator(".msg .body", {hasText: "sent over long-poll"}).waitFor()
  log("bob got the history over long-poll")

  // Live messages both ways.
  await bob.locator("#body").fill("and back")
  await bob.locator("#body").press("Enter")
  await ann.locator(".msg .body", {hasText: "and back"}).waitFor()
  log("ann got bob's live message")

  // Presence over long-poll: both online on both pages.
  for(const page of [ann, bob]){
    await page.locator("#online li", {hasText: "ann"}).waitFor()
    await page.locator("#online li", {hasText: "bob"}).waitFor()
  }

  for(const page of [ann, bob]){
    assert.equal(page.transports.websocketOpened, 0, "no WebSocket ever carried a frame")
    assert.ok(page.transports.longpoll > 2, `long-poll requests were made (${page.transports.longpoll})`)
  }
  await ann.screenshot({path: join(artifacts, "chat-longpoll.png")})
  assert.deepEqual(pageErrors, [], "errors in the pages")
  console.log("PASS browser_longpoll")
} catch(err){
  console.error(`FAIL browser_longpoll: ${err && err.stack || err}`)
  if(pageErrors.length){ console.error(pageErrors.join("\n")) }
  process.exitCode = 1
} finally {
  await browser.close()
  clearTimeout(hardTimeout)
}
