package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
		msg := AppendEnvelope(nil, "node-1", 7, 300, b)
		e, err := DecodeEnvelope(msg)
		if err != nil {
			t.Fatalf("decode %q: %v", msg, err)
		}
		if string(e.Node) != "node-1" || e.Incarnation != 7 || e.Seq != 300 || e.Control || e.Topic != b.Topic || e.Event != b.Event ||
			!bytes.Equal(e.Payload.Data, b.Payload.Data) || e.Payload.Binary != b.Payload.Binary {
			t.Fatalf("round trip of %+v gave %+v", b, e)
		}
	}
	// The layout documented in the package docs.
	got := AppendEnvelope(nil, "N", 5, 9, &phx.Broadcast{Topic: "t", Event: "e", Payload: phx.Payload{Data: []byte("{}")}})
	if want := []byte{2, 0, 1, 'N', 5, 9, 1, 't', 1, 'e', '{', '}'}; !bytes.Equal(got, want) {
		t.Fatalf("encoding = %v, want %v", got, want)
	}
	// Version 1, as v0.1 nodes write it, still decodes (no sequence number).
	e, err := DecodeEnvelope([]byte{1, 0, 1, 'N', 1, 't', 1, 'e', '{', '}'})
	if err != nil || string(e.Node) != "N" || e.Seq != 0 || e.Topic != "t" || e.Event != "e" || string(e.Payload.Data) != "{}" {
		t.Fatalf("version 1: %+v %v", e, err)
	}
	c, err := DecodeEnvelope(appendControl(nil, "N", 5, "up", appendUp(nil, 1, nil)))
	if err != nil || !c.Control || c.Event != "up" || c.Topic != controlTopic {
		t.Fatalf("control: %+v %v", c, err)
	}
}

func TestEnvelopeRejects(t *testing.T) {
	good := AppendEnvelope(nil, "n", 1, 1, &phx.Broadcast{Topic: "t", Event: "e", Payload: phx.Payload{Data: []byte("{}")}})
	if _, err := DecodeEnvelope(append([]byte{3}, good[1:]...)); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("version 3: %v", err)
	}
	if _, err := DecodeEnvelope(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty: %v", err)
	}
	for i := 1; i < 10; i++ { // every truncation inside the header
		if _, err := DecodeEnvelope(good[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d: %v", i, err)
		}
	}
	if _, err := DecodeEnvelope([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("huge length: %v", err)
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(AppendEnvelope(nil, "n", 1, 1, &phx.Broadcast{Topic: "t", Event: "e", Payload: phx.Payload{Data: []byte("{}")}}))
	f.Add([]byte{1, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, msg []byte) {
		e, err := DecodeEnvelope(msg)
		if err != nil {
			return
		}
		re := AppendEnvelope(nil, string(e.Node), e.Incarnation, e.Seq, &phx.Broadcast{Topic: e.Topic, Event: e.Event, Payload: e.Payload})
		e2, err := DecodeEnvelope(re)
		if err != nil || e2.Topic != e.Topic || e2.Event != e.Event || !bytes.Equal(e2.Payload.Data, e.Payload.Data) {
			t.Fatalf("re-encoding %v failed: %v", msg, err)
		}
	})
}

// recBroker records broker calls; it stands for a connection in unit
// tests of the bookkeeping (the adapters' tests use real servers).
type recBroker struct {
	mu      sync.Mutex
	calls   []string
	sent    [][]byte // data messages published
	control []string // control events published
	fail    error
	subFail error
	peer    *Relay // receives everything published, as another node would
}

func (b *recBroker) Subscribe(topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if topic != controlTopic {
		b.calls = append(b.calls, "sub "+topic)
	}
	return b.subFail
}

func (b *recBroker) Unsubscribe(topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, "unsub "+topic)
	return nil
}

func (b *recBroker) Publish(_ context.Context, msgs []Message) error {
	b.mu.Lock()
	if b.fail != nil {
		b.mu.Unlock()
		return b.fail
	}
	for _, m := range msgs {
		if m.Topic == controlTopic {
			e, _ := DecodeEnvelope(m.Data)
			b.control = append(b.control, e.Event)
		} else {
			b.sent = append(b.sent, append([]byte(nil), m.Data...))
		}
	}
	peer := b.peer
	b.mu.Unlock()
	if peer != nil {
		for _, m := range msgs {
			peer.Receive(append([]byte(nil), m.Data...))
		}
	}
	return nil
}

func (b *recBroker) setFail(err error) { b.mu.Lock(); b.fail = err; b.mu.Unlock() }

func (b *recBroker) log() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...)
}

func (b *recBroker) sentN() int { b.mu.Lock(); defer b.mu.Unlock(); return len(b.sent) }

func (b *recBroker) sentAt(i int) []byte { b.mu.Lock(); defer b.mu.Unlock(); return b.sent[i] }

func (b *recBroker) controls() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.control...)
}

type countSub struct {
	mu  sync.Mutex
	got []*phx.Broadcast
}

func (s *countSub) Deliver(b *phx.Broadcast) { s.mu.Lock(); s.got = append(s.got, b); s.mu.Unlock() }

func (s *countSub) n() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.got) }

func (s *countSub) events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.got))
	for i, b := range s.got {
		out[i] = b.Event
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func startRelay(t *testing.T, cfg Config, b Broker) *Relay {
	t.Helper()
	if cfg.Adapter == "" {
		cfg.Adapter = "test"
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	r := New(cfg, b)
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRelayBookkeeping(t *testing.T) {
	br := &recBroker{}
	r := startRelay(t, Config{NodeID: "A"}, br)
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
	if s1.n() != 0 || s2.n() != 1 || s2.got[0] != b {
		t.Fatalf("local delivery s1=%d s2=%d", s1.n(), s2.n())
	}
	waitFor(t, "the publish", func() bool { return br.sentN() == 1 })
	// Own message back from the broker: dropped. Another node's: delivered
	// once to every local subscriber, as one shared *Broadcast; a copy of
	// it is dropped.
	r.Receive(br.sentAt(0))
	other := AppendEnvelope(nil, "B", 1, 1, b)
	r.Receive(other)
	r.Receive(append([]byte(nil), other...))
	if s1.n() != 1 || s2.n() != 2 || s1.got[0] != s2.got[1] {
		t.Fatalf("after receive s1=%d s2=%d", s1.n(), s2.n())
	}
	r.Receive([]byte{9, 9, 9})
	c := r.Counters()
	if c.DroppedOwn != 1 || c.Received != 1 || c.Duplicates != 1 || c.DecodeErrors != 1 || c.Published != 1 || c.Topics != 1 {
		t.Fatalf("counters %+v", c)
	}

	// A broker that refuses the subscription: the local one is undone.
	br.subFail = errors.New("no")
	if err := r.Subscribe("z", s1); err == nil {
		t.Fatal("Subscribe succeeded with a failing broker")
	}
	if err := r.LocalBroadcast(&phx.Broadcast{Topic: "z"}, nil); err != nil || s1.n() != 1 {
		t.Fatalf("s1 still subscribed to z: %v %d", err, s1.n())
	}
	r.Close()
	if err := r.Subscribe("w", s1); !errors.Is(err, phx.ErrPubSubClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	if err := r.Broadcast(context.Background(), b, nil); !errors.Is(err, phx.ErrPubSubClosed) {
		t.Fatalf("Broadcast after Close: %v", err)
	}
	if got := br.controls(); len(got) < 2 || got[0] != "up" || got[len(got)-1] != "bye" {
		t.Fatalf("control messages %q, want up first, bye last", got)
	}
}

// Receivers deliver each sequence number of an incarnation once, in
// increasing order; a new incarnation starts over.
func TestRelayDropsCopies(t *testing.T) {
	r := startRelay(t, Config{NodeID: "A"}, &recBroker{})
	s := &countSub{}
	if err := r.Subscribe("t", s); err != nil {
		t.Fatal(err)
	}
	send := func(inc, seq uint64) {
		r.Receive(AppendEnvelope(nil, "B", inc, seq, &phx.Broadcast{Topic: "t", Event: fmt.Sprint(inc, "/", seq)}))
	}
	for _, m := range [][2]uint64{{1, 1}, {1, 2}, {1, 2}, {1, 1}, {1, 5}, {1, 3}, {1, 6}, {2, 1}, {2, 2}} {
		send(m[0], m[1])
	}
	if got, want := s.events(), []string{"1/1", "1/2", "1/5", "1/6", "2/1", "2/2"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	if d := r.Counters().Duplicates; d != 3 {
		t.Fatalf("duplicates %d, want 3", d)
	}
}

// While disconnected, broadcasts are queued; after the reconnection they
// are replayed in order, once, and the gap is reported with the count.
func TestRelayQueuesAndReplays(t *testing.T) {
	b := &recBroker{}
	bRelay := startRelay(t, Config{NodeID: "B"}, &recBroker{})
	got := &countSub{}
	if err := bRelay.Subscribe("t", got); err != nil {
		t.Fatal(err)
	}
	b.peer = bRelay
	gaps := make(chan Gap, 2)
	var events []phx.PubSubEvent
	var evMu sync.Mutex
	a := New(Config{NodeID: "A", Adapter: "test", Logger: quiet(), OnGap: func(g Gap) { gaps <- g }}, b)
	a.UseTelemetry(&phx.Telemetry{PubSub: func(e phx.PubSubEvent) { evMu.Lock(); events = append(events, e); evMu.Unlock() }})
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	bcast := func(i int) {
		t.Helper()
		if err := a.Broadcast(context.Background(), &phx.Broadcast{Topic: "t", Event: fmt.Sprint(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	bcast(1)
	waitFor(t, "the first broadcast", func() bool { return got.n() == 1 })
	a.Disconnected(errors.New("gone"))
	b.setFail(errors.New("down"))
	for i := 2; i <= 50; i++ {
		bcast(i)
	}
	if q := a.Counters().Queued; q != 49 {
		t.Fatalf("queued %d, want 49", q)
	}
	b.setFail(nil)
	a.Reconnected()
	bcast(51)
	waitFor(t, "the replay", func() bool { return got.n() == 51 })
	for i, e := range got.events() {
		if e != fmt.Sprint(i+1) {
			t.Fatalf("delivery %d is %s: out of order", i+1, e)
		}
	}
	select {
	case g := <-gaps:
		if g.Replayed != 49 || g.Dropped != 0 || !g.End.After(g.Start) {
			t.Fatalf("gap %+v", g)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no OnGap call")
	}
	c := a.Counters()
	if c.Replayed != 49 || c.Published != 51 || c.Dropped != 0 || c.Queued != 0 {
		t.Fatalf("counters %+v", c)
	}
	evMu.Lock()
	defer evMu.Unlock()
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e.Kind)
	}
	if !slices.Contains(kinds, "replayed") {
		t.Fatalf("events %q without replayed", kinds)
	}
}

// Past its bounds the queue drops broadcasts, counts them and reports
// them through OnGap and the telemetry events.
func TestRelayQueueBounds(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		n    int
		wait time.Duration
		want int64
	}{
		{"count", Config{MaxQueued: 10}, 25, 0, 15},
		{"bytes", Config{MaxQueuedBytes: 10 * (64 + 1 + 40)}, 25, 0, 15},
		{"age", Config{MaxQueueAge: 50 * time.Millisecond}, 25, 150 * time.Millisecond, 25},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := &recBroker{}
			gaps := make(chan Gap, 2)
			var mu sync.Mutex
			var dropEvents int
			cfg := c.cfg
			cfg.NodeID, cfg.OnGap = "A", func(g Gap) { gaps <- g }
			a := New(func() Config { cfg.Adapter, cfg.Logger = "test", quiet(); return cfg }(), b)
			a.UseTelemetry(&phx.Telemetry{PubSub: func(e phx.PubSubEvent) {
				if e.Kind == "publish_dropped" {
					mu.Lock()
					dropEvents++
					mu.Unlock()
				}
			}})
			if err := a.Start(); err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			a.Disconnected(errors.New("gone"))
			var full int64
			for i := range c.n {
				err := a.Broadcast(context.Background(), &phx.Broadcast{Topic: "t", Event: "e", Payload: phx.Payload{Data: []byte(fmt.Sprintf("%020d", i))}}, nil)
				if errors.Is(err, ErrQueueFull) {
					full++
				} else if err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(c.wait)
			a.Reconnected()
			select {
			case g := <-gaps:
				if g.Dropped != c.want || int64(g.Replayed) != int64(c.n)-c.want {
					t.Fatalf("gap %+v, want %d dropped, %d replayed (%d refused as full)", g, c.want, int64(c.n)-c.want, full)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no OnGap call")
			}
			mu.Lock()
			defer mu.Unlock()
			if st := a.Counters(); st.Dropped != c.want || int64(dropEvents) != c.want {
				t.Fatalf("dropped %d, %d events, want %d", st.Dropped, dropEvents, c.want)
			}
		})
	}
}

// bus is a broker shared by relays: a publish reaches, synchronously, the
// relays attached and not cut off, as a broker reaches subscribed nodes.
type bus struct {
	mu    sync.Mutex
	nodes map[string]*busNode
}

type busNode struct {
	b   *bus
	id  string
	r   *Relay
	off bool // this node is not subscribed (its connection is down)
}

func (n *busNode) Subscribe(string) error   { return nil }
func (n *busNode) Unsubscribe(string) error { return nil }

func (n *busNode) Publish(_ context.Context, msgs []Message) error {
	n.b.mu.Lock()
	if n.off {
		n.b.mu.Unlock()
		return ErrDisconnected
	}
	var to []*Relay
	for _, o := range n.b.nodes {
		if !o.off && o.r != nil {
			to = append(to, o.r)
		}
	}
	n.b.mu.Unlock()
	for _, r := range to {
		for _, m := range msgs {
			r.Receive(append([]byte(nil), m.Data...))
		}
	}
	return nil
}

func (b *bus) attach(t *testing.T, id string, cfg Config) *Relay {
	n := &busNode{b: b, id: id}
	cfg.NodeID = id
	if cfg.Adapter == "" {
		cfg.Adapter = "test"
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	// On the bus before it starts: the answers to its "up" must reach it.
	r := New(cfg, n)
	b.mu.Lock()
	n.r = r
	b.nodes[id] = n
	b.mu.Unlock()
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func (b *bus) cut(id string, off bool) {
	b.mu.Lock()
	b.nodes[id].off = off
	b.mu.Unlock()
}

// A node whose subscription was down while another node kept publishing
// gets what it missed, in order, once, when it comes back; a third node
// that never left drops the copies.
func TestRelayResendsWhatAPeerMissed(t *testing.T) {
	b := &bus{nodes: map[string]*busNode{}}
	gaps := make(chan Gap, 4)
	a := b.attach(t, "A", Config{})
	bn := b.attach(t, "B", Config{OnGap: func(g Gap) { gaps <- g }})
	c := b.attach(t, "C", Config{})
	gotB, gotC := &countSub{}, &countSub{}
	if err := bn.Subscribe("t", gotB); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe("t", gotC); err != nil {
		t.Fatal(err)
	}
	bcast := func(i int) {
		t.Helper()
		if err := a.Broadcast(context.Background(), &phx.Broadcast{Topic: "t", Event: fmt.Sprint(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 10; i++ {
		bcast(i)
	}
	waitFor(t, "10 broadcasts at B", func() bool { return gotB.n() == 10 })
	b.cut("B", true)
	bn.Disconnected(errors.New("gone"))
	for i := 11; i <= 40; i++ {
		bcast(i)
	}
	waitFor(t, "40 broadcasts at C", func() bool { return gotC.n() == 40 })
	b.cut("B", false)
	bn.Reconnected()
	bcast(41)
	waitFor(t, "41 broadcasts at B", func() bool { return gotB.n() == 41 })
	time.Sleep(50 * time.Millisecond)
	for _, s := range []*countSub{gotB, gotC} {
		want := make([]string, 41)
		for i := range want {
			want[i] = fmt.Sprint(i + 1)
		}
		if got := s.events(); !slices.Equal(got, want) {
			t.Fatalf("delivered %q", got)
		}
	}
	select {
	case g := <-gaps:
		if g.Missed != 0 {
			t.Fatalf("gap %+v", g)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no OnGap")
	}
	if ca := a.Counters(); ca.Resent < 30 {
		t.Fatalf("A resent %d, want ≥ 30", ca.Resent)
	}
	if cc := c.Counters(); cc.Duplicates < 30 {
		t.Fatalf("C dropped %d copies, want ≥ 30", cc.Duplicates)
	}
}

func knows(r *Relay, node string) bool {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	return r.seen[node] != nil
}

// What a node no longer keeps is counted as missed by the one that needed it.
func TestRelayCountsMissed(t *testing.T) {
	b := &bus{nodes: map[string]*busNode{}}
	gaps := make(chan Gap, 4)
	a := b.attach(t, "A", Config{MaxQueued: 5})
	bn := b.attach(t, "B", Config{OnGap: func(g Gap) { gaps <- g }})
	got := &countSub{}
	if err := bn.Subscribe("t", got); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B to know A", func() bool { return knows(bn, "A") })
	b.cut("B", true)
	bn.Disconnected(errors.New("gone"))
	for i := 1; i <= 20; i++ {
		if err := a.Broadcast(context.Background(), &phx.Broadcast{Topic: "t", Event: fmt.Sprint(i)}, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // A publishes each before the next, and keeps the last 5
	}
	waitFor(t, "A's publishes", func() bool { return a.Counters().Queued == 0 })
	b.cut("B", false)
	bn.Reconnected()
	select {
	case g := <-gaps:
		if g.Missed != 15 {
			t.Fatalf("gap %+v, want 15 missed", g)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no OnGap")
	}
	// The gap is reported once the resends are asked for; they may land
	// just after it.
	want := []string{"16", "17", "18", "19", "20"}
	waitFor(t, "B to get the 5 A kept", func() bool { return len(got.events()) >= len(want) })
	if got := got.events(); !slices.Equal(got, want) {
		t.Fatalf("B got %q, want the 5 A kept", got)
	}
}

// A subscriber that panics on a broadcast from another node does not take
// the receive path down.
func TestRelayReceiveContainsPanics(t *testing.T) {
	r := startRelay(t, Config{NodeID: "A"}, &recBroker{})
	after := &countSub{}
	if err := r.Subscribe("p", panicSub{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Subscribe("q", after); err != nil {
		t.Fatal(err)
	}
	r.Receive(AppendEnvelope(nil, "B", 1, 1, &phx.Broadcast{Topic: "p", Event: "e"}))
	r.Receive(AppendEnvelope(nil, "B", 1, 2, &phx.Broadcast{Topic: "q", Event: "e"}))
	if after.n() != 1 {
		t.Fatalf("delivery after a panic: %d", after.n())
	}
}

type panicSub struct{}

func (panicSub) Deliver(*phx.Broadcast) { panic("boom") }

func equal(a, b []string) bool { return slices.Equal(a, b) }

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
	r := New(Config{NodeID: "A", Adapter: "test", Logger: quiet()}, br)
	var mu sync.Mutex
	var got []phx.PubSubEvent
	r.UseTelemetry(&phx.Telemetry{PubSub: func(e phx.PubSubEvent) { mu.Lock(); got = append(got, e); mu.Unlock() }})
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	kinds := func() []string {
		mu.Lock()
		defer mu.Unlock()
		k := make([]string, len(got))
		for i, e := range got {
			k[i] = e.Kind
			if e.Adapter != "test" || e.Node != "A" {
				t.Errorf("event %+v without the adapter's name and node", e)
			}
		}
		return k
	}

	r.Disconnected(errors.New("broker gone"))
	r.Reconnected()
	waitFor(t, "replayed", func() bool { return slices.Contains(kinds(), "replayed") })
	br.setFail(errors.New("publish refused"))
	b, _ := phx.NewBroadcast("t", "e", nil)
	if err := r.Broadcast(context.Background(), b, nil); err != nil {
		t.Fatalf("a queued broadcast returned %v", err)
	}
	waitFor(t, "publish_failed", func() bool { return slices.Contains(kinds(), "publish_failed") })
	r.Receive([]byte("not an envelope"))
	if want := []string{"disconnected", "reconnected", "replayed", "publish_failed", "decode_failed"}; !slices.Equal(kinds(), want) {
		t.Fatalf("events %q, want %q", kinds(), want)
	}
	mu.Lock()
	defer mu.Unlock()
	if got[0].Err == nil || got[1].Gap <= 0 || got[3].Topic != "t" || got[4].Err == nil {
		t.Fatalf("event fields %+v", got)
	}
}

// A broadcast over the broker's limit, or made while disconnected with
// queueing off, is refused after local delivery.
func TestRelayRefusals(t *testing.T) {
	r := startRelay(t, Config{NodeID: "A", MaxQueued: -1, MaxMessage: func() int { return 100 }}, &recBroker{})
	s := &countSub{}
	if err := r.Subscribe("t", s); err != nil {
		t.Fatal(err)
	}
	big := &phx.Broadcast{Topic: "t", Event: "e", Payload: phx.Payload{Data: bytes.Repeat([]byte("x"), 200)}}
	if err := r.Broadcast(context.Background(), big, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("large broadcast: %v", err)
	}
	r.Disconnected(errors.New("gone"))
	if err := r.Broadcast(context.Background(), &phx.Broadcast{Topic: "t", Event: "e"}, nil); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("broadcast while disconnected with queueing off: %v", err)
	}
	if s.n() != 2 {
		t.Fatalf("local deliveries %d, want 2", s.n())
	}
}
