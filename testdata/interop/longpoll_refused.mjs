// Options.Connect refuses a LongPoll client: the first GET answers
// {"status":403}; the client reports an error (403), closes with 1008,
// never opens, and retries with its reconnect backoff.
import {scenario, connect, join, ctl, until, sleep, disconnect, assert, log, ID, CLIENT} from "./lib.mjs"

const {LongPoll} = await import(CLIENT)

scenario("longpoll_refused", async () => {
  const user = `${ID}_r`
  const socket = connect({user, refuse: "yes"}, {transport: LongPoll})
  const errors = [], closes = []
  let opens = 0
  socket.onError(e => errors.push(e))
  socket.onClose(e => closes.push(e.code))
  socket.onOpen(() => opens++)
  const channel = socket.channel(`room:${ID}`)
  let replied = null
  join(channel, ["ok", "error"]).then(r => { replied = r })

  await until(() => closes.length >= 2, "two refused attempts")
  log("errors", JSON.stringify(errors), "closes", JSON.stringify(closes))
  assert.equal(errors[0], 403)
  assert.equal(closes[0], 1008)
  const seen = await ctl(`connects?user=${encodeURIComponent(user)}`)
  assert.ok(seen.length >= 2, "the client retried")
  assert.ok(seen.every(c => !c.accepted), "every attempt refused")
  assert.equal(opens, 0, "never opened")
  assert.equal(replied, null)
  channel.leave()
  await disconnect(socket)
})
