package phx

import "github.com/phxgo/phx/internal/wire"

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
	// selects no serializer; the connection is refused with 400 Bad Request.
	ErrUnsupportedVsn = wire.ErrUnsupportedVsn
)
