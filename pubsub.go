package phx

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/phxgo/phx/internal/wire"
)

// PubSub delivers broadcasts to the subscribers of a topic. The default,
// [NewMemoryPubSub], reaches the subscribers of one process; adapters built on
// a distributed broker reach every node, delivering a broadcast once to each
// node and fanning it out there.
//
// Implementations must be safe for concurrent use, must never block a
// publisher on a slow subscriber, and must call Deliver without holding locks
// that Subscribe or Unsubscribe take.
type PubSub interface {
	// Subscribe adds s to the subscribers of topic. Subscribing the same s to
	// the same topic twice has no further effect. s must be comparable (a
	// pointer, typically), because it is also its own identity.
	Subscribe(topic string, s Subscriber) error
	// Unsubscribe removes s from the subscribers of topic; unknown pairs are
	// ignored.
	Unsubscribe(topic string, s Subscriber) error
	// Broadcast delivers b to every subscriber of b.Topic on every node,
	// except from (nil excludes nobody). ctx bounds the time spent handing the
	// message to a remote broker; local delivery never blocks.
	Broadcast(ctx context.Context, b *Broadcast, from Subscriber) error
	// LocalBroadcast delivers b to the subscribers of b.Topic on this node
	// only, except from.
	LocalBroadcast(b *Broadcast, from Subscriber) error
}

// Subscriber receives broadcasts. Deliver runs on the publisher's goroutine
// (or the adapter's receive loop): it must return quickly and never block;
// hand work to another goroutine if it needs to.
type Subscriber interface {
	Deliver(b *Broadcast)
}

// NewSubscriber returns a Subscriber that calls f for every broadcast. Each
// call returns a distinct subscriber. A panic in f is recovered and logged
// with slog.Default, so it cannot take down the publisher.
func NewSubscriber(f func(b *Broadcast)) Subscriber { return &funcSubscriber{f: f} }

type funcSubscriber struct{ f func(*Broadcast) }

func (s *funcSubscriber) Deliver(b *Broadcast) {
	defer func() {
		if v := recover(); v != nil {
			slog.Default().Error("phx: subscriber panicked", "topic", b.Topic, "event", b.Event,
				"panic", v, "stack", string(debug.Stack()))
		}
	}()
	s.f(b)
}

// Broadcast is one message published on a topic. Subscribers share the same
// value and must treat it as read-only.
//
// A Broadcast caches its encoded frame per wire format, so a broadcast to
// thousands of connections is serialized once per format and the same bytes
// are written to every connection (Phoenix's "fastlane"). Always pass it by
// pointer and create it with [NewBroadcast].
type Broadcast struct {
	Topic   string
	Event   string
	Payload Payload

	offset uint64 // its offset in the topic's history when recorded on this node, else 0

	frames [wire.NumFormats]encodedFrame // by wire.Format of the built-in serializers

	mu      sync.Mutex
	custom  []customFrame                    // encoded by other serializers
	value   any                              // the Go value NewBroadcast encoded, for OutPayload
	decoded map[reflect.Type]*decodedPayload // OutPayload's decodings, by type (guarded by mu)
}

// encodedFrame is the broadcast as one built-in serializer encodes it.
type encodedFrame struct {
	once  sync.Once
	frame Frame
	err   error
}

// customFrame is the broadcast as a registered serializer encodes it.
type customFrame struct {
	key   uint64
	frame Frame
	err   error
}

// NewBroadcast builds a broadcast, encoding payload as described for
// [Socket.Push]: a JSON object, a value that marshals to one, or [Binary].
func NewBroadcast(topic, event string, payload any) (*Broadcast, error) {
	p, err := toPayload(payload)
	if err != nil {
		return nil, err
	}
	return &Broadcast{Topic: topic, Event: event, Payload: p, value: payload}, nil
}

// frame returns the broadcast encoded for cd, computing it once per
// serializer: the built-in formats have a slot each, other serializers share
// a short list under a lock.
func (b *Broadcast) frame(cd codec) (Frame, error) {
	if cd.key < uint64(wire.NumFormats) {
		f := &b.frames[cd.key]
		f.once.Do(func() { f.frame, f.err = cd.ser.EncodeBroadcast(b.Topic, b.Event, b.Payload) })
		return f.frame, f.err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range b.custom {
		if f.key == cd.key {
			return f.frame, f.err
		}
	}
	f, err := cd.ser.EncodeBroadcast(b.Topic, b.Event, b.Payload)
	b.custom = append(b.custom, customFrame{key: cd.key, frame: f, err: err})
	return f, err
}

// MemoryPubSub is the in-process [PubSub]. Delivery walks a copy-on-write
// subscriber list without locks, so publishing never waits for subscribing.
type MemoryPubSub struct {
	mu     sync.Mutex
	topics map[string]*atomic.Pointer[[]Subscriber]
}

// NewMemoryPubSub returns an empty in-process PubSub.
func NewMemoryPubSub() *MemoryPubSub {
	return &MemoryPubSub{topics: make(map[string]*atomic.Pointer[[]Subscriber])}
}

var _ PubSub = (*MemoryPubSub)(nil)

// Subscribe implements [PubSub].
func (ps *MemoryPubSub) Subscribe(topic string, s Subscriber) error {
	if s == nil {
		return errors.New("phx: nil subscriber")
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.topics[topic]
	if p == nil {
		p = new(atomic.Pointer[[]Subscriber])
		ps.topics[topic] = p
	}
	var old []Subscriber
	if cur := p.Load(); cur != nil {
		old = *cur
	}
	for _, x := range old {
		if x == s {
			return nil
		}
	}
	next := make([]Subscriber, len(old), len(old)+1)
	copy(next, old)
	next = append(next, s)
	p.Store(&next)
	return nil
}

// Unsubscribe implements [PubSub].
func (ps *MemoryPubSub) Unsubscribe(topic string, s Subscriber) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.topics[topic]
	if p == nil {
		return nil
	}
	old := *p.Load()
	i := -1
	for j, x := range old {
		if x == s {
			i = j
			break
		}
	}
	if i < 0 {
		return nil
	}
	if len(old) == 1 {
		delete(ps.topics, topic)
		p.Store(&[]Subscriber{}) // in-flight loads see an empty list
		return nil
	}
	next := make([]Subscriber, 0, len(old)-1)
	next = append(next, old[:i]...)
	next = append(next, old[i+1:]...)
	p.Store(&next)
	return nil
}

// Broadcast implements [PubSub]. In one process it is LocalBroadcast.
func (ps *MemoryPubSub) Broadcast(_ context.Context, b *Broadcast, from Subscriber) error {
	return ps.LocalBroadcast(b, from)
}

// LocalBroadcast implements [PubSub].
func (ps *MemoryPubSub) LocalBroadcast(b *Broadcast, from Subscriber) error {
	ps.mu.Lock()
	p := ps.topics[b.Topic]
	ps.mu.Unlock()
	if p == nil {
		return nil
	}
	for _, s := range *p.Load() {
		if s != from {
			s.Deliver(b)
		}
	}
	return nil
}

// SubscriberCount reports how many subscribers topic has on this node.
func (ps *MemoryPubSub) SubscriberCount(topic string) int {
	ps.mu.Lock()
	p := ps.topics[topic]
	ps.mu.Unlock()
	if p == nil {
		return 0
	}
	return len(*p.Load())
}
