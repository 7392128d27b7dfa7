// Presence: the official JS Presence class stays exactly in sync with the
// server. Three users (one of them on two sockets) join and leave in various
// orders; after each step every client's presence.list() equals the
// server's Presence.List for the topic (same keys, same metas by phx_ref).
import {scenario, connect, joined, push, until, ctl, disconnect, assert, log, ID, CLIENT} from "./lib.mjs"

const {Presence} = await import(CLIENT)

// summary renders a presence state as {key: [phx_ref, ...]} (refs sorted).
function summary(entries){
  const out = {}
  for(const [key, {metas}] of entries){
    out[key] = metas.map(m => m.phx_ref).sort()
  }
  return out
}

scenario("presence", async () => {
  const topic = `presence:${ID}`
  const clients = []
  async function open(user, device){
    const socket = connect({user: `${ID}_${user}`})
    const channel = socket.channel(topic, {device})
    const presence = new Presence(channel)
    let syncs = 0
    presence.onSync(() => syncs++)
    await joined(channel)
    const c = {user, device, socket, channel, presence, get syncs(){ return syncs }}
    clients.push(c)
    return c
  }
  async function close(c){
    clients.splice(clients.indexOf(c), 1)
    await disconnect(c.socket)
  }
  // inSync waits until the server's List satisfies expect (the step has
  // been processed) and every client's list() equals it.
  async function inSync(step, expect){
    let server = {}
    await until(async () => {
      server = summary(Object.entries(await ctl(`presence?topic=${encodeURIComponent(topic)}`)))
      return expect(server) && clients.every(c =>
        JSON.stringify(summary(c.presence.list((key, p) => [key, p]))) === JSON.stringify(server))
    }, `every client's list() to equal the server's after "${step}"`)
    log(`in sync after ${step}:`, JSON.stringify(Object.fromEntries(Object.entries(server).map(([k, v]) => [k.slice(ID.length + 1), v.length]))))
    return server
  }

  const a1 = await open("a", "laptop")
  let s = await inSync("a joins", s => Object.keys(s).length === 1)
  assert.deepEqual(Object.keys(s), [`${ID}_a`])

  const b = await open("b", "phone")
  const c = await open("c", "desk")
  s = await inSync("b and c join", s => Object.keys(s).length === 3)
  assert.equal(Object.keys(s).length, 3)

  // a on a second device: one key, two metas.
  const a2 = await open("a", "tablet")
  s = await inSync("a's second socket joins", s => s[`${ID}_a`]?.length === 2)
  assert.equal(s[`${ID}_a`].length, 2)
  const aEntry = a2.presence.list((key, p) => key === `${ID}_a` ? p : null).find(Boolean)
  assert.deepEqual(aEntry.metas.map(m => m.device).sort(), ["laptop", "tablet"])

  // Update: b goes away (new meta with phx_ref_prev replaces the old one).
  const bRef = s[`${ID}_b`][0]
  let leftB = 0, joinedB = 0
  c.presence.onLeave(key => { if(key === `${ID}_b`){ leftB++ } })
  c.presence.onJoin(key => { if(key === `${ID}_b`){ joinedB++ } })
  assert.equal((await push(b.channel, "away")).status, "ok")
  await inSync("b updates its meta", s => s[`${ID}_b`]?.length === 1 && !s[`${ID}_b`].includes(bRef))
  const bMeta = c.presence.list((key, p) => key === `${ID}_b` ? p : null).find(Boolean).metas[0]
  assert.equal(bMeta.status, "away")
  assert.ok(bMeta.phx_ref_prev, "updated meta carries phx_ref_prev")
  assert.ok(joinedB >= 1 && leftB >= 1, "onJoin and onLeave fired for the update")

  // a's first socket goes away: a stays listed with one meta.
  await close(a1)
  s = await inSync("a's first socket disconnects", s => s[`${ID}_a`]?.length === 1)
  assert.equal(s[`${ID}_a`].length, 1)

  // c leaves the channel (the socket stays): c disappears.
  c.channel.leave()
  clients.splice(clients.indexOf(c), 1)
  s = await inSync("c leaves the channel", s => !(`${ID}_c` in s))
  assert.ok(!(`${ID}_c` in s))
  await disconnect(c.socket)

  // b untracks itself while staying joined.
  assert.equal((await push(b.channel, "untrack")).status, "ok")
  s = await inSync("b untracks", s => !(`${ID}_b` in s))
  assert.deepEqual(Object.keys(s), [`${ID}_a`])

  // c comes back; a's last socket goes.
  const c2 = await open("c", "desk")
  await close(a2)
  s = await inSync("c rejoins, a's last socket goes", s => !(`${ID}_a` in s) && `${ID}_c` in s)
  assert.deepEqual(Object.keys(s), [`${ID}_c`])
  assert.ok(c2.syncs > 0)

  for(const x of [...clients]){ await close(x) }
})
