package redispubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/pubsub/internal/clustertest"
	"github.com/redis/go-redis/v9"
)

// historyNode dials a PubSub and its History on rs, with a Timeout well
// above the default: these tests run under -race on shared machines, where
// a call may take longer than 500 ms with Redis up (TestHistoryFrozen
// tests the default).
func historyNode(t *testing.T, rs *redisServer, id string) clustertest.HistoryNode {
	t.Helper()
	return historyNodeWith(t, rs, id, &HistoryConfig{Timeout: 2 * time.Second})
}

// historyNodeWith is historyNode with the History's config.
func historyNodeWith(t *testing.T, rs *redisServer, id string, cfg *HistoryConfig) clustertest.HistoryNode {
	t.Helper()
	ps, err := Dial(rs.url(), &Options{NodeID: id, Logger: clustertest.Logger(), MaxReconnectWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHistory(ps, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		ps.Close()
	})
	return clustertest.HistoryNode{PubSub: ps, History: h}
}

func TestHistoryContract(t *testing.T) {
	rs := startRedis(t)
	n := historyNode(t, rs, "A")
	clustertest.HistoryContract(t, n.History, "redis:")
}

// The epoch changes whenever the history is lost: keys deleted, the
// stream alone deleted, the database flushed.
func TestHistoryEpochChangesWhenLost(t *testing.T) {
	rs := startRedis(t)
	h := historyNode(t, rs, "A").History.(*History)
	c := redis.NewClient(&redis.Options{Addr: rs.addr()})
	defer c.Close()
	ctx := context.Background()
	opts := phx.HistoryOptions{}
	appendN := func(n int) phx.Position {
		t.Helper()
		var pos phx.Position
		for range n {
			var err error
			if pos, err = h.Append(ctx, "t", phx.HistoryMessage{Event: "e", Payload: []byte(`{}`)}, opts); err != nil {
				t.Fatal(err)
			}
		}
		return pos
	}
	p1 := appendN(3)
	keys := h.Keys("t")
	for _, lose := range []struct {
		name string
		do   func() error
	}{
		{"stream deleted", func() error { return c.Del(ctx, keys[1]).Err() }},
		{"both keys deleted", func() error { return c.Del(ctx, keys[0], keys[1]).Err() }},
		{"database flushed", func() error { return c.FlushAll(ctx).Err() }},
	} {
		if err := lose.do(); err != nil {
			t.Fatal(err)
		}
		page, err := h.Read(ctx, "t", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if page.Epoch == p1.Epoch || page.Top != 0 || len(page.Messages) != 0 {
			t.Fatalf("%s: %+v, old epoch %q", lose.name, page, p1.Epoch)
		}
		p2 := appendN(2)
		if p2.Epoch != page.Epoch || p2.Offset != 2 {
			t.Fatalf("%s: appends after the loss: %+v, want offset 2 in %q", lose.name, p2, page.Epoch)
		}
		p1 = p2
	}
	ttl, _ := c.PTTL(ctx, keys[1]).Result()
	if ttl <= 0 || ttl > time.Hour+2*time.Second {
		t.Fatalf("the stream's TTL is %v, want about the MaxAge", ttl)
	}
}

// With Redis down, Append and Read fail with phx.ErrHistoryUnavailable
// (not hanging past ctx); they work again when it returns.
func TestHistoryServerDown(t *testing.T) {
	rs := startRedis(t)
	h := historyNode(t, rs, "A").History
	ctx := context.Background()
	if _, err := h.Append(ctx, "t", phx.HistoryMessage{Event: "e", Payload: []byte(`{}`)}, phx.HistoryOptions{}); err != nil {
		t.Fatal(err)
	}
	rs.Stop(t)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := h.Append(cctx, "t", phx.HistoryMessage{Event: "e", Payload: []byte(`{}`)}, phx.HistoryOptions{}); !errors.Is(err, phx.ErrHistoryUnavailable) {
		t.Fatalf("Append with Redis down: %v", err)
	}
	t.Logf("Append failed after %v", time.Since(start))
	if _, err := h.Read(cctx, "t", 0, 10); !errors.Is(err, phx.ErrHistoryUnavailable) {
		t.Fatalf("Read with Redis down: %v", err)
	}
	b, _ := phx.NewBroadcast("t", "e", nil)
	if _, err := h.AppendPublish(cctx, b, nil, phx.HistoryOptions{}); !errors.Is(err, phx.ErrHistoryUnavailable) {
		t.Fatalf("AppendPublish with Redis down: %v", err)
	}
	if d := time.Since(start); d > 9*time.Second { // go-redis retries each command (MaxRetries) before failing
		t.Fatalf("failing took %v", d)
	}
	rs.Start(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		page, err := h.Read(ctx, "t", 0, 10)
		if err == nil {
			if page.Top != 0 {
				t.Fatalf("after a restart without persistence: %+v", page)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Read after Redis returned: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHistoryTwoNodesOrder(t *testing.T) {
	rs := startRedis(t)
	clustertest.HistoryOrder(t, [3]clustertest.HistoryNode{historyNode(t, rs, "A"), historyNode(t, rs, "B"), historyNode(t, rs, "C")}, 500)
}

func TestHistoryRecoveryOnAnotherNode(t *testing.T) {
	rs := startRedis(t)
	clustertest.HistoryRecovery(t, historyNode(t, rs, "A"), historyNode(t, rs, "B"))
}

func TestNewHistoryPrefix(t *testing.T) {
	rs := startRedis(t)
	ps, err := Dial(rs.url(), &Options{Prefix: "same"})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	if _, err := NewHistory(ps, &HistoryConfig{Prefix: "same"}); err == nil {
		t.Fatal("a history sharing the PubSub's prefix was accepted")
	}
}

// The official phoenix.js client, moved between two nodes by server-side
// disconnects, recovers every message (testdata/interop/history_nodes.mjs).
func TestHistoryInteropAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("40 phoenix.js clients × 3,000 messages")
	}
	rs := startRedis(t)
	clustertest.HistoryInterop(t, historyNode(t, rs, "A"), historyNode(t, rs, "B"), "../../testdata/interop")
}

// With Redis frozen (SIGSTOP: connections open, no answers), the first
// recorded broadcast fails after the history's Timeout and the next ones
// fail at once; none of them is recorded or delivered when Redis resumes,
// and appends continue with the next offset.
func TestHistoryFrozen(t *testing.T) {
	rs := startRedis(t)
	n := historyNodeWith(t, rs, "A", nil) // the default Timeout, 500 ms
	h := n.History.(*History)
	got := make(chan *phx.Broadcast, 100)
	if err := n.PubSub.Subscribe("t", phx.NewSubscriber(func(b *phx.Broadcast) { got <- b })); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	publish := func(body string) (phx.Position, error) {
		b, err := phx.NewBroadcast("t", "e", map[string]string{"body": body})
		if err != nil {
			t.Fatal(err)
		}
		return h.AppendPublish(ctx, b, nil, phx.HistoryOptions{})
	}
	if pos, err := publish("before"); err != nil || pos.Offset != 1 {
		t.Fatalf("before the freeze: %+v, %v", pos, err)
	}
	rs.Freeze(t)
	start := time.Now()
	if _, err := publish("frozen 0"); !errors.Is(err, phx.ErrHistoryUnavailable) {
		t.Fatalf("first append while frozen: %v", err)
	}
	first := time.Since(start)
	if first < 450*time.Millisecond || first > 1500*time.Millisecond {
		t.Fatalf("the first append failed after %v, want about the 500 ms Timeout", first)
	}
	var slowest time.Duration
	for i := 1; i <= 100; i++ {
		s := time.Now()
		if _, err := publish(fmt.Sprint("frozen ", i)); !errors.Is(err, phx.ErrHistoryUnavailable) {
			t.Fatalf("append %d while frozen: %v", i, err)
		}
		if _, err := h.Read(ctx, "t", 0, 10); !errors.Is(err, phx.ErrHistoryUnavailable) {
			t.Fatalf("read %d while frozen: %v", i, err)
		}
		slowest = max(slowest, time.Since(s))
	}
	t.Logf("first append failed after %v; the next 100 appends and reads: slowest %v", first, slowest)
	if slowest > 5*time.Millisecond {
		t.Fatalf("an append while known down took %v", slowest)
	}
	time.Sleep(2 * time.Second) // past the first append's deadline + clock slack
	rs.Thaw(t)
	deadline := time.Now().Add(3 * time.Second)
	var pos phx.Position
	for {
		var err error
		if pos, err = publish("after"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("append after the thaw: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pos.Offset != 2 {
		t.Fatalf("first append after the thaw got offset %d, want 2 (nothing from the freeze recorded)", pos.Offset)
	}
	var bodies []string
	timeout := time.After(5 * time.Second)
	for len(bodies) < 2 {
		select {
		case b := <-got:
			var m struct{ Body string }
			_ = json.Unmarshal(b.Payload.Data, &m)
			bodies = append(bodies, fmt.Sprint(b.Offset(), " ", m.Body))
		case <-timeout:
			t.Fatalf("delivered: %q", bodies)
		}
	}
	select {
	case b := <-got:
		t.Fatalf("delivered after %q: %s", bodies, b.Payload.Data)
	case <-time.After(200 * time.Millisecond):
	}
	if want := []string{"1 before", "2 after"}; !slices.Equal(bodies, want) {
		t.Fatalf("delivered %q, want %q", bodies, want)
	}
}

// A node whose history subscription missed recorded broadcasts (Redis does
// not keep what it publishes while a subscriber is away) reads them back
// from the stream: when a later offset arrives, and after go-redis
// re-subscribes. Its subscribers get every offset once, in order; a new
// epoch (the history lost) starts over.
func TestHistoryReceiverCatchesUp(t *testing.T) {
	rs := startRedis(t)
	a, b := historyNode(t, rs, "A"), historyNode(t, rs, "B")
	got := make(chan *phx.Broadcast, 100)
	if err := a.PubSub.Subscribe("t", phx.NewSubscriber(func(m *phx.Broadcast) { got <- m })); err != nil {
		t.Fatal(err)
	}
	hb := b.History.(*History)
	ctx := context.Background()
	msg := func(body string) *phx.Broadcast {
		m, err := phx.NewBroadcast("t", "e", map[string]string{"body": body})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	publish := func(body string) {
		t.Helper()
		if _, err := hb.AppendPublish(ctx, msg(body), nil, phx.HistoryOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	missed := func(body string) { // recorded, but A never hears of it
		t.Helper()
		if _, err := hb.Append(ctx, "t", phx.HistoryMessage{Event: "e", Payload: msg(body).Payload.Data}, phx.HistoryOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(what string, want ...string) {
		t.Helper()
		for _, w := range want {
			select {
			case m := <-got:
				var p struct{ Body string }
				_ = json.Unmarshal(m.Payload.Data, &p)
				if g := fmt.Sprint(m.Offset(), " ", p.Body); g != w {
					t.Fatalf("%s: got %q, want %q", what, g, w)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: no %q", what, w)
			}
		}
		select {
		case m := <-got:
			t.Fatalf("%s: unexpected %s", what, m.Payload.Data)
		case <-time.After(100 * time.Millisecond):
		}
	}
	publish("one")
	expect("live", "1 one")
	missed("two")
	missed("three")
	publish("four")
	expect("a gap before offset 4", "2 two", "3 three", "4 four")

	// The tail: missed messages with nothing after them, read back once
	// go-redis has re-subscribed the connections Redis killed.
	missed("five")
	c := redis.NewClient(&redis.Options{Addr: rs.addr()})
	defer c.Close()
	if err := c.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	expect("after the re-subscription", "5 five")
	publish("six")
	expect("live again", "6 six")

	// A lost history starts a new epoch at offset 1: delivered, not taken
	// for a copy.
	keys := hb.Keys("t")
	if err := c.Del(ctx, keys[0], keys[1]).Err(); err != nil {
		t.Fatal(err)
	}
	publish("new one")
	expect("a new epoch", "1 new one")
}
