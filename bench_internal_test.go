package phx

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"
)

// BenchmarkBroadcastFanout measures one broadcast reaching N subscribed
// channels of N connections: encode once, enqueue the same bytes N times.
// The connections' queues are drained inside the timed loop, as writers
// would, so their cost counts.
func BenchmarkBroadcastFanout(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			srv := NewServer(&Options{Logger: slog.New(slog.DiscardHandler), MaxQueuedMessages: 1 << 20, MaxQueuedBytes: 1 << 30})
			conns := make([]*conn, n)
			for i := range conns {
				c := newConn(context.Background(), srv, codecV2, "", nil, "bench")
				ch := newChannel(c, "room:bench", Ref(`"1"`), nil)
				if err := srv.pubsub.Subscribe("room:bench", ch); err != nil {
					b.Fatal(err)
				}
				conns[i] = c
			}
			payload := map[string]any{"body": "hello world", "user": "ann", "id": 42}
			var batch []Frame
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bc, err := NewBroadcast("room:bench", "new_msg", payload)
				if err != nil {
					b.Fatal(err)
				}
				srv.pubsub.Broadcast(context.Background(), bc, nil)
				for _, c := range conns {
					batch, _ = c.out.takeOrIdle(batch)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkRouterMatch measures topic routing with a few exact and
// wildcard routes.
func BenchmarkRouterMatch(b *testing.B) {
	var r router
	for _, p := range []string{"room:lobby", "room:*", "user:*", "admin:*", "room:vip:*", "notifications"} {
		r.add(p, func() Channel { return nil })
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if r.match("room:vip:1234") == nil {
			b.Fatal("no match")
		}
	}
}

// BenchmarkPresence measures tracking in a topic that already holds 10,000
// users: one track and one untrack per op, their diffs batched and broadcast
// to the topic's subscribers (none here, so the cost is the presence state
// and diff building, not the sockets).
func BenchmarkPresence(b *testing.B) {
	srv := NewServer(&Options{Logger: slog.New(slog.DiscardHandler)})
	p := NewPresence(srv, &PresenceOptions{BatchInterval: time.Millisecond})
	mk := func() *Socket {
		c := newConn(context.Background(), srv, codecV2, "", nil, "bench")
		return newChannel(c, "room:big", Ref(`"1"`), nil).sock
	}
	for i := 0; i < 10000; i++ {
		if err := p.Track(mk(), fmt.Sprintf("user:%d", i), map[string]any{"online_at": i}); err != nil {
			b.Fatal(err)
		}
	}
	s := mk()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.Track(s, "bench", map[string]any{"n": i}); err != nil {
			b.Fatal(err)
		}
		if err := p.Untrack(s, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n := len(p.List("room:big")); n != 10000 {
		b.Fatalf("List has %d keys", n)
	}
}

// BenchmarkPresenceList measures List of a 10,000-user topic (what
// presence_state costs a joining client).
func BenchmarkPresenceList(b *testing.B) {
	srv := NewServer(&Options{Logger: slog.New(slog.DiscardHandler)})
	p := NewPresence(srv, nil)
	for i := 0; i < 10000; i++ {
		c := newConn(context.Background(), srv, codecV2, "", nil, "bench")
		s := newChannel(c, "room:big", Ref(`"1"`), nil).sock
		p.Track(s, fmt.Sprintf("user:%d", i), map[string]any{"online_at": i})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(p.List("room:big")) != 10000 {
			b.Fatal("short list")
		}
	}
}
