package phx_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/phxgo/phx"
)

func TestMemoryPubSub(t *testing.T) {
	t.Parallel()
	ps := phx.NewMemoryPubSub()
	var got [3]atomic.Int64
	subs := make([]phx.Subscriber, 3)
	for i := range subs {
		subs[i] = phx.NewSubscriber(func(b *phx.Broadcast) { got[i].Add(1) })
		if err := ps.Subscribe("t", subs[i]); err != nil {
			t.Fatal(err)
		}
	}
	// Subscribing twice is a no-op.
	if err := ps.Subscribe("t", subs[0]); err != nil {
		t.Fatal(err)
	}
	if n := ps.SubscriberCount("t"); n != 3 {
		t.Fatalf("SubscriberCount = %d, want 3", n)
	}
	b, err := phx.NewBroadcast("t", "e", map[string]int{"a": 1})
	if err != nil {
		t.Fatal(err)
	}
	ps.Broadcast(context.Background(), b, nil)
	ps.Broadcast(context.Background(), b, subs[1]) // from: excluded
	ps.LocalBroadcast(b, nil)
	if want := [3]int64{3, 2, 3}; got[0].Load() != want[0] || got[1].Load() != want[1] || got[2].Load() != want[2] {
		t.Fatalf("deliveries = %v %v %v, want %v", got[0].Load(), got[1].Load(), got[2].Load(), want)
	}
	ps.Unsubscribe("t", subs[0])
	ps.Unsubscribe("t", subs[0]) // unknown pair ignored
	ps.Unsubscribe("other", subs[1])
	ps.LocalBroadcast(b, nil)
	if got[0].Load() != 3 || got[1].Load() != 3 {
		t.Fatal("unsubscribed subscriber still receives, or others missed")
	}
	ps.Unsubscribe("t", subs[1])
	ps.Unsubscribe("t", subs[2])
	if n := ps.SubscriberCount("t"); n != 0 {
		t.Fatalf("SubscriberCount = %d after unsubscribing all", n)
	}
	if _, err := phx.NewBroadcast("t", "e", []int{1}); err == nil {
		t.Fatal("NewBroadcast accepted a non-object payload")
	}
}

// TestMemoryPubSubConcurrent runs subscribe, unsubscribe and broadcast at
// once under the race detector.
func TestMemoryPubSubConcurrent(t *testing.T) {
	t.Parallel()
	ps := phx.NewMemoryPubSub()
	b, _ := phx.NewBroadcast("t", "e", nil)
	var wg sync.WaitGroup
	var delivered atomic.Int64
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			s := phx.NewSubscriber(func(*phx.Broadcast) { delivered.Add(1) })
			for j := 0; j < 200; j++ {
				ps.Subscribe("t", s)
				ps.Unsubscribe("t", s)
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				ps.Broadcast(context.Background(), b, nil)
			}
		}()
	}
	wg.Wait()
	if n := ps.SubscriberCount("t"); n != 0 {
		t.Fatalf("SubscriberCount = %d", n)
	}
}

// loggingPubSub is a MemoryPubSub that records the logger NewServer gives it.
type loggingPubSub struct {
	*phx.MemoryPubSub
	got *slog.Logger
}

func (p *loggingPubSub) UseLogger(l *slog.Logger) { p.got = l }

func TestNewServerGivesThePubSubItsLogger(t *testing.T) {
	ps := &loggingPubSub{MemoryPubSub: phx.NewMemoryPubSub()}
	log := quietLogger()
	phx.NewServer(&phx.Options{PubSub: ps, Logger: log})
	if ps.got != log {
		t.Fatal("NewServer did not call UseLogger with Options.Logger")
	}
}

// ctxPubSub is a MemoryPubSub that records the context Broadcast gets.
type ctxPubSub struct {
	*phx.MemoryPubSub
	got context.Context
}

func (p *ctxPubSub) Broadcast(ctx context.Context, b *phx.Broadcast, from phx.Subscriber) error {
	p.got = ctx
	return p.MemoryPubSub.Broadcast(ctx, b, from)
}

func TestBroadcastContextReachesThePubSub(t *testing.T) {
	ps := &ctxPubSub{MemoryPubSub: phx.NewMemoryPubSub()}
	srv := phx.NewServer(&phx.Options{PubSub: ps, Logger: quietLogger()})
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "req")
	got := make(chan string, 1)
	ps.Subscribe("t", phx.NewSubscriber(func(b *phx.Broadcast) { got <- b.Event }))
	if err := srv.BroadcastContext(ctx, "t", "e", nil); err != nil {
		t.Fatal(err)
	}
	if ps.got.Value(key{}) != "req" || <-got != "e" {
		t.Fatal("BroadcastContext did not hand its context to the PubSub, or did not deliver")
	}
	if err := srv.DisconnectContext(ctx, "users_socket:1"); err != nil || ps.got.Value(key{}) != "req" {
		t.Fatalf("DisconnectContext: %v", err)
	}
}
