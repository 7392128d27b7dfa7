package phx

import (
	"errors"
	"fmt"
)

// Channel is the code behind one joined topic on one connection, like a
// Phoenix channel module. A route's [ChannelFunc] makes a new value for every
// join, so the value's fields are the channel's state: only the channel's
// hooks touch them, one at a time, so they need no locking.
//
// Join is the only required hook. A channel implements any of [InHandler],
// [OutHandler], [InfoHandler] and [Terminator] to receive more. Every hook
// of one channel runs on a goroutine of that channel's, one at a time, in the
// order the events arrived, never on the connection's goroutine; channels
// never block each other. The goroutine exists only while the channel has
// work: an idle channel holds none, and the next event starts one.
//
// Join decides whether the client may join. It returns a reply payload (nil
// for {}) to accept, or an error to refuse: an error made with [Error] or
// [Errorf] sends its payload (e.g. {"reason":"unauthorized"}); any other
// error is logged and the client gets {"reason":"join refused"}. A panic
// in Join sends {"reason":"join crashed"}. The reply must encode as a
// JSON object (a map, a struct, an [encoding/json.RawMessage] object), as
// Phoenix requires; any other value (a string, a slice) is a bug: it is
// logged at Error with its type, the client gets {"reason":"internal
// error"}, and the channel ends, Terminate receiving an error wrapping
// [ErrInvalidPayload].
// Terminate runs only for channels whose Join accepted. Pushes made during
// Join are sent after the join reply.
//
// The channel subscribes to its topic before Join runs (Phoenix
// subscribes after): broadcasts made while Join runs, presence_diff
// included, are held and sent after the join reply and the pushes made in
// Join, in the order they arrived; a refused join drops them. So Join may
// track presence, push presence_state and broadcast, and the joining
// client still converges with everybody else. A broadcast made in Join
// with [Socket.Broadcast] reaches this client too (after its join reply);
// use [Socket.BroadcastFrom] to skip it. Holding is bounded by
// MaxChannelQueue broadcasts, past which the channel stops with
// [ErrChannelOverloaded] and the client rejoins.
type Channel interface {
	Join(s *Socket, payload Payload) (reply any, err error)
}

// ChannelFunc makes the channel for one join; see [Server.Channel].
type ChannelFunc func() Channel

// InHandler receives the events the client pushes to the channel.
//
// HandleIn's results become the reply: (payload, nil) replies ok with
// payload (nil for {}); an error from [Error] or [Errorf] replies with its
// status and payload; [NoReply] sends nothing now (keep [Socket.ReplyRef]
// to reply later, from any goroutine); any other error is logged and
// replied as {"reason":"internal error"}. A reply (or an error's payload)
// that does not encode as a JSON object is logged at Error with its type
// and replied as {"reason":"internal error"} too. A panic crashes the
// channel: the client gets phx_error and rejoins.
type InHandler interface {
	HandleIn(s *Socket, event string, payload Payload) (reply any, err error)
}

// OutHandler intercepts broadcasts before they reach the client, as
// Phoenix's intercept/handle_out. Broadcasts whose event is listed by
// Intercept go through HandleOut, once per subscribed channel, which may
// push a modified copy with [Socket.Push] or drop it. Other events skip the
// channel entirely: they are encoded once and written to every client.
// Intercept is called once, after a successful Join.
type OutHandler interface {
	Intercept() []string
	HandleOut(s *Socket, event string, payload Payload)
}

// InfoHandler receives the values passed to [Socket.Send], as Phoenix's
// handle_info. Use it for timers, results of background work and the like.
type InfoHandler interface {
	HandleInfo(s *Socket, msg any)
}

// Terminator is told when a channel whose Join accepted ends, and why:
// [ErrLeft], [ErrClosed], [ErrServerClosed], [ErrDuplicateJoin], [ErrStopped],
// [ErrChannelOverloaded], [ErrJoinTimeout], the error given to
// [Socket.Stop], an error wrapping [ErrInvalidPayload] when Join's reply
// was not a JSON object, or a [*PanicError] after a crash. Terminate runs on the channel's
// goroutine. When the client is still connected and not yet told (it left,
// the channel stopped itself, or it crashed), Terminate runs before the
// phx_close or phx_error and may Push a last message, as Phoenix's
// terminate can; otherwise (the connection closed, Shutdown, expiry, a
// duplicate join, whose phx_close went first) Push returns
// [ErrChannelClosed]. A join that replaces a channel of the same topic
// waits (up to 5 s) for its Terminate to return before Join runs, so what
// Terminate releases is free for the new Join.
type Terminator interface {
	Terminate(s *Socket, reason error)
}

// NoReply, returned as HandleIn's error, sends no reply: the client's push
// gets its reply later through a [ReplyRef], or times out.
var NoReply = errors.New("phx: no reply")

// ReplyError is an error reply: a status (usually "error") and a response
// payload. Return one from Join or HandleIn, typically made by [Error] or
// [Errorf].
type ReplyError struct {
	Status   string // "error" when empty
	Response any    // the payload, as for Socket.Push
}

// Error implements error.
func (e *ReplyError) Error() string {
	return fmt.Sprintf("phx: %s reply: %v", e.status(), e.Response)
}

func (e *ReplyError) status() string {
	if e.Status == "" {
		return "error"
	}
	return e.Status
}

// Error returns a *ReplyError with status "error" and response as payload.
func Error(response any) error { return &ReplyError{Response: response} }

// Errorf returns an error reply whose payload is {"reason": <formatted text>}.
func Errorf(format string, args ...any) error {
	return &ReplyError{Response: map[string]string{"reason": fmt.Sprintf(format, args...)}}
}

// PanicError is the Terminate reason of a channel that panicked.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the goroutine's stack at the panic
}

// Error implements error.
func (e *PanicError) Error() string { return fmt.Sprintf("phx: channel panic: %v", e.Value) }
