// MaxConnectionsPerID = 1: a second connection of the same user is refused
// (HTTP 429) while the first stays connected; once the first leaves, the
// user can connect again. (A browser fires close after a refused handshake
// and phoenix.js retries with backoff; Node 20's WebSocket fires only
// error, so phoenix.js under Node does not retry: the scenario connects a
// third socket instead.)
import {scenario, connect, joined, push, until, sleep, disconnect, assert, log, ID} from "./lib.mjs"

scenario("per_id_limit", async () => {
  const user = `${ID}_lim`
  const first = connect({user})
  const room = first.channel(`room:${ID}`)
  await joined(room)
  const second = connect({user})
  let refusals = 0
  second.onError(() => refusals++)
  await until(() => refusals >= 1, "the second connection's refusal")
  await sleep(100)
  assert.ok(!second.isConnected(), "the second connection got in while the first held the place")
  assert.ok(first.isConnected(), "the first connection was affected")
  assert.deepEqual(await push(room, "echo", {still: true}), {status: "ok", response: {still: true}})
  log("second connection refused; first carries on")
  second.disconnect()
  await disconnect(first)
  // The server frees the place once the first connection's channels have
  // terminated: try until it has.
  let third
  for(let i = 0; ; i++){
    third = connect({user})
    let refused = false
    third.onError(() => { refused = true })
    await until(() => refused || third.isConnected(), "a third connection's outcome")
    if(third.isConnected()){ break }
    third.disconnect()
    assert.ok(i < 50, "still refused 50 tries after the first connection left")
    await sleep(20)
  }
  await joined(third.channel(`room:${ID}_2`))
  log("connected again once the first left")
  await disconnect(third)
})
