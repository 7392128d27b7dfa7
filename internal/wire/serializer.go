package wire

import (
	"fmt"
)

// Serializer is one wire format. Implementations are stateless and safe for
// concurrent use. The encode methods return a new slice owned by the caller;
// a frame is binary exactly when the payload given to it is.
type Serializer interface {
	// Vsn is the protocol version this serializer speaks: "1.0.0" or "2.0.0".
	Vsn() string
	// Format is the serializer's fixed index, for per-format caches.
	Format() Format
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
// index by caches of encoded frames.
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

// Negotiate picks the serializer for the `vsn` query value as Phoenix
// does: "" (missing) is V1; a version matching ~> 1.0.0 (1.0.x) is V1; one
// matching ~> 2.0.0 (2.0.x) is V2. Anything else, including an unparsable
// version, 2.1.0 or 3.0.0, gives an error wrapping ErrUnsupportedVsn.
//
// Versions are parsed like Elixir's Version.parse: MAJOR.MINOR.PATCH without
// leading zeros, an optional -pre-release and +build. As in Elixir,
// pre-releases of x.0.0 (2.0.0-rc.1) do not match ~> x.0.0, later ones
// (2.0.1-rc.1) do, and build metadata is ignored.
//
// Note that Phoenix treats a present but empty vsn (?vsn=) as unparsable,
// while this function sees "" as missing: callers that care must tell the
// two apart themselves.
func Negotiate(vsn string) (Serializer, error) {
	if vsn == "" {
		vsn = "1.0.0"
	}
	for _, b := range builtins {
		ok, err := b.req.Match(vsn)
		if err != nil {
			return nil, err
		}
		if ok {
			return b.ser, nil
		}
	}
	return nil, fmt.Errorf("%w: %q matches neither ~> 1.0.0 nor ~> 2.0.0", ErrUnsupportedVsn, vsn)
}

// builtins maps Phoenix's default requirements to the built-in serializers.
var builtins = []struct {
	req Requirement
	ser Serializer
}{
	{mustRequirement("~> 1.0.0"), V1},
	{mustRequirement("~> 2.0.0"), V2},
}

func mustRequirement(s string) Requirement {
	r, err := ParseRequirement(s)
	if err != nil {
		panic(err)
	}
	return r
}
