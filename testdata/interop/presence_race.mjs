// Presence under concurrent joins: 200 clients join one room at the same
// moment, for 10 rounds (a fresh room each round). Half of them are tracked
// inside Join, which also pushes presence_state and broadcasts; the other
// half are tracked in an after-join HandleInfo. The diffs of everybody
// else's joins race every join; the library must get each of them to every
// joiner, so that every client's Presence.list() ends up equal to the
// server's List. Prints per round how long it took to converge.
import {scenario, connect, joined, until, ctl, disconnect, assert, log, ID, opened} from "./lib.mjs"
import {Presence} from "phoenix"

const CLIENTS = 200
const ROUNDS = 10

function keys(list){ return Object.keys(list).sort() }

scenario("presence_race", async () => {
  const sockets = []
  for(let i = 0; i < CLIENTS; i++){
    sockets.push(connect({user: `${ID}_u${i}`}))
  }
  await Promise.all(sockets.map(s => opened(s, 15000)))
  log(`${CLIENTS} sockets open`)
  for(let round = 1; round <= ROUNDS; round++){
    const topic = `race:${ID}_${round}`
    const started = Date.now()
    const members = sockets.map((socket, i) => {
      const channel = socket.channel(topic, {user: `${ID}_u${i}`, mode: (i + round) % 2 ? "join" : "after"})
      const presence = new Presence(channel)
      return {channel, presence}
    })
    await Promise.all(members.map(m => joined(m.channel)))
    let server = []
    let bad = 0
    await until(async () => {
      server = keys(await ctl(`presence?topic=${encodeURIComponent(topic)}`))
      if(server.length !== CLIENTS){ return false }
      const want = JSON.stringify(server)
      bad = members.filter(m => JSON.stringify(m.presence.list(k => k).sort()) !== want).length
      return bad === 0
    }, `round ${round}: every Presence.list() to equal the server's`, 10000).catch(err => {
      throw new Error(`${err.message}: ${bad} of ${CLIENTS} views differ`)
    })
    log(`round ${round}: ${CLIENTS} views equal the server's ${server.length} entries after ${Date.now() - started} ms`)
    await Promise.all(members.map(m => new Promise(resolve => m.channel.leave().receive("ok", resolve).receive("timeout", resolve))))
  }
  assert.ok(true)
  await Promise.all(sockets.map(disconnect))
}, {timeoutMs: 40000})
