package phx_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
)

// BenchmarkBroadcastHistory: Server.Broadcast to 100 subscribers of one
// topic, on a route without history and on one with it (append to the
// in-memory store, phx_offset added to the payload).
func BenchmarkBroadcastHistory(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		b.Run(mode, func(b *testing.B) {
			srv := phx.NewServer(&phx.Options{Logger: quietLogger()})
			var opts []phx.RouteOption
			if mode == "on" {
				opts = append(opts, phx.WithHistory(phx.HistoryOptions{MaxMessages: 1000}))
			}
			srv.Channel("room:*", func() phx.Channel { return histRoom{} }, opts...)
			var delivered atomic.Int64
			for range 100 {
				_ = srv.PubSub().Subscribe("room:1", phx.NewSubscriber(func(*phx.Broadcast) { delivered.Add(1) }))
			}
			payload := map[string]any{"user": "ann", "body": "hello there, how are you?"}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if err := srv.Broadcast("room:1", "new_msg", payload); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(delivered.Load())/time.Since(start).Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkHistoryMemory: heap retained per message in MemoryHistory, for
// a 60-byte payload, 100,000 messages over 100 topics.
func BenchmarkHistoryMemory(b *testing.B) {
	const topics, perTopic = 100, 1000
	payload := []byte(`{"user":"ann","body":"hello there, how are you?","at":1}`)
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		h := phx.NewMemoryHistory()
		o := phx.HistoryOptions{MaxMessages: perTopic}
		for i := range topics * perTopic {
			p := append([]byte(nil), payload...) // the library stores its own copy
			if _, err := h.Append(context.Background(), fmt.Sprintf("room:%d", i%topics), phx.HistoryMessage{Event: "new_msg", Payload: p}, o); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(topics*perTopic), "B/msg")
		b.ReportMetric(float64(len(payload)), "payload-B")
		runtime.KeepAlive(h)
	}
}

// BenchmarkRecovery1000: a client rejoins 1,000 messages behind; the time
// from sending phx_join to having the join reply and all 1,000 replayed
// messages, over a real WebSocket.
func BenchmarkRecovery1000(b *testing.B) {
	// No inbound rate limit: the benchmark rejoins hundreds of times a second.
	srv := phx.NewServer(&phx.Options{Logger: quietLogger(), HeartbeatTimeout: time.Hour, InboundBurst: -1})
	srv.Channel("room:*", func() phx.Channel { return histRoom{} },
		phx.WithHistory(phx.HistoryOptions{MaxMessages: 2000}))
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	var epoch string
	for i := range 1000 {
		pos, err := srv.BroadcastWith(context.Background(), "room:1", "new_msg",
			map[string]any{"user": "ann", "body": "hello there, how are you?", "n": i}, phx.BroadcastOptions{})
		if err != nil {
			b.Fatal(err)
		}
		epoch = pos.Epoch
	}
	ctx := context.Background()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/socket/websocket?vsn=2.0.0", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	b.ReportAllocs()
	ref := 0
	for b.Loop() {
		ref++
		join := fmt.Sprintf(`["%d","%d","room:1","phx_join",{"phx_position":{"epoch":%q,"offset":0}}]`, ref, ref, epoch)
		if err := conn.Write(ctx, websocket.MessageText, []byte(join)); err != nil {
			b.Fatal(err)
		}
		got := 0
		for got < 1000 {
			_, data, err := conn.Read(ctx)
			if err != nil {
				b.Fatalf("recovery %d: %d of 1000 messages: %v", ref, got, err)
			}
			if strings.Contains(string(data), `"phx_reply"`) && !strings.Contains(string(data), `"ok"`) {
				b.Fatalf("join refused: %s", data)
			}
			if strings.Contains(string(data), `"new_msg"`) {
				got++
			}
		}
	}
	b.ReportMetric(1000, "msgs/recovery")
}
