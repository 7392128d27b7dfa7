package clustertest

import (
	"context"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

// FrozenPair is two adapters on one broker, subscribed to topic "t": a's
// local deliveries are timed, b's payloads collected.
type FrozenPair struct {
	A, B   phx.PubSub
	local  chan time.Time
	remote chan string
}

// NewFrozenPair subscribes a and b to "t". Call it before freezing the
// broker.
func NewFrozenPair(t testing.TB, a, b phx.PubSub) *FrozenPair {
	t.Helper()
	p := &FrozenPair{A: a, B: b, local: make(chan time.Time, 100), remote: make(chan string, 100)}
	if err := a.Subscribe("t", phx.NewSubscriber(func(*phx.Broadcast) { p.local <- time.Now() })); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe("t", phx.NewSubscriber(func(m *phx.Broadcast) { p.remote <- string(m.Payload.Data) })); err != nil {
		t.Fatal(err)
	}
	return p
}

// SendWhileFrozen broadcasts 20 messages from A, one every 50 ms, with the
// broker frozen: each Broadcast must return, and reach A's own subscriber,
// within 50 ms.
func (p *FrozenPair) SendWhileFrozen(t testing.TB, broker string) {
	t.Helper()
	var worstCall, worstLocal time.Duration
	for i := range 20 {
		m, _ := phx.NewBroadcast("t", "e", map[string]int{"n": i})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		err := p.A.Broadcast(ctx, m, nil)
		took := time.Since(start)
		cancel()
		if err != nil {
			t.Fatalf("Broadcast %d while frozen: %v", i, err)
		}
		select {
		case at := <-p.local:
			worstLocal = max(worstLocal, at.Sub(start))
		case <-time.After(time.Second):
			t.Fatalf("broadcast %d not delivered locally within 1s", i)
		}
		worstCall = max(worstCall, took)
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%s frozen: slowest Broadcast %v, slowest local delivery %v (20 broadcasts over 1s)", broker, worstCall, worstLocal)
	if worstCall > 50*time.Millisecond || worstLocal > 50*time.Millisecond {
		t.Fatalf("Broadcast took up to %v, local delivery up to %v, want < 50ms", worstCall, worstLocal)
	}
}

// ExpectAllAtB waits (5 s) until B got the 20 broadcasts, none twice;
// stats describes A in the failure.
func (p *FrozenPair) ExpectAllAtB(t testing.TB, stats func() any) {
	t.Helper()
	seen := map[string]bool{}
	deadline := time.After(5 * time.Second)
	for len(seen) < 20 {
		select {
		case m := <-p.remote:
			if seen[m] {
				t.Fatalf("B got %s twice", m)
			}
			seen[m] = true
		case <-deadline:
			t.Fatalf("B got %d of 20 broadcasts after the thaw; A %+v", len(seen), stats())
		}
	}
}
