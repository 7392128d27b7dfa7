// Connect params reach Options.Connect (query string, bracket-encoded nested
// values, vsn last) and come back in the join reply via the assigns.
import {scenario, connect, opened, joined, ctl, disconnect, assert, log, ID} from "./lib.mjs"

scenario("connect_params", async () => {
  const user = `${ID}_a`
  const socket = connect({user, token: "abc", nested: {a: 1}, list: ["x", "y"], "sp ace": "a b&c=d"})
  await opened(socket)
  log("connected", socket.endPointURL())
  assert.match(socket.endPointURL(), /vsn=2\.0\.0$/, "phoenix.js puts vsn last")

  const reply = await joined(socket.channel(`room:${ID}`, {hello: "world"}))
  log("join reply", JSON.stringify(reply))
  assert.equal(reply.user, user)
  assert.equal(reply.socket_id, `user_socket:${user}`)
  assert.deepEqual(reply.params, {hello: "world"})
  assert.equal(reply.connect_params.token, "abc")
  assert.equal(reply.connect_params.vsn, "2.0.0")
  assert.equal(reply.connect_params["nested[a]"], "1")
  assert.equal(reply.connect_params["list[0]"], "x")
  assert.equal(reply.connect_params["list[1]"], "y")
  assert.equal(reply.connect_params["sp ace"], "a b&c=d")

  const seen = await ctl(`connects?user=${encodeURIComponent(user)}`)
  assert.equal(seen.length, 1, `server saw ${JSON.stringify(seen)}`)
  assert.equal(seen[0].accepted, true)
  assert.deepEqual(seen[0].params.token, ["abc"])
  await disconnect(socket)
})
