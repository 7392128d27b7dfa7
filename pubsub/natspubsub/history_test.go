package natspubsub

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/phxgo/phx"
	"github.com/phxgo/phx/pubsub/internal/clustertest"
)

// startJetStream runs an embedded NATS server with JetStream on a random
// loopback port, its store in a temporary directory.
func startJetStream(t testing.TB) *server.Server {
	t.Helper()
	dir := t.TempDir()
	start := func(port int) *server.Server {
		srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		if !srv.ReadyForConnections(5 * time.Second) {
			t.Fatal("nats-server not ready after 5s")
		}
		return srv
	}
	srv := start(server.RANDOM_PORT)
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

// historyNode dials a PubSub and its History on srv.
func historyNode(t testing.TB, srv *server.Server, id string) clustertest.HistoryNode {
	t.Helper()
	ps, err := Dial(srv.ClientURL(), &Options{NodeID: id, Logger: clustertest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	// A Timeout well above the default: these tests run under -race on
	// shared machines, where a call may take more than the default 500 ms without the
	// server being down (TestHistoryFrozenServerFailsFast tests that).
	h, err := NewHistory(ps, &HistoryConfig{Storage: jetstream.MemoryStorage, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		ps.Close()
	})
	return clustertest.HistoryNode{PubSub: ps, History: h}
}

func TestHistoryContract(t *testing.T) {
	srv := startJetStream(t)
	clustertest.HistoryContract(t, historyNode(t, srv, "A").History, "nats:")
}

// The epoch changes when the history is lost: the topic purged, the
// stream deleted (the next append recreates it).
func TestHistoryEpochChangesWhenLost(t *testing.T) {
	srv := startJetStream(t)
	h := historyNode(t, srv, "A").History.(*History)
	other := historyNode(t, srv, "B").History.(*History) // its cache must not keep the old epoch either
	ctx := context.Background()
	appendN := func(h *History, n int) phx.Position {
		t.Helper()
		var pos phx.Position
		for range n {
			var err error
			if pos, err = h.Append(ctx, "t", phx.HistoryMessage{Event: "e", Payload: []byte(`{}`)}, phx.HistoryOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		return pos
	}
	p1 := appendN(h, 3)
	if p := appendN(other, 1); p.Offset != 4 || p.Epoch != p1.Epoch {
		t.Fatalf("second node appended %+v after %+v", p, p1)
	}
	if err := h.stream.Purge(ctx, jetstream.WithPurgeSubject(h.Subject("t"))); err != nil {
		t.Fatal(err)
	}
	p2 := appendN(other, 1)
	if p2.Epoch == p1.Epoch || p2.Offset != 1 {
		t.Fatalf("after a purge: %+v, old epoch %q", p2, p1.Epoch)
	}
	if p := appendN(h, 1); p.Epoch != p2.Epoch || p.Offset != 2 {
		t.Fatalf("first node after the purge: %+v, want offset 2 in %q", p, p2.Epoch)
	}
	if err := h.js.DeleteStream(ctx, h.cfg.Stream); err != nil {
		t.Fatal(err)
	}
	if page, err := other.Read(ctx, "t", 0, 10); err != nil || page.Epoch == p2.Epoch || page.Top != 0 {
		t.Fatalf("read after the stream was deleted: %+v %v", page, err)
	}
	if err := h.js.DeleteStream(ctx, h.cfg.Stream); err != nil {
		t.Fatal(err)
	}
	p3 := appendN(h, 1)
	if p3.Epoch == p2.Epoch || p3.Offset != 1 {
		t.Fatalf("after the stream was deleted: %+v, old epoch %q", p3, p2.Epoch)
	}
	page, err := other.Read(ctx, "t", 0, 10)
	if err != nil || page.Epoch != p3.Epoch || page.Top != 1 || len(page.Messages) != 1 {
		t.Fatalf("other node reads %+v %v", page, err)
	}
}

// With the server down, Append and Read fail with phx.ErrHistoryUnavailable
// within ctx.
func TestHistoryServerDown(t *testing.T) {
	srv := startJetStream(t)
	h := historyNode(t, srv, "A").History
	ctx := context.Background()
	if _, err := h.Append(ctx, "t", phx.HistoryMessage{Event: "e", Payload: []byte(`{}`)}, phx.HistoryOptions{}); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	// Once the client noticed, calls fail at once (until then they wait
	// up to HistoryConfig.Timeout).
	for deadline := time.Now().Add(5 * time.Second); h.(*History).ps.nc.IsConnected(); {
		if time.Now().After(deadline) {
			t.Fatal("the client did not notice the server is gone")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := h.Append(cctx, "t2", phx.HistoryMessage{Event: "e", Payload: []byte(`{}`)}, phx.HistoryOptions{}); !errors.Is(err, phx.ErrHistoryUnavailable) {
		t.Fatalf("Append with the server down: %v", err)
	}
	if _, err := h.Read(cctx, "t", 0, 10); !errors.Is(err, phx.ErrHistoryUnavailable) {
		t.Fatalf("Read with the server down: %v", err)
	}
	if took := time.Since(start); took > 50*time.Millisecond {
		t.Fatalf("Append and Read with the client disconnected failed after %v, want at once", took)
	} else {
		t.Logf("failed after %v", took)
	}
}

func TestHistoryTwoNodesOrder(t *testing.T) {
	srv := startJetStream(t)
	clustertest.HistoryOrder(t, [3]clustertest.HistoryNode{historyNode(t, srv, "A"), historyNode(t, srv, "B"), historyNode(t, srv, "C")}, 500)
}

func TestHistoryRecoveryOnAnotherNode(t *testing.T) {
	srv := startJetStream(t)
	clustertest.HistoryRecovery(t, historyNode(t, srv, "A"), historyNode(t, srv, "B"))
}

// The official phoenix.js client, moved between two nodes by server-side
// disconnects, recovers every message (testdata/interop/history_nodes.mjs).
func TestHistoryInteropAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("40 phoenix.js clients × 3,000 messages")
	}
	srv := startJetStream(t)
	clustertest.HistoryInterop(t, historyNode(t, srv, "A"), historyNode(t, srv, "B"), "../../testdata/interop")
}

// Read finds the first message after any offset, and the first retained
// one, in a topic whose messages are unevenly spread over the stream.
func TestHistoryReadUnevenStream(t *testing.T) {
	h := historyNode(t, startJetStream(t), "A").History.(*History)
	ctx := context.Background()
	opts := phx.HistoryOptions{MaxMessages: 50}
	appendTo := func(topic string, n int) {
		for range n {
			if _, err := h.Append(ctx, topic, phx.HistoryMessage{Event: "e", Payload: []byte(`{}`)}, opts); err != nil {
				t.Fatal(err)
			}
		}
	}
	top := 0
	for i := range 40 { // bursts of "a" between ever longer runs of others
		appendTo("a", 1+i%3)
		top += 1 + i%3
		appendTo("b", i*i%17)
		if i%5 == 0 {
			appendTo("c", 30)
		}
	}
	first := uint64(top - 50 + 1)
	for after := uint64(0); after <= uint64(top); after++ {
		page, err := h.Read(ctx, "a", after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if page.Top != uint64(top) || page.First != first {
			t.Fatalf("after %d: top %d first %d, want %d and %d", after, page.Top, page.First, top, first)
		}
		start := max(after+1, first)
		want := min(3, int(uint64(top)+1-start))
		if len(page.Messages) != want {
			t.Fatalf("after %d: %d messages, want %d", after, len(page.Messages), want)
		}
		for i, m := range page.Messages {
			if m.Offset != start+uint64(i) {
				t.Fatalf("after %d: message %d has offset %d, want %d", after, i, m.Offset, start+uint64(i))
			}
		}
	}
}
