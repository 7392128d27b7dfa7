// A cookie-session app (session_browser_test.go) in real headless Chromium
// with the official client: the CSRF token the page was rendered with lets
// the cookie's session reach Connect; the cookie without it does not.
//
//   node session_browser.mjs <base-url>
//
// CHROMIUM overrides the browser path (default /usr/bin/chromium).
import assert from "node:assert/strict"
import {chromium} from "playwright-core"

const base = (process.argv[2] || "").replace(/\/+$/, "")
const hardTimeout = setTimeout(() => { console.error("FAIL: hard timeout"); process.exit(2) }, 50000)
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
})

// outcome opens path in context and waits for the page to join or be refused.
async function outcome(context, path){
  const page = await context.newPage()
  page.setDefaultTimeout(15000)
  await page.goto(base + path)
  await page.waitForFunction(() => ["joined", "refused"].includes(document.body.dataset.state))
  const state = await page.evaluate(() => ({state: document.body.dataset.state, user: document.body.dataset.user || null}))
  const csrf = await page.evaluate(() => document.querySelector("meta[name=csrf-token]").content)
  await page.close()
  console.log(path.padEnd(28), JSON.stringify(state))
  return {...state, csrf}
}

try {
  const ann = await browser.newContext()
  const bob = await browser.newContext()
  const anon = await browser.newContext()

  // Log in: the cookie is set and the page is rendered with its token.
  let r = await outcome(ann, "/login?user=ann")
  assert.deepEqual([r.state, r.user], ["joined", "ann"], "ann over WebSocket with her token")
  const annToken = r.csrf
  r = await outcome(ann, "/?lp=1")
  assert.deepEqual([r.state, r.user], ["joined", "ann"], "ann over long-poll with her token")
  r = await outcome(bob, "/login?user=bob")
  assert.deepEqual([r.state, r.user], ["joined", "bob"], "bob over WebSocket")
  const bobToken = r.csrf
  assert.notEqual(annToken, bobToken)

  // The cookie alone is not enough, on either transport.
  assert.equal((await outcome(ann, "/?csrf=")).state, "refused", "cookie without a token")
  assert.equal((await outcome(ann, "/?csrf=forged")).state, "refused", "cookie with a forged token")
  assert.equal((await outcome(ann, "/?lp=1&csrf=forged")).state, "refused", "long-poll, forged token")
  assert.equal((await outcome(ann, "/?csrf=" + encodeURIComponent(bobToken))).state, "refused", "ann's cookie with bob's token")
  // No cookie: no session, even with a token that was valid elsewhere.
  assert.equal((await outcome(anon, "/?csrf=" + encodeURIComponent(annToken))).state, "refused", "no cookie")
  console.log("PASS")
} finally {
  clearTimeout(hardTimeout)
  await browser.close()
}
