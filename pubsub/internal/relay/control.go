package relay

import (
	"encoding/binary"
	"fmt"
)

// The control messages, on controlTopic, keep the nodes' streams whole
// across outages. Every node numbers its broadcasts (1, 2, 3… per
// incarnation) and keeps the recent ones; every node remembers, per
// other node, the last number it delivered.
//
//	up    a node (re)subscribed: its payload is the next number it will
//	      send and, for each other node it knows, the last number it got
//	      from it. Each other node answers with a here addressed to it and
//	      sends its stream again from the number after that one (or from
//	      its oldest kept broadcast), so what the node missed while it was
//	      not subscribed arrives, in order, once; the others drop copies.
//	here  the answer: to whom, and the number the stream goes on from.
//	      Until it gets that answer from a node, a node that
//	      re-subscribed drops that node's broadcasts (they come again).
//	tick  every second while a node sends: the next number it will send,
//	      so that the others know everything before it has passed (a
//	      node resending after an outage then starts from there).
//	bye   the node closed: forget it.
//
// Payloads, unsigned varints:
//
//	up:   next, count, then count times: len(node), node, incarnation, last
//	here: len(to), to, from
//	tick: next

// mark is what an up says of one node: the last number delivered from it.
type mark struct {
	node string
	inc  uint64
	last uint64
}

func appendUp(dst []byte, next uint64, marks []mark) []byte {
	dst = binary.AppendUvarint(dst, next)
	dst = binary.AppendUvarint(dst, uint64(len(marks)))
	for _, m := range marks {
		dst = binary.AppendUvarint(dst, uint64(len(m.node)))
		dst = append(dst, m.node...)
		dst = binary.AppendUvarint(dst, m.inc)
		dst = binary.AppendUvarint(dst, m.last)
	}
	return dst
}

func appendHere(dst []byte, to string, from uint64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(to)))
	dst = append(dst, to...)
	return binary.AppendUvarint(dst, from)
}

// reader decodes a control payload.
type reader struct {
	b   []byte
	err error
}

func (r *reader) num() uint64 {
	if r.err != nil {
		return 0
	}
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.err = fmt.Errorf("%w: bad control payload", ErrMalformed)
		return 0
	}
	r.b = r.b[k:]
	return n
}

func (r *reader) str() string {
	n := r.num()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: bad control payload", ErrMalformed)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func decodeUp(p []byte) (next uint64, marks []mark, err error) {
	r := &reader{b: p}
	next = r.num()
	n := r.num()
	for i := uint64(0); i < n && r.err == nil; i++ {
		m := mark{node: r.str()}
		m.inc = r.num()
		m.last = r.num()
		marks = append(marks, m)
	}
	return next, marks, r.err
}

func decodeHere(p []byte) (to string, from uint64, err error) {
	r := &reader{b: p}
	to = r.str()
	from = r.num()
	return to, from, r.err
}
