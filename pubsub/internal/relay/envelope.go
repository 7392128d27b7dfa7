package relay

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/phxgo/phx"
)

// Version is the envelope version this package writes. DecodeEnvelope also
// reads version 1 (no incarnation, no sequence number).
const Version = 2

// Envelope flags.
const (
	flagBinary  = 1 << 0 // binary payload (phx.Payload.Binary)
	flagControl = 1 << 1 // a relay control message (Event names it), not a broadcast
)

// Errors returned by DecodeEnvelope.
var (
	// ErrUnknownVersion is wrapped by the error for an envelope whose
	// version byte this node does not speak (a newer node, or garbage).
	ErrUnknownVersion = errors.New("unknown envelope version")
	// ErrMalformed is wrapped by the error for a truncated or otherwise
	// undecodable envelope.
	ErrMalformed = errors.New("malformed envelope")
)

// Envelope is one message on the wire.
//
// Version 2 layout, all lengths and numbers unsigned varints
// (encoding/binary's Uvarint):
//
//	byte 0     version (2)
//	byte 1     flags: bit 0 = binary payload, bit 1 = control message;
//	           other bits reserved (0, ignored)
//	uvarint n  len(node), then the node ID
//	uvarint    incarnation: random, fresh each time the node starts
//	uvarint    sequence number: 1, 2, 3… per incarnation over all topics;
//	           0 for control messages
//	uvarint n  len(topic), then the topic
//	uvarint n  len(event), then the event
//	rest       the payload: JSON text, or raw bytes when bit 0 is set
//
// Version 1 is the same without the incarnation and the sequence number.
// A typical broadcast costs about 15 bytes plus the node ID, topic and
// event over its payload.
type Envelope struct {
	Node        []byte // the origin's node ID; aliases the decoded message
	Incarnation uint64 // 0 in version 1
	Seq         uint64 // 0 in version 1 and for control messages
	Control     bool
	Topic       string
	Event       string
	Payload     phx.Payload // Data aliases the decoded message
}

// AppendEnvelope appends the version-2 encoding of b, sent by node in its
// incarnation inc with sequence number seq, to dst.
func AppendEnvelope(dst []byte, node string, inc, seq uint64, b *phx.Broadcast) []byte {
	var flags byte
	if b.Payload.Binary {
		flags |= flagBinary
	}
	return appendEnvelope(dst, flags, node, inc, seq, b.Topic, b.Event, b.Payload.Data)
}

// appendControl appends a control message (event "up", "here" or "bye")
// with its payload.
func appendControl(dst []byte, node string, inc uint64, event string, payload []byte) []byte {
	return appendEnvelope(dst, flagControl, node, inc, 0, controlTopic, event, payload)
}

func appendEnvelope(dst []byte, flags byte, node string, inc, seq uint64, topic, event string, data []byte) []byte {
	dst = append(dst, Version, flags)
	dst = binary.AppendUvarint(dst, uint64(len(node)))
	dst = append(dst, node...)
	dst = binary.AppendUvarint(dst, inc)
	dst = binary.AppendUvarint(dst, seq)
	dst = binary.AppendUvarint(dst, uint64(len(topic)))
	dst = append(dst, topic...)
	dst = binary.AppendUvarint(dst, uint64(len(event)))
	dst = append(dst, event...)
	return append(dst, data...)
}

// DecodeEnvelope decodes msg, of version 1 or 2. The returned Node and
// Payload.Data alias msg.
func DecodeEnvelope(msg []byte) (Envelope, error) {
	var e Envelope
	if len(msg) == 0 {
		return e, fmt.Errorf("%w: empty message", ErrMalformed)
	}
	v := msg[0]
	if v != 1 && v != 2 {
		return e, fmt.Errorf("%w %d", ErrUnknownVersion, v)
	}
	if len(msg) < 2 {
		return e, fmt.Errorf("%w: no flags", ErrMalformed)
	}
	flags := msg[1]
	rest := msg[2:]
	field := func(i int) ([]byte, error) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, fmt.Errorf("%w: bad length of field %d", ErrMalformed, i)
		}
		f := rest[k : k+int(n) : k+int(n)]
		rest = rest[k+int(n):]
		return f, nil
	}
	number := func(what string) (uint64, error) {
		n, k := binary.Uvarint(rest)
		if k <= 0 {
			return 0, fmt.Errorf("%w: bad %s", ErrMalformed, what)
		}
		rest = rest[k:]
		return n, nil
	}
	node, err := field(0)
	if err != nil {
		return e, err
	}
	if v == 2 {
		if e.Incarnation, err = number("incarnation"); err != nil {
			return e, err
		}
		if e.Seq, err = number("sequence number"); err != nil {
			return e, err
		}
		e.Control = flags&flagControl != 0
	}
	topic, err := field(1)
	if err != nil {
		return e, err
	}
	event, err := field(2)
	if err != nil {
		return e, err
	}
	e.Node = node
	e.Topic = string(topic)
	e.Event = string(event)
	e.Payload = phx.Payload{Data: rest, Binary: flags&flagBinary != 0}
	return e, nil
}
