// Issue 15's scenario, on the server's default limits (100 messages/s,
// bursts of 200): an app moving a live cursor at ~90 pushes a second loses
// its network for 2.5 s (the test server's proxy drops the connection and
// holds new attempts until the network is back). phoenix.js buffers the pushes made meanwhile,
// reconnects with its own default backoff, rejoins and sends the whole
// buffer at once, beyond the burst. The server must answer every buffered
// push (ok, or an error reply "rate limited"), never close with 1008, keep
// the client joined, and let the live pushes through again afterwards.
// The socket uses the client's default timers, as an app would.
import {scenario, Socket, ctl, until, sleep, disconnect, assert, log, ID} from "./lib.mjs"

scenario("cursor_outage", async () => {
  const {url} = await ctl("proxy")
  const socket = new Socket(url, {params: {user: `${ID}_a`}})
  socket.connect()
  const codes = []
  let opens = 0
  socket.onClose(e => codes.push(e.code))
  socket.onOpen(() => opens++)
  const channel = socket.channel(`room:${ID}`)
  let joins = 0
  channel.join().receive("ok", () => joins++)
  await until(() => joins === 1, "the join")

  // Cursor moves at 90 a second, each recorded with whether phoenix.js
  // buffered it (not connected or not joined) and how it was answered.
  // The timer catches up when it fires late, so the rate holds on a busy
  // machine, as mouse events queue up in a busy browser.
  const pushes = []
  const RATE = 90
  const start = Date.now()
  const move = () => {
    const n = pushes.length
    const p = {n, buffered: !channel.canPush(), status: null, reason: null}
    pushes.push(p)
    channel.push("echo", {x: n})
      .receive("ok", r => { p.status = r.x === n ? "ok" : `ok with x=${r.x}` })
      .receive("error", r => { p.status = "error"; p.reason = r && r.reason })
      .receive("timeout", () => { p.status = "timeout" })
  }
  const timer = setInterval(() => {
    while(pushes.length < Math.floor((Date.now() - start) * RATE / 1000)){ move() }
  }, 5)
  await sleep(1500)
  const before = pushes.slice()
  assert.ok(before.every(p => !p.buffered), "pushes before the outage went out")

  const {dropped} = await ctl("cut?ms=2500", {})
  assert.equal(dropped, 1, "the proxy dropped the client's connection")
  const cutAt = Date.now()
  await until(() => codes.length > 0, "the client to notice the outage")
  await until(() => opens === 2 && joins === 2, "the reconnect and rejoin", 15000)
  const rejoinedAt = pushes.length
  const closesAtRejoin = codes.length
  log(`rejoined ${Date.now() - cutAt} ms after the cut; ${codes.length} closes meanwhile (codes ${[...new Set(codes)]})`)

  await sleep(3000) // live moves over the new connection
  clearInterval(timer)
  const buffered = pushes.filter(p => p.buffered)
  await until(() => buffered.every(p => p.status !== null), "an answer to every buffered push", 15000)
  const after = pushes.slice(rejoinedAt)
  await until(() => after.every(p => p.status !== null), "an answer to every push after the rejoin", 15000)

  const count = (list, status) => list.filter(p => p.status === status).length
  log(`${buffered.length} buffered pushes: ${count(buffered, "ok")} ok, ${count(buffered, "error")} refused, ` +
    `${count(buffered, "timeout")} timed out`)
  log(`${after.length} pushes after the rejoin: ${count(after, "ok")} ok, ${count(after, "error")} refused`)
  assert.ok(buffered.length > 200, `the outage buffered ${buffered.length} pushes, more than the burst`)
  assert.ok(!codes.includes(1008), `no policy close (close codes ${codes})`)
  assert.equal(codes.length, closesAtRejoin, "no close after the rejoin")
  assert.equal(opens, 2, "one reconnection, no loop")
  assert.ok(channel.isJoined(), "the channel is still joined")
  for(const p of [...buffered, ...after]){
    assert.ok(p.status === "ok" || (p.status === "error" && p.reason === "rate limited"),
      `push ${p.n}${p.buffered ? " (buffered)" : ""}: ${p.status} ${p.reason || ""}`)
  }
  // The refusals are over once the burst has drained: the last second of
  // moves all passed.
  const lastSecond = after.slice(-80)
  assert.equal(count(lastSecond, "ok"), lastSecond.length,
    `the last ${lastSecond.length} moves: ${count(lastSecond, "error")} refused`)
  // The pushes in flight when the network went down got no reply: they
  // time out in the client, as with any lost connection.
  await disconnect(socket)
}, {timeoutMs: 40000})
