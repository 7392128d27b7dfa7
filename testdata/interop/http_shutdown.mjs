// The documented shutdown sequence, http.Server.Shutdown first, then
// Server.Shutdown (triggered through the control API), with a WebSocket
// client and a LongPoll client whose poll is held: the WebSocket is closed
// with 1012, the held poll is answered at once (not after its 10 s window)
// and the LongPoll client's channel errors. Run against a server of its own
// (TestInteropHTTPShutdownFirst), which checks the timing.
import {scenario, connect, joined, until, ctl, disconnect, assert, log, ID, CLIENT} from "./lib.mjs"

const {LongPoll} = await import(CLIENT)

scenario("http_shutdown", async () => {
  const ws = connect({user: `${ID}_ws`})
  const lp = connect({user: `${ID}_lp`}, {transport: LongPoll})
  const wsCodes = []
  ws.onClose(e => wsCodes.push(e.code))
  const wsCh = ws.channel(`room:${ID}_ws`)
  const lpCh = lp.channel(`room:${ID}_lp`)
  let lpErrors = 0
  lpCh.onError(() => lpErrors++)
  await Promise.all([joined(wsCh), joined(lpCh)])

  const start = Date.now()
  await ctl("http_shutdown", {})
  await until(() => wsCodes.length >= 1, "the WebSocket closed by the server")
  assert.equal(wsCodes[0], 1012)
  await until(() => lpErrors >= 1, "the LongPoll channel errored by the session's end", 4000)
  log("both clients ended in", Date.now() - start, "ms")
  await Promise.all([disconnect(ws), disconnect(lp)])
})
