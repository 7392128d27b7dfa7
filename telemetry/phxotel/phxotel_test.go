package phxotel_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/clienttest"
	"github.com/phxgo/phx/internal/leaktest"
	"github.com/phxgo/phx/telemetry/phxotel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

type echo struct{}

func (echo) Join(*phx.Socket, phx.Payload) (any, error) { return nil, nil }

func (echo) HandleIn(_ *phx.Socket, event string, p phx.Payload) (any, error) {
	if event == "fail" {
		return nil, phx.Errorf("no")
	}
	return p, nil
}

// TestSpansAndMetrics serves a real server behind a middleware that starts
// a span for every request, as otelhttp does, and checks that connect, join
// and handle_in spans are its children and the instruments moved.
func TestSpansAndMetrics(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	obs, err := phxotel.New(phxotel.Options{TracerProvider: tp, MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	srv := phx.NewServer(&phx.Options{Logger: slog.New(slog.DiscardHandler), Telemetry: obs.Telemetry()})
	srv.Channel("room:*", func() phx.Channel { return echo{} })
	httpTracer := tp.Tracer("http")
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, sp := httpTracer.Start(r.Context(), "GET /socket/websocket")
		defer sp.End()
		srv.ServeHTTP(w, r.WithContext(ctx))
	})
	hs := httptest.NewServer(handler)
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	c := clienttest.New(t, "ann", "ws"+strings.TrimPrefix(hs.URL, "http")+"/socket/websocket?vsn=2.0.0", nil)
	c.JoinOK("room:lobby", nil)
	if r := c.Reply("room:lobby", c.Push("room:lobby", "hello", map[string]int{"n": 1})); r.Status != "ok" {
		t.Fatalf("hello reply %s", r.Status)
	}
	if r := c.Reply("room:lobby", c.Push("room:lobby", "fail", nil)); r.Status != "error" {
		t.Fatalf("fail reply %s", r.Status)
	}
	c.Close()
	waitFor(t, func() bool { return srv.Stats().Connections == 0 })

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans.Ended() {
		byName[s.Name()] = s
	}
	root, ok := byName["GET /socket/websocket"]
	if !ok {
		t.Fatalf("no request span; spans: %v", names(spans.Ended()))
	}
	for _, name := range []string{"phx.connect", "phx.join room:*", "phx.handle_in hello", "phx.handle_in fail"} {
		s, ok := byName[name]
		if !ok {
			t.Fatalf("no %q span; spans: %v", name, names(spans.Ended()))
		}
		if s.Parent().SpanID() != root.SpanContext().SpanID() || s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("%s: parent %v, want the request span %v", name, s.Parent().SpanID(), root.SpanContext().SpanID())
		}
	}
	if got := byName["phx.handle_in fail"].Status().Description; got != "handle_in error" {
		t.Errorf("failed handle_in span status %q", got)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					got[m.Name] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					got[m.Name] += int64(p.Count)
				}
			}
		}
	}
	for name, want := range map[string]int64{
		"phx.connects": 1, "phx.connections": 0, "phx.joins": 1, "phx.join.duration": 1,
		"phx.handle_in.duration": 2, "phx.closes": 1, "phx.channel.terminations": 1,
	} {
		if got[name] != want {
			t.Errorf("%s = %d, want %d (all: %v)", name, got[name], want, got)
		}
	}
	if got["phx.frames.in"] != 3 {
		t.Errorf("phx.frames.in = %d, want 3", got["phx.frames.in"])
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMain(m *testing.M) { leaktest.Main(m) }
