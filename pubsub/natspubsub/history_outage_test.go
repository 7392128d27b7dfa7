package natspubsub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/phxgo/phx"
)

// timeout is the History Timeout of the frozen-server tests.
const timeout = 250 * time.Millisecond

// frozenHistoryNode starts a NATS server process (to freeze) and a PubSub
// and History on it, the History with Timeout timeout.
func frozenHistoryNode(t *testing.T) (*natsProcess, *PubSub, *History) {
	t.Helper()
	np := startNATSProcessWith(t, t.TempDir())
	ps := dialTest(t, np.url(), "A", nil).(adapter).PubSub
	h, err := NewHistory(ps, &HistoryConfig{Storage: jetstream.MemoryStorage, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return np, ps, h
}

// With the NATS server frozen (SIGSTOP), the first call waits Timeout and
// fails; the next ones fail at once with phx.ErrHistoryUnavailable; once
// the server resumes, calls succeed again within a second and the offsets
// go on with no gap and no reuse.
func TestHistoryFrozenServerFailsFast(t *testing.T) {
	np, ps, h := frozenHistoryNode(t)
	rec := &offsetLog{}
	if err := ps.Subscribe("t", rec); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	payloads := map[uint64]string{} // offset -> payload of the appends that succeeded
	try := func(i int) (phx.Position, error) {
		p := `{"i":` + strconv.Itoa(i) + `}`
		pos, err := h.Append(ctx, "t", phx.HistoryMessage{Event: "e", Payload: []byte(p)}, phx.HistoryOptions{})
		if err == nil {
			if old, ok := payloads[pos.Offset]; ok {
				t.Fatalf("offset %d given to %s and %s", pos.Offset, old, p)
			}
			payloads[pos.Offset] = p
		}
		return pos, err
	}
	var epoch string
	for i := 1; i <= 5; i++ {
		pos, err := try(i)
		if err != nil || pos.Offset != uint64(i) {
			t.Fatalf("append %d: %+v %v", i, pos, err)
		}
		epoch = pos.Epoch
	}

	np.Freeze(t)
	start := time.Now()
	_, err := try(6)
	first := time.Since(start)
	if !errors.Is(err, phx.ErrHistoryUnavailable) {
		np.Thaw(t)
		t.Fatalf("first append with the server frozen: %v", err)
	}
	if first < timeout-10*time.Millisecond || first > timeout+250*time.Millisecond {
		np.Thaw(t)
		t.Fatalf("first append with the server frozen failed after %v, want about %v", first, timeout)
	}
	var worst time.Duration
	for i := range 100 {
		start := time.Now()
		if i%2 == 0 {
			_, err = try(100 + i)
		} else {
			_, err = h.Read(ctx, "t", 0, 10)
		}
		took := time.Since(start)
		worst = max(worst, took)
		if !errors.Is(err, phx.ErrHistoryUnavailable) || took > 5*time.Millisecond {
			np.Thaw(t)
			t.Fatalf("call %d with the server frozen and the history down: %v after %v", i, err, took)
		}
	}
	np.Thaw(t)
	thawed := time.Now()
	var pos phx.Position
	for i := 200; ; i++ {
		if pos, err = try(i); err == nil {
			break
		}
		if !errors.Is(err, phx.ErrHistoryUnavailable) {
			t.Fatalf("append after the thaw: %v", err)
		}
		if time.Since(thawed) > time.Second {
			t.Fatalf("appends still fail 1s after the thaw: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	recovered := time.Since(thawed)
	// The append that timed out reached the server, which recorded it
	// when it resumed: its offset is taken, not reused, not skipped.
	if pos.Epoch != epoch || (pos.Offset != 6 && pos.Offset != 7) {
		t.Fatalf("first append after the thaw: %+v, want offset 6 or 7 in %q", pos, epoch)
	}
	for i := 300; i < 305; i++ {
		next, err := try(i)
		if err != nil || next.Offset != pos.Offset+1 || next.Epoch != epoch {
			t.Fatalf("append after the thaw: %+v %v after %+v", next, err, pos)
		}
		pos = next
	}
	page, err := h.Read(ctx, "t", 0, 100)
	if err != nil || page.Epoch != epoch || page.Top != pos.Offset || page.First != 1 || len(page.Messages) != int(pos.Offset) {
		t.Fatalf("read after the thaw: %+v %v", page, err)
	}
	for i, m := range page.Messages {
		want, ok := payloads[m.Offset]
		if !ok && m.Offset == 6 {
			want = `{"i":6}` // the append that timed out
		}
		if m.Offset != uint64(i+1) || string(m.Payload) != want {
			t.Fatalf("message %d: offset %d %s, want %s", i, m.Offset, m.Payload, want)
		}
	}
	got := waitOffsets(t, [2]*offsetLog{rec, rec}, int(pos.Offset))[0]
	for i, o := range got {
		if o != uint64(i+1) {
			t.Fatalf("delivered %v, want 1 to %d", got, pos.Offset)
		}
	}
	t.Logf("server frozen: first call failed after %v, the next 100 within %v each; calls succeed %v after the thaw",
		first, worst, recovered)
}

// The stream deleted under two running nodes: both recreate it and
// deliver what is appended to the new one, in offset order, in a new
// epoch, without a restart.
func TestHistoryStreamDeletedUnderRunningNodes(t *testing.T) {
	srv := startJetStream(t)
	nodes := [2]*History{historyNode(t, srv, "A").History.(*History), historyNode(t, srv, "B").History.(*History)}
	var recs [2]*offsetLog
	for i, h := range nodes {
		recs[i] = &offsetLog{}
		if err := h.ps.Subscribe("t", recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	appendBoth := func(n int) []phx.Position {
		t.Helper()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var got []phx.Position
		errs := make(chan error, 2)
		for w, h := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n {
					b, _ := phx.NewBroadcast("t", "e", map[string]int{"w": w, "i": i})
					pos, err := h.AppendPublish(ctx, b, nil, phx.HistoryOptions{})
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					got = append(got, pos)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		return got
	}
	before := appendBoth(20)
	waitOffsets(t, recs, 40)
	if err := nodes[0].js.DeleteStream(ctx, nodes[0].cfg.Stream); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	after := appendBoth(50)
	epoch := after[0].Epoch
	seen := map[uint64]bool{}
	for _, p := range after {
		if p.Epoch != epoch || p.Epoch == before[0].Epoch || seen[p.Offset] || p.Offset < 1 || p.Offset > 100 {
			t.Fatalf("appends after the stream was deleted: %+v (old epoch %q)", after, before[0].Epoch)
		}
		seen[p.Offset] = true
	}
	offs := waitOffsets(t, recs, 140)
	for i, o := range offs {
		for j, off := range o {
			want := uint64(j + 1)
			if j >= 40 {
				want = uint64(j - 40 + 1)
			}
			if off != want {
				t.Fatalf("node %d delivered offset %d at place %d, want %d: %v", i, off, j, want, o)
			}
		}
	}
	page, err := nodes[1].Read(ctx, "t", 0, 1000)
	if err != nil || page.Epoch != epoch || page.Top != 100 || len(page.Messages) != 100 {
		t.Fatalf("read after the stream was deleted: epoch %q top %d, %d messages, %v", page.Epoch, page.Top, len(page.Messages), err)
	}
	t.Logf("stream deleted: 100 appends from 2 nodes delivered in order on both within %v", time.Since(start))

	// Purged: the sequence numbers go on, so do the consumers; the topic
	// starts a new epoch.
	if err := nodes[1].stream.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	purged := appendBoth(10)
	for _, p := range purged {
		if p.Epoch == epoch || p.Epoch != purged[0].Epoch || p.Offset > 20 {
			t.Fatalf("appends after a purge: %+v (epoch before %q)", purged, epoch)
		}
	}
	offs = waitOffsets(t, recs, 160)
	for i, o := range offs {
		for j, off := range o[140:] {
			if off != uint64(j+1) {
				t.Fatalf("node %d delivered offset %d at place %d after the purge: %v", i, off, j+1, o[140:])
			}
		}
	}
}

// offsetLog records the offsets of the broadcasts it receives.
type offsetLog struct {
	mu   sync.Mutex
	offs []uint64
}

func (l *offsetLog) Deliver(b *phx.Broadcast) {
	l.mu.Lock()
	l.offs = append(l.offs, b.Offset())
	l.mu.Unlock()
}

// waitOffsets waits until every log has n offsets, and returns them.
func waitOffsets(t *testing.T, logs [2]*offsetLog, n int) [2][]uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got [2][]uint64
		done := true
		for i, l := range logs {
			l.mu.Lock()
			got[i] = append([]uint64(nil), l.offs...)
			l.mu.Unlock()
			done = done && len(got[i]) >= n
		}
		if done {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d and %d of %d: %s", len(got[0]), len(got[1]), n, fmt.Sprint(got))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The NATS server killed and restarted under a running node: with file
// storage the stream survives and the topic goes on in its epoch; with
// memory storage the stream is gone, the node recreates it and the topic
// starts a new epoch. Either way the node's subscribers get every
// message appended after the restart, in order, without a restart of the
// node.
func TestHistoryServerRestarted(t *testing.T) {
	for _, c := range []struct {
		name    string
		storage jetstream.StorageType
	}{{"file", jetstream.FileStorage}, {"memory", jetstream.MemoryStorage}} {
		t.Run(c.name, func(t *testing.T) {
			np := startNATSProcessWith(t, t.TempDir())
			ps := dialTest(t, np.url(), "A", nil).(adapter).PubSub
			h, err := NewHistory(ps, &HistoryConfig{Storage: c.storage, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { h.Close() })
			rec := &offsetLog{}
			if err := ps.Subscribe("t", rec); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			appendN := func(n int) phx.Position {
				t.Helper()
				var pos phx.Position
				for range n {
					deadline := time.Now().Add(5 * time.Second)
					for {
						if pos, err = h.Append(ctx, "t", phx.HistoryMessage{Event: "e", Payload: []byte(`{}`)}, phx.HistoryOptions{}); err == nil {
							break
						}
						if time.Now().After(deadline) {
							t.Fatalf("append: %v", err)
						}
						time.Sleep(20 * time.Millisecond)
					}
				}
				return pos
			}
			before := appendN(10)
			waitOffsets(t, [2]*offsetLog{rec, rec}, 10)
			np.Stop(t)
			np.Start(t)
			after := appendN(10)
			want := []uint64{}
			for i := range 10 {
				want = append(want, uint64(i+1))
			}
			if c.storage == jetstream.FileStorage {
				if after.Epoch != before.Epoch || after.Offset != 20 {
					t.Fatalf("after the restart: %+v, want offset 20 in %q", after, before.Epoch)
				}
				for i := range 10 {
					want = append(want, uint64(i+11))
				}
			} else {
				if after.Epoch == before.Epoch || after.Offset != 10 {
					t.Fatalf("after the restart: %+v, want offset 10 in a new epoch", after)
				}
				want = append(want, want...)
			}
			got := waitOffsets(t, [2]*offsetLog{rec, rec}, 20)[0]
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("delivered %v, want %v", got, want)
			}
		})
	}
}

// Frozen for longer than the consumer's heartbeats (2s, missed twice):
// the node starts a new consumer once the server answers, where it
// stopped, and gets every message appended meanwhile by another node.
func TestHistoryLongFreeze(t *testing.T) {
	if testing.Short() {
		t.Skip("freezes the server for 5s")
	}
	np := startNATSProcessWith(t, t.TempDir())
	var hs [2]*History
	var rec [2]*offsetLog
	for i := range hs {
		ps := dialTest(t, np.url(), strconv.Itoa(i), nil).(adapter).PubSub
		h, err := NewHistory(ps, &HistoryConfig{Storage: jetstream.MemoryStorage, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		hs[i], rec[i] = h, &offsetLog{}
		if err := ps.Subscribe("t", rec[i]); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	appendN := func(h *History, n int) {
		t.Helper()
		for range n {
			if _, err := h.Append(ctx, "t", phx.HistoryMessage{Event: "e", Payload: []byte(`{}`)}, phx.HistoryOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN(hs[0], 5)
	waitOffsets(t, rec, 5)
	np.Freeze(t)
	time.Sleep(5 * time.Second)
	np.Thaw(t)
	deadline := time.Now().Add(5 * time.Second)
	for { // until both are up again
		_, err0 := hs[0].Read(ctx, "t", 0, 0)
		_, err1 := hs[1].Read(ctx, "t", 0, 0)
		if err0 == nil && err1 == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reads 5s after the thaw: %v, %v", err0, err1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	appendN(hs[1], 10)
	got := waitOffsets(t, rec, 15)
	for i := range got {
		for j, o := range got[i] {
			if o != uint64(j+1) {
				t.Fatalf("node %d delivered %v", i, got[i])
			}
		}
	}
}

type joinAll struct{}

func (joinAll) Join(*phx.Socket, phx.Payload) (any, error) { return nil, nil }

// Twenty goroutines broadcasting on one recorded topic of a phx server
// while the NATS server is frozen: the library records them one at a
// time, and only the first waits Timeout; together they fail within
// about one Timeout, not twenty.
func TestHistoryFrozenServerConcurrentBroadcasts(t *testing.T) {
	np, ps, h := frozenHistoryNode(t)
	srv := phx.NewServer(&phx.Options{PubSub: ps, History: h})
	srv.Channel("hist:*", func() phx.Channel { return joinAll{} }, phx.WithHistory(phx.HistoryOptions{}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	if err := srv.Broadcast("hist:x", "e", map[string]int{"n": 0}); err != nil {
		t.Fatal(err)
	}
	np.Freeze(t)
	defer np.Thaw(t)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- srv.Broadcast("hist:x", "e", map[string]int{"n": i + 1})
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		if !errors.Is(err, phx.ErrHistoryUnavailable) {
			t.Fatalf("broadcast with the server frozen: %v", err)
		}
	}
	t.Logf("20 broadcasts on one topic with the server frozen failed within %v", took)
	if took > timeout+200*time.Millisecond {
		t.Fatalf("20 broadcasts took %v, want about one Timeout (%v)", took, timeout)
	}
}
