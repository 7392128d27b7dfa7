package wire

// Serializer is one wire format. Implementations are stateless and safe for
// concurrent use. The encode methods return a new slice owned by the caller;
// a frame is binary exactly when the payload given to it is.
type Serializer interface {
	// Decode parses one incoming frame (a text frame when binary is false).
	// Every error wraps ErrMalformed.
	Decode(data []byte, binary bool) (Message, error)
	// EncodeMessage encodes a server message that carries a ref, such as
	// phx_close and phx_error, which Phoenix sends as [join_ref,join_ref,topic,event,payload].
	// A binary payload gives a binary kind 0 frame, which has no ref field:
	// the ref is dropped, as Phoenix does.
	EncodeMessage(joinRef, ref Ref, topic, event string, payload Payload) ([]byte, error)
	// EncodeReply encodes a phx_reply with payload {status,response}:
	// V2 [join_ref,ref,topic,"phx_reply",{"status":status,"response":response}],
	// or binary kind 1.
	EncodeReply(joinRef, ref Ref, topic, status string, response Payload) ([]byte, error)
	// EncodeBroadcast encodes a broadcast: V2 [null,null,topic,event,payload],
	// or binary kind 2.
	EncodeBroadcast(topic, event string, payload Payload) ([]byte, error)
}

// Format is the fixed index of a built-in serializer, usable as an array
// index by caches of encoded frames (phx keys a Broadcast's cache by it).
type Format uint8

// The built-in formats.
const (
	FormatV1   Format = iota // JSON objects
	FormatV2                 // JSON arrays and binary frames
	NumFormats               // the number of built-in formats
)

// The built-in serializers.
var (
	V1 Serializer = v1Serializer{}
	V2 Serializer = v2Serializer{}
)
