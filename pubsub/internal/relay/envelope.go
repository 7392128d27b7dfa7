package relay

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/phxgo/phx"
)

// Version is the envelope version this package writes.
const Version = 1

// flagBinary marks a binary payload (phx.Payload.Binary).
const flagBinary = 1 << 0

// Errors returned by DecodeEnvelope.
var (
	// ErrUnknownVersion is wrapped by the error for an envelope whose
	// version byte this node does not speak (a newer node, or garbage).
	ErrUnknownVersion = errors.New("unknown envelope version")
	// ErrMalformed is wrapped by the error for a truncated or otherwise
	// undecodable envelope.
	ErrMalformed = errors.New("malformed envelope")
)

// Envelope is one broadcast on the wire.
//
// Version 1 layout, all lengths unsigned varints (encoding/binary's
// Uvarint):
//
//	byte 0     version (1)
//	byte 1     flags: bit 0 = binary payload; other bits reserved (0, ignored)
//	uvarint n  len(node), then the node ID
//	uvarint n  len(topic), then the topic
//	uvarint n  len(event), then the event
//	rest       the payload: JSON text, or raw bytes when bit 0 is set
//
// A typical broadcast costs 5 bytes plus the node ID, topic and event over
// its payload.
type Envelope struct {
	Node    []byte // the origin's node ID; aliases the decoded message
	Topic   string
	Event   string
	Payload phx.Payload // Data aliases the decoded message
}

// AppendEnvelope appends the version-1 encoding of b, sent by node, to dst.
func AppendEnvelope(dst []byte, node string, b *phx.Broadcast) []byte {
	var flags byte
	if b.Payload.Binary {
		flags |= flagBinary
	}
	dst = append(dst, Version, flags)
	dst = binary.AppendUvarint(dst, uint64(len(node)))
	dst = append(dst, node...)
	dst = binary.AppendUvarint(dst, uint64(len(b.Topic)))
	dst = append(dst, b.Topic...)
	dst = binary.AppendUvarint(dst, uint64(len(b.Event)))
	dst = append(dst, b.Event...)
	return append(dst, b.Payload.Data...)
}

// DecodeEnvelope decodes msg. The returned Node and Payload.Data alias msg.
func DecodeEnvelope(msg []byte) (Envelope, error) {
	var e Envelope
	if len(msg) == 0 {
		return e, fmt.Errorf("%w: empty message", ErrMalformed)
	}
	if msg[0] != Version {
		return e, fmt.Errorf("%w %d", ErrUnknownVersion, msg[0])
	}
	if len(msg) < 2 {
		return e, fmt.Errorf("%w: no flags", ErrMalformed)
	}
	flags := msg[1]
	rest := msg[2:]
	var fields [3][]byte
	for i := range fields {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return e, fmt.Errorf("%w: bad length of field %d", ErrMalformed, i)
		}
		fields[i] = rest[k : k+int(n) : k+int(n)]
		rest = rest[k+int(n):]
	}
	e.Node = fields[0]
	e.Topic = string(fields[1])
	e.Event = string(fields[2])
	e.Payload = phx.Payload{Data: rest, Binary: flags&flagBinary != 0}
	return e, nil
}
