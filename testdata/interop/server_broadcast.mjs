// Server.Broadcast from outside any channel (control API) reaches every
// subscriber of the topic, and nobody else.
import {scenario, connect, joined, collect, frames, until, sleep, ctl, disconnect, assert, log, ID} from "./lib.mjs"

scenario("server_broadcast", async () => {
  const topic = `room:${ID}`
  const clients = ["a", "b"].map(name => {
    const socket = connect({user: `${ID}_${name}`})
    const channel = socket.channel(topic)
    return {socket, channel, raw: frames(socket), got: collect(channel, "news")}
  })
  const other = connect({user: `${ID}_other`})
  const otherCh = other.channel(`${topic}_other`)
  const otherGot = collect(otherCh, "news")
  await Promise.all([...clients.map(c => joined(c.channel)), joined(otherCh)])

  for(let i = 1; i <= 3; i++){
    await ctl(`broadcast?topic=${encodeURIComponent(topic)}&event=news`, {headline: `h${i}`})
  }
  await ctl(`broadcast?topic=${encodeURIComponent(topic)}&event=empty`)
  await until(() => clients.every(c => c.got.length >= 3), "3 broadcasts at both clients")
  await sleep(150)
  for(const c of clients){
    log("got", JSON.stringify(c.got))
    assert.deepEqual(c.got, [{headline: "h1"}, {headline: "h2"}, {headline: "h3"}])
    const f = c.raw.find(m => m.event === "news")
    assert.equal(f.join_ref, null)
    assert.equal(f.ref, null)
    assert.equal(f.topic, topic)
    assert.deepEqual(c.raw.find(m => m.event === "empty").payload, {}, "a nil payload arrives as {}")
  }
  assert.deepEqual(otherGot, [], "another topic's subscriber gets nothing")
  await Promise.all([...clients.map(c => disconnect(c.socket)), disconnect(other)])
})
