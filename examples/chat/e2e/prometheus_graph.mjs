// Screenshots Prometheus's own graph page for the chat's phx_ metrics, in
// headless Chromium, while TestPrometheusScrape's client is connected:
//
//   node e2e/prometheus_graph.mjs <prometheus-url> <out.png>
//
// The page is Prometheus's UI as shipped (no dashboards): one panel per
// expression, as a graph over the last 30 seconds.
import {chromium} from "playwright-core"

const [prom, out] = process.argv.slice(2)
if(!prom || !out){
  console.error("usage: node e2e/prometheus_graph.mjs <prometheus-url> <out.png>")
  process.exit(64)
}
const hardTimeout = setTimeout(() => { console.error("FAIL: hard timeout"); process.exit(2) }, 30000)

const exprs = [
  "phx_sockets_open",
  "sum by (event) (phx_channel_handle_in_duration_seconds_count)",
  "phx_channel_joins_total",
]
const params = new URLSearchParams()
exprs.forEach((e, i) => {
  params.set(`g${i}.expr`, e)
  params.set(`g${i}.tab`, "0") // graph
  params.set(`g${i}.range_input`, "30s")
})

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
})
try {
  const page = await browser.newPage({viewport: {width: 1200, height: 1100}})
  await page.goto(`${prom}/graph?${params}`, {waitUntil: "networkidle"})
  await page.waitForTimeout(1500)
  // Every panel found its series (Prometheus says how many), none is empty.
  const text = await page.evaluate(() => document.body.innerText)
  const found = (text.match(/Total time series: [1-9]/g) || []).length
  if(found !== exprs.length || text.includes("No datapoints found")){
    throw new Error(`${found} of ${exprs.length} panels have series; page text:\n${text.slice(0, 500)}`)
  }
  // The navigation bar is fixed: drop it, so the full-page shot is clean.
  await page.evaluate(() => document.querySelectorAll("nav").forEach(n => n.remove()))
  await page.screenshot({path: out, fullPage: true})
  console.log("PASS prometheus_graph", out)
} catch(err){
  console.error(`FAIL prometheus_graph: ${err && err.stack || err}`)
  process.exitCode = 1
} finally {
  await browser.close()
  clearTimeout(hardTimeout)
}
