package wire

import (
	"encoding/json"
	"unicode/utf8"
)

// The client half of the protocol, as phoenix.js speaks it: encoding the
// frames a client sends and decoding the frames a server sends. The server
// never calls it; the raw test clients (internal/clienttest) and this
// package's round-trip tests do.
//
// Encoding shares the server's writers, since a client push and a server
// message have the same text layout. Decoding uses encoding/json, as
// phoenix.js uses JSON.parse, so it stays independent of the server's
// scanner.

// ServerMessage is one server frame as a client decodes it.
type ServerMessage struct {
	// JoinRef and Ref are JSON tokens, nil for null or absent. The refs of a
	// binary frame, which carries them as text, become JSON strings (an empty
	// one becomes nil).
	JoinRef Ref
	Ref     Ref
	Topic   string
	// Event is "phx_reply" for a reply, text or binary.
	Event string
	// Payload is the payload element of a text frame (raw JSON), or the
	// bytes after the header of a binary frame: for a binary reply, the
	// response.
	Payload Payload
	// Status and Response belong to a reply. For a text frame they are the
	// "status" and "response" members of the payload (left empty when it has
	// no string status); for a binary frame, the status field and the bytes
	// after the header.
	Status   string
	Response Payload
}

// EncodeClientV2 encodes m as the phoenix.js V2 serializer does: the text
// frame [join_ref,ref,topic,event,payload], or, when m.Payload.Binary, the
// binary push
//
//	0 | len(join_ref) | len(ref) | len(topic) | len(event) | join_ref | ref | topic | event | payload
//
// with the refs as their [Ref.String] text. The payload is written as it is
// ({} when empty). An invalid ref (see [CheckRef]) or a binary field longer
// than [MaxFieldLen] bytes gives an error wrapping [ErrMalformed].
func EncodeClientV2(m Message) ([]byte, error) {
	if err := CheckRef("join_ref", m.JoinRef); err != nil {
		return nil, err
	}
	if err := CheckRef("ref", m.Ref); err != nil {
		return nil, err
	}
	if m.Payload.Binary {
		return binaryFrame(KindPush, []binaryField{
			{"join_ref", m.JoinRef.String()}, {"ref", m.Ref.String()}, {"topic", m.Topic}, {"event", m.Event},
		}, m.Payload.Data)
	}
	return encodeV2Text(m.JoinRef, m.Ref, m.Topic, m.Event, m.Payload.JSON()), nil
}

// EncodeClientV1 encodes m as a V1 (vsn 1.0.0) client object
// {"topic":T,"event":E,"payload":P,"ref":R,"join_ref":J}, leaving join_ref
// out when m.JoinRef is nil. A binary payload gives [ErrBinaryUnsupported];
// an invalid ref an error wrapping [ErrMalformed].
func EncodeClientV1(m Message) ([]byte, error) {
	return encodeV1Message(m.JoinRef, m.Ref, m.Topic, m.Event, m.Payload)
}

// DecodeServerV2 decodes a server frame of the V2 protocol, as phoenix.js
// does: a text frame is the JSON array [join_ref,ref,topic,event,payload]; a
// binary frame is one of
//
//	push:      0 | len(join_ref) | len(topic) | len(event) | join_ref | topic | event | payload
//	reply:     1 | len(join_ref) | len(ref) | len(topic) | len(status) | join_ref | ref | topic | status | payload
//	broadcast: 2 | len(topic) | len(event) | topic | event | payload
//
// Every error wraps [ErrMalformed]. Payload.Data shares memory with data.
func DecodeServerV2(data []byte, binary bool) (ServerMessage, error) {
	if binary {
		return decodeServerBinary(data)
	}
	if !utf8.Valid(data) {
		return ServerMessage{}, malformed("server text frame is not valid UTF-8")
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(data, &arr); err != nil {
		return ServerMessage{}, malformed("server V2 frame is not a JSON array: %v", err)
	}
	if len(arr) != 5 {
		return ServerMessage{}, malformed("server V2 frame has %d elements, want 5", len(arr))
	}
	return serverMessage(arr[0], arr[1], arr[2], arr[3], arr[4])
}

// DecodeServerV1 decodes a server frame of the V1 protocol, the JSON object
// {"topic","event","payload","ref"} (and "join_ref" if present). Keys match
// exactly; of repeated keys the last counts, as with JSON.parse. Every error
// wraps [ErrMalformed].
func DecodeServerV1(data []byte) (ServerMessage, error) {
	if !utf8.Valid(data) {
		return ServerMessage{}, malformed("server text frame is not valid UTF-8")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		return ServerMessage{}, malformed("server V1 frame is not a JSON object (%v)", err)
	}
	return serverMessage(obj["join_ref"], obj["ref"], obj["topic"], obj["event"], obj["payload"])
}

// serverMessage checks and assembles the elements of a text frame.
func serverMessage(joinRef, ref, topic, event, payload json.RawMessage) (ServerMessage, error) {
	var m ServerMessage
	var err error
	if m.JoinRef, err = jsonRef("join_ref", joinRef); err != nil {
		return ServerMessage{}, err
	}
	if m.Ref, err = jsonRef("ref", ref); err != nil {
		return ServerMessage{}, err
	}
	if m.Topic, err = jsonString("topic", topic); err != nil {
		return ServerMessage{}, err
	}
	if m.Event, err = jsonString("event", event); err != nil {
		return ServerMessage{}, err
	}
	if payload == nil {
		return ServerMessage{}, malformed("server frame has no payload")
	}
	m.Payload = Payload{Data: payload}
	if m.Event == "phx_reply" {
		var body map[string]json.RawMessage
		if json.Unmarshal(payload, &body) == nil {
			if status, err := jsonString("status", body["status"]); err == nil {
				m.Status, m.Response = status, Payload{Data: body["response"]}
			}
		}
	}
	return m, nil
}

// jsonRef returns a ref element: nil for null or absent, else a JSON string
// or number token.
func jsonRef(name string, raw json.RawMessage) (Ref, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	if err := CheckRef(name, Ref(raw)); err != nil {
		return nil, err
	}
	return Ref(raw), nil
}

// jsonString decodes a string element; anything else (null included) is an
// error.
func jsonString(name string, raw json.RawMessage) (string, error) {
	if raw == nil {
		return "", malformed("server frame has no %s", name)
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", malformed("server frame %s must be a string, found %s", name, JSONKind(raw, 0))
	}
	return s, nil
}

// decodeServerBinary splits a server binary frame by its kind.
func decodeServerBinary(data []byte) (ServerMessage, error) {
	if len(data) == 0 {
		return ServerMessage{}, malformed("empty binary frame")
	}
	var n int // metadata fields after the kind
	switch data[0] {
	case KindPush:
		n = 3
	case KindReply:
		n = 4
	case KindBroadcast:
		n = 2
	default:
		return ServerMessage{}, malformed("server binary frame of unknown kind %d", data[0])
	}
	if len(data) < 1+n {
		return ServerMessage{}, malformed("binary frame header is %d bytes, want %d", len(data), 1+n)
	}
	var f [4]string
	off := 1 + n
	for i := range n {
		l := int(data[1+i])
		if off+l > len(data) {
			return ServerMessage{}, malformed("binary frame metadata field %d of %d bytes exceeds the frame", i, l)
		}
		f[i] = string(data[off : off+l])
		off += l
	}
	body := Payload{Data: data[off:len(data):len(data)], Binary: true}
	m := ServerMessage{Payload: body}
	switch data[0] {
	case KindPush:
		m.JoinRef, m.Topic, m.Event = textRef(f[0]), f[1], f[2]
	case KindReply:
		m.JoinRef, m.Ref, m.Topic, m.Event = textRef(f[0]), textRef(f[1]), f[2], "phx_reply"
		m.Status, m.Response = f[3], body
	case KindBroadcast:
		m.Topic, m.Event = f[0], f[1]
	}
	return m, nil
}

// textRef is the Ref for the text of a binary frame's ref field.
func textRef(s string) Ref {
	if s == "" {
		return nil
	}
	return StringRef(s)
}
