// Package wire is the Phoenix Channels wire protocol: messages and refs, the
// V1 (JSON object) and V2 (JSON array and binary) serializers, version
// requirements, long-poll bodies and the authToken subprotocol, and the
// client half of the frames (EncodeClientV2, DecodeServerV2 and their V1
// forms), as phoenix.js speaks it.
//
// The server runtime and its transports encode and decode only through this
// package, and the raw test clients (internal/clienttest) through its client
// half. docs/protocol.md describes the same protocol in prose (§3: frames).
//
// Decoding is done by a small strict scanner, not by encoding/json, because
// encoding/json matches object keys case-insensitively, keeps the last of
// duplicate keys, replaces invalid UTF-8 silently and would have to build the
// payload as a tree to find its end. A payload is validated and kept as the
// raw bytes the client sent; it is never decoded into a Go value here.
package wire

import "errors"

// Limits applied to every incoming message (docs/protocol.md §3.6 and §9).
const (
	// MaxFieldLen is the largest topic, event, join_ref or ref accepted, in
	// bytes: the decoded length for strings, the token length for numbers.
	// It is also the binary-frame limit (u8 length fields).
	MaxFieldLen = 255
	// MaxPayloadDepth is the deepest nesting of arrays and objects accepted
	// in a payload ({} is depth 1).
	MaxPayloadDepth = 64
)

// Binary frame kinds: the first byte of a V2 binary frame (docs/protocol.md §3.4).
const (
	KindPush      = 0 // client → server and server → client push
	KindReply     = 1 // server → client reply
	KindBroadcast = 2 // server → client broadcast
)

// ErrMalformed is wrapped by every error returned for a frame that cannot be
// decoded, and by encoders for a message that cannot be framed (an invalid
// [Ref], or metadata longer than 255 bytes in a binary frame).
var ErrMalformed = errors.New("phx: malformed message")

// ErrInvalidPayload is wrapped by the error for an outgoing payload that is
// not a JSON object. Phoenix requires pushes, broadcasts and reply responses
// to be maps.
var ErrInvalidPayload = errors.New("phx: payload must be a JSON object")

// ErrBinaryUnsupported is returned when a binary payload is given to the V1
// (JSON object) serializer, which has no binary frames.
var ErrBinaryUnsupported = errors.New("phx: serializer cannot send binary payloads")

// ErrUnsupportedVsn is wrapped by the error for a `vsn` query value that
// selects no serializer.
var ErrUnsupportedVsn = errors.New("phx: unsupported protocol version")
