package phxprometheus_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/clienttest"
	"github.com/phxgo/phx/telemetry/phxprometheus"
	"github.com/prometheus/client_golang/prometheus"
)

type benchRoom struct{}

func (benchRoom) Join(*phx.Socket, phx.Payload) (any, error) { return nil, nil }

// BenchmarkFanout measures one broadcast to 100 WebSocket clients on
// loopback, with the collectors off and on: the collectors must cost the
// fan-out nothing measurable (the broadcast path fires no hook they use).
func BenchmarkFanout(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "collectors=off"
		if on {
			name = "collectors=on"
		}
		b.Run(name, func(b *testing.B) {
			opts := &phx.Options{Logger: slog.New(slog.DiscardHandler), HeartbeatTimeout: time.Hour}
			if on {
				c, err := phxprometheus.New(phxprometheus.Options{Registerer: prometheus.NewRegistry()})
				if err != nil {
					b.Fatal(err)
				}
				opts.Telemetry = c.Telemetry()
			}
			srv := phx.NewServer(opts)
			srv.Channel("room:*", func() phx.Channel { return benchRoom{} })
			hs := httptest.NewServer(srv)
			defer hs.Close()
			defer srv.Shutdown(context.Background())
			url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket/websocket?vsn=2.0.0"
			const n = 100
			var got sync.WaitGroup
			for i := 0; i < n; i++ {
				joined := make(chan struct{})
				var once sync.Once
				conn, _, err := clienttest.Dial(context.Background(), url, nil, func(f clienttest.Frame) {
					if strings.Contains(string(f.Data), `"phx_reply"`) {
						once.Do(func() { close(joined) })
						return
					}
					got.Done()
				})
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				if err := conn.Write(context.Background(), []byte(`["1","1","room:bench","phx_join",{}]`), false); err != nil {
					b.Fatal(err)
				}
				<-joined
			}
			payload := map[string]any{"body": "hello world", "user": "ann", "id": 42}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				got.Add(n)
				if err := srv.Broadcast("room:bench", "new_msg", payload); err != nil {
					b.Fatal(err)
				}
				got.Wait()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
