// phx_history.js: an optional helper for phx's channel history, in plain
// JavaScript for the official, unmodified phoenix client. It keeps one
// position per topic and gives phoenix.js a params *function*, which the
// client calls again on every rejoin, so that a channel that rejoins after
// a dropped connection asks the server for what it missed.
//
//   import {Positions} from "./phx_history.js"
//   const positions = new Positions()
//   const channel = socket.channel(topic, positions.params(topic, {name: "x"}))
//   channel.join().receive("ok", reply => {
//     const r = positions.joined(topic, reply)
//     // r.recovered: nothing was missed since the last position
//     // r.reset:     a previous position could not be recovered (history
//     //              lost or too far behind): reload what the page shows
//     // r.replayed:  how many missed messages follow the reply
//   })
//   channel.on("new_msg", msg => {
//     if(!positions.seen(topic, msg)){ return } // already shown
//     ...
//   })
//
// The wire contract (see the library's docs): the join params carry
// phx_position {epoch, offset}; the join reply carries phx_position (the
// topic's newest offset), and, when a position was sent, recovered
// (true/false) and replayed (how many messages follow); every recorded
// broadcast's payload carries phx_offset.

export class Positions {
  constructor(){
    this.positions = new Map() // topic -> {epoch, offset}
    this.gaps = 0              // offsets skipped (should stay 0)
    this.duplicates = 0        // payloads at or below the position, dropped (should stay 0)
  }

  // params returns the join params function for topic: extra (an object,
  // or a function returning one) plus phx_position. A topic never joined
  // asks for the newest retained messages (the empty epoch, offset 0).
  params(topic, extra = {}){
    return () => {
      const base = typeof extra === "function" ? extra() : extra
      const pos = this.positions.get(topic) || {epoch: "", offset: 0}
      return {...base, phx_position: {epoch: pos.epoch, offset: pos.offset}}
    }
  }

  // joined records a join reply and says what happened to the position.
  joined(topic, reply){
    const prev = this.positions.get(topic)
    const top = reply && reply.phx_position
    if(!top){ return {recovered: false, reset: false, replayed: 0} }
    const replayed = Number(reply.replayed) || 0
    const recovered = reply.recovered === true
    // The replayed messages are the ones up to the top: start right below.
    this.positions.set(topic, {epoch: top.epoch, offset: Math.max(0, top.offset - replayed)})
    return {recovered, reset: !!prev && prev.epoch !== "" && !recovered, replayed}
  }

  // seen records a received payload's phx_offset and returns false for a
  // message at or below the position (a duplicate, to skip). A payload
  // without phx_offset (not recorded) is always new.
  seen(topic, payload){
    const off = payload && payload.phx_offset
    if(typeof off !== "number"){ return true }
    const pos = this.positions.get(topic)
    if(!pos){ this.positions.set(topic, {epoch: "", offset: off}); return true }
    if(off <= pos.offset){ this.duplicates++; return false }
    if(off > pos.offset + 1){ this.gaps += off - pos.offset - 1 }
    pos.offset = off
    return true
  }

  // forget drops topic's position: its next join is a first join.
  forget(topic){ this.positions.delete(topic) }

  // position returns topic's position ({epoch, offset}), or undefined.
  position(topic){ return this.positions.get(topic) }
}
