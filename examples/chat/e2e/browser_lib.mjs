// Helpers shared by the browser scenarios (browser*.mjs): Chromium, the
// clock, waiting, and reading the page.
import {chromium} from "playwright-core"

export const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// logger returns a log function that prefixes the time since its creation.
export function logger(){
  const started = Date.now()
  return (...args) => console.log(`[${String(Date.now() - started).padStart(5)} ms]`, ...args)
}

// until waits for cond (which may be async) to hold, checking every 10 ms.
export async function until(cond, what, ms = 8000){
  const deadline = Date.now() + ms
  while(!(await cond())){
    if(Date.now() > deadline){ throw new Error(`timed out after ${ms} ms waiting for ${what}`) }
    await sleep(10)
  }
}

// launch starts headless Chromium (CHROMIUM, default Debian's
// /usr/bin/chromium). Without the background-networking flags Chromium's
// own connections get refused here, and it may stall.
export function launch(){
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  })
}

// shown returns the messages page shows, as [author, body] pairs.
export function shown(page){
  return page.locator(".msg").evaluateAll(els => els.map(el => {
    // a grouped message shows no header: its author is the one above
    let e = el
    while(e && e.classList.contains("grouped")){ e = e.previousElementSibling }
    return [e ? e.querySelector(".author").textContent : null, el.querySelector(".body").textContent]
  }))
}
