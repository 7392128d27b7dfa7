// Shared helpers for the interop scenarios. Every scenario is a small ESM
// script run by interop_test.go as
//
//   node --experimental-websocket <scenario>.mjs <base-url> <client> <id>
//
// <base-url> is the Go test server (http://127.0.0.1:PORT), <client> the npm
// package to drive ("phoenix" = 1.8.16, "phoenix17" = the 1.7 line, an npm
// alias of the official package) and <id> a string unique to this run of the
// scenario, used to build topics and user names that no other scenario uses.
// PHX_BASE, PHX_CLIENT and PHX_ID may be given as environment variables
// instead.
//
// The official client is used as published; only its own documented Socket
// options (timeouts, backoff functions, encode/decode, vsn, authToken) are
// set. A scenario exits 0 on success, 1 with the assertion message on
// failure, and 2 when its hard timeout fires, so it never hangs.

import assert from "node:assert/strict"
import {readFileSync} from "node:fs"
import {dirname, join as joinPath} from "node:path"
import {fileURLToPath} from "node:url"

export {assert}

const here = dirname(fileURLToPath(import.meta.url))
const CLIENTS = ["phoenix", "phoenix17"]

export const BASE = (process.argv[2] || process.env.PHX_BASE || "").replace(/\/+$/, "")
export const CLIENT = process.argv[3] || process.env.PHX_CLIENT || "phoenix"
export const ID = process.argv[4] || process.env.PHX_ID || `t${process.pid}_${Date.now()}`

if(!/^https?:\/\//.test(BASE) || !CLIENTS.includes(CLIENT)){
  console.error(`usage: node --experimental-websocket <scenario>.mjs http://HOST:PORT [${CLIENTS.join("|")}] [id]`)
  process.exit(64)
}
if(typeof globalThis.WebSocket !== "function"){
  console.error("this Node has no global WebSocket: run node >= 20.10 with --experimental-websocket")
  process.exit(64)
}

// The installed version of the selected client, read from its package.json
// (the package's "exports" map does not expose that file to import).
export const VERSION = JSON.parse(
  readFileSync(joinPath(here, "node_modules", CLIENT, "package.json"), "utf8")).version
const [major, minor] = VERSION.split(".").map(Number)
// phoenix.js >= 1.8: authToken option, byte-length binary framing.
export const IS_18 = major > 1 || (major === 1 && minor >= 8)

// Browsers define `self`; phoenix.js 1.7's bundle finds the WebSocket class
// through it (its fallback, a module-level `var global`, shadows Node's own
// and is undefined), 1.8 also falls back to globalThis.
globalThis.self ??= globalThis

const phoenix = await import(CLIENT)
export const {Socket} = phoenix

// The WebSocket mount point; phoenix.js appends "/websocket".
export const WS_URL = BASE.replace(/^http/, "ws") + "/socket"

const started = Date.now()
export function log(...args){
  const ms = String(Date.now() - started).padStart(5)
  console.log(`[${ms} ms]`, ...args)
}

export const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// Deviations from the protocol that do not stop a scenario: recorded by
// conformance(), reported (and failing the scenario) once it has finished,
// so that one deviation does not hide the rest of the scenario's checks.
const deviations = []

// conformance runs check (synchronous assertions); a failure is recorded as a
// protocol deviation named by what, and the scenario goes on.
export function conformance(what, check){
  try {
    check()
  } catch(err){
    deviations.push(`${what}: ${err.message}`)
    log(`DEVIATION ${what}: ${err.message}`)
  }
}

// scenario runs fn and exits: 0 when it resolves, 1 when it throws or
// recorded a conformance deviation, 2 when it has not finished after
// timeoutMs.
export function scenario(name, fn, {timeoutMs = 20000} = {}){
  const label = `${name} [${CLIENT} ${VERSION}, id ${ID}]`
  let finished = false
  const fail = (err, code = 1) => {
    if(finished){ return }
    finished = true
    console.error(`FAIL ${label}: ${err && err.stack || err}`)
    process.exit(code)
  }
  process.on("uncaughtException", err => fail(err))
  process.on("unhandledRejection", err => fail(err))
  // Not unref'd: it also keeps the process alive while fn waits on events.
  setTimeout(() => fail(new Error(`hard timeout: scenario still running after ${timeoutMs} ms`), 2), timeoutMs)
  log(`START ${label}`)
  Promise.resolve().then(fn).then(() => {
    if(finished){ return }
    if(deviations.length > 0){
      fail(new Error(`protocol deviations:\n  ${deviations.join("\n  ")}`))
      return
    }
    finished = true
    log(`PASS ${label}`)
    process.exit(0)
  }, err => fail(err))
}

// connect returns a connecting Socket with fast retry timers. The official
// defaults (seconds of backoff) would make the suite slow, not different.
export function connect(params = {}, opts = {}){
  const socket = new Socket(WS_URL, {
    params,
    timeout: 5000,
    reconnectAfterMs: () => 50,
    rejoinAfterMs: () => 50,
    ...opts,
  })
  socket.connect()
  return socket
}

// until polls cond every 5 ms and fails with a message naming what was
// awaited if it is not true within ms.
export async function until(cond, what, ms = 5000){
  const deadline = Date.now() + ms
  for(;;){
    if(await cond()){ return }
    if(Date.now() > deadline){ throw new Error(`timed out after ${ms} ms waiting for ${what}`) }
    await sleep(5)
  }
}

// result wraps a phoenix Push in a promise of {status, response} resolving on
// the first of the given statuses.
export function result(push, statuses = ["ok", "error", "timeout"]){
  return new Promise(resolve => {
    for(const status of statuses){
      push.receive(status, response => resolve({status, response}))
    }
  })
}

// join joins channel and returns the first reply ({status, response}).
export function join(channel, statuses){
  return result(channel.join(), statuses)
}

// joined joins channel and asserts that the join succeeds; returns the reply.
export async function joined(channel){
  const r = await join(channel)
  assert.equal(r.status, "ok", `join ${channel.topic}: ${JSON.stringify(r)}`)
  return r.response
}

// push sends event on channel and returns the reply ({status, response}).
export function push(channel, event, payload = {}, {timeout, statuses} = {}){
  return result(channel.push(event, payload, timeout), statuses)
}

// collect records every payload of event received by channel.
export function collect(channel, event){
  const got = []
  channel.on(event, payload => got.push(payload))
  return got
}

// frames records every decoded message the socket receives, as the client's
// decoder produced it ({join_ref, ref, topic, event, payload}).
export function frames(socket){
  const got = []
  socket.onMessage(msg => got.push(msg))
  return got
}

// opened resolves when socket is open.
export function opened(socket, ms = 5000){
  return until(() => socket.isConnected(), "the socket to open", ms)
}

// ctl calls the test server's control API: GET without body, POST with one.
export async function ctl(path, body){
  const init = body === undefined ? {} : {
    method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify(body),
  }
  const res = await fetch(`${BASE}/ctl/${path}`, init)
  const text = await res.text()
  assert.ok(res.ok, `ctl ${path}: HTTP ${res.status} ${text}`)
  return text ? JSON.parse(text) : null
}

// disconnect closes socket and waits for the client to finish closing.
export function disconnect(socket){
  return new Promise(resolve => socket.disconnect(() => resolve()))
}

// bytes returns the contents of an ArrayBuffer as a plain array of numbers.
export function bytes(buf){
  assert.ok(buf instanceof ArrayBuffer, `expected an ArrayBuffer, got ${Object.prototype.toString.call(buf)} ${JSON.stringify(buf)}`)
  return Array.from(new Uint8Array(buf))
}
