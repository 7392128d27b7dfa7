package phx

import (
	"fmt"
	"sync/atomic"

	"github.com/phxgo/phx/internal/wire"
)

// A Serializer is one wire format: it decodes the frames a client sends and
// encodes what the server sends back, as Phoenix's Phoenix.Socket.Serializer
// behaviour does. The server picks one per connection from the client's
// `vsn` query parameter, through [Options.Serializers].
//
// The built-in formats are [V1JSONSerializer] (JSON objects, vsn 1.0.x) and
// [V2JSONSerializer] (JSON arrays and binary frames, vsn 2.0.x). To extend a
// format, for example with a binary frame kind of your own, embed a built-in
// one and override Decode; see the example of [Options.Serializers].
//
// Implementations must be safe for concurrent use. Every method returns new
// memory or memory the caller may keep: a decoded [Message] may share memory
// with the frame, which the server does not reuse while the message is in
// use; an encoded [Frame] may be written to many connections and is never
// modified afterwards.
type Serializer interface {
	// Decode parses one frame from the client (a text frame when binary is
	// false). An error should wrap [ErrMalformed]; the connection is closed
	// with 1007 either way.
	Decode(data []byte, binary bool) (Message, error)

	// EncodeMessage encodes a message to one channel: a push (ref nil), or
	// phx_close and phx_error, which carry the join_ref as their ref.
	EncodeMessage(joinRef, ref Ref, topic, event string, payload Payload) (Frame, error)

	// EncodeReply encodes the phx_reply to the client message with ref:
	// {"status": status, "response": response}.
	EncodeReply(joinRef, ref Ref, topic, status string, response Payload) (Frame, error)

	// EncodeBroadcast encodes a broadcast, which carries no refs. The server
	// encodes a broadcast once per serializer and writes the same bytes to
	// every subscriber using it.
	EncodeBroadcast(topic, event string, payload Payload) (Frame, error)
}

// A Frame is one encoded message, as a transport writes it: a text frame,
// or a binary one when Binary is true. Data may be shared by many
// connections (a broadcast is encoded once) and is never modified.
type Frame struct {
	Data   []byte
	Binary bool

	// rest: the frame was queued in pieces (see conn.pushShared), Data
	// is only its head. Transports outside the package never see one:
	// TakeFrames hands them the frame whole. A pointer, so that a Frame,
	// which every queue holds arrays of, stays small.
	rest *framePieces
}

// framePieces is what follows a frame's head: bytes it shares with other
// connections' frames, then its tail.
type framePieces struct{ shared, tail []byte }

// size is the frame's length, all its pieces.
func (f *Frame) size() int {
	if f.rest == nil {
		return len(f.Data)
	}
	return len(f.Data) + len(f.rest.shared) + len(f.rest.tail)
}

// whole returns f in one piece.
func (f Frame) whole() Frame {
	if f.rest == nil {
		return f
	}
	data := make([]byte, 0, f.size())
	data = append(append(append(data, f.Data...), f.rest.shared...), f.rest.tail...)
	return Frame{Data: data, Binary: f.Binary}
}

// Message is one decoded client message.
//
// JoinRef, Ref and Payload.Data may share memory with the frame they were
// decoded from.
type Message struct {
	JoinRef Ref
	Ref     Ref
	Topic   string
	Event   string
	Payload Payload
}

// Ref is a message reference exactly as the client sent it: the raw JSON
// token, such as `"3"` (with the quotes) or `12` for a JSON number. The zero
// value (nil) means null or absent.
//
// Refs are echoed back byte for byte, so a client that sent a number gets a
// number back: phoenix.js compares refs with ===.
type Ref []byte

// IsNull reports whether r means "no ref": nil, `null`, or the empty JSON
// string `""` (some clients send "" instead of null).
func (r Ref) IsNull() bool { return wire.Ref(r).IsNull() }

// String returns the text of the ref: `"3"` gives 3, `12` gives 12, and a
// null ref gives the empty string. It is the form written in binary frames.
func (r Ref) String() string { return wire.Ref(r).String() }

// Equal reports whether r and o are the same token byte for byte. All null
// forms (see [Ref.IsNull]) are equal to each other.
func (r Ref) Equal(o Ref) bool { return wire.Ref(r).Equal(wire.Ref(o)) }

// StringRef returns the ref a client sends as the JSON string s, such as
// `"3"` for 3: the form refs take when a serializer reads them from binary
// frames.
func StringRef(s string) Ref { return Ref(wire.StringRef(s)) }

// VersionedSerializer maps the protocol versions a client may ask for to a
// serializer, like one entry of Phoenix's `serializer:` socket option.
type VersionedSerializer struct {
	// Version is an Elixir-style requirement on the client's vsn:
	// "~> 2.0.0" (2.0.x) or "~> 2.0" (2.x).
	Version string
	// Serializer handles the connections whose vsn matches.
	Serializer Serializer
}

// DefaultSerializers returns the list used when [Options.Serializers] is
// nil, as Phoenix's default: V1 JSON for vsn ~> 1.0.0 (and clients that send
// no vsn), V2 JSON for vsn ~> 2.0.0.
func DefaultSerializers() []VersionedSerializer {
	return []VersionedSerializer{
		{Version: "~> 1.0.0", Serializer: V1JSONSerializer()},
		{Version: "~> 2.0.0", Serializer: V2JSONSerializer()},
	}
}

var (
	v1JSON = &builtinSerializer{w: wire.V1}
	v2JSON = &builtinSerializer{w: wire.V2}
)

// V1JSONSerializer returns the V1 format: each frame a JSON object
// {"topic","event","payload","ref","join_ref"}; no binary frames, so
// [Binary] payloads cannot be sent ([ErrBinaryUnsupported]).
func V1JSONSerializer() Serializer { return v1JSON }

// V2JSONSerializer returns the V2 format that phoenix.js speaks by default:
// text frames are JSON arrays [join_ref,ref,topic,event,payload], and
// [Binary] payloads travel in binary frames (kinds 0 push, 1 reply and 2
// broadcast; clients may send kind 0).
func V2JSONSerializer() Serializer { return v2JSON }

// builtinSerializer adapts a codec of internal/wire to [Serializer]. The
// conversions are free: the types have the same layout.
type builtinSerializer struct{ w wire.Serializer }

func (s *builtinSerializer) Decode(data []byte, binary bool) (Message, error) {
	m, err := s.w.Decode(data, binary)
	return Message{JoinRef: Ref(m.JoinRef), Ref: Ref(m.Ref), Topic: m.Topic, Event: m.Event, Payload: Payload(m.Payload)}, err
}

func (s *builtinSerializer) EncodeMessage(joinRef, ref Ref, topic, event string, payload Payload) (Frame, error) {
	data, err := s.w.EncodeMessage(wire.Ref(joinRef), wire.Ref(ref), topic, event, wire.Payload(payload))
	return Frame{Data: data, Binary: payload.Binary}, err
}

func (s *builtinSerializer) EncodeReply(joinRef, ref Ref, topic, status string, response Payload) (Frame, error) {
	data, err := s.w.EncodeReply(wire.Ref(joinRef), wire.Ref(ref), topic, status, wire.Payload(response))
	return Frame{Data: data, Binary: response.Binary}, err
}

func (s *builtinSerializer) EncodeBroadcast(topic, event string, payload Payload) (Frame, error) {
	data, err := s.w.EncodeBroadcast(topic, event, wire.Payload(payload))
	return Frame{Data: data, Binary: payload.Binary}, err
}

// codec is the serializer of one connection with its key in the encoded
// frame cache of a [Broadcast]: the built-in formats have fixed keys below
// wire.NumFormats, every other registered serializer a key of its own.
type codec struct {
	ser Serializer
	key uint64
}

// The codecs of the built-in serializers.
var (
	codecV1 = codec{ser: v1JSON, key: uint64(wire.FormatV1)}
	codecV2 = codec{ser: v2JSON, key: uint64(wire.FormatV2)}
)

// customCodecs numbers registered custom serializers across all servers, so
// that two of them never share a broadcast's cached frame; their keys start
// above the built-in formats'.
var customCodecs atomic.Uint64

// versionedCodec is one compiled entry of Options.Serializers.
type versionedCodec struct {
	req   wire.Requirement
	codec codec
}

// compileSerializers checks a serializer list and gives each entry its cache
// key. nil means [DefaultSerializers].
func compileSerializers(list []VersionedSerializer) ([]versionedCodec, error) {
	if list == nil {
		list = DefaultSerializers()
	}
	out := make([]versionedCodec, 0, len(list))
	for i, vs := range list {
		req, err := wire.ParseRequirement(vs.Version)
		if err != nil {
			return nil, fmt.Errorf("%w: Serializers[%d]: %w", ErrInvalidOptions, i, err)
		}
		if vs.Serializer == nil {
			return nil, fmt.Errorf("%w: Serializers[%d] (%s): nil Serializer", ErrInvalidOptions, i, vs.Version)
		}
		var c codec
		switch vs.Serializer {
		case v1JSON:
			c = codecV1
		case v2JSON:
			c = codecV2
		default:
			c = codec{ser: vs.Serializer, key: uint64(wire.NumFormats) + customCodecs.Add(1)}
		}
		out = append(out, versionedCodec{req: req, codec: c})
	}
	return out, nil
}

// negotiate picks the codec for a client's vsn query values, as Phoenix
// does: the last vsn wins; a missing vsn means 1.0.0; an empty or non-string
// one (vsn=, vsn[]=...) is refused; otherwise negotiateVsn. Errors wrap
// [ErrUnsupportedVsn].
func negotiate(list []versionedCodec, query map[string][]string) (codec, error) {
	vsn, err := wire.VsnFromQuery(query)
	if err != nil {
		return codec{}, err
	}
	return negotiateVsn(list, vsn)
}

// negotiateVsn picks the first entry whose requirement vsn matches.
func negotiateVsn(list []versionedCodec, vsn string) (codec, error) {
	v, err := wire.ParseVersion(vsn)
	if err != nil {
		return codec{}, err
	}
	for _, e := range list {
		if e.req.Match(v) {
			return e.codec, nil
		}
	}
	return codec{}, fmt.Errorf("%w: %q matches no configured serializer", ErrUnsupportedVsn, vsn)
}
