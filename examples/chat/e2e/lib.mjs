// Helpers for the end-to-end scenarios: the official phoenix client (from
// examples/chat/node_modules, as published) against the real chat binary.
// e2e_test.go runs each scenario as
//
//   node --experimental-websocket e2e/<scenario>.mjs <base-url> <id>
//
// <base-url> is the running example (http://127.0.0.1:PORT) and <id> a
// string unique to the run, used in room and user names. A scenario exits 0
// on success, 1 with the failed assertion, 2 when its hard timeout fires.

import assert from "node:assert/strict"
import {Socket} from "phoenix"
import {Positions} from "../static/phx_history.js"

export {assert, Socket}

export const BASE = (process.argv[2] || process.env.CHAT_URL || "").replace(/\/+$/, "")
export const ID = (process.argv[3] || `t${process.pid}`).replace(/[^a-z0-9_-]/g, "_")

if(!/^https?:\/\//.test(BASE)){
  console.error("usage: node --experimental-websocket <scenario>.mjs http://HOST:PORT [id]")
  process.exit(64)
}
if(typeof globalThis.WebSocket !== "function"){
  console.error("this Node has no global WebSocket: run node >= 20.10 with --experimental-websocket")
  process.exit(64)
}

export const WS_URL = BASE.replace(/^http/, "ws") + "/socket"

const started = Date.now()
export function log(...args){
  console.log(`[${String(Date.now() - started).padStart(5)} ms]`, ...args)
}

export const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// scenario runs fn and exits: 0 when it resolves, 1 when it throws, 2 when
// it is still running after timeoutMs.
export function scenario(name, fn, {timeoutMs = 15000} = {}){
  let finished = false
  const fail = (err, code = 1) => {
    if(finished){ return }
    finished = true
    console.error(`FAIL ${name}: ${err && err.stack || err}`)
    process.exit(code)
  }
  process.on("uncaughtException", err => fail(err))
  process.on("unhandledRejection", err => fail(err))
  setTimeout(() => fail(new Error(`hard timeout: still running after ${timeoutMs} ms`), 2), timeoutMs)
  log(`START ${name} (${ID})`)
  Promise.resolve().then(fn).then(() => {
    if(finished){ return }
    finished = true
    log(`PASS ${name}`)
    process.exit(0)
  }, err => fail(err))
}

// until polls cond every 5 ms; it throws naming what it waited for if cond
// is not true within ms.
export async function until(cond, what, ms = 5000){
  const deadline = Date.now() + ms
  for(;;){
    if(await cond()){ return }
    if(Date.now() > deadline){ throw new Error(`timed out after ${ms} ms waiting for ${what}`) }
    await sleep(5)
  }
}

// token gets a login token for user from the example's API.
export async function token(user){
  const res = await fetch(`${BASE}/api/token`, {
    method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify({user}),
  })
  const body = await res.json()
  assert.equal(res.status, 200, `POST /api/token for ${user}: ${JSON.stringify(body)}`)
  return body.token
}

// connect opens a socket with the given token, as the page does (params is a
// function, so a reconnect sends the current token). Retry timers are short
// to keep the suite fast.
export function connect(tok, opts = {}){
  const socket = new Socket(WS_URL, {
    params: () => ({token: tok}),
    timeout: 3000,
    reconnectAfterMs: () => 50,
    rejoinAfterMs: () => 50,
    ...opts,
  })
  socket.connect()
  return socket
}

// login gets a token for user and connects.
export async function login(user){
  const socket = connect(await token(user))
  socket.user = user
  return socket
}

// result turns a phoenix Push into a promise of {status, response}.
export function result(push){
  return new Promise(resolve => {
    for(const status of ["ok", "error", "timeout"]){
      push.receive(status, response => resolve({status, response}))
    }
  })
}

// send pushes event and returns the reply.
export function send(channel, event, payload = {}){
  return result(channel.push(event, payload))
}

// say sends a chat message, asserts it is accepted, and returns its id.
export async function say(room, body){
  const r = await send(room.channel, "new_msg", {body})
  assert.equal(r.status, "ok", `new_msg ${JSON.stringify(body)}: ${JSON.stringify(r)}`)
  assert.equal(typeof r.response.id, "number", `reply ${JSON.stringify(r.response)} has no id`)
  return r.response.id
}

// openRoom joins room:name the way the page does: the join params are a
// function (phx_history.js's), so every rejoin asks only for what was
// missed; messages are kept by id (their phx_offset), in order, without
// duplicates.
export function openRoom(socket, name){
  const topic = `room:${name}`
  const positions = new Positions()
  const room = {
    name,
    user: socket.user,
    messages: [],      // by id, ascending
    ids: new Set(),
    joinReplies: [],   // every ok reply to a (re)join
    recoveries: [],    // positions.joined() of every ok reply
    joinParams: [],    // the params sent with every (re)join
    typing: [],        // typing payloads received
    duplicates: 0,     // new_msg payloads at or below the position
    joinError: null,
    positions,
  }
  const add = m => {
    m.id = m.phx_offset
    if(room.ids.has(m.id)){ return }
    room.ids.add(m.id)
    room.messages.push(m)
    room.messages.sort((a, b) => a.id - b.id)
  }
  const params = positions.params(topic)
  room.channel = socket.channel(topic, () => {
    const p = params()
    room.joinParams.push(p)
    return p
  })
  room.channel.on("new_msg", m => { positions.seen(topic, m) ? add(m) : room.duplicates++ })
  room.channel.on("typing", p => room.typing.push(p))
  room.channel.join()
    .receive("ok", resp => {
      room.joinReplies.push(resp)
      room.recoveries.push(positions.joined(topic, resp))
    })
    .receive("error", resp => { room.joinError = resp })
  room.joined = (n = 1) => until(() => room.joinReplies.length >= n, `${room.user}: join #${n} of room:${name}`)
  room.has = id => until(() => room.ids.has(id), `${room.user}: message ${id} in room:${name}`)
  return room
}

export function bodies(msgs){ return msgs.map(m => m.body) }

// disconnect closes the socket and waits until the client is done closing.
export function disconnect(socket){
  return new Promise(resolve => socket.disconnect(() => resolve()))
}
