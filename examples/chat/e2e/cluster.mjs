// Three copies of the chat joined by one broker: users connected to
// different copies chat with each other and see each other online, with
// the official phoenix client.
//
//   node --experimental-websocket e2e/cluster.mjs <url-a> <url-b> <url-c> <id>
import assert from "node:assert/strict"
import {Socket, Presence} from "phoenix"

const urls = process.argv.slice(2, 5).map(u => u.replace(/\/+$/, ""))
const ID = (process.argv[5] || `t${process.pid}`).replace(/[^a-z0-9_-]/g, "_")
if(urls.length !== 3 || !urls.every(u => /^https?:\/\//.test(u))){
  console.error("usage: node --experimental-websocket e2e/cluster.mjs URL-A URL-B URL-C [id]")
  process.exit(64)
}
const started = Date.now()
const log = (...args) => console.log(`[${String(Date.now() - started).padStart(5)} ms]`, ...args)
const hard = setTimeout(() => { console.error("FAIL cluster: hard timeout"); process.exit(2) }, 20000)
const sleep = ms => new Promise(r => setTimeout(r, ms))
async function until(cond, what, ms = 8000){
  const deadline = Date.now() + ms
  while(!cond()){
    if(Date.now() > deadline){ throw new Error(`timed out waiting for ${what}`) }
    await sleep(10)
  }
}

async function open(base, user, room){
  const res = await fetch(`${base}/api/token`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({user})})
  const {token} = await res.json()
  const socket = new Socket(base.replace(/^http/, "ws") + "/socket", {params: {token}})
  socket.connect()
  const channel = socket.channel(`room:${room}`, {})
  const presence = new Presence(channel)
  const messages = []
  channel.on("new_msg", m => { if(!messages.some(x => x.phx_offset === m.phx_offset)){ messages.push(m) } })
  await new Promise((resolve, reject) => channel.join().receive("ok", resolve).receive("error", reject))
  const online = () => presence.list(name => name).sort()
  const say = body => new Promise((resolve, reject) =>
    channel.push("new_msg", {body}).receive("ok", ({id}) => resolve(id)).receive("error", reject))
  return {user, socket, channel, messages, online, say}
}

try {
  const room = `cluster_${ID}`
  const users = ["ann", "bob", "cy"].map(u => `${u}_${ID}`)
  const [ann, bob, cy] = await Promise.all(users.map((u, i) => open(urls[i], u, room)))
  log("ann on node A, bob on node B, cy on node C: joined")

  for(const c of [ann, bob, cy]){
    await until(() => c.online().length === 3, `${c.user} to see 3 users online (sees ${c.online()})`)
  }
  log("every node lists all three online")

  const ids = [await ann.say("from A"), await bob.say("from B"), await cy.say("from C")]
  assert.equal(new Set(ids).size, 3, `message ids are unique across nodes: ${ids}`)
  for(const c of [ann, bob, cy]){
    await until(() => c.messages.length === 3, `${c.user} to receive the three messages`)
    assert.deepEqual(c.messages.map(m => m.body).sort(), ["from A", "from B", "from C"])
  }
  log("each message reached every user once, ids", ids)

  assert.deepEqual([...ids].sort(), [1, 2, 3], "one sequence of ids for the room, whichever node recorded")

  // A fourth user joining on node B catches up with what was said on A and
  // C: the room's history is in the broker, shared by the nodes.
  const dan = await open(urls[1], `dan_${ID}`, room)
  const replayed = []
  const reply = await new Promise(resolve => {
    const ch = dan.socket.channel(`room:${room}`, {phx_position: {epoch: "", offset: 0}})
    ch.on("new_msg", m => replayed.push(m))
    ch.join().receive("ok", resolve)
  })
  assert.equal(reply.replayed, 3, `join reply ${JSON.stringify(reply)}`)
  await until(() => replayed.length === 3, "the three messages replayed to dan")
  assert.deepEqual(replayed.map(m => m.body), ["from A", "from B", "from C"], "history on B has A's and C's messages, in order")
  log("history on node B replays A's and C's messages, in order")

  for(const c of [ann, bob, cy, dan]){ c.socket.disconnect() }
  console.log("PASS cluster")
  process.exitCode = 0
} catch(err){
  console.error(`FAIL cluster: ${err && err.stack || err}`)
  process.exitCode = 1
} finally {
  clearTimeout(hard)
}
