// Options.Connect refuses: the upgrade fails (HTTP 403), which is all a
// WebSocket client can see: the client gets onError, never opens, and its
// channel never joins.
//
// In a browser the failed handshake also fires `close` (1006) and phoenix.js
// retries with its backoff. Node's built-in WebSocket (undici 6.x, Node 20)
// fires `error` only and stays CONNECTING (nodejs/undici#3506), so phoenix.js
// under Node never retries; the retry is checked only when a close event
// does arrive.
import {scenario, connect, join, ctl, until, sleep, disconnect, assert, log, ID} from "./lib.mjs"

scenario("connect_refused", async () => {
  const user = `${ID}_r`
  const socket = connect({user, refuse: "yes"})
  let errors = 0, opens = 0, closes = 0
  socket.onError(() => errors++)
  socket.onOpen(() => opens++)
  socket.onClose(() => closes++)
  const channel = socket.channel(`room:${ID}`)
  let replied = null
  join(channel, ["ok", "error"]).then(r => { replied = r })

  await until(() => errors >= 1, "onError for the refused connection")
  await sleep(300)
  log(`errors ${errors}, closes ${closes}, opens ${opens}`)
  const seen = await ctl(`connects?user=${encodeURIComponent(user)}`)
  log("server saw", seen.length, "attempt(s)")
  assert.ok(seen.length >= 1, "the server saw the attempt")
  assert.ok(seen.every(c => !c.accepted), "every attempt refused")
  if(closes > 0){
    await until(async () => (await ctl(`connects?user=${encodeURIComponent(user)}`)).length >= 2, "a retry after the close")
  } else {
    log("no close event after the failed handshake (Node's WebSocket): retry not checked")
  }
  assert.equal(opens, 0, "socket never opened")
  assert.equal(socket.isConnected(), false)
  assert.equal(replied, null, `the join got a reply: ${JSON.stringify(replied)}`)
  channel.leave()
  socket.disconnect()
})
