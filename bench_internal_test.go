package phx

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
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
				c := newConn(srv, serializerV2, "", nil, "bench")
				ch := newChannel(c, "room:bench", Ref(`"1"`), nil)
				if err := srv.pubsub.Subscribe("room:bench", ch); err != nil {
					b.Fatal(err)
				}
				conns[i] = c
			}
			payload := map[string]any{"body": "hello world", "user": "ann", "id": 42}
			var batch []frame
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bc, err := NewBroadcast("room:bench", "new_msg", payload)
				if err != nil {
					b.Fatal(err)
				}
				srv.pubsub.Broadcast(context.Background(), bc, nil)
				for _, c := range conns {
					batch = c.out.take(batch)
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
