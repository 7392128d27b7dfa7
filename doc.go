// Package phx serves Phoenix Channels from Go: browsers, iOS, Android and
// .NET apps keep using the official, unmodified Phoenix client libraries
// (the phoenix npm package first), and the server side is plain Go.
//
// # Layers
//
// A [Server] is the socket handler. Mount it on any mux under any prefix
// (mux.Handle("/socket/", srv)) and it serves the WebSocket transport at
// <prefix>/websocket and the long-poll fallback at <prefix>/longpoll;
// channels cannot tell which one a client uses. Its [Options.Connect] hook authenticates each
// connection from its query parameters, auth token and headers and returns
// the connection's [Assigns]; [Options.ID] names the connection so that
// [Server.Disconnect] can close all of a user's connections at once.
//
// One connection multiplexes many channels. [Server.Channel] routes topic
// patterns ("room:lobby", "room:*") to a constructor; every join makes a new
// [Channel] value, whose fields are that channel's state. Its hooks — Join,
// and optionally HandleIn ([InHandler]), HandleOut ([OutHandler]),
// HandleInfo ([InfoHandler]) and Terminate ([Terminator]) — run one at a time
// on a goroutine of the channel's own (started when it has work, so idle
// channels cost no goroutine), and receive a [*Socket] to push, reply and
// broadcast with. A panic takes down only its channel: the client gets
// phx_error and rejoins.
//
// Broadcasts go through a [PubSub]: in memory by default, so that any code
// (an HTTP handler, a cron job) can reach every subscriber of a topic with
// [Server.Broadcast]. A broadcast is encoded once per wire format and the
// same bytes are written to every subscriber, unless the channel intercepts
// the event with HandleOut.
//
// [Presence] tracks who is online per topic and keeps the official
// JavaScript Presence class in sync through presence_state and
// presence_diff. Package token (github.com/phxgo/phx/token) makes and
// checks the signed, expiring tokens that Connect verifies: [token.Signer]
// in its own format, [token.PhoenixSigner] byte for byte as Elixir's
// Phoenix.Token, for services that share a secret with a Phoenix app.
// Package phxtest runs channels in tests without a network.
//
// # Wire protocol
//
// The server speaks the Phoenix protocol as the official clients do: the
// V2 JSON array format (vsn=2.0.0, the clients' default) with binary frames
// for binary payloads, and the legacy V1 JSON object format. Replies,
// heartbeats, phx_close and phx_error, join refs, duplicate joins and
// unmatched topics behave as in Phoenix 1.8. Close codes are chosen so the
// clients reconnect: 1001 for a disconnect, 1012 on shutdown, 1008 for a
// slow client, 1007 for a malformed frame, 1009 for an oversize message.
// docs/protocol.md in the repository describes the protocol frame by frame.
//
// # Delivery
//
// Like Phoenix, delivery to clients is at most once by default: a client
// that is disconnected misses what was sent meanwhile. A channel subscribes
// to its topic before Join runs and holds what is broadcast meanwhile until
// its join reply is out, so presence tracked in Join converges.
//
// # History and recovery
//
// Routes registered with [WithHistory] record their broadcasts in the
// server's [HistoryStore] ([Options.History], in memory by default): each
// recorded broadcast gets the next offset of its topic, added to its
// payload object as "phx_offset". A client that joins with
// "phx_position": {"epoch": E, "offset": N} in its join params (phoenix.js
// evaluates a params function on every rejoin) gets, in the join reply,
// "recovered", "replayed" (how many messages follow) and "phx_position"
// (the topic's newest offset); when recovered is true the messages after N
// follow the reply, then live ones, each exactly once and in offset order.
// A position that cannot be honoured (another epoch, ahead of the topic,
// malformed, trimmed, more than MaxReplay behind) gets recovered: false and
// no replay. The epoch {"epoch": "", "offset": 0} asks for the newest
// retained messages. docs/history.md states the guarantee and its limits;
// examples/chat/static/phx_history.js is a small optional browser helper.
//
// # Limits
//
// Every queue is bounded by default, and every limit documented in
// [Options]: message size, channels per connection, the outbound queue per
// connection (a client that cannot keep up is disconnected instead of
// slowing publishers), the per-channel event queue, write and heartbeat
// timeouts. Zero means the default; a negative value lifts the limit.
// [New] reports options it cannot use; [NewServer] panics on them.
//
// # Shutting down
//
// Shut down the http.Server, then the Server, with one deadline:
//
//	err := errors.Join(hs.Shutdown(ctx), srv.Shutdown(ctx))
//
// The http.Server's Shutdown starts the Server's drain (it registers
// itself with every http.Server it is served through): held long-polls
// answer at once and WebSockets are closed with 1012, so that clients
// reconnect elsewhere. [Server.Shutdown] waits until every channel has
// terminated. The other order works as well.
//
// The examples are the best way to learn the package; examples/chat in the
// repository is a complete application.
package phx
