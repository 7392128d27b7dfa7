package relay

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, b := range []*phx.Broadcast{
		{Topic: "room:lobby", Event: "new_msg", Payload: phx.Payload{Data: []byte(`{"body":"hi"}`)}},
		{Topic: "", Event: "", Payload: phx.Payload{}},
		{Topic: "bin", Event: "e", Payload: phx.Payload{Data: []byte{0, 1, 2, 255}, Binary: true}},
		{Topic: string(bytes.Repeat([]byte("t"), 300)), Event: "ev", Payload: phx.Payload{Data: []byte(`{}`)}},
	} {
		msg := AppendEnvelope(nil, "node-1", b)
		e, err := DecodeEnvelope(msg)
		if err != nil {
			t.Fatalf("decode %q: %v", msg, err)
		}
		if string(e.Node) != "node-1" || e.Topic != b.Topic || e.Event != b.Event ||
			!bytes.Equal(e.Payload.Data, b.Payload.Data) || e.Payload.Binary != b.Payload.Binary {
			t.Fatalf("round trip of %+v gave %+v", b, e)
		}
	}
	// The layout documented in the package docs.
	got := AppendEnvelope(nil, "N", &phx.Broadcast{Topic: "t", Event: "e", Payload: phx.Payload{Data: []byte("{}")}})
	if want := []byte{1, 0, 1, 'N', 1, 't', 1, 'e', '{', '}'}; !bytes.Equal(got, want) {
		t.Fatalf("encoding = %v, want %v", got, want)
	}
}

func TestEnvelopeRejects(t *testing.T) {
	good := AppendEnvelope(nil, "n", &phx.Broadcast{Topic: "t", Event: "e", Payload: phx.Payload{Data: []byte("{}")}})
	if _, err := DecodeEnvelope(append([]byte{2}, good[1:]...)); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("version 2: %v", err)
	}
	if _, err := DecodeEnvelope(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty: %v", err)
	}
	for i := 1; i < 8; i++ { // every truncation inside the header
		if _, err := DecodeEnvelope(good[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d: %v", i, err)
		}
	}
	if _, err := DecodeEnvelope([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("huge length: %v", err)
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(AppendEnvelope(nil, "n", &phx.Broadcast{Topic: "t", Event: "e", Payload: phx.Payload{Data: []byte("{}")}}))
	f.Add([]byte{1, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, msg []byte) {
		e, err := DecodeEnvelope(msg)
		if err != nil {
			return
		}
		re := AppendEnvelope(nil, string(e.Node), &phx.Broadcast{Topic: e.Topic, Event: e.Event, Payload: e.Payload})
		e2, err := DecodeEnvelope(re)
		if err != nil || e2.Topic != e.Topic || e2.Event != e.Event || !bytes.Equal(e2.Payload.Data, e.Payload.Data) {
			t.Fatalf("re-encoding %v failed: %v", msg, err)
		}
	})
}

// recBroker records broker calls; it stands for a connection in unit
// tests of the bookkeeping (the adapters' tests use real servers).
type recBroker struct {
	mu    sync.Mutex
	calls []string
	sent  [][]byte
	fail  error
}

func (b *recBroker) Subscribe(topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, "sub "+topic)
	return b.fail
}

func (b *recBroker) Unsubscribe(topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, "unsub "+topic)
	return nil
}

func (b *recBroker) Publish(_ context.Context, topic string, msg []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent = append(b.sent, append([]byte(nil), msg...))
	return b.fail
}

func (b *recBroker) log() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...)
}

type countSub struct {
	mu  sync.Mutex
	got []*phx.Broadcast
}

func (s *countSub) Deliver(b *phx.Broadcast) { s.mu.Lock(); s.got = append(s.got, b); s.mu.Unlock() }

func (s *countSub) n() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.got) }

func TestRelayBookkeeping(t *testing.T) {
	br := &recBroker{}
	r := New(Config{NodeID: "A", Adapter: "test", Logger: slog.New(slog.DiscardHandler)}, br)
	s1, s2 := &countSub{}, &countSub{}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.Subscribe("x", s1))
	must(r.Subscribe("x", s2))
	must(r.Subscribe("x", s1)) // again: no effect
	must(r.Unsubscribe("x", s1))
	must(r.Unsubscribe("x", s2))
	must(r.Unsubscribe("x", s2)) // unknown: ignored
	if got, want := br.log(), []string{"sub x", "unsub x"}; !equal(got, want) {
		t.Fatalf("broker calls %v, want %v", got, want)
	}
	if c := r.Counters(); c.Topics != 0 {
		t.Fatalf("topics = %d", c.Topics)
	}

	// Broadcast: local first, then one publish; from is skipped.
	must(r.Subscribe("y", s1))
	must(r.Subscribe("y", s2))
	b := &phx.Broadcast{Topic: "y", Event: "e", Payload: phx.Payload{Data: []byte(`{"a":1}`)}}
	must(r.Broadcast(context.Background(), b, s1))
	if s1.n() != 0 || s2.n() != 1 || s2.got[0] != b || len(br.sent) != 1 {
		t.Fatalf("local delivery s1=%d s2=%d sent=%d", s1.n(), s2.n(), len(br.sent))
	}
	// Own message back from the broker: dropped. Another node's: delivered
	// once to every local subscriber, as one shared *Broadcast.
	r.Receive(br.sent[0])
	other := AppendEnvelope(nil, "B", b)
	r.Receive(other)
	if s1.n() != 1 || s2.n() != 2 || s1.got[0] != s2.got[1] {
		t.Fatalf("after receive s1=%d s2=%d", s1.n(), s2.n())
	}
	r.Receive([]byte{9, 9, 9})
	c := r.Counters()
	if c.DroppedOwn != 1 || c.Received != 1 || c.DecodeErrors != 1 || c.Published != 1 || c.Topics != 1 {
		t.Fatalf("counters %+v", c)
	}

	// Disconnected: Broadcast delivers locally and fails fast.
	r.Disconnected(errors.New("down"))
	if err := r.Broadcast(context.Background(), b, nil); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("broadcast while down: %v", err)
	}
	if s1.n() != 2 {
		t.Fatal("no local delivery while disconnected")
	}
	r.Reconnected()
	if c := r.Counters(); c.Disconnects != 1 || c.Reconnects != 1 || c.PublishErrors != 1 || !c.Connected {
		t.Fatalf("counters %+v", c)
	}

	// A broker that refuses the subscription: the local one is undone.
	br.fail = errors.New("no")
	if err := r.Subscribe("z", s1); err == nil {
		t.Fatal("Subscribe succeeded with a failing broker")
	}
	if err := r.LocalBroadcast(&phx.Broadcast{Topic: "z"}, nil); err != nil || s1.n() != 2 {
		t.Fatalf("s1 still subscribed to z: %v %d", err, s1.n())
	}
	r.Close()
	if err := r.Subscribe("w", s1); !errors.Is(err, phx.ErrPubSubClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
}

// A subscriber that panics on a broadcast from another node does not take
// the receive path down.
func TestRelayReceiveContainsPanics(t *testing.T) {
	r := New(Config{NodeID: "A", Adapter: "test", Logger: slog.New(slog.DiscardHandler)}, &recBroker{})
	after := &countSub{}
	if err := r.Subscribe("p", panicSub{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Subscribe("q", after); err != nil {
		t.Fatal(err)
	}
	r.Receive(AppendEnvelope(nil, "B", &phx.Broadcast{Topic: "p", Event: "e"}))
	r.Receive(AppendEnvelope(nil, "B", &phx.Broadcast{Topic: "q", Event: "e"}))
	if after.n() != 1 {
		t.Fatalf("delivery after a panic: %d", after.n())
	}
}

type panicSub struct{}

func (panicSub) Deliver(*phx.Broadcast) { panic("boom") }

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRelayUseLogger(t *testing.T) {
	var server, own bytes.Buffer
	serverLog := slog.New(slog.NewTextHandler(&server, nil))

	r := New(Config{NodeID: "A", Adapter: "test"}, &recBroker{})
	r.UseLogger(serverLog)
	r.Logger().Info("hello")
	if !strings.Contains(server.String(), "msg=hello pubsub=test node=A") {
		t.Fatalf("a relay without a logger did not log with the server's: %q", server.String())
	}

	server.Reset()
	r = New(Config{NodeID: "B", Adapter: "test", Logger: slog.New(slog.NewTextHandler(&own, nil))}, &recBroker{})
	r.UseLogger(serverLog)
	r.Logger().Info("mine")
	if server.Len() != 0 || !strings.Contains(own.String(), "msg=mine") {
		t.Fatalf("a relay with its own logger switched: server %q, own %q", server.String(), own.String())
	}
}

func TestRelayTelemetryEvents(t *testing.T) {
	br := &recBroker{}
	r := New(Config{NodeID: "A", Adapter: "test", Logger: slog.New(slog.DiscardHandler)}, br)
	var got []phx.PubSubEvent
	r.UseTelemetry(&phx.Telemetry{PubSub: func(e phx.PubSubEvent) { got = append(got, e) }})

	r.Disconnected(errors.New("broker gone"))
	r.Reconnected()
	br.fail = errors.New("publish refused")
	b, _ := phx.NewBroadcast("t", "e", nil)
	if err := r.Broadcast(context.Background(), b, nil); err == nil {
		t.Fatal("a failing publish returned nil")
	}
	r.Receive([]byte("not an envelope"))

	kinds := make([]string, len(got))
	for i, e := range got {
		kinds[i] = e.Kind
		if e.Adapter != "test" || e.Node != "A" {
			t.Errorf("event %+v without the adapter's name and node", e)
		}
	}
	if want := []string{"disconnected", "reconnected", "publish_failed", "decode_failed"}; !slices.Equal(kinds, want) {
		t.Fatalf("events %q, want %q", kinds, want)
	}
	if got[0].Err == nil || got[1].Gap <= 0 || got[2].Topic != "t" || got[3].Err == nil {
		t.Fatalf("event fields %+v", got)
	}
}
