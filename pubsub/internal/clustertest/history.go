package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

// HistoryNode is one node's PubSub and shared history store.
type HistoryNode struct {
	PubSub  phx.PubSub
	History phx.HistoryPublisher
}

// HistoryContract checks the points of the phx.HistoryStore contract that
// do not depend on the broker: offsets, epochs, pages, retention by count
// and age, payload bytes, ctx. Topics are prefixed with prefix.
func HistoryContract(t *testing.T, h phx.HistoryStore, prefix string) {
	ctx := context.Background()
	topic := prefix + "contract"
	empty, err := h.Read(ctx, topic, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if empty.Epoch == "" || len(empty.Epoch) > 64 || empty.Top != 0 || empty.First != 1 || len(empty.Messages) != 0 {
		t.Fatalf("empty topic: %+v", empty)
	}
	again, _ := h.Read(ctx, topic, 0, 10)
	if again.Epoch != empty.Epoch {
		t.Fatalf("epoch of an empty topic not stable: %q then %q", empty.Epoch, again.Epoch)
	}
	opts := phx.HistoryOptions{MaxMessages: 100, MaxAge: time.Hour}
	payloads := []string{`{"n":1}`, `{ "n" : 2, "s":"\u00e9\n" }`, `{}`, `{"big":"` + strings.Repeat("x", 100_000) + `"}`, `{"n":5}`}
	for i, p := range payloads {
		pos, err := h.Append(ctx, topic, phx.HistoryMessage{Event: "e" + strconv.Itoa(i+1), Payload: []byte(p)}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if pos.Offset != uint64(i+1) || pos.Epoch != empty.Epoch {
			t.Fatalf("append %d: %+v, want offset %d in epoch %q", i+1, pos, i+1, empty.Epoch)
		}
	}
	page, err := h.Read(ctx, topic, 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	if page.Epoch != empty.Epoch || page.Top != 5 || page.First != 1 || len(page.Messages) != 3 {
		t.Fatalf("read after 2: %+v", page)
	}
	for i, m := range page.Messages {
		if m.Offset != uint64(i+3) || m.Event != "e"+strconv.Itoa(i+3) || string(m.Payload) != payloads[i+2] {
			t.Fatalf("message %d: %d %s %.40s", i, m.Offset, m.Event, m.Payload)
		}
		if time.Since(m.Time) > time.Minute || time.Until(m.Time) > time.Minute {
			t.Fatalf("message time %v", m.Time)
		}
	}
	if p, _ := h.Read(ctx, topic, 0, 2); len(p.Messages) != 2 || p.Messages[1].Offset != 2 {
		t.Fatalf("read max 2: %+v", p)
	}
	if p, _ := h.Read(ctx, topic, 5, 10); len(p.Messages) != 0 || p.Top != 5 {
		t.Fatalf("read at top: %+v", p)
	}
	other, _ := h.Read(ctx, prefix+"other", 0, 0)
	if other.Epoch == empty.Epoch {
		t.Fatal("two topics share an epoch")
	}

	// Retention by count: trims keep the epoch.
	for range 5 {
		if _, err := h.Append(ctx, topic, phx.HistoryMessage{Event: "e", Payload: []byte(`{}`)}, phx.HistoryOptions{MaxMessages: 3, MaxAge: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	page, _ = h.Read(ctx, topic, 0, 100)
	if page.Epoch != empty.Epoch || page.Top != 10 || page.First != 8 || len(page.Messages) != 3 || page.Messages[0].Offset != 8 {
		t.Fatalf("after a count trim: top %d first %d %d messages", page.Top, page.First, len(page.Messages))
	}

	// Retention by age.
	aged := prefix + "aged"
	short := phx.HistoryOptions{MaxMessages: 100, MaxAge: 300 * time.Millisecond}
	for range 3 {
		if _, err := h.Append(ctx, aged, phx.HistoryMessage{Event: "e", Payload: []byte(`{}`)}, short); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(400 * time.Millisecond)
	page, _ = h.Read(ctx, aged, 0, 100)
	if page.Top != 3 || page.First != 4 || len(page.Messages) != 0 {
		t.Fatalf("after expiry: %+v", page)
	}
	pos, err := h.Append(ctx, aged, phx.HistoryMessage{Event: "e", Payload: []byte(`{}`)}, short)
	if err != nil || pos.Offset != 4 || pos.Epoch != page.Epoch {
		t.Fatalf("append after expiry: %+v %v (epoch was %q)", pos, err, page.Epoch)
	}
	page, _ = h.Read(ctx, aged, 0, 100)
	if page.First != 4 || len(page.Messages) != 1 || page.Messages[0].Offset != 4 {
		t.Fatalf("after expiry and an append: %+v", page)
	}

	// ctx.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.Append(cctx, topic, phx.HistoryMessage{Event: "e", Payload: []byte(`{}`)}, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a canceled ctx: %v", err)
	}
	if _, err := h.Read(cctx, topic, 0, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with a canceled ctx: %v", err)
	}
	if p, _ := h.Read(ctx, topic, 0, 0); p.Top != 10 {
		t.Fatalf("a canceled Append was recorded: top %d", p.Top)
	}
}

// offsetRecorder records the offsets of the broadcasts it receives.
type offsetRecorder struct {
	mu   sync.Mutex
	offs []uint64
	bad  []string
}

func (r *offsetRecorder) Deliver(b *phx.Broadcast) {
	var p struct {
		Offset uint64 `json:"phx_offset"`
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := json.Unmarshal(b.Payload.Data, &p); err != nil || p.Offset != b.Offset() || p.Offset == 0 {
		r.bad = append(r.bad, string(b.Payload.Data))
	}
	r.offs = append(r.offs, b.Offset())
}

func (r *offsetRecorder) snapshot() ([]uint64, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.offs...), r.bad
}

// HistoryOrder has nodes 0 and 1 record n broadcasts each on one topic at
// once, and checks that the offsets are 1..2n, each once, and that every
// node's subscribers (node 2 only listens) receive them in offset order;
// node 0's excluded subscriber gets only node 1's.
func HistoryOrder(t *testing.T, nodes [3]HistoryNode, n int) {
	topic := "order:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var recs [3]*offsetRecorder
	for i := range nodes {
		recs[i] = &offsetRecorder{}
		if err := nodes[i].PubSub.Subscribe(topic, recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	excluded := &offsetRecorder{}
	if err := nodes[0].PubSub.Subscribe(topic, excluded); err != nil {
		t.Fatal(err)
	}
	opts := phx.HistoryOptions{MaxMessages: 4 * n}
	var wg sync.WaitGroup
	got := make([][]uint64, 2)
	errs := make(chan error, 2)
	start := time.Now()
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var from phx.Subscriber
			if w == 0 {
				from = excluded
			}
			for i := range n {
				b, _ := phx.NewBroadcast(topic, "e", map[string]any{"w": w, "i": i})
				pos, err := nodes[w].History.AppendPublish(context.Background(), b, from, opts)
				if err != nil {
					errs <- err
					return
				}
				got[w] = append(got[w], pos.Offset)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	seen := make(map[uint64]int)
	for w := range got {
		for i, o := range got[w] {
			if i > 0 && o <= got[w][i-1] {
				t.Fatalf("node %d got offset %d after %d", w, o, got[w][i-1])
			}
			seen[o]++
		}
	}
	for o := uint64(1); o <= uint64(2*n); o++ {
		if seen[o] != 1 {
			t.Fatalf("offset %d assigned %d times", o, seen[o])
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for i, r := range recs {
		for {
			offs, bad := r.snapshot()
			if len(bad) > 0 {
				t.Fatalf("node %d: payloads without their phx_offset: %.200s", i, bad)
			}
			if len(offs) >= 2*n {
				for j, o := range offs {
					if o != uint64(j+1) {
						t.Fatalf("node %d delivered offset %d at place %d (of %d): %v", i, o, j+1, len(offs), offs[max(0, j-3):min(len(offs), j+3)])
					}
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d delivered %d of %d", i, len(offs), 2*n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	ex, _ := excluded.snapshot()
	want := make(map[uint64]bool)
	for _, o := range got[1] {
		want[o] = true
	}
	if len(ex) != len(got[1]) {
		t.Fatalf("excluded subscriber got %d broadcasts, want node 1's %d", len(ex), len(got[1]))
	}
	for _, o := range ex {
		if !want[o] {
			t.Fatalf("excluded subscriber got its own node's offset %d", o)
		}
	}
	t.Logf("%d appends from 2 nodes on one topic in %v (%.0f/s), delivered in offset order on 3 nodes", 2*n, elapsed, float64(2*n)/elapsed.Seconds())
}

// historyRoom is a channel that accepts every join.
type historyRoom struct{}

func (historyRoom) Join(*phx.Socket, phx.Payload) (any, error) { return nil, nil }

// startHistoryNode serves a phx server on hn with the "hist:*" route
// recorded; extra, when set, adds handlers to its mux. Connection IDs are
// "user:" + the user param.
func startHistoryNode(t *testing.T, hn HistoryNode, extra func(*http.ServeMux)) (*phx.Server, string) {
	srv := phx.NewServer(&phx.Options{
		PubSub:            hn.PubSub,
		History:           hn.History,
		Logger:            Logger(),
		MaxQueuedMessages: 4096,
		MaxChannelQueue:   8192,
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			return phx.Assigns{"user": info.Params.Get("user")}, nil
		},
		ID: func(a phx.Assigns) string { return "user:" + a["user"].(string) },
	})
	srv.Channel("hist:*", func() phx.Channel { return historyRoom{} },
		phx.WithHistory(phx.HistoryOptions{MaxMessages: 20_000, MaxAge: time.Minute, MaxReplay: 20_000}))
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	if extra != nil {
		extra(mux)
	}
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket"
}

// HistoryRecovery runs two phx nodes on the shared store: a client joins
// on node A, is disconnected server-side while both nodes broadcast, and
// rejoins on node B with its last position; it must get every message it
// missed exactly once, in order, then the live ones.
func HistoryRecovery(t *testing.T, a, b HistoryNode) {
	srvA, urlA := startHistoryNode(t, a, nil)
	srvB, urlB := startHistoryNode(t, b, nil)
	topic := "hist:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	const total = 400
	isMsg := func(m *Frame) bool { return m.Topic == topic && m.Event == "msg" }

	c1 := DialClient(t, urlA, "u1")
	r := c1.JoinOK(topic, map[string]any{"phx_position": map[string]any{"epoch": "", "offset": 0}})
	var start struct {
		Position phx.Position `json:"phx_position"`
	}
	if err := json.Unmarshal(r.Response, &start); err != nil || start.Position.Epoch == "" {
		t.Fatalf("join reply without a position: %s", r.Response)
	}

	var sent sync.WaitGroup
	var count atomic.Int64
	sent.Add(1)
	go func() {
		defer sent.Done()
		for i := 1; i <= total; i++ {
			srv := srvA
			if i%2 == 0 {
				srv = srvB
			}
			if err := srv.Broadcast(topic, "msg", map[string]int{"i": i}); err != nil {
				t.Errorf("broadcast %d: %v", i, err)
				return
			}
			count.Store(int64(i))
			time.Sleep(time.Millisecond) // the rejoin happens while broadcasts go on
		}
	}()
	c1.Wait("the first 50 broadcasts", isMsg, 50, 10*time.Second)
	if err := srvA.Disconnect("user:u1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c1.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client not disconnected")
	}
	before := c1.Matching(isMsg)
	last := uint64(0)
	for i, m := range before {
		off, err := strconv.ParseUint(m.Field("phx_offset"), 10, 64)
		if err != nil || off != uint64(i+1) {
			t.Fatalf("before the disconnect, message %d has offset %q", i+1, m.Field("phx_offset"))
		}
		last = off
	}

	for count.Load() < total/2 { // missed messages to replay, more to come live
		time.Sleep(time.Millisecond)
	}
	c2 := DialClient(t, urlB, "u1")
	r = c2.JoinOK(topic, map[string]any{"phx_position": phx.Position{Epoch: start.Position.Epoch, Offset: last}})
	var rec struct {
		Recovered bool `json:"recovered"`
	}
	if err := json.Unmarshal(r.Response, &rec); err != nil || !rec.Recovered {
		t.Fatalf("rejoin on node B not recovered: %s", r.Response)
	}
	sent.Wait()
	after := c2.Wait("the rest of the broadcasts", isMsg, total-int(last), 20*time.Second)
	time.Sleep(200 * time.Millisecond) // duplicates would arrive by now
	after = c2.Matching(isMsg)
	if len(after) != total-int(last) {
		t.Fatalf("after rejoining got %d messages, want %d", len(after), total-int(last))
	}
	for i, m := range after {
		want := last + uint64(i) + 1
		if m.Field("phx_offset") != strconv.FormatUint(want, 10) {
			t.Fatalf("after rejoining, message %d has offset %s, want %d", i+1, m.Field("phx_offset"), want)
		}
		if m.Field("i") != strconv.FormatUint(want, 10) {
			t.Fatalf("offset %d carries broadcast %s", want, m.Field("i"))
		}
	}
	var replayed struct {
		Replayed int `json:"replayed"`
	}
	_ = json.Unmarshal(r.Response, &replayed)
	t.Logf("client left node A after offset %d of %d, rejoined on node B: %d replayed, %d live, each once, in order",
		last, total, replayed.Replayed, len(after)-replayed.Replayed)
}
