package wire

import "unicode/utf8"

// encodeBinary writes a server→client binary frame (docs/protocol.md §3.4):
//
//	push:      0 | len(join_ref) | len(topic) | len(event) | join_ref | topic | event | payload
//	reply:     1 | len(join_ref) | len(ref) | len(topic) | len(status) | join_ref | ref | topic | status | payload
//	broadcast: 2 | len(topic) | len(event) | topic | event | payload
//
// Refs are written as their [Ref.String] text; for a reply, event is the status.
func encodeBinary(kind byte, joinRef, ref Ref, topic, event string, payload []byte) ([]byte, error) {
	var fields [4]binaryField
	n := 0
	if kind != KindBroadcast {
		fields[n] = binaryField{"join_ref", joinRef.String()}
		n++
	}
	if kind == KindReply {
		fields[n] = binaryField{"ref", ref.String()}
		n++
	}
	fields[n] = binaryField{"topic", topic}
	n++
	fields[n] = binaryField{"event", event}
	if kind == KindReply {
		fields[n].name = "status"
	}
	n++
	return binaryFrame(kind, fields[:n], payload)
}

// binaryField is one metadata field of a binary frame: its name for errors
// and its text.
type binaryField struct{ name, value string }

// binaryFrame writes kind, one length byte per field, the fields and the
// payload. A field longer than [MaxFieldLen] is an error wrapping
// [ErrMalformed].
func binaryFrame(kind byte, fields []binaryField, payload []byte) ([]byte, error) {
	size := 1 + len(fields) + len(payload)
	for _, f := range fields {
		if len(f.value) > MaxFieldLen {
			return nil, malformed("binary frame %s is %d bytes, limit %d", f.name, len(f.value), MaxFieldLen)
		}
		size += len(f.value)
	}
	buf := make([]byte, 0, size)
	buf = append(buf, kind)
	for _, f := range fields {
		buf = append(buf, byte(len(f.value)))
	}
	for _, f := range fields {
		buf = append(buf, f.value...)
	}
	return append(buf, payload...), nil
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
	if data[0] != KindPush {
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
		refs = AppendQuoted(refs, joinRef)
		m.JoinRef = Ref(refs[:len(refs):len(refs)])
	}
	start := len(refs)
	refs = AppendQuoted(refs, ref)
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
