// Server.Shutdown (triggered through the control API) closes every client
// with 1012; the clients try to reconnect, which the draining server
// refuses. Run against a server of its own (TestInteropShutdown).
import {scenario, connect, joined, until, ctl, disconnect, assert, log, ID} from "./lib.mjs"

scenario("shutdown", async () => {
  const sockets = ["a", "b"].map(name => {
    const socket = connect({user: `${ID}_${name}`})
    const s = {socket, codes: [], errorsAfterClose: 0, chanErrors: []}
    socket.onClose(e => s.codes.push(e.code))
    socket.onError(() => { if(s.codes.length > 0){ s.errorsAfterClose++ } })
    return s
  })
  const chans = [
    sockets[0].socket.channel(`room:${ID}`),
    sockets[1].socket.channel(`room:${ID}_b`),
  ]
  chans.forEach((ch, i) => ch.onError(r => sockets[i].chanErrors.push(r)))
  await Promise.all(chans.map(joined))

  await ctl("shutdown", {})
  await until(() => sockets.every(s => s.codes.length >= 1), "both sockets closed by the server")
  for(const s of sockets){
    log("close code", s.codes[0])
    assert.equal(s.codes[0], 1012)
  }
  await until(() => sockets.every(s => s.errorsAfterClose >= 1), "a refused reconnect attempt from each client")
  for(const s of sockets){
    assert.equal(s.socket.isConnected(), false)
    assert.ok(s.chanErrors.length >= 1, "channels errored by the transport close")
  }
  await Promise.all(sockets.map(s => disconnect(s.socket)))
})
