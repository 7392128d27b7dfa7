package phx

import (
	"testing"
	"time"
)

// TestInboundLimitsDoNotAllocate: checking the limits of a message costs
// no allocation, whether it passes or is refused.
func TestInboundLimitsDoNotAllocate(t *testing.T) {
	limits, _ := compileInboundLimits([]InboundLimit{
		{Topic: "room:*", Event: "cursor", Rate: 30},
		{Topic: "room:*", Rate: 50},
	})
	bs := limitBuckets(limits, "room:1")
	if len(bs) != 2 {
		t.Fatalf("%d buckets, want 2", len(bs))
	}
	var l inboundLimits
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		l.allow(now, 100, 200)
		l.allowEvent(bs, "cursor", now)
		l.allowEvent(bs, "other", now)
		l.rateLimited(now)
	}); n != 0 {
		t.Fatalf("%v allocations per message", n)
	}
}

// BenchmarkInboundLimits measures the limit checks of one message: the
// connection's bucket and two InboundLimits of its channel.
func BenchmarkInboundLimits(b *testing.B) {
	limits, _ := compileInboundLimits([]InboundLimit{
		{Topic: "room:*", Event: "cursor", Rate: 1e9},
		{Topic: "room:*", Rate: 1e9},
	})
	bs := limitBuckets(limits, "room:1")
	var l inboundLimits
	now := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Microsecond)
		if !l.allow(now, 1e9, 1000) || !l.allowEvent(bs, "cursor", now) {
			b.Fatal("refused")
		}
	}
}
