// Push answered with phx.NoReply: the client's push timeout fires, and the
// channel keeps working.
import {scenario, connect, joined, push, frames, sleep, disconnect, assert, log, ID} from "./lib.mjs"

scenario("push_noreply", async () => {
  const socket = connect({user: `${ID}_a`})
  const raw = frames(socket)
  const channel = socket.channel(`room:${ID}`)
  await joined(channel)
  const t0 = Date.now()
  const p = channel.push("noreply", {}, 300)
  const r = await new Promise(resolve => {
    p.receive("ok", x => resolve({status: "ok", response: x}))
      .receive("error", x => resolve({status: "error", response: x}))
      .receive("timeout", x => resolve({status: "timeout", response: x}))
  })
  log("noreply push result", JSON.stringify(r), "after", Date.now() - t0, "ms")
  assert.equal(r.status, "timeout")
  assert.ok(Date.now() - t0 >= 290, "timeout fired early")
  await sleep(100)
  assert.ok(!raw.some(m => m.event === "phx_reply" && m.ref === p.ref), "no reply frame for the NoReply push")
  const ok = await push(channel, "echo", {after: "timeout"})
  assert.deepEqual(ok, {status: "ok", response: {after: "timeout"}})
  await disconnect(socket)
})
