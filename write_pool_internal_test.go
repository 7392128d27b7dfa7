package phx

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"
)

// blockingTurn is a writeTurner that records its turns and holds each one
// until released.
type blockingTurn struct {
	id      int
	turns   int // turns left wanting more
	started chan<- int
	release <-chan struct{}
}

func (b *blockingTurn) writeTurn() bool {
	b.started <- b.id
	<-b.release
	b.turns--
	return b.turns > 0
}

// TestWritePool: no more than max turns run at once, every turn runs, and
// the workers are gone once the queue is empty; with one worker, turns run
// in the order they were submitted and a turn that wants more is queued
// again behind the others.
func TestWritePool(t *testing.T) {
	for _, workers := range []int{3, 1} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			const jobs = 40
			p := newWritePool(workers)
			started := make(chan int, jobs*2)
			release := make(chan struct{})
			for i := range jobs {
				turns := 1
				if i == 0 {
					turns = 2 // the first job asks for a second turn
				}
				p.submit(&blockingTurn{id: i, turns: turns, started: started, release: release})
			}
			var order []int
			next := func() int {
				t.Helper()
				select {
				case id := <-started:
					return id
				case <-time.After(5 * time.Second):
					t.Fatalf("no turn started after %v", order)
					return -1
				}
			}
			for range workers {
				order = append(order, next())
			}
			// Every worker is busy: no other turn may start.
			select {
			case id := <-started:
				t.Fatalf("turn %d started while %d workers were busy", id, workers)
			case <-time.After(50 * time.Millisecond):
			}
			for range jobs + 1 - workers {
				release <- struct{}{}
				order = append(order, next())
			}
			for range workers {
				release <- struct{}{}
			}
			seen := map[int]int{}
			for _, id := range order {
				seen[id]++
			}
			for i := range jobs {
				if want := map[bool]int{true: 2, false: 1}[i == 0]; seen[i] != want {
					t.Fatalf("job %d ran %d times, want %d (order %v)", i, seen[i], want, order)
				}
			}
			if workers == 1 {
				want := []int{}
				for i := range jobs {
					want = append(want, i)
				}
				want = append(want, 0) // requeued behind every other job
				if fmt.Sprint(order) != fmt.Sprint(want) {
					t.Fatalf("turns ran in the order %v, want %v", order, want)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				p.mu.Lock()
				running, queued := p.running, len(p.queue)-p.head
				p.mu.Unlock()
				if running == 0 && queued == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after the last turn: %d workers running, %d queued", running, queued)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}

// TestWritePoolLongQueue: a queue that never empties (each turn submits
// another) keeps its array bounded by what is waiting, not by what has
// passed through it.
func TestWritePoolLongQueue(t *testing.T) {
	p := newWritePool(1)
	const waiting, total = 100, 20 * maxIdleQueue
	var (
		mu     sync.Mutex
		turns  int
		maxCap int
		done   = make(chan struct{})
		job    func() *funcTurn
	)
	job = func() *funcTurn {
		return &funcTurn{fn: func() bool {
			mu.Lock()
			turns++
			n := turns
			mu.Unlock()
			p.mu.Lock()
			maxCap = max(maxCap, cap(p.queue))
			p.mu.Unlock()
			switch {
			case n <= total-waiting:
				p.submit(job())
			case n == total:
				close(done)
			}
			return false
		}}
	}
	for range waiting {
		p.submit(job())
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("turns did not finish")
	}
	if maxCap > 4*maxIdleQueue {
		t.Fatalf("queue array grew to %d entries with %d waiting", maxCap, waiting)
	}
}

type funcTurn struct{ fn func() bool }

func (f *funcTurn) writeTurn() bool { return f.fn() }

// TestBatchWriterNonblockingStalls: a nonblocking batch to a peer that does
// not read returns at once, keeps what the socket did not take, and
// finishStalled writes it out in order when the peer reads again.
func TestBatchWriterNonblockingStalls(t *testing.T) {
	near, far := tcpPair(t)
	raw := waitableSocket(near.Conn)
	if raw == nil {
		t.Skip("no socket to write without blocking on this system")
	}
	w := &batchWriter{conn: near, raw: raw, timeout: 10 * time.Second}
	var want []byte
	done := make(chan error, 1)
	go func() {
		w.cork(true)
		for i := range 2000 { // 16 MiB: more than loopback sockets buffer
			piece := bytes.Repeat([]byte{byte(i)}, 8<<10)
			if i%50 == 0 {
				piece = bytes.Repeat([]byte{byte(i)}, wsDirectWriteBytes+1) // written from where it is
			}
			want = append(want, piece...)
			if _, err := w.Write(piece); err != nil {
				done <- err
				return
			}
		}
		done <- w.uncork()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		near.Conn.Close()
		t.Fatal("a nonblocking batch waited for a peer that does not read")
	}
	if !w.isStalled() {
		t.Fatalf("%d bytes to a peer that does not read, and the writer is not stalled", len(want))
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(far, int64(len(want)+len("after"))))
		got <- b
	}()
	if err := w.finishStalled(); err != nil {
		t.Fatal(err)
	}
	if w.isStalled() || w.buf != nil {
		t.Fatalf("after finishStalled: stalled %v, buffer kept %v", w.isStalled(), w.buf != nil)
	}
	// A write outside a batch goes straight through, after the rest.
	if _, err := w.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	b := <-got
	want = append(want, "after"...)
	if !bytes.Equal(b, want) {
		t.Fatalf("peer got %d bytes, want %d in order (first difference at %d)", len(b), len(want), firstDiff(b, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestStalledClientLeavesTheWritePool: with a single worker in the write
// pool, a client that stops reading while broadcasts fill its socket does
// not hold back the others: its writer moves to a goroutine of its own,
// and once it reads again it gets every message, in order.
func TestStalledClientLeavesTheWritePool(t *testing.T) {
	srv := NewServer(&Options{
		Logger:            slog.New(slog.DiscardHandler),
		WriteTimeout:      30 * time.Second,
		MaxQueuedMessages: 1 << 16,
		MaxQueuedBytes:    1 << 30,
	})
	srv.writers.max = 1
	srv.Channel("room:*", func() Channel { return stackRoom{} })
	hs := httptest.NewServer(srv)
	defer hs.Close()
	addr := strings.TrimPrefix(hs.URL, "http://")
	slow := dialRawWS(t, addr, "/socket/websocket?vsn=2.0.0", `["1","1","room:a","phx_join",{}]`)
	defer slow.c.Close()
	slow.readUntil(t, `"phx_reply"`)
	fast := dialRawWS(t, addr, "/socket/websocket?vsn=2.0.0", `["1","1","room:a","phx_join",{}]`)
	defer fast.c.Close()
	fast.readUntil(t, `"phx_reply"`)

	// 32 KiB messages, 640 of them (20 MiB): far more than the slow
	// client's socket buffers take. The fast one reads each.
	pad := strings.Repeat("p", 32<<10)
	const messages = 640
	for i := range messages {
		if err := srv.Broadcast("room:a", "flood", map[string]any{"n": i, "pad": pad}); err != nil {
			t.Fatal(err)
		}
		fast.readUntil(t, fmt.Sprintf(`{"n":%d,`, i))
	}
	var stacks bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
	if !strings.Contains(stacks.String(), "writeStalled") {
		t.Fatalf("no writer on a goroutine of its own for the client that does not read:\n%s", stacks.String())
	}
	for i := range messages {
		slow.readUntil(t, fmt.Sprintf(`{"n":%d,`, i))
	}
}
