package natspubsub

import (
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/phxgo/phx"
)

// The adapter reports a real broker outage to the server's Telemetry hooks.
func TestTelemetryEventsOnBrokerOutage(t *testing.T) {
	ns := startNATS(t)
	ps, err := Dial(ns.url(), &Options{NodeID: "n1", NATSOptions: []nats.Option{
		nats.ReconnectWait(50 * time.Millisecond), nats.ReconnectJitter(0, 0),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	events := make(chan phx.PubSubEvent, 16)
	phx.NewServer(&phx.Options{
		PubSub:    ps,
		Logger:    slog.New(slog.DiscardHandler),
		Telemetry: &phx.Telemetry{PubSub: func(e phx.PubSubEvent) { events <- e }},
	})
	ns.Stop(t)
	want := func(kind string) phx.PubSubEvent {
		t.Helper()
		select {
		case e := <-events:
			if e.Kind != kind || e.Adapter != "nats" || e.Node != "n1" {
				t.Fatalf("event %+v, want a %s of nats node n1", e, kind)
			}
			return e
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s event", kind)
		}
		return phx.PubSubEvent{}
	}
	want("disconnected")
	ns.Start(t)
	if e := want("reconnected"); e.Gap <= 0 {
		t.Fatalf("reconnected with gap %v", e.Gap)
	}
}
