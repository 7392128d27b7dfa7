// 100 channels on one connection join; the 101st is refused with
// {"reason":"too many channels joined"}; after one of the 100 leaves, the
// client's automatic rejoin of the 101st succeeds.
import {scenario, connect, joined, join, push, until, disconnect, assert, log, ID} from "./lib.mjs"

scenario("too_many_channels", async () => {
  const socket = connect({user: `${ID}_a`})
  const channels = Array.from({length: 100}, (_, i) => socket.channel(`room:${ID}_${i}`))
  await Promise.all(channels.map(joined))
  log("100 channels joined")
  const extra = socket.channel(`room:${ID}_extra`)
  let oks = 0
  const jp = extra.join()
  jp.receive("ok", () => oks++)
  const r = await new Promise(resolve => jp.receive("error", resolve))
  log("101st join", JSON.stringify(r))
  assert.deepEqual(r, {reason: "too many channels joined"})

  channels[0].leave()
  await until(() => oks === 1, "the 101st channel's rejoin after a leave")
  log("101st joined after a leave")
  assert.deepEqual(await push(extra, "echo", {n: 101}), {status: "ok", response: {n: 101}})
  assert.deepEqual(await push(channels[99], "echo", {n: 99}), {status: "ok", response: {n: 99}})
  await disconnect(socket)
})
