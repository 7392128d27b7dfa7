// The chat page. It uses the official phoenix client, served by the Go
// server from examples/chat/node_modules (npm ci), unmodified.
import {Socket, Presence} from "/assets/phoenix.mjs"
import {Positions} from "/static/phx_history.js"

const DEFAULT_ROOMS = ["lobby", "random", "golang", "elixir"]
const ROOM_RE = /^[a-z0-9_-]{1,64}$/
const TYPING_SEND_EVERY_MS = 2000 // push "typing" at most this often
const TYPING_SHOW_MS = 3000       // show a typing hint this long
const GROUP_WITHIN_MS = 5 * 60 * 1000

const $ = id => document.getElementById(id)
const el = (tag, className, text) => {
  const e = document.createElement(tag)
  if(className){ e.className = className }
  if(text !== undefined){ e.textContent = text }
  return e
}

// ---------------------------------------------------------------------------
// State

let user = null     // our name
let token = null    // from /api/token; sent on every (re)connect
let socket = null
let channel = null  // the current room's channel
let room = null     // the current room's name
let messages = []   // the current room's messages, sorted by id
let known = new Set() // their ids
// Positions in each room's history (the library's, on one node or many).
// The join params function sends the current room's on every rejoin.
const positions = new Positions()
// What the page knows about its connection and history, for the browser's
// console (and the end-to-end tests): positions.gaps and .duplicates should
// stay 0; joins lists every ok join reply's outcome.
window.phxChat = {positions, joins: [], transport: () => socket && socket.transport && socket.transport.name}
const typers = new Map() // user -> timer of their typing hint
let lastTypingSent = 0

// ---------------------------------------------------------------------------
// Login and tokens

async function fetchToken(name){
  const res = await fetch("/api/token", {
    method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify({user: name}),
  })
  const data = await res.json().catch(() => ({}))
  if(!res.ok){ throw new Error(data.error || `HTTP ${res.status}`) }
  return data.token
}

$("login-form").addEventListener("submit", async e => {
  e.preventDefault()
  const name = $("name").value.trim()
  $("login-error").hidden = true
  $("login-button").disabled = true
  try {
    token = await fetchToken(name)
    user = name
    sessionStorage.setItem("chat.user", name)
    localStorage.setItem("chat.lastUser", name)
    start()
  } catch(err){
    $("login-error").textContent = `Could not sign in: ${err.message}`
    $("login-error").hidden = false
  } finally {
    $("login-button").disabled = false
  }
})

$("logout").addEventListener("click", () => {
  sessionStorage.removeItem("chat.user")
  if(socket){ socket.disconnect() }
  location.hash = ""
  location.reload()
})

// A refused connection (for instance an expired token, or a server restarted
// with a new random secret) looks like any other failure to the browser, so
// get a fresh token after errors; the next reconnect attempt uses it.
let refreshing = false
let lastRefresh = 0
async function refreshToken(){
  if(refreshing || Date.now() - lastRefresh < 5000){ return }
  refreshing = true
  try {
    token = await fetchToken(user)
    lastRefresh = Date.now()
  } catch(_){
    // The server is unreachable: try again at the next error.
  } finally {
    refreshing = false
  }
}

// ---------------------------------------------------------------------------
// Socket and rooms

function start(){
  $("login").hidden = true
  $("app").hidden = false
  $("me-name").textContent = user
  setAvatar($("me-avatar"), user)

  // params is a function: every reconnect sends the current token.
  // longPollFallbackMs: where WebSockets are blocked (a proxy, a firewall),
  // the client switches to the server's long-poll transport by itself.
  socket = new Socket("/socket", {params: () => ({token}), longPollFallbackMs: 2500})
  socket.onOpen(() => setStatus("connected"))
  socket.onError(() => { setStatus("reconnecting"); refreshToken() })
  socket.onClose(() => setStatus("reconnecting"))
  socket.connect()

  renderRooms()
  joinRoom(roomFromHash() || "lobby")
  $("body").focus()
}

function roomFromHash(){
  const name = decodeURIComponent(location.hash.slice(1))
  return name || null
}

window.addEventListener("hashchange", () => {
  const name = roomFromHash()
  if(user && name && name !== room){ joinRoom(name) }
})

function joinRoom(name){
  if(channel){ channel.leave() }
  room = name
  messages = []
  known = new Set()
  clearTypers()
  hideError()
  renderMessages()
  renderOnline(null)
  $("room-title").textContent = `# ${name}`
  $("body").placeholder = `Message #${name}`
  document.title = `#${name} · phx chat`
  if(location.hash.slice(1) !== name){ history.replaceState(null, "", `#${name}`) }
  rememberRoom(name)
  renderRooms()

  // The join params are a function, so every rejoin (after a lost
  // connection) sends where we are (phx_position) and the server replays
  // only what we missed, right after the reply.
  const topic = `room:${name}`
  positions.forget(topic) // a fresh join: the room's recent messages
  const ch = socket.channel(topic, positions.params(topic))
  channel = ch
  const current = () => ch === channel
  let joins = 0

  ch.on("new_msg", msg => {
    if(!current() || !positions.seen(topic, msg)){ return }
    msg.id = msg.phx_offset // the message's place in the room's history
    addMessages([msg])
  })
  ch.on("typing", ({user: who}) => { if(current() && who !== user){ showTyper(who) } })

  // Who is online comes from the server's presence_state and presence_diff
  // events, in Phoenix's format.
  const presence = new Presence(ch)
  presence.onSync(() => { if(current()){ renderOnline(presence) } })

  $("messages").dataset.state = "joining"
  ch.join()
    .receive("ok", reply => {
      if(!current()){ return }
      joins++
      $("messages").dataset.state = "joined"
      if(!reply.phx_position){ // the history's store did not answer
        showNotice("Joined, but the message history is unavailable: messages sent meanwhile may be missing")
        return
      }
      const {reset, replayed, recovered} = positions.joined(topic, reply)
      window.phxChat.joins.push({topic, recovered, reset, replayed})
      if(reset){ // the server lost the room's history: start over
        messages = []
        known = new Set()
        renderMessages()
        showNotice("Reconnected — history was reset: earlier messages are gone")
      } else if(joins > 1){
        showNotice(`Reconnected — ${replayed} missed message${replayed === 1 ? "" : "s"} recovered`)
      }
    })
    .receive("error", ({reason} = {}) => {
      if(!current()){ return }
      showError(`Cannot join #${name}: ${reason || "refused"}`)
      if(reason === "invalid room"){ ch.leave(); forgetRoom(name) }
    })
    .receive("timeout", () => { if(current()){ showError(`Joining #${name} is taking long; retrying…`) } })
}

function setStatus(state){
  const s = $("status")
  s.className = `status ${state}`
  s.textContent = {connected: "Connected", reconnecting: "Reconnecting…", connecting: "Connecting…"}[state]
}

// Rooms in the sidebar: the defaults plus the ones this browser joined.
function savedRooms(){
  try {
    const list = JSON.parse(localStorage.getItem("chat.rooms") || "[]")
    return Array.isArray(list) ? list.filter(r => ROOM_RE.test(r)) : []
  } catch(_){ return [] }
}
function rememberRoom(name){
  if(!ROOM_RE.test(name) || DEFAULT_ROOMS.includes(name)){ return }
  const list = savedRooms().filter(r => r !== name)
  list.push(name)
  localStorage.setItem("chat.rooms", JSON.stringify(list.slice(-20)))
}
function forgetRoom(name){
  localStorage.setItem("chat.rooms", JSON.stringify(savedRooms().filter(r => r !== name)))
  renderRooms()
}

function renderRooms(){
  const ul = $("rooms")
  ul.replaceChildren()
  const names = [...DEFAULT_ROOMS, ...savedRooms().filter(r => !DEFAULT_ROOMS.includes(r))]
  if(room && !names.includes(room)){ names.push(room) }
  for(const name of names){
    const li = el("li")
    const a = el("a", name === room ? "room active" : "room")
    a.href = `#${name}`
    a.dataset.room = name
    a.append(el("span", "hash", "#"), el("span", "", name))
    if(name === room){ a.setAttribute("aria-current", "page") }
    li.append(a)
    ul.append(li)
  }
}

$("room-form").addEventListener("submit", e => {
  e.preventDefault()
  const input = $("room-input")
  const name = input.value.trim().toLowerCase().replace(/^#/, "")
  if(!ROOM_RE.test(name)){
    showError("Room names are 1 to 64 lowercase letters, digits, _ or -")
    return
  }
  input.value = ""
  if(name !== room){ joinRoom(name) }
})

// ---------------------------------------------------------------------------
// Messages

// addMessages merges msgs into the room's list: ids already shown are
// skipped (a message can arrive both in a rejoin's history and as a
// broadcast), and the list stays in id order.
function addMessages(msgs, forceRender = false){
  let fresh = msgs.filter(m => m && typeof m.id === "number" && !known.has(m.id))
  if(fresh.length === 0 && !forceRender){ return }
  const tail = messages.length ? messages[messages.length - 1].id : 0
  fresh.sort((a, b) => a.id - b.id)
  for(const m of fresh){
    known.add(m.id)
    if(typers.has(m.user)){ removeTyper(m.user) }
  }
  const list = $("messages")
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40
  if(!forceRender && fresh[0].id > tail){
    for(const m of fresh){
      list.append(renderMessage(m, messages[messages.length - 1]))
      messages.push(m)
    }
  } else {
    messages = messages.concat(fresh).sort((a, b) => a.id - b.id)
    renderMessages()
  }
  if(atBottom || fresh.some(m => m.user === user)){ list.scrollTop = list.scrollHeight }
}

function renderMessages(){
  const list = $("messages")
  list.replaceChildren()
  messages.forEach((m, i) => list.append(renderMessage(m, messages[i - 1])))
  if(messages.length === 0){
    list.append(el("li", "empty", room ? `No messages in #${room} yet. Say hello!` : ""))
  }
  list.scrollTop = list.scrollHeight
}

function renderMessage(m, prev){
  removeEmptyNote()
  const grouped = prev && prev.user === m.user && m.at - prev.at < GROUP_WITHIN_MS
  const li = el("li", `msg${grouped ? " grouped" : ""}${m.user === user ? " mine" : ""}`)
  li.dataset.id = m.id
  const avatar = el("span", "avatar")
  setAvatar(avatar, m.user)
  const head = el("div", "msg-head")
  const time = el("time", "time", formatTime(m.at))
  time.dateTime = new Date(m.at).toISOString()
  time.title = new Date(m.at).toLocaleString()
  head.append(el("span", "author", m.user), time)
  const body = el("div", "body", m.body)
  li.append(avatar, el("div", "msg-main"))
  li.lastChild.append(head, body)
  return li
}

function removeEmptyNote(){
  const empty = $("messages").querySelector(".empty")
  if(empty){ empty.remove() }
}

function formatTime(ms){
  const d = new Date(ms)
  const time = d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})
  if(d.toDateString() === new Date().toDateString()){ return time }
  return `${d.toLocaleDateString([], {month: "short", day: "numeric"})} ${time}`
}

// A color per user name, so authors are easy to tell apart.
function setAvatar(node, name){
  let h = 0
  for(const c of name){ h = (h * 31 + c.codePointAt(0)) >>> 0 }
  node.textContent = name.slice(0, 1).toUpperCase()
  node.style.backgroundColor = `hsl(${h % 360} 55% 45%)`
  node.setAttribute("aria-hidden", "true")
}

// ---------------------------------------------------------------------------
// Composer

const bodyInput = $("body")

$("composer").addEventListener("submit", e => {
  e.preventDefault()
  send()
})

bodyInput.addEventListener("keydown", e => {
  if(e.key === "Enter" && !e.shiftKey && !e.isComposing){
    e.preventDefault()
    send()
  }
})

bodyInput.addEventListener("input", () => {
  autosize()
  const now = Date.now()
  if(channel && bodyInput.value.trim() !== "" && now - lastTypingSent > TYPING_SEND_EVERY_MS){
    lastTypingSent = now
    channel.push("typing", {})
  }
})

function autosize(){
  bodyInput.style.height = "auto"
  bodyInput.style.height = `${Math.min(bodyInput.scrollHeight, 160)}px`
}

function send(){
  const body = bodyInput.value
  if(!channel || body.trim() === ""){ return }
  bodyInput.value = ""
  autosize()
  lastTypingSent = 0
  const ch = channel
  ch.push("new_msg", {body})
    .receive("ok", () => { if(ch === channel){ hideError() } })
    .receive("error", ({reason} = {}) => {
      if(ch !== channel){ return }
      showError(reason === "unavailable"
        ? "Message not sent: the server cannot record messages right now; try again"
        : `Message not sent: ${reason || "refused"}`)
      if(bodyInput.value === ""){ bodyInput.value = body; autosize() } // let the user fix it
    })
    .receive("timeout", () => {
      if(ch === channel){ showError("Message not sent: the server did not answer") }
    })
}

// ---------------------------------------------------------------------------
// Typing hint, error line, online users

function showTyper(who){
  clearTimeout(typers.get(who))
  typers.set(who, setTimeout(() => removeTyper(who), TYPING_SHOW_MS))
  renderTypers()
}
function removeTyper(who){
  clearTimeout(typers.get(who))
  typers.delete(who)
  renderTypers()
}
function clearTypers(){
  typers.forEach(t => clearTimeout(t))
  typers.clear()
  renderTypers()
}
function renderTypers(){
  const names = [...typers.keys()]
  let text = ""
  if(names.length === 1){ text = `${names[0]} is typing…` }
  else if(names.length === 2){ text = `${names[0]} and ${names[1]} are typing…` }
  else if(names.length > 2){ text = "Several people are typing…" }
  $("typing").textContent = text
}

// showNotice shows a short status line (reconnections) for a few seconds.
let noticeTimer = null
function showNotice(text){
  const n = $("notice")
  n.textContent = text
  n.hidden = false
  clearTimeout(noticeTimer)
  noticeTimer = setTimeout(() => { n.hidden = true }, 8000)
}

let errorTimer = null
function showError(text){
  $("error-text").textContent = text
  $("error").hidden = false
  clearTimeout(errorTimer)
  errorTimer = setTimeout(hideError, 10000)
}
function hideError(){
  clearTimeout(errorTimer)
  $("error").hidden = true
}
$("error-close").addEventListener("click", hideError)

// renderOnline lists the users the server's presence reports, once each,
// with the number of tabs or devices when a user has several.
function renderOnline(presence){
  const users = presence ? presence.list((name, {metas}) => ({name, count: metas.length})) : []
  users.sort((a, b) => a.name.localeCompare(b.name))
  const ul = $("online")
  ul.replaceChildren()
  for(const u of users){
    const li = el("li", "user")
    const avatar = el("span", "avatar small")
    setAvatar(avatar, u.name)
    li.append(avatar, el("span", "name", u.name))
    if(u.name === user){ li.append(el("span", "you", "you")) }
    if(u.count > 1){ li.append(el("span", "devices", `${u.count} tabs`)) }
    ul.append(li)
  }
  $("online-count").textContent = users.length ? String(users.length) : ""
  $("online-empty").hidden = users.length > 0
}

// ---------------------------------------------------------------------------
// Start: resume this tab's session, or ask for a name.

const saved = sessionStorage.getItem("chat.user")
$("name").value = localStorage.getItem("chat.lastUser") || ""
if(saved){
  $("login").hidden = true
  fetchToken(saved).then(t => { token = t; user = saved; start() })
    .catch(() => { $("login").hidden = false })
}
