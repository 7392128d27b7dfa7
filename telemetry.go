package phx

import (
	"context"
	"log/slog"
	"strings"
	"time"
)

// Telemetry is a set of hooks the server calls as things happen: the events
// Phoenix emits through :telemetry ([:phoenix, :socket_connected],
// [:phoenix, :channel_joined], [:phoenix, :channel_handled_in]), with the
// same measurements, as typed Go values. Set it as [Options.Telemetry]; any
// hook may be nil, and a nil *Telemetry costs nothing.
//
// Hooks run synchronously, on the goroutine where the event happened (the
// connection's reader, a channel's goroutine), never with a lock of the
// server held: keep them quick (count, observe a histogram, log) and hand
// slow work to a goroutine of your own. A hook that panics is recovered and
// logged at Error; the server carries on.
type Telemetry struct {
	// SocketConnected is called once per connection attempt that reached
	// Connect (the origin and subprotocol checks passed), accepted or
	// refused, and for each connection AcceptAuthenticated makes (phxtest).
	SocketConnected func(SocketConnected)
	// SocketClosed is called once for every accepted connection (Err nil
	// in its SocketConnected) when it has ended, after every channel's
	// Terminate; also for one accepted but never served because Shutdown
	// began (code 1012). Accepted minus closed is the open connections.
	SocketClosed func(SocketClosed)
	// ChannelJoined is called when a join has been answered (or has timed
	// out), whatever the answer.
	ChannelJoined func(ChannelJoined)
	// ChannelHandledIn is called after HandleIn returned and its reply, if
	// any, was queued.
	ChannelHandledIn func(ChannelHandledIn)
	// ChannelTerminated is called when a joined channel has ended, after
	// its Terminate.
	ChannelTerminated func(ChannelTerminated)
	// Broadcast is called after a broadcast made on this node
	// (Server.Broadcast*, Socket.Broadcast*) was handed to the PubSub:
	// delivered to this node's subscribers, and published to the others'.
	Broadcast func(BroadcastSent)
	// Drain is called while Shutdown drains, after each batch of
	// connections is told to close ([:phoenix, :socket_drain]).
	Drain func(DrainProgress)
	// PresenceDiff is called after a Presence broadcast a presence_diff.
	PresenceDiff func(PresenceDiffSent)
	// PubSub is called by a PubSub adapter (the NATS and Redis ones) for
	// what an operator watches: the broker connection lost and restored,
	// a publish that failed, a message from the broker it could not
	// decode. NewServer hands the hooks to a PubSub with a method
	// UseTelemetry(*Telemetry).
	PubSub func(PubSubEvent)
	// ChannelHandledOut is called after HandleOut ran for an intercepted
	// broadcast.
	ChannelHandledOut func(ChannelHandledOut)
}

// PubSubEvent is something a PubSub adapter reports.
type PubSubEvent struct {
	Adapter string // "nats", "redis"
	Node    string // the adapter's node ID
	// Kind is "disconnected" (broadcasts reach this node's subscribers
	// and are queued for the others), "reconnected" (Gap: how long the
	// connection was down), "replayed" (the outage's queue was replayed:
	// Gap, Replayed, Dropped), "publish_dropped" (one broadcast will not
	// reach other nodes: Topic, Err says why), "publish_failed" (a publish
	// attempt failed and will be retried, or a broadcast was refused:
	// Topic, Err), "decode_failed" (Err).
	Kind  string
	Topic string
	Gap   time.Duration
	Err   error
	// Replayed and Dropped count this node's broadcasts queued during the
	// outage and sent after it, and dropped since it began ("replayed").
	Replayed int
	Dropped  int64
}

// ChannelHandledOut describes one HandleOut of an intercepted broadcast.
type ChannelHandledOut struct {
	Context  context.Context // the channel's
	Route    string
	Topic    string
	Event    string
	Duration time.Duration
}

// BroadcastSent describes one broadcast made on this node.
type BroadcastSent struct {
	Topic string
	Event string
	// Subscribers is how many subscribers of this node the topic had, -1
	// when the PubSub cannot tell (it has no SubscriberCount method).
	Subscribers int
	Local       bool          // LocalBroadcast: this node only
	Duration    time.Duration // encoding, local delivery and the publish
	Err         error         // the PubSub's error, if any
}

// DrainProgress describes one batch of a Shutdown's drain ([:phoenix,
// :socket_drain]).
type DrainProgress struct {
	Closed int  // connections told to close so far
	Total  int  // connections open when the drain began
	Batch  int  // this batch's number, from 1
	Hurry  bool // Shutdown's context ended: the rest closed at once
}

// PresenceDiffSent describes one presence_diff broadcast.
type PresenceDiffSent struct {
	Topic  string
	Joins  int // keys joining
	Leaves int // keys leaving
}

// SocketConnected describes a connection attempt ([:phoenix,
// :socket_connected]).
type SocketConnected struct {
	// Context is the connect request's (ConnectInfo.Context): a tracer
	// finds the upgrade request's span in it.
	Context   context.Context
	Transport string        // "websocket", "longpoll", ...
	Vsn       string        // the vsn the client asked for ("" for none: V1)
	ID        string        // the socket ID Options.ID gave, "" if anonymous or refused
	Duration  time.Duration // Connect and ID together
	// Err is nil when the connection was accepted; otherwise a
	// [*RefusedError] (vsn refused, or Connect's error) or
	// [ErrServerClosed].
	Err error
}

// SocketClosed describes a connection that has ended.
type SocketClosed struct {
	Context   context.Context // the connection's: the request's values, ended
	Transport string
	ID        string
	Code      int    // the close code the server sent or would have sent (1001 when the client left)
	Reason    string // the close reason ("heartbeat timeout", "too slow", ...); "" when the client left
	Lifetime  time.Duration
	FramesIn  int64 // frames the client sent
	FramesOut int64 // frames queued for the client
}

// ChannelJoined describes a join ([:phoenix, :channel_joined]).
type ChannelJoined struct {
	Context   context.Context // the channel's (Socket.Context): the request's values
	Route     string          // the pattern the topic matched ("room:*"): bounded, for metric labels
	Topic     string
	Transport string
	Duration  time.Duration // Join's run, to the reply
	// Status is "ok", "error" (Join refused, or the subscription failed),
	// "crash" (Join panicked) or "timeout" (JoinTimeout passed first).
	Status string
}

// ChannelHandledIn describes one HandleIn ([:phoenix, :channel_handled_in]).
type ChannelHandledIn struct {
	Context  context.Context // the channel's
	Route    string
	Topic    string
	Event    string
	Duration time.Duration
	// Status is the reply's status ("ok", "error", or a ReplyError's own),
	// "" for NoReply, "crash" when HandleIn panicked.
	Status string
}

// ChannelTerminated describes the end of a joined channel.
type ChannelTerminated struct {
	Context  context.Context // the channel's, ended
	Route    string
	Topic    string
	Reason   error // Terminate's reason: ErrLeft, ErrClosed, a *PanicError, ...
	Lifetime time.Duration
}

// The fire functions call a hook if it is set, containing its panics. They
// take events by value: with no hook set nothing is built or allocated.

// fire calls hook with e unless it is nil; a panic is logged as name's.
func fire[E any](log logSource, name string, hook func(E), e E) {
	if hook == nil {
		return
	}
	defer recoverHook(log, name)
	hook(e)
}

func (t *Telemetry) socketConnected(log logSource, e SocketConnected) {
	if t != nil {
		fire(log, "SocketConnected", t.SocketConnected, e)
	}
}

func (t *Telemetry) socketClosed(log logSource, e SocketClosed) {
	if t != nil {
		fire(log, "SocketClosed", t.SocketClosed, e)
	}
}

func (t *Telemetry) channelJoined(log logSource, e ChannelJoined) {
	if t != nil {
		fire(log, "ChannelJoined", t.ChannelJoined, e)
	}
}

func (t *Telemetry) channelHandledIn(log logSource, e ChannelHandledIn) {
	if t != nil {
		fire(log, "ChannelHandledIn", t.ChannelHandledIn, e)
	}
}

func (t *Telemetry) channelTerminated(log logSource, e ChannelTerminated) {
	if t != nil {
		fire(log, "ChannelTerminated", t.ChannelTerminated, e)
	}
}

func (t *Telemetry) broadcast(log logSource, e BroadcastSent) {
	if t != nil {
		fire(log, "Broadcast", t.Broadcast, e)
	}
}

func (t *Telemetry) drain(log logSource, e DrainProgress) {
	if t != nil {
		fire(log, "Drain", t.Drain, e)
	}
}

func (t *Telemetry) presenceDiff(log logSource, e PresenceDiffSent) {
	if t != nil {
		fire(log, "PresenceDiff", t.PresenceDiff, e)
	}
}

func (t *Telemetry) channelHandledOut(log logSource, e ChannelHandledOut) {
	if t != nil {
		fire(log, "ChannelHandledOut", t.ChannelHandledOut, e)
	}
}

// logSource gives the logger a panicking hook is logged with: a
// connection's is made only then (see conn.logger).
type logSource interface{ logger() *slog.Logger }

// recoverHook, deferred by fire, contains a panicking hook.
func recoverHook(log logSource, hook string) {
	if v := recover(); v != nil {
		log.logger().Error("phx: Telemetry hook panicked", "hook", hook, "panic", v)
	}
}

// filteredParams are the connect parameters logs show as "[FILTERED]", as
// Phoenix's default filter_parameters.
var filteredParams = []string{"password", "token"}

// logParams renders connect params for a log line, with secrets filtered.
func logParams(params map[string][]string) slog.Value {
	attrs := make([]slog.Attr, 0, len(params))
	for k, vs := range params {
		v := ""
		if len(vs) > 0 {
			v = vs[len(vs)-1]
		}
		if isFilteredParam(k) {
			v = "[FILTERED]"
		}
		attrs = append(attrs, slog.String(k, v))
	}
	return slog.GroupValue(attrs...)
}

func isFilteredParam(key string) bool {
	key = strings.ToLower(key)
	for _, f := range filteredParams {
		if strings.Contains(key, f) { // "user_password" too, as Phoenix
			return true
		}
	}
	return false
}
