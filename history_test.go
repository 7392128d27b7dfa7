package phx_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

// histRoom is a channel whose intercepted "secret" events go through
// HandleOut, which pushes them as "censored".
type histRoom struct{}

func (histRoom) Join(s *phx.Socket, p phx.Payload) (any, error) {
	return map[string]any{"welcome": true}, nil
}
func (histRoom) Intercept() []string { return []string{"secret"} }
func (histRoom) HandleOut(s *phx.Socket, event string, p phx.Payload) {
	_ = s.Push("censored", p)
}

func newHistoryServer(t *testing.T, o phx.HistoryOptions) *testServer {
	t.Helper()
	return newTestServer(t, nil, func(s *phx.Server) {
		s.Channel("hist:*", func() phx.Channel { return histRoom{} }, phx.WithHistory(o))
		s.Channel("plain:*", func() phx.Channel { return histRoom{} })
	})
}

// joinReply joins topic with params and returns the reply's response.
func joinReply(t *testing.T, c *wsClient, topic, ref string, params any) map[string]any {
	t.Helper()
	c.send(ref, ref, topic, "phx_join", params)
	return replyResponse(t, c)
}

// replyResponse reads an ok join reply and returns its response.
func replyResponse(t *testing.T, c *wsClient) map[string]any {
	t.Helper()
	var msg []any
	if err := json.Unmarshal([]byte(c.recv()), &msg); err != nil {
		t.Fatal(err)
	}
	if msg[3] != "phx_reply" {
		t.Fatalf("want the join reply, got %v", msg)
	}
	reply := msg[4].(map[string]any)
	if reply["status"] != "ok" {
		t.Fatalf("join refused: %v", reply)
	}
	return reply["response"].(map[string]any)
}

func position(t *testing.T, resp map[string]any) phx.Position {
	t.Helper()
	raw, _ := json.Marshal(resp["phx_position"])
	var p phx.Position
	if err := json.Unmarshal(raw, &p); err != nil || p.Epoch == "" {
		t.Fatalf("reply has no phx_position: %v", resp)
	}
	return p
}

func TestHistoryRecovery(t *testing.T) {
	ts := newHistoryServer(t, phx.HistoryOptions{MaxMessages: 100})
	c := dial(t, ts.url, "", nil)
	resp := joinReply(t, c, "hist:1", "1", map[string]any{})
	if resp["welcome"] != true {
		t.Fatalf("the app's reply is kept: %v", resp)
	}
	if _, ok := resp["recovered"]; ok {
		t.Fatalf("no position given, no recovered: %v", resp)
	}
	start := position(t, resp)
	if start.Offset != 0 {
		t.Fatalf("empty topic at offset %d", start.Offset)
	}
	for i := 1; i <= 3; i++ {
		if err := ts.Broadcast("hist:1", "msg", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
		c.expect(fmt.Sprintf(`[null,null,"hist:1","msg",{"n":%d,"phx_offset":%d}]`, i, i))
	}
	// Leave, miss three messages (one intercepted), come back at offset 3.
	c.send("1", "2", "hist:1", "phx_leave", nil)
	c.awaitReply("2")
	c.expect(`["1","1","hist:1","phx_close",{}]`)
	for i := 4; i <= 6; i++ {
		ev := "msg"
		if i == 5 {
			ev = "secret"
		}
		if err := ts.Broadcast("hist:1", ev, map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	resp = joinReply(t, c, "hist:1", "3", map[string]any{"phx_position": map[string]any{"epoch": start.Epoch, "offset": 3}})
	if resp["recovered"] != true || resp["replayed"] != 3.0 {
		t.Fatalf("recovery reply: %v", resp)
	}
	if p := position(t, resp); p != (phx.Position{Epoch: start.Epoch, Offset: 6}) {
		t.Fatalf("position %v", p)
	}
	c.expect(`["3",null,"hist:1","msg",{"n":4,"phx_offset":4}]`)
	c.expect(`["3",null,"hist:1","censored",{"n":5,"phx_offset":5}]`)
	c.expect(`["3",null,"hist:1","msg",{"n":6,"phx_offset":6}]`)
	if err := ts.Broadcast("hist:1", "msg", map[string]int{"n": 7}); err != nil {
		t.Fatal(err)
	}
	c.expect(`[null,null,"hist:1","msg",{"n":7,"phx_offset":7}]`)

	// A first join (empty epoch, offset 0) gets the retained backlog.
	d := dial(t, ts.url, "", nil)
	resp = joinReply(t, d, "hist:1", "1", map[string]any{"phx_position": map[string]any{"epoch": "", "offset": 0}})
	if resp["recovered"] != true || resp["replayed"] != 7.0 {
		t.Fatalf("first join: %v", resp)
	}
	for i := 1; i <= 7; i++ {
		f := d.recv()
		if !strings.Contains(f, fmt.Sprintf(`"phx_offset":%d}`, i)) {
			t.Fatalf("backlog %d: %s", i, f)
		}
	}

	// Routes without history: no position, no offsets.
	resp = joinReply(t, c, "plain:1", "9", map[string]any{"phx_position": map[string]any{"epoch": "x", "offset": 1}})
	if len(resp) != 1 {
		t.Fatalf("plain route reply: %v", resp)
	}
	if err := ts.Broadcast("plain:1", "msg", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	c.expect(`[null,null,"plain:1","msg",{"n":1}]`)
}

// TestHistoryBadPositions: anything but a valid position of this topic's
// current epoch gets a clean recovered: false and no replay.
func TestHistoryBadPositions(t *testing.T) {
	ts := newHistoryServer(t, phx.HistoryOptions{MaxMessages: 5, MaxReplay: 3})
	c := dial(t, ts.url, "", nil)
	epoch := position(t, joinReply(t, c, "hist:a", "1", map[string]any{})).Epoch
	other := position(t, joinReply(t, c, "hist:b", "2", map[string]any{})).Epoch
	if epoch == other {
		t.Fatal("two topics share an epoch")
	}
	for i := 1; i <= 8; i++ {
		if err := ts.Broadcast("hist:a", "msg", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
		c.recv()
	}
	d := dial(t, ts.url, "", nil)
	cases := []struct {
		name string
		pos  any
	}{
		{"another topic's epoch", map[string]any{"epoch": other, "offset": 7}},
		{"forged epoch", map[string]any{"epoch": "deadbeef", "offset": 7}},
		{"ahead of the topic", map[string]any{"epoch": epoch, "offset": 9}},
		{"huge", map[string]any{"epoch": epoch, "offset": json.Number("18446744073709551615")}},
		{"past uint64", map[string]any{"epoch": epoch, "offset": json.Number("18446744073709551616")}},
		{"negative", map[string]any{"epoch": epoch, "offset": -1}},
		{"fraction", map[string]any{"epoch": epoch, "offset": 6.5}},
		{"exponent", map[string]any{"epoch": epoch, "offset": json.Number("7e0")}},
		{"string offset", map[string]any{"epoch": epoch, "offset": "7"}},
		{"no offset", map[string]any{"epoch": epoch}},
		{"epoch not a string", map[string]any{"epoch": 12, "offset": 7}},
		{"long epoch", map[string]any{"epoch": strings.Repeat("a", 100), "offset": 7}},
		{"empty epoch, offset 3", map[string]any{"epoch": "", "offset": 3}},
		{"not an object", "7"},
		{"array", []any{epoch, 7}},
		{"trimmed", map[string]any{"epoch": epoch, "offset": 1}},
		{"more than MaxReplay", map[string]any{"epoch": epoch, "offset": 4}},
	}
	for i, tc := range cases {
		ref := fmt.Sprint(10 + i)
		// Rejoining the topic replaces the channel: phx_close of the old
		// one first.
		if i > 0 {
			d.send(ref, ref, "hist:a", "phx_join", map[string]any{"phx_position": tc.pos})
			d.expect(fmt.Sprintf(`["%d","%d","hist:a","phx_close",{}]`, 9+i, 9+i))
		}
		var resp map[string]any
		if i == 0 {
			resp = joinReply(t, d, "hist:a", ref, map[string]any{"phx_position": tc.pos})
		} else {
			resp = replyResponse(t, d)
		}
		if resp["recovered"] != false || resp["replayed"] != 0.0 {
			t.Errorf("%s: %v", tc.name, resp)
		}
		if p := position(t, resp); p != (phx.Position{Epoch: epoch, Offset: 8}) {
			t.Errorf("%s: position %v", tc.name, p)
		}
		d.expectNothing(10 * time.Millisecond) // never a replayed message
	}
	// Still fine afterwards: a valid position within MaxReplay recovers.
	d.send("99", "99", "hist:a", "phx_join", map[string]any{"phx_position": map[string]any{"epoch": epoch, "offset": 6}})
	d.recv() // phx_close of the last case's channel
	resp := replyResponse(t, d)
	if resp["recovered"] != true || resp["replayed"] != 2.0 {
		t.Fatalf("valid position: %v", resp)
	}
}

func TestBroadcastWith(t *testing.T) {
	ts := newHistoryServer(t, phx.HistoryOptions{})
	c := dial(t, ts.url, "", nil)
	joinReply(t, c, "hist:1", "1", map[string]any{})
	joinReply(t, c, "plain:1", "2", map[string]any{})
	ctx := context.Background()

	pos, err := ts.BroadcastWith(ctx, "hist:1", "msg", nil, phx.BroadcastOptions{})
	if err != nil || pos.Offset != 1 {
		t.Fatalf("route history: %v %v", pos, err)
	}
	c.expect(`[null,null,"hist:1","msg",{"phx_offset":1}]`)
	pos, err = ts.BroadcastWith(ctx, "hist:1", "msg", nil, phx.BroadcastOptions{NoHistory: true})
	if err != nil || pos != (phx.Position{}) {
		t.Fatalf("NoHistory: %v %v", pos, err)
	}
	c.expect(`[null,null,"hist:1","msg",{}]`)
	pos, err = ts.BroadcastWith(ctx, "plain:1", "msg", map[string]int{"a": 1}, phx.BroadcastOptions{History: &phx.HistoryOptions{MaxMessages: 1}})
	if err != nil || pos.Offset != 1 {
		t.Fatalf("per call: %v %v", pos, err)
	}
	c.expect(`[null,null,"plain:1","msg",{"a":1,"phx_offset":1}]`)
	if _, err := ts.BroadcastWith(ctx, "hist:1", "bin", phx.Binary{1, 2}, phx.BroadcastOptions{}); err != nil {
		t.Fatal(err)
	}
	if f := c.recvFrame(); !f.binary {
		t.Fatalf("binary broadcast: %s", f.data)
	}
	// LocalBroadcast is never recorded.
	if err := ts.LocalBroadcast("hist:1", "local", nil); err != nil {
		t.Fatal(err)
	}
	c.expect(`[null,null,"hist:1","local",{}]`)
	page, err := ts.History().Read(ctx, "hist:1", 0, 10)
	if err != nil || len(page.Messages) != 1 || page.Top != 1 {
		t.Fatalf("stored: %+v %v", page, err)
	}

	// A failing store fails the broadcast: nothing is sent.
	fs := newTestServer(t, &phx.Options{History: failingStore{}}, func(s *phx.Server) {
		s.Channel("hist:*", func() phx.Channel { return histRoom{} }, phx.WithHistory(phx.HistoryOptions{}))
	})
	f := dial(t, fs.url, "", nil)
	f.send("1", "1", "hist:1", "phx_join", map[string]any{"phx_position": map[string]any{"epoch": "", "offset": 0}})
	f.expect(`["1","1","hist:1","phx_reply",{"status":"ok","response":{"welcome":true,"recovered":false,"replayed":0}}]`)
	if err := fs.Broadcast("hist:1", "msg", nil); !errors.Is(err, phx.ErrHistoryUnavailable) {
		t.Fatalf("broadcast with a failing store: %v", err)
	}
	f.expectNothing(20 * time.Millisecond)
}

type failingStore struct{}

func (failingStore) Append(context.Context, string, phx.HistoryMessage, phx.HistoryOptions) (phx.Position, error) {
	return phx.Position{}, fmt.Errorf("test store: %w", phx.ErrHistoryUnavailable)
}

func (failingStore) Read(context.Context, string, uint64, int) (phx.HistoryPage, error) {
	return phx.HistoryPage{}, fmt.Errorf("test store: %w", phx.ErrHistoryUnavailable)
}

func TestMemoryHistory(t *testing.T) {
	ctx := context.Background()
	h := phx.NewMemoryHistory()
	o := phx.HistoryOptions{MaxMessages: 3}
	for i := 1; i <= 5; i++ {
		pos, err := h.Append(ctx, "t", phx.HistoryMessage{Event: "e", Payload: []byte(fmt.Sprintf(`{"i":%d}`, i))}, o)
		if err != nil || pos.Offset != uint64(i) {
			t.Fatalf("append %d: %v %v", i, pos, err)
		}
	}
	page, err := h.Read(ctx, "t", 0, 10)
	if err != nil || page.Top != 5 || page.First != 3 || len(page.Messages) != 3 || page.Messages[0].Offset != 3 {
		t.Fatalf("after trim: %+v %v", page, err)
	}
	page, _ = h.Read(ctx, "t", 3, 1)
	if len(page.Messages) != 1 || page.Messages[0].Offset != 4 || string(page.Messages[0].Payload) != `{"i":4}` {
		t.Fatalf("read after 3: %+v", page)
	}
	if page, _ = h.Read(ctx, "t", 5, 10); len(page.Messages) != 0 {
		t.Fatalf("read at top: %+v", page)
	}
	empty, _ := h.Read(ctx, "none", 0, 10)
	if empty.Epoch == "" || empty.Epoch == page.Epoch || empty.Top != 0 || empty.First != 1 {
		t.Fatalf("empty topic: %+v", empty)
	}
	if again, _ := h.Read(ctx, "none", 0, 10); again.Epoch != empty.Epoch {
		t.Fatal("an empty topic's epoch changed between reads")
	}
	if h2, _ := phx.NewMemoryHistory().Read(ctx, "t", 0, 1); h2.Epoch == page.Epoch {
		t.Fatal("a new store (a restart) keeps the epoch")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.Read(cctx, "t", 0, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v", err)
	}

	// Age bound.
	aged := phx.NewMemoryHistory()
	if _, err := aged.Append(ctx, "t", phx.HistoryMessage{Payload: []byte(`{}`)}, phx.HistoryOptions{MaxAge: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if page, _ := aged.Read(ctx, "t", 0, 10); len(page.Messages) != 0 || page.First != 2 || page.Top != 1 {
		t.Fatalf("expired: %+v", page)
	}
}

// otherPubSub is a PubSub that is not the in-memory one, as an adapter
// spanning nodes would be.
type otherPubSub struct{ *phx.MemoryPubSub }

// A route with history on the default in-memory store is logged as a
// mistake when the PubSub may span nodes, and only then.
func TestMemoryHistoryAcrossNodesWarns(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts phx.Options
		warn bool
	}{
		{"memory pubsub", phx.Options{}, false},
		{"adapter, memory history", phx.Options{PubSub: otherPubSub{phx.NewMemoryPubSub()}}, true},
		{"adapter, shared store", phx.Options{PubSub: otherPubSub{phx.NewMemoryPubSub()}, History: failingStore{}}, false},
	} {
		var logs syncWriter
		o := tc.opts
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		srv := phx.NewServer(&o)
		srv.Channel("plain:*", func() phx.Channel { return histRoom{} })
		srv.Channel("hist:*", func() phx.Channel { return histRoom{} }, phx.WithHistory(phx.HistoryOptions{}))
		got := strings.Contains(logs.String(), "in-memory history store while the PubSub may span nodes")
		if got != tc.warn {
			t.Errorf("%s: warned %v, want %v; logs:\n%s", tc.name, got, tc.warn, logs.String())
		}
		if tc.warn && (!strings.Contains(logs.String(), `pattern=hist:*`) || strings.Count(logs.String(), "\n") != 1) {
			t.Errorf("%s: want one warning naming hist:*; logs:\n%s", tc.name, logs.String())
		}
	}
}
