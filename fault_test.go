package phx_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
)

// countingRoom counts Terminate calls per reason.
type countingRoom struct{ terms *sync.Map }

func (r countingRoom) Join(*phx.Socket, phx.Payload) (any, error) { return nil, nil }

func (r countingRoom) Terminate(s *phx.Socket, reason error) {
	v, _ := r.terms.LoadOrStore(reasonName(reason), new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func termCount(m *sync.Map, reason string) int64 {
	v, ok := m.Load(reason)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd on this system")
	}
	return len(entries)
}

// TestDrainManyClients is a graceful drain scaled to this machine: 2,000
// WebSocket clients each joined to two channels; Shutdown closes every one
// with 1012, runs every Terminate, and returns in time.
func TestDrainManyClients(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: skipped with -short")
	}
	const n = 2000
	baseline := runtime.NumGoroutine()
	terms := &sync.Map{}
	srv := phx.NewServer(&phx.Options{Logger: quietLogger(), DrainBatchSize: 500, DrainBatchInterval: 200 * time.Millisecond})
	srv.Channel("drain:*", func() phx.Channel { return countingRoom{terms} })
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	url := strings.Replace(hs.URL, "http", "ws", 1) + "/socket/websocket?vsn=2.0.0"

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	codes := make(chan websocket.StatusCode, n)
	var wg sync.WaitGroup
	var joined sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		joined.Add(1)
		go func(i int) {
			defer wg.Done()
			c, _, err := websocket.Dial(ctx, url, nil)
			if err != nil {
				joined.Done()
				codes <- -2
				return
			}
			defer c.CloseNow()
			for k, topic := range []string{fmt.Sprintf("drain:%d", i%50), "drain:all"} {
				ref := fmt.Sprint(k + 1)
				c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`[%q,%q,%q,"phx_join",{}]`, ref, ref, topic)))
			}
			for replies := 0; replies < 2; replies++ {
				if _, _, err := c.Read(ctx); err != nil {
					joined.Done()
					codes <- -3
					return
				}
			}
			joined.Done()
			for {
				if _, _, err := c.Read(ctx); err != nil {
					codes <- websocket.CloseStatus(err)
					return
				}
			}
		}(i)
	}
	joined.Wait()
	if st := srv.Stats(); st.Connections != n {
		t.Fatalf("%d connections open, want %d", st.Connections, n)
	}
	start := time.Now()
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	took := time.Since(start)
	if took < 600*time.Millisecond {
		t.Errorf("Shutdown took %v: 4 batches 200ms apart need at least 600ms", took)
	}
	wg.Wait()
	close(codes)
	got := map[websocket.StatusCode]int{}
	for c := range codes {
		got[c]++
	}
	if got[websocket.StatusServiceRestart] != n {
		t.Fatalf("close codes %v, want %d × 1012", got, n)
	}
	if c := termCount(terms, "shutdown"); c != 2*n {
		t.Fatalf("%d Terminate(ErrServerClosed) calls when Shutdown returned, want %d", c, 2*n)
	}
	t.Logf("Shutdown of %d connections (%d channels) took %v", n, 2*n, took.Round(time.Millisecond))
	hs.Close()
	interopNoGoroutineLeak(t, baseline)
}

// TestClientKilledMidWrite: clients vanish while the server is writing a
// large burst to them. Every channel terminates exactly once, and goroutines
// and file descriptors return to their baseline (no socket left in
// CLOSE_WAIT).
func TestClientKilledMidWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: skipped with -short")
	}
	const n = 50
	terms := &sync.Map{}
	srv := phx.NewServer(&phx.Options{Logger: quietLogger(), MaxQueuedBytes: 8 << 20, MaxQueuedMessages: 1 << 16})
	srv.Channel("burst:*", func() phx.Channel { return countingRoom{terms} })
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	url := strings.Replace(hs.URL, "http", "ws", 1) + "/socket/websocket?vsn=2.0.0"
	baseline := runtime.NumGoroutine()
	fdBaseline := openFDs(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(ctx, websocket.MessageText, []byte(`["1","1","burst:x","phx_join",{}]`))
		if _, _, err := c.Read(ctx); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	// A 1 MiB burst: 256 broadcasts of 4 KiB each.
	pad := strings.Repeat("x", 4096)
	for i := 0; i < 256; i++ {
		if err := srv.Broadcast("burst:x", "blob", map[string]string{"pad": pad}); err != nil {
			t.Fatal(err)
		}
	}
	// Half the clients read a little first; all then vanish without a
	// close handshake.
	for i, c := range conns {
		if i%2 == 0 {
			c.Read(ctx)
		}
		c.CloseNow()
	}
	deadline := time.Now().Add(15 * time.Second)
	for termCount(terms, "closed") < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d channels terminated", termCount(terms, "closed"), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a second Terminate would show up here
	if c := termCount(terms, "closed"); c != n {
		t.Fatalf("%d Terminate calls, want exactly %d", c, n)
	}
	if st := srv.Stats(); st.Connections != 0 {
		t.Fatalf("%d connections still open", st.Connections)
	}
	interopNoGoroutineLeak(t, baseline)
	deadline = time.Now().Add(5 * time.Second)
	for {
		fds := openFDs(t)
		if fds <= fdBaseline+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d file descriptors open, %d before the clients connected", fds, fdBaseline)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNoHeapGrowthAcrossRounds checks that connections, channels and
// subscriptions leave nothing behind: after a first round warms up the
// pools, later rounds of 100 clients (connect, join 3 topics, receive
// broadcasts, close) end with the same number of live heap objects.
func TestNoHeapGrowthAcrossRounds(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: skipped with -short")
	}
	terms := &sync.Map{}
	srv := phx.NewServer(&phx.Options{Logger: quietLogger()})
	srv.Channel("heap:*", func() phx.Channel { return countingRoom{terms} })
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	url := strings.Replace(hs.URL, "http", "ws", 1) + "/socket/websocket?vsn=2.0.0"
	round := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				c, _, err := websocket.Dial(ctx, url, nil)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close(websocket.StatusNormalClosure, "")
				for k := 0; k < 3; k++ {
					ref := fmt.Sprint(k + 1)
					c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`[%q,%q,"heap:%d","phx_join",{}]`, ref, ref, (i+k)%10)))
					c.Read(ctx)
				}
			}(i)
		}
		wg.Wait()
		for i := 0; i < 10; i++ {
			srv.Broadcast(fmt.Sprintf("heap:%d", i), "x", nil)
		}
		deadline := time.Now().Add(10 * time.Second)
		for srv.Stats().Connections != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections still open", srv.Stats().Connections)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	baseGoroutines := runtime.NumGoroutine()
	heap := func() uint64 {
		// Let the round's goroutines (clients', net/http's) finish first:
		// what they still hold is not a leak.
		for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > baseGoroutines && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		// The fewest of a few readings: goroutines other tests left behind
		// (timers of their servers) allocate now and then, which a single
		// reading in the full suite can catch; a leak shows in every one.
		var least uint64
		for i := range 3 {
			var ms runtime.MemStats
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&ms)
			if i == 0 || ms.HeapObjects < least {
				least = ms.HeapObjects
			}
			time.Sleep(20 * time.Millisecond)
		}
		return least
	}
	round()
	// Goroutines start and end with the work (a connection's writer, a
	// channel's handler), and the runtime never frees a goroutine's
	// descriptor, a heap object: a later round reaching a higher peak of
	// live goroutines than the first would look like growth. Reach a peak
	// above any round's first.
	warmGoroutines(5000)
	first := heap()
	round()
	round()
	third := heap()
	t.Logf("live heap objects after round 1: %d, after round 3: %d", first, third)
	if third > first+150 { // 2 rounds × 100 clients: even one object per connection shows
		t.Fatalf("heap objects grew from %d to %d over two rounds of 100 clients", first, third)
	}
}

// warmGoroutines has n goroutines alive at once, then lets them all end, so
// that the runtime's free list holds n goroutine descriptors for reuse.
func warmGoroutines(n int) {
	var started, done sync.WaitGroup
	release := make(chan struct{})
	for i := 0; i < n; i++ {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			started.Done()
			<-release
		}()
	}
	started.Wait()
	close(release)
	done.Wait()
}
