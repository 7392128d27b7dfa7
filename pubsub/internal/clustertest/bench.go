package clustertest

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

// benchBody pads the payload to a typical chat message size (~130 bytes).
const benchBody = "the quick brown fox jumps over the lazy dog, again and again, until the benchmark ends"

// latencySub records the delivery latency of every broadcast (the first
// subscriber); countSub only counts.
type latencySub struct {
	lat  []time.Duration
	seen atomic.Int64
	wake chan struct{} // cap 1: a delivery happened
}

func (s *latencySub) Deliver(b *phx.Broadcast) {
	now := time.Now().UnixNano()
	// Payload: {"seq":0000000000,"t":0000000000000000000,"body":...}
	d := b.Payload.Data
	seq, _ := strconv.Atoi(string(d[7:17]))
	sent, _ := strconv.ParseInt(string(d[22:41]), 10, 64)
	if seq < len(s.lat) {
		s.lat[seq] = time.Duration(now - sent)
	}
	s.seen.Add(1)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

type countSub struct{ n *atomic.Int64 }

func (s *countSub) Deliver(*phx.Broadcast) { s.n.Add(1) }

// BenchFanout measures cross-node fan-out: node A publishes b.N broadcasts
// on one topic, keeping at most window of them in flight (published on A,
// not yet delivered on B); node B delivers each to subscribers local
// subscribers. It reports deliveries/s on node B and the latency from
// Broadcast on A to Deliver on B's first subscriber (p50, p99). With a
// window of 1 the latency is the unloaded one; with a large window it
// includes queueing behind the window.
func BenchFanout(b *testing.B, br Broker, subscribers, window int) {
	a := br.Dial(b, "bench-A", nil)
	defer a.Close()
	bn := br.Dial(b, "bench-B", nil)
	defer bn.Close()
	topic := fmt.Sprintf("bench:%d:%d", subscribers, time.Now().UnixNano())
	first := &latencySub{lat: make([]time.Duration, b.N), wake: make(chan struct{}, 1)}
	var others atomic.Int64
	subs := []phx.Subscriber{first}
	for i := 1; i < subscribers; i++ {
		subs = append(subs, &countSub{&others})
	}
	for _, s := range subs {
		if err := bn.Subscribe(topic, s); err != nil {
			b.Fatal(err)
		}
	}
	payload := make([]byte, 0, 256)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for int64(i)-first.seen.Load() >= int64(window) {
			<-first.wake
		}
		payload = fmt.Appendf(payload[:0], `{"seq":%010d,"t":%019d,"body":%q}`, i, time.Now().UnixNano(), benchBody)
		bc := &phx.Broadcast{Topic: topic, Event: "msg", Payload: phx.Payload{Data: append([]byte(nil), payload...)}}
		if err := a.Broadcast(ctx, bc, nil); err != nil {
			b.Fatal(err)
		}
	}
	want := int64(b.N)
	deadline := time.Now().Add(30 * time.Second)
	for first.seen.Load() < want || others.Load() < want*int64(subscribers-1) {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d+%d of %d×%d after 30s (A %+v, B %+v)", first.seen.Load(), others.Load(), b.N, subscribers,
				a.Counters(), bn.Counters())
		}
		time.Sleep(50 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	for _, s := range subs {
		_ = bn.Unsubscribe(topic, s)
	}
	lat := first.lat
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(b.N)*float64(subscribers)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
