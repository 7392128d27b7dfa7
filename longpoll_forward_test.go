package phx_test

// Long-poll session forwarding between nodes (docs/protocol.md §6.8),
// spoken by hand: Servers of one process sharing LongPoll.Secret and a
// MemoryPubSub stand for nodes; a request sent to a node that does not own
// the session is relayed to the owner. The cross-node runs with the
// official client on real brokers are in pubsub/internal/clustertest.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

var lpFwdSecret = bytes.Repeat([]byte{42}, 32)

// cutPubSub is one node's view of a shared MemoryPubSub that can be cut
// off, as a crashed or partitioned node looks to the others: nothing it
// publishes arrives, nothing reaches its subscribers. It is not a
// *MemoryPubSub, so forwarding cannot tell who subscribes.
type cutPubSub struct {
	ps  *phx.MemoryPubSub
	cut atomic.Bool

	mu   sync.Mutex
	subs map[phx.Subscriber]*cutSub
}

type cutSub struct {
	c *cutPubSub
	s phx.Subscriber
}

func (s *cutSub) Deliver(b *phx.Broadcast) {
	if !s.c.cut.Load() {
		s.s.Deliver(b)
	}
}

var errCut = errors.New("node cut off")

func newCutPubSub(ps *phx.MemoryPubSub) *cutPubSub {
	return &cutPubSub{ps: ps, subs: make(map[phx.Subscriber]*cutSub)}
}

func (c *cutPubSub) wrap(s phx.Subscriber) *cutSub {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.subs[s]
	if w == nil {
		w = &cutSub{c: c, s: s}
		c.subs[s] = w
	}
	return w
}

func (c *cutPubSub) Subscribe(topic string, s phx.Subscriber) error {
	return c.ps.Subscribe(topic, c.wrap(s))
}

func (c *cutPubSub) Unsubscribe(topic string, s phx.Subscriber) error {
	return c.ps.Unsubscribe(topic, c.wrap(s))
}

func (c *cutPubSub) Broadcast(ctx context.Context, b *phx.Broadcast, from phx.Subscriber) error {
	if c.cut.Load() {
		return errCut
	}
	var f phx.Subscriber
	if from != nil {
		f = c.wrap(from)
	}
	return c.ps.Broadcast(ctx, b, f)
}

func (c *cutPubSub) LocalBroadcast(b *phx.Broadcast, from phx.Subscriber) error {
	var f phx.Subscriber
	if from != nil {
		f = c.wrap(from)
	}
	return c.ps.LocalBroadcast(b, f)
}

// lpNodes starts two room servers sharing a secret over ps (each through
// its own cutPubSub) with the given long-poll options.
func lpNodes(t *testing.T, lo phx.LongPollOptions) (a, b *testServer, pa, pb *cutPubSub) {
	t.Helper()
	shared := phx.NewMemoryPubSub()
	pa, pb = newCutPubSub(shared), newCutPubSub(shared)
	lo.Secret = lpFwdSecret
	a, _ = newRoomServer(t, &phx.Options{PubSub: pa, LongPoll: lo})
	b, _ = newRoomServer(t, &phx.Options{PubSub: pb, LongPoll: lo})
	return a, b, pa, pb
}

// lpGetAsync polls c's session on ts in the background.
func lpGetAsync(t *testing.T, c *lpClient, ts *testServer) <-chan lpReply {
	t.Helper()
	out := make(chan lpReply, 1)
	cc := *c
	cc.ts = ts
	go func() {
		resp, err := http.Get(cc.url())
		if err != nil {
			out <- lpReply{raw: err.Error()}
			return
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		rep := lpReply{raw: buf.String()}
		_ = json.Unmarshal(buf.Bytes(), &rep)
		out <- rep
	}()
	return out
}

func TestLongPollForwarded(t *testing.T) {
	t.Parallel()
	a, b, _, _ := lpNodes(t, phx.LongPollOptions{Window: 400 * time.Millisecond, ForwardTimeout: 200 * time.Millisecond, MaxBody: 4096})
	c := lpOpen(t, a, "user=ann&vsn=2.0.0") // the session lives on A

	// Join and push through B, replies polled through B and A alike.
	c.ts = b
	c.join("room:fwd", "1")
	c.send(`["1","2","room:fwd","echo",{"via":"b"}]`)
	c.ts = a
	c.expect(`["1","2","room:fwd","phx_reply",{"status":"ok","response":{"via":"b"}}]`)
	c.send(`["1","3","room:fwd","shout",{"n":1}]`)
	c.ts = b
	got := c.recv(2)
	if !strings.Contains(strings.Join(got, " "), `"shout",{"n":1}`) {
		t.Fatalf("broadcast through B: %q", got)
	}

	// A poll relayed through B and held past the acknowledgement gets the
	// frames queued later on A.
	held := lpGetAsync(t, c, b)
	time.Sleep(150 * time.Millisecond) // the owner acknowledges after 50ms
	c.ts = a
	c.send(`["1","4","room:fwd","echo",{"late":true}]`)
	select {
	case rep := <-held:
		if rep.Status != 200 || len(rep.messages()) != 1 || !strings.Contains(rep.messages()[0], `{"late":true}`) || rep.token() != c.token {
			t.Fatalf("held relayed poll: %s", rep.raw)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("held relayed poll not answered")
	}
	// Nothing queued: the relayed poll answers 204 after the window.
	c.ts = b
	start := time.Now()
	if rep := c.get(); rep.Status != 204 || rep.token() != c.token {
		t.Fatalf("empty relayed poll: %s", rep.raw)
	} else if d := time.Since(start); d < 350*time.Millisecond {
		t.Fatalf("empty relayed poll answered after %v, want the window", d)
	}
	if n, m := a.Stats().Connections, b.Stats().Connections; n != 1 || m != 0 {
		t.Fatalf("A has %d sessions and B %d, want 1 and 0: every request was relayed", n, m)
	}

	// Answers other than 200 come back as the owner gave them: a body over
	// MaxBody is HTTP 413 and closes the session on A.
	r := lpDoRaw(t, b, "POST", c.url(), map[string]string{"Content-Type": "application/x-ndjson"}, strings.Repeat("x", 5000))
	if r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("relayed POST over MaxBody: HTTP %d, want 413", r.StatusCode)
	}
	for deadline := time.Now().Add(5 * time.Second); a.Stats().Connections != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the session did not close on A")
		}
	}
	if rep := c.post("application/x-ndjson", `[null,"9","phoenix","heartbeat",{}]`); rep.raw != `{"status":410}` {
		t.Fatalf("relayed POST for a closed session: %s", rep.raw)
	}
	c.expectGone() // a relayed GET for it opens a new session, on B
	if m := b.Stats().Connections; m != 1 {
		t.Fatalf("B has %d sessions, want the new one", m)
	}
}

func TestLongPollForwardOwnerGone(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	t.Run("before the request", func(t *testing.T) {
		t.Parallel()
		a, b, pa, _ := lpNodes(t, phx.LongPollOptions{ForwardTimeout: timeout})
		c := lpOpen(t, a, "user=ann&vsn=2.0.0")
		c.join("room:gone", "1")
		pa.cut.Store(true)
		c.ts = b
		start := time.Now()
		if rep := c.post("application/x-ndjson", `[null,"2","phoenix","heartbeat",{}]`); rep.raw != `{"status":410}` {
			t.Fatalf("POST relayed to a dead owner: %s", rep.raw)
		}
		if d := time.Since(start); d < timeout {
			t.Fatalf("POST answered after %v, before ForwardTimeout", d)
		}
		start = time.Now()
		c.expectGone() // 410 with a new session's token, opened on B
		if d := time.Since(start); d < timeout || d > timeout+time.Second {
			t.Fatalf("GET answered after %v, want about ForwardTimeout (%v)", d, timeout)
		}
		if m := b.Stats().Connections; m != 1 {
			t.Fatalf("B has %d sessions, want 1", m)
		}
	})
	t.Run("while a relayed poll is held", func(t *testing.T) {
		t.Parallel()
		const window = 300 * time.Millisecond
		a, b, pa, _ := lpNodes(t, phx.LongPollOptions{Window: window, ForwardTimeout: timeout})
		c := lpOpen(t, a, "user=ann&vsn=2.0.0")
		held := lpGetAsync(t, c, b)
		time.Sleep(timeout / 2) // acknowledged
		pa.cut.Store(true)
		start := time.Now()
		select {
		case rep := <-held:
			if rep.Status != 410 || rep.token() != c.token {
				t.Fatalf("held poll whose owner died: %s, want 410 with the session's token", rep.raw)
			}
			if d := time.Since(start); d < window-timeout/2 {
				t.Fatalf("answered after %v: too early", d)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("held poll not answered")
		}
	})
	t.Run("shut down", func(t *testing.T) {
		t.Parallel()
		// A MemoryPubSub knows that nobody serves the owner's topic any
		// more: no wait for ForwardTimeout.
		shared := phx.NewMemoryPubSub()
		lo := phx.LongPollOptions{Secret: lpFwdSecret, ForwardTimeout: 5 * time.Second}
		a, _ := newRoomServer(t, &phx.Options{PubSub: shared, LongPoll: lo})
		b, _ := newRoomServer(t, &phx.Options{PubSub: shared, LongPoll: lo})
		c := lpOpen(t, a, "user=ann&vsn=2.0.0")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		c.ts = b
		start := time.Now()
		if rep := c.post("application/x-ndjson", `[null,"2","phoenix","heartbeat",{}]`); rep.raw != `{"status":410}` {
			t.Fatalf("POST for a shut-down owner: %s", rep.raw)
		}
		c.expectGone()
		if d := time.Since(start); d > time.Second {
			t.Fatalf("answers took %v", d)
		}
	})
}

// A relayed poll whose client goes away, or whose relay shuts down, is
// cancelled on the owner before it takes anything: no frame is lost.
func TestLongPollForwardCancel(t *testing.T) {
	t.Parallel()
	a, b, _, _ := lpNodes(t, phx.LongPollOptions{Window: 2 * time.Second, ForwardTimeout: 200 * time.Millisecond})
	c := lpOpen(t, a, "user=ann&vsn=2.0.0")
	c.join("room:cancel", "1")

	ctx, cancel := context.WithCancel(context.Background())
	cc := *c
	cc.ts = b
	req, _ := http.NewRequestWithContext(ctx, "GET", cc.url(), nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	<-done
	time.Sleep(100 * time.Millisecond) // the cancel reaches A
	c.send(`["1","2","room:cancel","echo",{"kept":1}]`)
	c.expect(`["1","2","room:cancel","phx_reply",{"status":"ok","response":{"kept":1}}]`)

	// The relay shuts down: its held poll answers 204 at once and the
	// session on A lives on.
	held := lpGetAsync(t, c, b)
	time.Sleep(100 * time.Millisecond)
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	start := time.Now()
	if err := b.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	select {
	case rep := <-held:
		if rep.Status != 204 || rep.token() != c.token {
			t.Fatalf("relayed poll on a node shutting down: %s, want 204", rep.raw)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("answered after %v", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("relayed poll not answered on shutdown")
	}
	c.send(`["1","3","room:cancel","echo",{"kept":2}]`)
	c.expect(`["1","3","room:cancel","phx_reply",{"status":"ok","response":{"kept":2}}]`)
}

// Forwarding is off without a shared secret or with a negative
// ForwardTimeout: another node's token opens a new session at once.
func TestLongPollForwardOff(t *testing.T) {
	t.Parallel()
	shared := phx.NewMemoryPubSub()
	lo := phx.LongPollOptions{Secret: lpFwdSecret, ForwardTimeout: -1}
	a, _ := newRoomServer(t, &phx.Options{PubSub: shared, LongPoll: lo})
	b, _ := newRoomServer(t, &phx.Options{PubSub: shared, LongPoll: lo})
	c := lpOpen(t, a, "user=ann&vsn=2.0.0")
	c.ts = b
	if rep := c.post("application/x-ndjson", `[null,"2","phoenix","heartbeat",{}]`); rep.raw != `{"status":410}` {
		t.Fatalf("POST: %s", rep.raw)
	}
	c.expectGone()
}

// No goroutine outlives the nodes, whatever became of the relayed
// requests.
func TestLongPollForwardNoLeak(t *testing.T) {
	baseline := runtime.NumGoroutine()
	t.Run("scenario", func(t *testing.T) {
		a, b, pa, _ := lpNodes(t, phx.LongPollOptions{Window: 300 * time.Millisecond, ForwardTimeout: 100 * time.Millisecond})
		c := lpOpen(t, a, "user=ann&vsn=2.0.0")
		c.ts = b
		c.join("room:leak", "1")
		held := lpGetAsync(t, c, b)
		time.Sleep(50 * time.Millisecond)
		pa.cut.Store(true)
		<-held
		c.expectGone()
	})
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines, baseline %d:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
}
