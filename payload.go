package phx

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/phxgo/phx/internal/wire"
)

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
		data = wire.EmptyObject()
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
		return Payload{Data: wire.EmptyObject()}, nil
	case Binary:
		return Payload{Data: x, Binary: true}, nil
	case Payload:
		if x.Binary {
			return x, nil
		}
		if len(x.Data) == 0 {
			return Payload{Data: wire.EmptyObject()}, nil
		}
		if err := wire.CheckObject(x.Data); err != nil {
			return Payload{}, err
		}
		return x, nil
	case json.RawMessage:
		if err := wire.CheckObject(x); err != nil {
			return Payload{}, err
		}
		return Payload{Data: x}, nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return Payload{}, fmt.Errorf("phx: failed to encode payload: %w", err)
	}
	if len(data) == 0 || data[0] != '{' {
		return Payload{}, fmt.Errorf("%w, got %s from %T", ErrInvalidPayload, wire.JSONKind(data, 0), v)
	}
	return Payload{Data: data}, nil
}
