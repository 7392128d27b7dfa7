// authToken Socket option (phoenix.js >= 1.8): the token travels in the
// Sec-WebSocket-Protocol header as "base64url.bearer.phx.<btoa(token)>";
// the server decodes it into ConnectInfo.AuthToken and selects "phoenix".
// The token is chosen so that btoa() yields a '+' (standard alphabet).
// phoenix.js 1.7 has no such option: it must connect as if it were absent.
import {scenario, connect, opened, joined, disconnect, assert, log, ID, IS_18} from "./lib.mjs"

scenario("auth_token", async () => {
  const token = "~~~>tok.en"
  assert.ok(btoa(token).includes("+"))
  const socket = connect({user: `${ID}_a`}, {authToken: token})
  await opened(socket)
  log("connected; protocol selected by server:", JSON.stringify(socket.conn.protocol))
  const reply = await joined(socket.channel(`room:${ID}`))
  if(IS_18){
    assert.equal(socket.conn.protocol, "phoenix", "server must select the phoenix subprotocol")
    assert.equal(reply.auth_token, token)
  } else {
    assert.equal(socket.conn.protocol, "", "1.7 offers no subprotocol")
    assert.equal(reply.auth_token, "")
  }
  await disconnect(socket)
})
