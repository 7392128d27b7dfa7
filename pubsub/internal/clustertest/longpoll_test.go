package clustertest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// memBroker stands for a broker with one MemoryPubSub: the nodes of the
// scenario are Servers of this process. It has no server to stop.
type memBroker struct{ ps *phx.MemoryPubSub }

// memAdapter is one node's connection to a memBroker; Close cuts the node
// off, as a crash looks to the others.
type memAdapter struct {
	ps *phx.MemoryPubSub

	mu     sync.Mutex
	closed bool
	subs   map[phx.Subscriber]*memSub
}

type memSub struct {
	a *memAdapter
	s phx.Subscriber
}

func (s *memSub) Deliver(b *phx.Broadcast) {
	s.a.mu.Lock()
	closed := s.a.closed
	s.a.mu.Unlock()
	if !closed {
		s.s.Deliver(b)
	}
}

func (a *memAdapter) sub(s phx.Subscriber) *memSub {
	if s == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.subs[s]
	if w == nil {
		w = &memSub{a: a, s: s}
		a.subs[s] = w
	}
	return w
}

func (a *memAdapter) isClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

func (a *memAdapter) Subscribe(topic string, s phx.Subscriber) error {
	if a.isClosed() {
		return phx.ErrPubSubClosed
	}
	return a.ps.Subscribe(topic, a.sub(s))
}

func (a *memAdapter) Unsubscribe(topic string, s phx.Subscriber) error {
	return a.ps.Unsubscribe(topic, a.sub(s))
}

func (a *memAdapter) Broadcast(ctx context.Context, b *phx.Broadcast, from phx.Subscriber) error {
	if a.isClosed() {
		return phx.ErrPubSubClosed
	}
	var f phx.Subscriber
	if from != nil {
		f = a.sub(from)
	}
	return a.ps.Broadcast(ctx, b, f)
}

func (a *memAdapter) LocalBroadcast(b *phx.Broadcast, from phx.Subscriber) error {
	var f phx.Subscriber
	if from != nil {
		f = a.sub(from)
	}
	return a.ps.LocalBroadcast(b, f)
}

func (a *memAdapter) Close() error {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	return nil
}

func (a *memAdapter) Counters() Stats { return Stats{Connected: !a.isClosed()} }

var errNoServer = errors.New("the memory broker has no server")

func (br *memBroker) Dial(t testing.TB, id string, onGap func(start, end time.Time)) Adapter {
	return &memAdapter{ps: br.ps, subs: make(map[phx.Subscriber]*memSub)}
}

func (br *memBroker) Stop(t testing.TB)  { t.Fatal(errNoServer) }
func (br *memBroker) Start(t testing.TB) { t.Fatal(errNoServer) }
func (br *memBroker) Inject(t testing.TB, a Adapter, topic string, msg []byte) {
	t.Fatal(errNoServer)
}

// The long-poll scenario on nodes of one process sharing a MemoryPubSub
// (the NATS and Redis adapters run it on real brokers).
func TestLongPollMemory(t *testing.T) {
	RunLongPoll(t, &memBroker{ps: phx.NewMemoryPubSub()})
}
