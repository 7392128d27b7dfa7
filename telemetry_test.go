package phx_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
	"github.com/phxgo/phx/phxtest"
)

// eventLog records every Telemetry event, in order.
type eventLog struct {
	mu     sync.Mutex
	events []any
	added  chan struct{}
}

func newEventLog() (*eventLog, *phx.Telemetry) {
	l := &eventLog{added: make(chan struct{}, 1024)}
	return l, &phx.Telemetry{
		SocketConnected:   func(e phx.SocketConnected) { l.add(e) },
		SocketClosed:      func(e phx.SocketClosed) { l.add(e) },
		ChannelJoined:     func(e phx.ChannelJoined) { l.add(e) },
		ChannelHandledIn:  func(e phx.ChannelHandledIn) { l.add(e) },
		ChannelTerminated: func(e phx.ChannelTerminated) { l.add(e) },
	}
}

func (l *eventLog) add(e any) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
	l.added <- struct{}{}
}

// next returns the next event of type T, skipping others.
func next[T any](t *testing.T, l *eventLog) T {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		l.mu.Lock()
		for i, e := range l.events {
			if v, ok := e.(T); ok {
				l.events = append(l.events[:i:i], l.events[i+1:]...)
				l.mu.Unlock()
				return v
			}
		}
		l.mu.Unlock()
		select {
		case <-l.added:
		case <-deadline:
			var zero T
			t.Fatalf("no %T event within 5s", zero)
			return zero
		}
	}
}

func TestTelemetryEvents(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		events, tel := newEventLog()
		ts, _ := newRoomServer(t, &phx.Options{Telemetry: tel, JoinTimeout: 300 * time.Millisecond})
		c := dialMode(t, ts, m, "user=tel&vsn=2.0.0")
		connected := next[phx.SocketConnected](t, events)
		if connected.Err != nil || connected.Transport != string(m) || connected.ID != "users_socket:tel" || connected.Vsn != "2.0.0" {
			t.Fatalf("SocketConnected %+v", connected)
		}

		c.join("room:t", "1", map[string]any{})
		if j := next[phx.ChannelJoined](t, events); j.Route != "room:*" || j.Topic != "room:t" || j.Status != "ok" || j.Transport != string(m) {
			t.Fatalf("ChannelJoined %+v", j)
		}
		c.send("2", "2", "room:u", "phx_join", map[string]any{"deny": true})
		c.recv()
		if j := next[phx.ChannelJoined](t, events); j.Status != "error" || j.Topic != "room:u" {
			t.Fatalf("refused ChannelJoined %+v", j)
		}
		c.send("3", "3", "room:v", "phx_join", map[string]any{"sleep_ms": 600})
		c.recv()
		if j := next[phx.ChannelJoined](t, events); j.Status != "timeout" || j.Duration < 300*time.Millisecond {
			t.Fatalf("timed-out ChannelJoined %+v", j)
		}

		for _, tc := range []struct{ event, status string }{
			{"echo", "ok"}, {"fail", "error"}, {"custom_status", "later"}, {"noreply", ""},
		} {
			c.send("1", tc.event, "room:t", tc.event, map[string]any{})
			if tc.status != "" {
				c.recv()
			}
			h := next[phx.ChannelHandledIn](t, events)
			if h.Event != tc.event || h.Status != tc.status || h.Route != "room:*" || h.Topic != "room:t" {
				t.Fatalf("ChannelHandledIn for %s: %+v, want status %q", tc.event, h, tc.status)
			}
		}
		c.send("1", "9", "room:t", "crash", map[string]any{})
		c.recv() // phx_error
		if h := next[phx.ChannelHandledIn](t, events); h.Event != "crash" || h.Status != "crash" {
			t.Fatalf("ChannelHandledIn for a panic: %+v", h)
		}
		var pe *phx.PanicError
		if term := next[phx.ChannelTerminated](t, events); term.Topic != "room:t" || !errors.As(term.Reason, &pe) || term.Lifetime <= 0 {
			t.Fatalf("ChannelTerminated %+v", term)
		}

		if err := ts.Disconnect("users_socket:tel"); err != nil {
			t.Fatal(err)
		}
		c.expectClosed(websocket.StatusGoingAway)
		closed := next[phx.SocketClosed](t, events)
		if closed.Code != 1001 || closed.Reason != "disconnected" || closed.Transport != string(m) ||
			closed.FramesIn != 8 || closed.FramesOut < 7 || closed.Lifetime <= 0 {
			t.Fatalf("SocketClosed %+v (want code 1001, 8 frames in, at least 7 out)", closed)
		}
	})
}

func TestTelemetryRefusedConnect(t *testing.T) {
	t.Parallel()
	events, tel := newEventLog()
	ts, _ := newRoomServer(t, &phx.Options{Telemetry: tel})
	if _, err := tryDial(t, ts.url, "user=bad&vsn=2.0.0", nil); err == nil {
		t.Fatal("user=bad connected")
	}
	e := next[phx.SocketConnected](t, events)
	var refused *phx.RefusedError
	if !errors.As(e.Err, &refused) || refused.Status != http.StatusForbidden || e.ID != "" {
		t.Fatalf("SocketConnected %+v, want a 403 RefusedError", e)
	}
}

// A panicking hook is contained: the server logs it and carries on.
func TestTelemetryHookPanics(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		boom := func() { panic("hook bug") }
		ts, _ := newRoomServer(t, &phx.Options{Telemetry: &phx.Telemetry{
			SocketConnected:  func(phx.SocketConnected) { boom() },
			ChannelJoined:    func(phx.ChannelJoined) { boom() },
			ChannelHandledIn: func(phx.ChannelHandledIn) { boom() },
		}})
		c := dialMode(t, ts, m, "user=p&vsn=2.0.0")
		c.join("room:p", "1", map[string]any{})
		c.send("1", "2", "room:p", "echo", map[string]any{"a": 1})
		c.expect(`["1","2","room:p","phx_reply",{"status":"ok","response":{"a":1}}]`)
		c.send("1", "3", "room:p", "echo", map[string]any{"a": 2})
		c.expect(`["1","3","room:p","phx_reply",{"status":"ok","response":{"a":2}}]`)
	}, modeWebSocket, modePipe)
}

type requestIDKey struct{}

// The upgrade request's context values reach the channel's context; its
// cancellation does not.
func TestConnectionContextCarriesRequestValues(t *testing.T) {
	t.Parallel()
	got := make(chan any, 1)
	inEvents := make(chan any, 2)
	srv := phx.NewServer(&phx.Options{Logger: quietLogger(), Telemetry: &phx.Telemetry{
		SocketConnected: func(e phx.SocketConnected) { inEvents <- e.Context.Value(requestIDKey{}) },
		ChannelJoined:   func(e phx.ChannelJoined) { inEvents <- e.Context.Value(requestIDKey{}) },
	}})
	srv.Channel("ctx:*", func() phx.Channel { return ctxChannel{got} })
	withID := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, "req-42")))
	})
	hs := httptest.NewServer(withID)
	t.Cleanup(func() { srv.Shutdown(context.Background()); hs.Close() })
	c := dial(t, "ws"+strings.TrimPrefix(hs.URL, "http")+"/socket", "vsn=2.0.0", nil)
	c.join("ctx:1", "1", map[string]any{})
	if v := <-got; v != "req-42" {
		t.Fatalf("request ID in the channel's context: %v, want req-42", v)
	}
	for _, name := range []string{"SocketConnected", "ChannelJoined"} {
		if v := <-inEvents; v != "req-42" {
			t.Fatalf("request ID in the %s event's context: %v, want req-42", name, v)
		}
	}
}

type ctxChannel struct{ got chan any }

func (c ctxChannel) Join(s *phx.Socket, _ phx.Payload) (any, error) {
	if s.Context().Err() != nil {
		c.got <- "cancelled"
		return nil, nil
	}
	c.got <- s.Context().Value(requestIDKey{})
	return nil, nil
}

// Connections made by AcceptAuthenticated (phxtest) pair their
// SocketConnected with a SocketClosed too, so gauges stay right.
func TestTelemetryAcceptAuthenticated(t *testing.T) {
	t.Parallel()
	events, tel := newEventLog()
	srv := phx.NewServer(&phx.Options{Logger: quietLogger(), Telemetry: tel})
	sock := phxtest.NewSocketID(t, srv, phx.Assigns{"user": "t"}, "users_socket:t")
	if e := next[phx.SocketConnected](t, events); e.Transport != "memory" || e.ID != "users_socket:t" || e.Err != nil {
		t.Fatalf("SocketConnected %+v", e)
	}
	sock.Close()
	if e := next[phx.SocketClosed](t, events); e.Transport != "memory" || e.ID != "users_socket:t" {
		t.Fatalf("SocketClosed %+v", e)
	}
}

func TestTelemetryBroadcastPresenceAndDrain(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bcasts []phx.BroadcastSent
	var diffs []phx.PresenceDiffSent
	var drains []phx.DrainProgress
	srv := phx.NewServer(&phx.Options{
		Logger:             quietLogger(),
		DrainBatchSize:     2,
		DrainBatchInterval: time.Millisecond,
		Telemetry: &phx.Telemetry{
			Broadcast:    func(e phx.BroadcastSent) { mu.Lock(); bcasts = append(bcasts, e); mu.Unlock() },
			PresenceDiff: func(e phx.PresenceDiffSent) { mu.Lock(); diffs = append(diffs, e); mu.Unlock() },
			Drain:        func(e phx.DrainProgress) { mu.Lock(); drains = append(drains, e); mu.Unlock() },
		},
	})
	p := phx.NewPresence(srv, &phx.PresenceOptions{BatchInterval: -1})
	srv.Channel("lobby", func() phx.Channel { return lobby{p} })
	peers := make([]*pipePeer, 5)
	for i := range peers {
		peers[i] = dialPipe(t, srv, fmt.Sprintf("vsn=2.0.0&user=u%d", i))
	}
	sock := phxtest.NewSocket(t, srv, phx.Assigns{"user": "ann"})
	sock.JoinOK("lobby", nil)
	if err := srv.Broadcast("lobby", "news", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	var news *phx.BroadcastSent
	for i := range bcasts {
		if bcasts[i].Event == "news" {
			news = &bcasts[i]
		}
	}
	mu.Unlock()
	// Subscribers: the channel and phxtest's watch of the topic.
	if news == nil || news.Topic != "lobby" || news.Subscribers != 2 || news.Local || news.Err != nil {
		t.Fatalf("Broadcast events %+v", bcasts)
	}
	interopEventually(t, 3*time.Second, "a PresenceDiff event for ann's join", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range diffs {
			if d.Topic == "lobby" && d.Joins == 1 && d.Leaves == 0 {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", diffs)
	})
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []phx.DrainProgress{{Closed: 2, Total: 6, Batch: 1}, {Closed: 4, Total: 6, Batch: 2}, {Closed: 6, Total: 6, Batch: 3}}
	if fmt.Sprint(drains) != fmt.Sprint(want) {
		t.Fatalf("Drain events %+v, want %+v", drains, want)
	}
}

func TestTelemetryHandledOutAndPubSubWiring(t *testing.T) {
	t.Parallel()
	outs := make(chan phx.ChannelHandledOut, 4)
	ps := &telemetryPubSub{MemoryPubSub: phx.NewMemoryPubSub()}
	tel := &phx.Telemetry{ChannelHandledOut: func(e phx.ChannelHandledOut) { outs <- e }}
	srv := phx.NewServer(&phx.Options{Logger: quietLogger(), PubSub: ps, Telemetry: tel})
	if ps.got != tel {
		t.Fatal("NewServer did not hand Options.Telemetry to the PubSub's UseTelemetry")
	}
	srv.Channel("room:*", func() phx.Channel { return &room{} })
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	c := dialPipe(t, srv, "user=bo&vsn=2.0.0")
	c.join("room:o", "1", map[string]any{})
	if err := srv.Broadcast("room:o", "secret", map[string]any{}); err != nil { // room intercepts "secret"
		t.Fatal(err)
	}
	c.expect(`["1",null,"room:o","secret",{"seen_by":null}]`) // no Connect: no user
	select {
	case e := <-outs:
		if e.Route != "room:*" || e.Topic != "room:o" || e.Event != "secret" || e.Duration <= 0 {
			t.Fatalf("ChannelHandledOut %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no ChannelHandledOut event")
	}
}

// telemetryPubSub is a MemoryPubSub that records the hooks NewServer gives it.
type telemetryPubSub struct {
	*phx.MemoryPubSub
	got *phx.Telemetry
}

func (p *telemetryPubSub) UseTelemetry(t *phx.Telemetry) { p.got = t }
