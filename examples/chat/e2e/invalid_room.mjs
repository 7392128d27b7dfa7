// Room names are [a-z0-9_-]{1,64}: other topics are refused.
import {assert, ID, login, result, scenario} from "./lib.mjs"

scenario("invalid room", async () => {
  const ann = await login(`ann_${ID}`)
  for(const topic of ["room:Lobby", "room:", "room:a b", "room:" + "x".repeat(65), "room:a.b"]){
    const ch = ann.channel(topic)
    const r = await result(ch.join())
    assert.deepEqual(r, {status: "error", response: {reason: "invalid room"}}, topic)
    ch.leave() // stop the client's rejoin attempts
  }
  const ok = ann.channel(`room:valid_${ID}`)
  const r = await result(ok.join())
  assert.equal(r.status, "ok", JSON.stringify(r))
  assert.equal(r.response.phx_position.offset, 0, JSON.stringify(r.response))
})
