// Server idle timeout (Options.HeartbeatTimeout = 1200 ms on this test's own
// server, TestInteropIdleTimeout): a client heartbeating every 200 ms stays
// connected well past it; a client with the default 30 s heartbeat is closed
// with a non-1000 code (so every phoenix.js version reconnects), reconnects
// and rejoins.
import {scenario, connect, joined, push, until, sleep, disconnect, assert, log, ID} from "./lib.mjs"

function watch(socket){
  const s = {socket, codes: [], opens: 0}
  socket.onClose(e => s.codes.push(e.code))
  socket.onOpen(() => s.opens++)
  return s
}

scenario("idle_timeout", async () => {
  const busy = watch(connect({user: `${ID}_busy`}, {heartbeatIntervalMs: 200}))
  const idle = watch(connect({user: `${ID}_idle`}))
  const busyCh = busy.socket.channel(`room:${ID}_busy`)
  const idleCh = idle.socket.channel(`room:${ID}_idle`)
  let idleOks = 0
  idleCh.join().receive("ok", () => idleOks++)
  await joined(busyCh)
  await until(() => idleOks === 1, "the idle client's join")
  const t0 = Date.now()
  await until(() => idle.codes.length === 1, "the idle client to be closed")
  log(`idle client closed with ${idle.codes[0]} after ${Date.now() - t0} ms`)
  assert.notEqual(idle.codes[0], 1000, "never 1000: phoenix.js < 1.8.16 would not reconnect")
  await until(() => idle.opens === 2 && idleOks === 2, "the idle client's reconnect and rejoin")
  await sleep(Math.max(0, 2500 - (Date.now() - t0)))
  log(`busy client: opens ${busy.opens}, closes ${busy.codes.length}`)
  assert.equal(busy.opens, 1)
  assert.deepEqual(busy.codes, [])
  assert.deepEqual(await push(busyCh, "echo", {still: "up"}), {status: "ok", response: {still: "up"}})
  await Promise.all([disconnect(busy.socket), disconnect(idle.socket)])
})
