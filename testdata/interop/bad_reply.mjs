// A Join or HandleIn that returns a reply which is not a JSON object (a bug
// in the app) is an error the client sees: {"reason":"internal error"}, not
// an ok with an empty response; the socket and other channels carry on.
import {scenario, connect, join, joined, push, disconnect, assert, log, ID} from "./lib.mjs"

scenario("bad_reply", async () => {
  const socket = connect({user: `${ID}_a`})
  const bad = socket.channel(`room:${ID}_bad`, {bad_reply: true})
  const r = await join(bad)
  log("join with a non-object reply", JSON.stringify(r))
  assert.deepEqual(r, {status: "error", response: {reason: "internal error"}})
  bad.leave()

  const good = socket.channel(`room:${ID}`)
  await joined(good)
  assert.deepEqual(await push(good, "bad_reply", {}), {status: "error", response: {reason: "internal error"}})
  assert.deepEqual(await push(good, "echo", {fine: true}), {status: "ok", response: {fine: true}})
  await disconnect(socket)
})
