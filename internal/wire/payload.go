package wire

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// emptyObject is the JSON text of an empty payload. It is shared by every
// empty Payload: nothing may modify it.
var emptyObject = []byte("{}")

// EmptyObject returns the shared JSON text {}. Callers must not modify it.
func EmptyObject() []byte { return emptyObject }

// Payload is the body of a message: JSON text, or raw bytes from or for a
// binary frame. Its fields match the public phx.Payload, so the two convert
// into each other for free.
type Payload struct {
	Data   []byte // JSON text; or the raw bytes when Binary is true
	Binary bool
}

// JSON returns the JSON text to write for a non-binary payload: Data, or {}
// when it is empty.
func (p Payload) JSON() []byte {
	if len(p.Data) == 0 {
		return emptyObject
	}
	return p.Data
}

// CheckObject returns nil if data is exactly one JSON object (surrounding
// whitespace allowed) in valid UTF-8, and an error wrapping
// [ErrInvalidPayload] saying what it is otherwise.
func CheckObject(data []byte) error {
	s := scanner{data: data}
	s.skipWS()
	if s.peek() != '{' {
		return fmt.Errorf("%w, got %s", ErrInvalidPayload, JSONKind(data, s.pos))
	}
	if !json.Valid(data) {
		return fmt.Errorf("%w, got invalid JSON", ErrInvalidPayload)
	}
	if !utf8.Valid(data) {
		return fmt.Errorf("%w, got invalid UTF-8", ErrInvalidPayload)
	}
	return nil
}
