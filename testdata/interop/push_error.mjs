// Push with error replies: phx.Error payloads, a custom status string
// (ReplyError.Status), and an unknown event (phx.Errorf).
import {scenario, connect, joined, push, disconnect, assert, log, ID} from "./lib.mjs"

scenario("push_error", async () => {
  const socket = connect({user: `${ID}_a`})
  const channel = socket.channel(`room:${ID}`)
  await joined(channel)
  const r = await push(channel, "fail", {why: "because"})
  log("fail", JSON.stringify(r))
  assert.deepEqual(r, {status: "error", response: {reason: "failed", got: {why: "because"}}})
  const w = await push(channel, "custom_status", {}, {statuses: ["ok", "error", "timeout", "warn"]})
  log("custom_status", JSON.stringify(w))
  assert.deepEqual(w, {status: "warn", response: {level: "yellow"}})
  const u = await push(channel, "no_such_event", {})
  assert.deepEqual(u, {status: "error", response: {reason: "unknown event \"no_such_event\""}})
  // The channel is still fine after error replies.
  const ok = await push(channel, "echo", {still: "here"})
  assert.deepEqual(ok, {status: "ok", response: {still: "here"}})
  await disconnect(socket)
})
