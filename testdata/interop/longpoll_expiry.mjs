// Session expiry: the network stalls (the script holds the client's
// requests back) for longer than the server's idle timeout, so the server
// closes the session and terminates its channels. The client's next poll
// gets status 410 with a new token: it reports "session_gone" (3410),
// reconnects with a fresh LongPoll and rejoins its channel by itself.
//
// Only globalThis.fetch, which phoenix.js's Ajax calls, is wrapped, to
// delay requests as a stalled network would; the client is unmodified.
import {scenario, connect, joined, push, sleep, until, ctl, disconnect, assert, log, ID, CLIENT} from "./lib.mjs"

const {LongPoll} = await import(CLIENT)

const realFetch = globalThis.fetch
let stallUntil = 0
globalThis.fetch = async (url, opts) => {
  if(String(url).includes("/socket/longpoll")){
    const wait = stallUntil - Date.now()
    if(wait > 0){ await sleep(wait) }
  }
  return realFetch(url, opts)
}

scenario("longpoll_expiry", async () => {
  const user = `${ID}_a`
  const topic = `room:${ID}`
  const socket = connect({user}, {transport: LongPoll})
  const closes = []
  let opens = 0, oks = 0
  socket.onClose(e => closes.push(e.code))
  socket.onOpen(() => opens++)
  const channel = socket.channel(topic)
  channel.join().receive("ok", () => oks++)
  await until(() => oks === 1, "the join")
  assert.deepEqual(await push(channel, "echo", {before: true}), {status: "ok", response: {before: true}})

  // The server's idle timeout is 1 s, its poll window 1 s: a 3 s stall.
  stallUntil = Date.now() + 3000
  await until(async () => ((await ctl(`terminated?topic=${encodeURIComponent(topic)}`)) || []).length === 1,
    "the server to expire the session", 5000)
  assert.deepEqual(await ctl(`terminated?topic=${encodeURIComponent(topic)}`), ["closed"])
  log("session expired server-side")

  await until(() => opens === 2 && oks === 2, "reconnect and rejoin", 6000)
  log("closes", JSON.stringify(closes))
  assert.ok(closes.includes(3410), `the client saw session_gone (3410): ${JSON.stringify(closes)}`)
  assert.deepEqual(await push(channel, "echo", {after: true}), {status: "ok", response: {after: true}})
  assert.equal((await ctl(`joins?topic=${encodeURIComponent(topic)}`)).joins, 2)
  await disconnect(socket)
}, {timeoutMs: 20000})
