// The chat page in headless Chromium across a server restart: the server
// process is killed (SIGKILL, a server-side disconnect that also loses the
// in-memory history) and started again on the same port. The page
// reconnects by itself, rejoins with its old history position, gets
// recovered: false, and says "history was reset" instead of silently
// wiping what it showed; new messages then flow on the new history.
//
//   CHAT_BIN=… CHAT_ASSETS=… CHAT_ADDR=127.0.0.1:PORT CHAT_SECRET=… node e2e/browser_restart.mjs [artifacts-dir]
import assert from "node:assert/strict"
import {spawn} from "node:child_process"
import {mkdirSync} from "node:fs"
import {join} from "node:path"
import {launch, logger} from "./browser_lib.mjs"

const {CHAT_BIN, CHAT_ASSETS, CHAT_ADDR, CHAT_SECRET} = process.env
const artifacts = process.argv[2] || "."
if(!CHAT_BIN || !CHAT_ASSETS || !CHAT_ADDR || !CHAT_SECRET){
  console.error("usage: CHAT_BIN=… CHAT_ASSETS=… CHAT_ADDR=HOST:PORT CHAT_SECRET=… node e2e/browser_restart.mjs [artifacts-dir]")
  process.exit(64)
}
mkdirSync(artifacts, {recursive: true})
const base = `http://${CHAT_ADDR}`
const log = logger()
let server = null
const hardTimeout = setTimeout(() => { console.error("FAIL: hard timeout"); server?.kill("SIGKILL"); process.exit(2) }, 45000)

// startServer runs the chat and resolves once it listens.
function startServer(){
  return new Promise((resolve, reject) => {
    const p = spawn(CHAT_BIN, ["-addr", CHAT_ADDR, "-assets", CHAT_ASSETS], {env: {...process.env, CHAT_SECRET}})
    let out = ""
    const onData = d => {
      out += d
      if(out.includes("listening")){ resolve(p) }
    }
    p.stdout.on("data", onData)
    p.stderr.on("data", onData)
    p.on("exit", code => reject(new Error(`chat exited (${code}) before listening:\n${out}`)))
  })
}

const browser = await launch()
const problems = []
try {
  server = await startServer()
  log("chat started on", CHAT_ADDR)
  const context = await browser.newContext({viewport: {width: 1100, height: 620}})
  const page = await context.newPage()
  page.setDefaultTimeout(8000)
  page.on("pageerror", err => problems.push(`page error: ${err.message}`))
  await page.goto(base + "/")
  await page.locator("#name").fill("ann")
  await page.locator("#login-button").click()
  await page.locator('#messages[data-state="joined"]').waitFor()
  for(const text of ["before the restart", "one more"]){
    await page.locator("#body").fill(text)
    await page.locator("#body").press("Enter")
    await page.locator(".msg .body", {hasText: text}).waitFor()
  }
  log("two messages shown")

  // The server dies and comes back on the same port, its history gone.
  server.kill("SIGKILL")
  await new Promise(resolve => server.once("exit", resolve))
  await page.locator("#status.reconnecting").waitFor()
  server = await startServer()
  log("chat restarted")
  await page.locator("#notice", {hasText: "history was reset"}).waitFor({timeout: 20000})
  await page.locator("#status.connected").waitFor()
  assert.equal(await page.locator(".msg").count(), 0, "the old history's messages are not mixed with the new")
  await page.screenshot({path: join(artifacts, "chat-history-reset.png")})
  log("the page says the history was reset")

  await page.locator("#body").fill("after the restart")
  await page.locator("#body").press("Enter")
  await page.locator(".msg .body", {hasText: "after the restart"}).waitFor()
  assert.equal(await page.locator(".msg").count(), 1)
  assert.deepEqual(problems, [])
  log("PASS browser restart")
} catch(err){
  console.error(`FAIL browser restart: ${err && err.stack || err}`)
  process.exitCode = 1
} finally {
  clearTimeout(hardTimeout)
  await browser.close()
  if(server){ server.kill("SIGTERM") }
}
