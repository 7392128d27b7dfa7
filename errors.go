package phx

// This file holds every sentinel error of the package, with who receives it.
// Test them with errors.Is.

import (
	"errors"
	"fmt"

	"github.com/phxgo/phx/internal/wire"
)

// Errors of the wire protocol. They are the codec's own values, so
// errors.Is works whichever package produced the error.
var (
	// ErrMalformed is wrapped by every error for a frame that cannot be
	// decoded, and by encoders for a message that cannot be framed (an
	// invalid ref, or metadata longer than 255 bytes in a binary frame).
	// A client that sends one is closed with 1007.
	ErrMalformed = wire.ErrMalformed

	// ErrInvalidPayload is wrapped by the error for an outgoing payload that
	// is not a JSON object: Phoenix requires pushes, broadcasts and reply
	// responses to be maps. Returned to the caller of Push, Broadcast or
	// Reply.
	ErrInvalidPayload = wire.ErrInvalidPayload

	// ErrBinaryUnsupported is returned when a [Binary] payload is sent to a
	// client speaking the V1 (JSON object) protocol, which has no binary
	// frames.
	ErrBinaryUnsupported = wire.ErrBinaryUnsupported

	// ErrUnsupportedVsn is wrapped by the error for a `vsn` query value that
	// selects no serializer; the connection is refused with 403 Forbidden
	// (a [*RefusedError] from [Server.Accept]).
	ErrUnsupportedVsn = wire.ErrUnsupportedVsn

	// ErrMessageTooBig is returned by [Conn.Receive] for a frame over
	// [Options.MaxMessageSize]; the connection is closed with 1009.
	ErrMessageTooBig = errors.New("phx: message too big")
)

// ErrInvalidOptions is wrapped by every error [New] returns: an [Options]
// value it cannot serve with (a malformed AllowedOrigins or Hosts entry, a
// LongPoll.Secret shorter than 32 bytes, an invalid Serializers entry, a
// negative LongPoll.Window). [NewServer] panics with that error.
var ErrInvalidOptions = errors.New("phx: invalid options")

// Refusals of [Server.CheckRequest], inside a [*RefusedError] with HTTP
// status 403.
var (
	// ErrOriginNotAllowed: the request's Origin header is empty, repeated
	// or not allowed by [Options.AllowedOrigins], [Options.Hosts] or
	// [Options.CheckOrigin].
	ErrOriginNotAllowed = errors.New("phx: origin not allowed")
	// ErrHostNotAllowed: the request's Host header is not one of
	// [Options.Hosts].
	ErrHostNotAllowed = errors.New("phx: host not allowed")
)

// RefusedError is a refused connection. [Options.Connect] returns one to
// choose the HTTP status (Status 400 or more; other values mean 403), and
// [Server.Accept] returns one when it refuses a connection: a vsn no
// serializer matches (403), or Connect returned an error (403, or the
// error's StatusCode() when it has one of 400 or more; 500 when Connect
// panicked). Err is the cause.
type RefusedError struct {
	Status int   // the HTTP status to answer with
	Err    error // why
}

// Error implements error.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("phx: connection refused (%d): %v", e.Status, e.Err)
}

// Unwrap returns Err.
func (e *RefusedError) Unwrap() error { return e.Err }

// StatusCode returns Status: a Connect hook that returns a RefusedError
// refuses the connection with that HTTP status.
func (e *RefusedError) StatusCode() int { return e.Status }

// Errors a channel's Terminate receives as its reason, and that methods
// return once a channel or connection has ended.
var (
	// ErrLeft: the client left the channel (phx_leave).
	ErrLeft = errors.New("phx: channel left")
	// ErrClosed: the connection closed (client went away, idle timeout,
	// Disconnect, or a slow or misbehaving client was dropped).
	ErrClosed = errors.New("phx: connection closed")
	// ErrDuplicateJoin: the client joined the same topic again on the same
	// connection; the earlier channel is closed.
	ErrDuplicateJoin = errors.New("phx: duplicate join")
	// ErrStopped: the channel called [Socket.Stop] with a nil error.
	ErrStopped = errors.New("phx: channel stopped")
	// ErrJoinTimeout: Join returned after Options.JoinTimeout, when the
	// client had already been told the join failed.
	ErrJoinTimeout = errors.New("phx: join timed out")
	// ErrChannelOverloaded: the channel fell more than
	// Options.MaxChannelQueue events behind.
	ErrChannelOverloaded = errors.New("phx: channel queue overflow")
	// ErrChannelClosed is returned by [Socket] methods after the channel
	// has ended.
	ErrChannelClosed = errors.New("phx: channel closed")
)

// Errors returned by [Presence.Track], [Presence.Update], [Presence.Untrack]
// and their *Topic forms.
var (
	ErrAlreadyTracked = errors.New("phx: presence already tracked for this channel, topic and key")
	ErrNotTracked     = errors.New("phx: presence not tracked for this channel, topic and key")
)

// ErrServerClosed means the server is shutting down: it is the reason
// Terminate receives for every channel during [Server.Shutdown], and the
// error returned for work refused once Shutdown has begun (as
// http.ErrServerClosed).
var ErrServerClosed = errors.New("phx: server shutting down")

// ErrPubSubClosed is returned by a PubSub that has been closed.
var ErrPubSubClosed = errors.New("phx: pubsub closed")

// ErrBinaryPayload is wrapped by [Payload.Decode] when the payload holds raw
// bytes from a binary frame rather than JSON.
var ErrBinaryPayload = errors.New("phx: binary payload")
