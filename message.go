package phx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// This file holds the logical message, its payload and refs, and the two
// wire formats (serializers) of docs/protocol.md §3:
//
//	V1 (vsn 1.0.x): JSON objects {"topic","event","payload","ref","join_ref"?}
//	V2 (vsn 2.0.x): JSON arrays [join_ref,ref,topic,event,payload] and binary frames
//
// Decoding is done by a small strict scanner, not by encoding/json, because
// encoding/json matches object keys case-insensitively, keeps the last of
// duplicate keys, replaces invalid UTF-8 silently and would have to build the
// payload as a tree to find its end. The payload is validated and kept as the
// raw bytes the client sent; it is never decoded into a Go value here.

// Limits applied to every incoming message (docs/protocol.md §3.6 and §9).
const (
	// maxFieldLen is the largest topic, event, join_ref or ref accepted, in
	// bytes: the decoded length for strings, the token length for numbers.
	// It is also the binary-frame limit (u8 length fields).
	maxFieldLen = 255
	// maxPayloadDepth is the deepest nesting of arrays and objects accepted
	// in a payload ({} is depth 1).
	maxPayloadDepth = 64
)

// Binary frame kinds (docs/protocol.md §3.4).
const (
	kindPush      = 0
	kindReply     = 1
	kindBroadcast = 2
)

// ErrMalformed is wrapped by every error returned for a frame that cannot be
// decoded, and by encoders for a message that cannot be framed (an invalid
// [Ref], or metadata longer than 255 bytes in a binary frame).
var ErrMalformed = errors.New("phx: malformed message")

// ErrInvalidPayload is wrapped by the error for an outgoing payload that is
// not a JSON object. Phoenix requires pushes, broadcasts and reply responses
// to be maps.
var ErrInvalidPayload = errors.New("phx: payload must be a JSON object")

// ErrBinaryPayload is wrapped by [Payload.Decode] when the payload holds raw
// bytes from a binary frame rather than JSON.
var ErrBinaryPayload = errors.New("phx: binary payload")

// ErrBinaryUnsupported is returned when a [Binary] payload is sent to a
// client speaking the V1 (JSON object) protocol, which has no binary frames.
var ErrBinaryUnsupported = errors.New("phx: serializer cannot send binary payloads")

// ErrUnsupportedVsn is wrapped by the error for a `vsn` query value that
// selects no serializer.
var ErrUnsupportedVsn = errors.New("phx: unsupported protocol version")

// emptyObject is the JSON text of an empty payload. It is shared by every
// Payload made from nil: nothing may modify it.
var emptyObject = []byte("{}")

// Payload is the body of a message: JSON text, or raw bytes from or for a
// binary frame.
//
// A Payload decoded from a client frame shares memory with that frame. The
// zero Payload is sent as the empty JSON object {}.
type Payload struct {
	Data   []byte // JSON text; or the raw bytes when Binary is true
	Binary bool
}

// Decode unmarshals a JSON payload into v with [encoding/json.Unmarshal]. For a
// binary payload it returns an error wrapping [ErrBinaryPayload]; read Data
// instead.
func (p Payload) Decode(v any) error {
	if p.Binary {
		return fmt.Errorf("phx: cannot decode a %d-byte binary payload as JSON: %w", len(p.Data), ErrBinaryPayload)
	}
	data := p.Data
	if len(data) == 0 {
		data = emptyObject
	}
	return json.Unmarshal(data, v)
}

// String returns the JSON text of the payload, or a short description such as
// "<binary 12 bytes>" for a binary payload.
func (p Payload) String() string {
	if p.Binary {
		return "<binary " + strconv.Itoa(len(p.Data)) + " bytes>"
	}
	if len(p.Data) == 0 {
		return "{}"
	}
	return string(p.Data)
}

// json returns the JSON text to write for a non-binary payload.
func (p Payload) json() []byte {
	if len(p.Data) == 0 {
		return emptyObject
	}
	return p.Data
}

// Binary is a payload of raw bytes. Pushing, broadcasting or replying with a
// Binary value sends a V2 binary frame; V1 clients cannot receive it
// ([ErrBinaryUnsupported]).
type Binary []byte

// toPayload converts an outgoing value to a Payload:
//
//   - nil: the empty object {};
//   - [Binary]: a binary payload sharing the slice (no copy);
//   - [Payload]: as is; a JSON one must hold a JSON object (a zero one means {});
//   - [json.RawMessage]: the bytes as given, which must be one JSON object;
//   - anything else: [json.Marshal], whose result must be a JSON object.
//
// A value that is not a JSON object gives an error wrapping
// [ErrInvalidPayload]. JSON given as bytes (Payload, RawMessage) is checked to
// be valid JSON and valid UTF-8, because it is copied verbatim into text
// frames.
func toPayload(v any) (Payload, error) {
	switch x := v.(type) {
	case nil:
		return Payload{Data: emptyObject}, nil
	case Binary:
		return Payload{Data: x, Binary: true}, nil
	case Payload:
		if x.Binary {
			return x, nil
		}
		if len(x.Data) == 0 {
			return Payload{Data: emptyObject}, nil
		}
		if err := checkObject(x.Data); err != nil {
			return Payload{}, err
		}
		return x, nil
	case json.RawMessage:
		if err := checkObject(x); err != nil {
			return Payload{}, err
		}
		return Payload{Data: x}, nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return Payload{}, fmt.Errorf("phx: failed to encode payload: %w", err)
	}
	if len(data) == 0 || data[0] != '{' {
		return Payload{}, fmt.Errorf("%w, got %s from %T", ErrInvalidPayload, jsonKind(data, 0), v)
	}
	return Payload{Data: data}, nil
}

// checkObject reports whether data is exactly one JSON object (surrounding
// whitespace allowed) in valid UTF-8.
func checkObject(data []byte) error {
	s := scanner{data: data}
	s.skipWS()
	if s.peek() != '{' {
		return fmt.Errorf("%w, got %s", ErrInvalidPayload, jsonKind(data, s.pos))
	}
	if !json.Valid(data) {
		return fmt.Errorf("%w, got invalid JSON", ErrInvalidPayload)
	}
	if !utf8.Valid(data) {
		return fmt.Errorf("%w, got invalid UTF-8", ErrInvalidPayload)
	}
	return nil
}

// Message is one decoded client message.
//
// JoinRef, Ref and Payload.Data share memory with the frame they were decoded
// from: the frame must not be modified or reused while the message is in use.
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
// string `""` (nshafer/phx sends "" instead of null).
func (r Ref) IsNull() bool {
	return len(r) == 0 || string(r) == "null" || string(r) == `""`
}

// String returns the text of the ref: `"3"` gives 3, `12` gives 12, and a
// null ref gives the empty string. It is the form written in binary frames.
func (r Ref) String() string {
	if r.IsNull() {
		return ""
	}
	if r[0] != '"' {
		return string(r)
	}
	if s, ok := unquote(r); ok {
		return s
	}
	return string(r) // not a valid JSON string: show it as is
}

// Equal reports whether r and o are the same token byte for byte. All null
// forms (see [Ref.IsNull]) are equal to each other.
func (r Ref) Equal(o Ref) bool {
	if r.IsNull() || o.IsNull() {
		return r.IsNull() && o.IsNull()
	}
	return bytes.Equal(r, o)
}

// stringRef returns the JSON string token for s, as used for the refs of
// binary frames (which carry refs as strings).
func stringRef(s string) Ref {
	return Ref(appendJSONString(make([]byte, 0, len(s)+2), s))
}

// checkRef returns an error if r is neither nil nor a single JSON string,
// number or null token, so that encoders never write invalid JSON.
func checkRef(field string, r Ref) error {
	if len(r) == 0 {
		return nil
	}
	s := scanner{data: r}
	ok := false
	switch c := r[0]; {
	case c == '"':
		_, err := s.scanString()
		ok = err == nil
	case c == '-' || isDigit(c):
		ok = s.scanNumber() == nil
	case c == 'n':
		ok = s.scanLiteral("null") == nil
	}
	if !ok || s.pos != len(r) || !utf8.Valid(r) {
		return malformed("%s %q is not a JSON string, number or null", field, []byte(r))
	}
	return nil
}

// malformed returns an error wrapping ErrMalformed that says what is wrong.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// ---------------------------------------------------------------------------
// Serializers

// serializer is one wire format. Implementations are stateless and safe for
// concurrent use. The encode methods return a new slice owned by the caller;
// a frame is binary exactly when the payload given to it is.
type serializer interface {
	// vsn is the protocol version this serializer speaks: "1.0.0" or "2.0.0".
	vsn() string
	// decode parses one incoming frame (a text frame when binary is false).
	// Every error wraps ErrMalformed.
	decode(data []byte, binary bool) (Message, error)
	// encodePush encodes a server push to one channel:
	// V2 [join_ref,null,topic,event,payload], or binary kind 0.
	// It is encodeMessage with a nil ref.
	encodePush(joinRef Ref, topic, event string, payload Payload) ([]byte, error)
	// encodeMessage encodes a server message that carries a ref, such as
	// phx_close and phx_error, which Phoenix sends as [join_ref,join_ref,topic,event,payload].
	// A binary payload gives a binary kind 0 frame, which has no ref field:
	// the ref is dropped, as Phoenix does.
	encodeMessage(joinRef, ref Ref, topic, event string, payload Payload) ([]byte, error)
	// encodeReply encodes a phx_reply with payload {status,response}:
	// V2 [join_ref,ref,topic,"phx_reply",{"status":status,"response":response}],
	// or binary kind 1.
	encodeReply(joinRef, ref Ref, topic, status string, response Payload) ([]byte, error)
	// encodeBroadcast encodes a broadcast: V2 [null,null,topic,event,payload],
	// or binary kind 2.
	encodeBroadcast(topic, event string, payload Payload) ([]byte, error)
}

var (
	serializerV1 serializer = v1Serializer{}
	serializerV2 serializer = v2Serializer{}
)

// serializerFor picks the serializer for the `vsn` query value as Phoenix
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
func serializerFor(vsn string) (serializer, error) {
	if vsn == "" {
		return serializerV1, nil
	}
	major, minor, patch, pre, ok := parseVersion(vsn)
	if !ok {
		return nil, fmt.Errorf("%w: %q is not a semantic version", ErrUnsupportedVsn, vsn)
	}
	if minor == "0" && (patch != "0" || pre == "") {
		switch major {
		case "1":
			return serializerV1, nil
		case "2":
			return serializerV2, nil
		}
	}
	return nil, fmt.Errorf("%w: %q matches neither ~> 1.0.0 nor ~> 2.0.0", ErrUnsupportedVsn, vsn)
}

// parseVersion splits a semantic version as Elixir's Version.parse does.
// Numbers are returned as text without leading zeros, so they compare as
// numbers when equal length; pre is the pre-release part or "".
func parseVersion(v string) (major, minor, patch, pre string, ok bool) {
	core, build, hasBuild := strings.Cut(v, "+")
	if hasBuild && !validIdentifiers(build, false) {
		return "", "", "", "", false
	}
	core, pre, hasPre := strings.Cut(core, "-")
	if hasPre && !validIdentifiers(pre, true) {
		return "", "", "", "", false
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return "", "", "", "", false
	}
	for _, p := range parts {
		if !isNumericIdentifier(p) {
			return "", "", "", "", false
		}
	}
	return parts[0], parts[1], parts[2], pre, true
}

// validIdentifiers checks dot-separated non-empty [0-9A-Za-z-] identifiers;
// for a pre-release, purely numeric identifiers must not have leading zeros.
func validIdentifiers(s string, pre bool) bool {
	for id := range strings.SplitSeq(s, ".") {
		if id == "" {
			return false
		}
		numeric := true
		for i := 0; i < len(id); i++ {
			c := id[i]
			switch {
			case isDigit(c):
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				numeric = false
			default:
				return false
			}
		}
		if pre && numeric && len(id) > 1 && id[0] == '0' {
			return false
		}
	}
	return true
}

// isNumericIdentifier reports whether s is a non-empty decimal number without
// a leading zero.
func isNumericIdentifier(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// v2Serializer is the V2 protocol: JSON arrays and binary frames.
type v2Serializer struct{}

func (v2Serializer) vsn() string { return "2.0.0" }

func (v2Serializer) decode(data []byte, binary bool) (Message, error) {
	if binary {
		return decodeV2Binary(data)
	}
	return decodeV2Text(data)
}

func (s v2Serializer) encodePush(joinRef Ref, topic, event string, payload Payload) ([]byte, error) {
	return s.encodeMessage(joinRef, nil, topic, event, payload)
}

func (v2Serializer) encodeMessage(joinRef, ref Ref, topic, event string, payload Payload) ([]byte, error) {
	if err := checkRef("join_ref", joinRef); err != nil {
		return nil, err
	}
	if payload.Binary {
		return encodeBinary(kindPush, joinRef, nil, topic, event, payload.Data)
	}
	if err := checkRef("ref", ref); err != nil {
		return nil, err
	}
	p := payload.json()
	buf := make([]byte, 0, 14+len(joinRef)+len(ref)+len(topic)+len(event)+len(p)+8)
	buf = append(buf, '[')
	buf = appendRef(buf, joinRef)
	buf = append(buf, ',')
	buf = appendRef(buf, ref)
	buf = append(buf, ',')
	buf = appendJSONString(buf, topic)
	buf = append(buf, ',')
	buf = appendJSONString(buf, event)
	buf = append(buf, ',')
	buf = append(buf, p...)
	buf = append(buf, ']')
	return buf, nil
}

func (v2Serializer) encodeReply(joinRef, ref Ref, topic, status string, response Payload) ([]byte, error) {
	if err := checkRef("join_ref", joinRef); err != nil {
		return nil, err
	}
	if err := checkRef("ref", ref); err != nil {
		return nil, err
	}
	if response.Binary {
		return encodeBinary(kindReply, joinRef, ref, topic, status, response.Data)
	}
	p := response.json()
	buf := make([]byte, 0, 51+len(joinRef)+len(ref)+len(topic)+len(status)+len(p)+8)
	buf = append(buf, '[')
	buf = appendRef(buf, joinRef)
	buf = append(buf, ',')
	buf = appendRef(buf, ref)
	buf = append(buf, ',')
	buf = appendJSONString(buf, topic)
	buf = append(buf, `,"phx_reply",{"status":`...)
	buf = appendJSONString(buf, status)
	buf = append(buf, `,"response":`...)
	buf = append(buf, p...)
	buf = append(buf, "}]"...)
	return buf, nil
}

func (v2Serializer) encodeBroadcast(topic, event string, payload Payload) ([]byte, error) {
	if payload.Binary {
		return encodeBinary(kindBroadcast, nil, nil, topic, event, payload.Data)
	}
	p := payload.json()
	buf := make([]byte, 0, 17+len(topic)+len(event)+len(p)+8)
	buf = append(buf, "[null,null,"...)
	buf = appendJSONString(buf, topic)
	buf = append(buf, ',')
	buf = appendJSONString(buf, event)
	buf = append(buf, ',')
	buf = append(buf, p...)
	buf = append(buf, ']')
	return buf, nil
}

// encodeBinary writes a server→client binary frame (docs/protocol.md §3.4):
//
//	push:      0 | len(join_ref) | len(topic) | len(event) | join_ref | topic | event | payload
//	reply:     1 | len(join_ref) | len(ref) | len(topic) | len(status) | join_ref | ref | topic | status | payload
//	broadcast: 2 | len(topic) | len(event) | topic | event | payload
//
// Refs are written as their [Ref.String] text; for a reply, event is the status.
func encodeBinary(kind byte, joinRef, ref Ref, topic, event string, payload []byte) ([]byte, error) {
	var fields [4]string
	var names [4]string
	n := 0
	if kind != kindBroadcast {
		fields[n], names[n] = joinRef.String(), "join_ref"
		n++
	}
	if kind == kindReply {
		fields[n], names[n] = ref.String(), "ref"
		n++
	}
	fields[n], names[n] = topic, "topic"
	n++
	fields[n], names[n] = event, "event"
	if kind == kindReply {
		names[n] = "status"
	}
	n++
	size := 1 + n + len(payload)
	for i, f := range fields[:n] {
		if len(f) > maxFieldLen {
			return nil, malformed("binary frame %s is %d bytes, limit %d", names[i], len(f), maxFieldLen)
		}
		size += len(f)
	}
	buf := make([]byte, 0, size)
	buf = append(buf, kind)
	for _, f := range fields[:n] {
		buf = append(buf, byte(len(f)))
	}
	for _, f := range fields[:n] {
		buf = append(buf, f...)
	}
	buf = append(buf, payload...)
	return buf, nil
}

// v1Serializer is the legacy V1 protocol: JSON objects, no binary frames.
type v1Serializer struct{}

func (v1Serializer) vsn() string { return "1.0.0" }

func (v1Serializer) decode(data []byte, binary bool) (Message, error) {
	if binary {
		return Message{}, malformed("binary frame on a V1 (vsn 1.0.0) connection")
	}
	return decodeV1Text(data)
}

func (v1Serializer) encodePush(_ Ref, topic, event string, payload Payload) ([]byte, error) {
	return encodeV1Message(nil, topic, event, payload)
}

func (v1Serializer) encodeMessage(_, ref Ref, topic, event string, payload Payload) ([]byte, error) {
	return encodeV1Message(ref, topic, event, payload)
}

func (v1Serializer) encodeBroadcast(topic, event string, payload Payload) ([]byte, error) {
	return encodeV1Message(nil, topic, event, payload)
}

// encodeV1Message writes {"topic":T,"event":E,"payload":P,"ref":REF}. V1
// frames carry no join_ref.
func encodeV1Message(ref Ref, topic, event string, payload Payload) ([]byte, error) {
	if payload.Binary {
		return nil, ErrBinaryUnsupported
	}
	if err := checkRef("ref", ref); err != nil {
		return nil, err
	}
	p := payload.json()
	buf := make([]byte, 0, 42+len(ref)+len(topic)+len(event)+len(p)+8)
	buf = append(buf, `{"topic":`...)
	buf = appendJSONString(buf, topic)
	buf = append(buf, `,"event":`...)
	buf = appendJSONString(buf, event)
	buf = append(buf, `,"payload":`...)
	buf = append(buf, p...)
	buf = append(buf, `,"ref":`...)
	buf = appendRef(buf, ref)
	buf = append(buf, '}')
	return buf, nil
}

// encodeReply writes {"topic":T,"event":"phx_reply","payload":{"status":S,"response":R},"ref":REF}.
// V1 frames carry no join_ref.
func (v1Serializer) encodeReply(_, ref Ref, topic, status string, response Payload) ([]byte, error) {
	if response.Binary {
		return nil, ErrBinaryUnsupported
	}
	if err := checkRef("ref", ref); err != nil {
		return nil, err
	}
	p := response.json()
	buf := make([]byte, 0, 80+len(ref)+len(topic)+len(status)+len(p)+8)
	buf = append(buf, `{"topic":`...)
	buf = appendJSONString(buf, topic)
	buf = append(buf, `,"event":"phx_reply","payload":{"status":`...)
	buf = appendJSONString(buf, status)
	buf = append(buf, `,"response":`...)
	buf = append(buf, p...)
	buf = append(buf, `},"ref":`...)
	buf = appendRef(buf, ref)
	buf = append(buf, '}')
	return buf, nil
}

// appendRef writes r byte for byte, or null for a nil ref. r must have
// passed checkRef.
func appendRef(dst []byte, r Ref) []byte {
	if len(r) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, r...)
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 is replaced by
// U+FFFD so the output is always valid JSON in valid UTF-8. Only ", \ and
// control characters are escaped (not <, > or &).
func appendJSONString(dst []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return appendQuoted(dst, s)
}

const hexDigits = "0123456789abcdef"

// appendQuoted appends s, which must be valid UTF-8, as a JSON string.
func appendQuoted[T ~string | ~[]byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// ---------------------------------------------------------------------------
// Decoding

// decodeV2Text decodes [join_ref, ref, topic, event, payload, ...extra].
func decodeV2Text(data []byte) (Message, error) {
	var m Message
	if !utf8.Valid(data) {
		return m, malformed("text frame is not valid UTF-8")
	}
	s := scanner{data: data}
	s.skipWS()
	if s.peek() != '[' {
		return m, malformed("V2 frame must be a JSON array, found %s", s.found())
	}
	s.pos++
	s.skipWS()
	n := 0
	var topic, event metaField
	if s.peek() == ']' {
		s.pos++
	} else {
		for {
			s.skipWS()
			var err error
			switch n {
			case 0:
				m.JoinRef, err = s.ref("join_ref")
			case 1:
				m.Ref, err = s.ref("ref")
			case 2:
				topic, err = s.metaString("topic")
			case 3:
				event, err = s.metaString("event")
			case 4:
				start := s.pos
				err = s.skipValue("payload", 0)
				m.Payload.Data = data[start:s.pos:s.pos]
			default:
				err = s.skipValue("extra array element", 0)
			}
			if err != nil {
				return Message{}, err
			}
			n++
			s.skipWS()
			if s.peek() == ']' {
				s.pos++
				break
			}
			if s.peek() != ',' {
				return Message{}, malformed("expected ',' or ']' after array element %d, found %s", n-1, s.found())
			}
			s.pos++
		}
	}
	if n < 5 {
		return Message{}, malformed("V2 frame has %d elements, want [join_ref,ref,topic,event,payload]", n)
	}
	s.skipWS()
	if s.pos != len(data) {
		return Message{}, malformed("trailing data after the V2 array at offset %d", s.pos)
	}
	m.Topic, m.Event = metaStrings(topic, event)
	return m, nil
}

// V1 object keys, as bits for duplicate and presence checks.
const (
	keyTopic = 1 << iota
	keyEvent
	keyPayload
	keyRef
	keyJoinRef
)

// decodeV1Text decodes {"topic","event","payload","ref","join_ref"?}. Keys
// are matched exactly (case-sensitive, after unescaping). A repeated known key
// is an error. Unknown keys are ignored, as Phoenix does, but their values
// must still be valid JSON within the depth limit. A missing join_ref leaves
// JoinRef nil; applying Phoenix's rule (a V1 join's ref is its join_ref) is
// up to the caller.
func decodeV1Text(data []byte) (Message, error) {
	var m Message
	if !utf8.Valid(data) {
		return m, malformed("text frame is not valid UTF-8")
	}
	s := scanner{data: data}
	s.skipWS()
	if s.peek() != '{' {
		return m, malformed("V1 frame must be a JSON object, found %s", s.found())
	}
	s.pos++
	s.skipWS()
	var seen int
	var topic, event metaField
	if s.peek() == '}' {
		s.pos++
	} else {
		for {
			s.skipWS()
			if s.peek() != '"' {
				return Message{}, malformed("expected an object key at offset %d, found %s", s.pos, s.found())
			}
			keyStart := s.pos
			escaped, err := s.scanString()
			if err != nil {
				return Message{}, err
			}
			keyEnd := s.pos
			key := data[keyStart+1 : keyEnd-1]
			var bit int
			if !escaped {
				bit = v1Key(key)
			} else if k, ok := unquote(data[keyStart:s.pos]); ok {
				bit = v1Key([]byte(k))
			} else {
				return Message{}, malformed("object key at offset %d is not valid Unicode", keyStart)
			}
			s.skipWS()
			if s.peek() != ':' {
				return Message{}, malformed("expected ':' after object key at offset %d, found %s", keyStart, s.found())
			}
			s.pos++
			s.skipWS()
			if seen&bit != 0 {
				return Message{}, malformed("duplicate key %s at offset %d", data[keyStart:keyEnd], keyStart)
			}
			seen |= bit
			switch bit {
			case keyTopic:
				topic, err = s.metaString("topic")
			case keyEvent:
				event, err = s.metaString("event")
			case keyPayload:
				start := s.pos
				err = s.skipValue("payload", 0)
				m.Payload.Data = data[start:s.pos:s.pos]
			case keyRef:
				m.Ref, err = s.ref("ref")
			case keyJoinRef:
				m.JoinRef, err = s.ref("join_ref")
			default:
				err = s.skipValue("value of unknown key", 0)
			}
			if err != nil {
				return Message{}, err
			}
			s.skipWS()
			if s.peek() == '}' {
				s.pos++
				break
			}
			if s.peek() != ',' {
				return Message{}, malformed("expected ',' or '}' in object, found %s", s.found())
			}
			s.pos++
		}
	}
	s.skipWS()
	if s.pos != len(data) {
		return Message{}, malformed("trailing data after the V1 object at offset %d", s.pos)
	}
	for _, k := range [...]struct {
		bit  int
		name string
	}{{keyTopic, "topic"}, {keyEvent, "event"}, {keyPayload, "payload"}, {keyRef, "ref"}} {
		if seen&k.bit == 0 {
			return Message{}, malformed("V1 message has no %q key", k.name)
		}
	}
	m.Topic, m.Event = metaStrings(topic, event)
	return m, nil
}

// v1Key returns the bit of a known V1 key, or 0.
func v1Key(k []byte) int {
	switch string(k) {
	case "topic":
		return keyTopic
	case "event":
		return keyEvent
	case "payload":
		return keyPayload
	case "ref":
		return keyRef
	case "join_ref":
		return keyJoinRef
	}
	return 0
}

// decodeV2Binary decodes a client binary frame (kind 0 only):
//
//	0 | len(join_ref) | len(ref) | len(topic) | len(event) | join_ref | ref | topic | event | payload
//
// The refs become JSON string tokens (an empty join_ref becomes nil). The
// payload is binary and its Data shares memory with data.
func decodeV2Binary(data []byte) (Message, error) {
	if len(data) == 0 {
		return Message{}, malformed("empty binary frame")
	}
	if data[0] != kindPush {
		return Message{}, malformed("binary frame kind %d, clients may only send kind 0 (push)", data[0])
	}
	if len(data) < 5 {
		return Message{}, malformed("binary frame header is %d bytes, want 5", len(data))
	}
	lj, lr, lt, le := int(data[1]), int(data[2]), int(data[3]), int(data[4])
	rest := data[5:]
	if lj+lr+lt+le > len(rest) {
		return Message{}, malformed("binary frame metadata lengths %d+%d+%d+%d exceed the %d bytes after the header",
			lj, lr, lt, le, len(rest))
	}
	joinRef := rest[:lj]
	ref := rest[lj : lj+lr]
	topic := rest[lj+lr : lj+lr+lt]
	event := rest[lj+lr+lt : lj+lr+lt+le]
	for _, f := range [...]struct {
		name string
		b    []byte
	}{{"join_ref", joinRef}, {"ref", ref}, {"topic", topic}, {"event", event}} {
		if !utf8.Valid(f.b) {
			return Message{}, malformed("binary frame %s is not valid UTF-8", f.name)
		}
	}
	// One allocation for both ref tokens.
	refs := make([]byte, 0, lj+lr+4)
	var m Message
	if lj > 0 {
		refs = appendQuoted(refs, joinRef)
		m.JoinRef = Ref(refs[:len(refs):len(refs)])
	}
	start := len(refs)
	refs = appendQuoted(refs, ref)
	m.Ref = Ref(refs[start:len(refs):len(refs)])
	m.Topic, m.Event = metaStrings(metaField{raw: topic}, metaField{raw: event})
	off := lj + lr + lt + le
	m.Payload = Payload{Data: rest[off:len(rest):len(rest)], Binary: true}
	return m, nil
}

// metaField is a scanned topic or event: either the decoded string (when it
// had escapes) or its raw bytes in the frame.
type metaField struct {
	raw     []byte
	str     string
	decoded bool
}

// metaStrings returns the topic and event as strings with at most one
// allocation: frequent values are interned, and otherwise both strings share
// one allocation.
func metaStrings(topic, event metaField) (string, string) {
	ts, tok := topic.str, topic.decoded
	if !tok {
		ts, tok = interned(topic.raw)
	}
	es, eok := event.str, event.decoded
	if !eok {
		es, eok = interned(event.raw)
	}
	switch {
	case tok && eok:
	case tok:
		es = string(event.raw)
	case eok:
		ts = string(topic.raw)
	default:
		both := string(topic.raw) + string(event.raw)
		ts, es = both[:len(topic.raw)], both[len(topic.raw):]
	}
	return ts, es
}

// interned returns string(b) without allocating for the most frequent topics
// and events.
func interned(b []byte) (string, bool) {
	switch string(b) {
	case "":
		return "", true
	case "phoenix":
		return "phoenix", true
	case "heartbeat":
		return "heartbeat", true
	case "phx_join":
		return "phx_join", true
	case "phx_leave":
		return "phx_leave", true
	}
	return "", false
}

// scanner is a strict JSON scanner over one frame. It validates syntax; the
// caller has already checked that the frame is valid UTF-8.
type scanner struct {
	data []byte
	pos  int
}

// peek returns the current byte, or 0 at the end.
func (s *scanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *scanner) skipWS() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// found describes what is at the current position, for error messages.
func (s *scanner) found() string {
	return jsonKind(s.data, s.pos)
}

// jsonKind names the kind of JSON value starting at data[pos].
func jsonKind(data []byte, pos int) string {
	if pos >= len(data) {
		return "end of input"
	}
	switch c := data[pos]; {
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '-' || isDigit(c):
		return "a number"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	default:
		r, _ := utf8.DecodeRune(data[pos:])
		return fmt.Sprintf("%q at offset %d", r, pos)
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// ref scans a join_ref or ref: a string, a number or null (nil).
func (s *scanner) ref(field string) (Ref, error) {
	start := s.pos
	switch c := s.peek(); {
	case c == '"':
		escaped, err := s.scanString()
		if err != nil {
			return nil, err
		}
		n := s.pos - start - 2
		if escaped {
			str, ok := unquote(s.data[start:s.pos])
			if !ok {
				return nil, malformed("%s at offset %d is not valid Unicode", field, start)
			}
			n = len(str)
		}
		if n > maxFieldLen {
			return nil, malformed("%s is %d bytes, limit %d", field, n, maxFieldLen)
		}
	case c == '-' || isDigit(c):
		if err := s.scanNumber(); err != nil {
			return nil, err
		}
		if n := s.pos - start; n > maxFieldLen {
			return nil, malformed("%s is %d bytes, limit %d", field, n, maxFieldLen)
		}
	case c == 'n':
		if err := s.scanLiteral("null"); err != nil {
			return nil, err
		}
		return nil, nil
	default:
		return nil, malformed("%s must be a string, a number or null, found %s", field, s.found())
	}
	return Ref(s.data[start:s.pos:s.pos]), nil
}

// metaString scans a topic or event: a JSON string of valid Unicode, at most
// maxFieldLen bytes once decoded.
func (s *scanner) metaString(field string) (metaField, error) {
	if s.peek() != '"' {
		return metaField{}, malformed("%s must be a string, found %s", field, s.found())
	}
	start := s.pos
	escaped, err := s.scanString()
	if err != nil {
		return metaField{}, err
	}
	f := metaField{raw: s.data[start+1 : s.pos-1]}
	n := len(f.raw)
	if escaped {
		var ok bool
		if f.str, ok = unquote(s.data[start:s.pos]); !ok {
			return metaField{}, malformed("%s at offset %d is not valid Unicode", field, start)
		}
		f.decoded, n = true, len(f.str)
	}
	if n > maxFieldLen {
		return metaField{}, malformed("%s is %d bytes, limit %d", field, n, maxFieldLen)
	}
	return f, nil
}

// scanString scans the string starting at s.pos (a '"') and reports whether
// it contains escapes. Control characters must be escaped.
func (s *scanner) scanString() (escaped bool, err error) {
	start := s.pos
	i := s.pos + 1
	for i < len(s.data) {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(s.data) {
				return false, malformed("unterminated string at offset %d", start)
			}
			switch s.data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s.data) || !isHex4(s.data[i+2:i+6]) {
					return false, malformed("invalid \\u escape at offset %d", i)
				}
				i += 6
			default:
				return false, malformed("invalid escape at offset %d", i)
			}
		case c < 0x20:
			return false, malformed("control character in string at offset %d", i)
		default:
			i++
		}
	}
	return false, malformed("unterminated string at offset %d", start)
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !isDigit(c) && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// scanNumber scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *scanner) scanNumber() error {
	start := s.pos
	i := s.pos
	d := s.data
	bad := func() error { return malformed("invalid number at offset %d", start) }
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && isDigit(d[i]):
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	default:
		return bad()
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			return bad()
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			return bad()
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	s.pos = i
	return nil
}

// scanLiteral scans true, false or null.
func (s *scanner) scanLiteral(lit string) error {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		return malformed("invalid literal at offset %d", s.pos)
	}
	s.pos += len(lit)
	return nil
}

// skipValue scans one JSON value of any kind. depth is the nesting depth of
// the containers around it, counted from the value being checked (what).
func (s *scanner) skipValue(what string, depth int) error {
	switch c := s.peek(); {
	case c == '"':
		_, err := s.scanString()
		return err
	case c == '-' || isDigit(c):
		return s.scanNumber()
	case c == 't':
		return s.scanLiteral("true")
	case c == 'f':
		return s.scanLiteral("false")
	case c == 'n':
		return s.scanLiteral("null")
	case c == '{' || c == '[':
		if depth >= maxPayloadDepth {
			return malformed("%s is nested deeper than %d levels", what, maxPayloadDepth)
		}
		return s.skipContainer(what, depth+1)
	default:
		return malformed("%s: expected a JSON value, found %s", what, s.found())
	}
}

// skipContainer scans an object or array whose opening byte is at s.pos.
func (s *scanner) skipContainer(what string, depth int) error {
	isObject := s.data[s.pos] == '{'
	end := byte(']')
	if isObject {
		end = '}'
	}
	s.pos++
	s.skipWS()
	if s.peek() == end {
		s.pos++
		return nil
	}
	for {
		s.skipWS()
		if isObject {
			if s.peek() != '"' {
				return malformed("%s: expected an object key at offset %d, found %s", what, s.pos, s.found())
			}
			if _, err := s.scanString(); err != nil {
				return err
			}
			s.skipWS()
			if s.peek() != ':' {
				return malformed("%s: expected ':' at offset %d, found %s", what, s.pos, s.found())
			}
			s.pos++
			s.skipWS()
		}
		if err := s.skipValue(what, depth); err != nil {
			return err
		}
		s.skipWS()
		switch s.peek() {
		case ',':
			s.pos++
		case end:
			s.pos++
			return nil
		default:
			return malformed("%s: expected ',' or %q at offset %d, found %s", what, end, s.pos, s.found())
		}
	}
}

// unquote decodes a JSON string token (with its quotes) that has passed
// scanString. It fails on escaped lone surrogates, which have no UTF-8 form.
func unquote(tok []byte) (string, bool) {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return "", false
	}
	b := tok[1 : len(tok)-1]
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b), utf8.Valid(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		c := b[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(b) {
			return "", false
		}
		switch b[i+1] {
		case '"', '\\', '/':
			out = append(out, b[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(b[i+2:])
			if !ok {
				return "", false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r >= 0xDC00 || i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
					return "", false
				}
				r2, ok := hex4(b[i+2:])
				if !ok {
					return "", false
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return "", false
				}
				i += 6
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return "", false
		}
		i += 2
	}
	if !utf8.Valid(out) {
		return "", false
	}
	return string(out), true
}

// hex4 decodes the four hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case isDigit(c):
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
