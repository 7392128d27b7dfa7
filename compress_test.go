package phx_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/clienttest"
)

// countingListener counts the bytes the server writes on its connections.
type countingListener struct {
	net.Listener
	written *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, written: l.written}, nil
}

type countingConn struct {
	net.Conn
	written *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// newCountingServer serves a room server whose written bytes are counted.
func newCountingServer(tb testing.TB, opts *phx.Options) (srv *phx.Server, url string, written *atomic.Int64) {
	tb.Helper()
	opts.Logger = quietLogger()
	srv = phx.NewServer(opts)
	srv.Channel("room:*", func() phx.Channel { return &room{} })
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	hs := httptest.NewUnstartedServer(mux)
	written = new(atomic.Int64)
	hs.Listener = countingListener{Listener: hs.Listener, written: written}
	hs.Start()
	tb.Cleanup(func() {
		srv.Shutdown(context.Background())
		hs.Close()
	})
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket", written
}

// dialDeflate connects a client that offers permessage-deflate, and
// returns the extension the server accepted ("" for none).
func dialDeflate(tb testing.TB, url string, in chan<- clienttest.Frame) (*clienttest.Conn, string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := clienttest.Dial(ctx, url+"/websocket?vsn=2.0.0&user=z",
		&websocket.DialOptions{CompressionMode: websocket.CompressionNoContextTakeover},
		func(f clienttest.Frame) { in <- f })
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(conn.Close)
	return conn, resp.Header.Get("Sec-WebSocket-Extensions")
}

func TestCompression(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("all work and no play makes jack a dull boy ", 200) // 8.8 KB
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			t.Parallel()
			srv, url, written := newCountingServer(t, &phx.Options{Compress: compress})
			in := make(chan clienttest.Frame, 16)
			conn, ext := dialDeflate(t, url, in)
			if got := strings.Contains(ext, "permessage-deflate"); got != compress {
				t.Fatalf("Sec-WebSocket-Extensions %q with Compress %v", ext, compress)
			}
			ctx := context.Background()
			if err := conn.Write(ctx, []byte(`["1","1","room:z","phx_join",{}]`), false); err != nil {
				t.Fatal(err)
			}
			if f := <-in; !strings.Contains(string(f.Data), `"status":"ok"`) {
				t.Fatalf("join reply %s", f.Data)
			}
			before := written.Load()
			if err := srv.Broadcast("room:z", "big", map[string]string{"text": big}); err != nil {
				t.Fatal(err)
			}
			f := <-in
			if want := `[null,null,"room:z","big",{"text":"` + big + `"}]`; string(f.Data) != want {
				t.Fatalf("broadcast arrived as %d bytes, want the %d sent", len(f.Data), len(want))
			}
			// The client can read the frame before the server's write call
			// returns and counts it: wait for the count to settle.
			sent := written.Load() - before
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if sent = written.Load() - before; sent > 0 {
					break
				}
			}
			if compress && sent > 1000 || !compress && sent < int64(len(big)) {
				t.Fatalf("%d bytes on the wire for a %d-byte broadcast with Compress %v", sent, len(f.Data), compress)
			}
		})
	}
}

// TestCompressionInflateLimit: MaxMessageSize counts inflated bytes. A
// 1 MiB message that deflates to a few KiB closes the connection with 1009.
func TestCompressionInflateLimit(t *testing.T) {
	t.Parallel()
	_, url, _ := newCountingServer(t, &phx.Options{Compress: true})
	in := make(chan clienttest.Frame, 16)
	conn, _ := dialDeflate(t, url, in)
	bomb := `["1","1","room:z","phx_join",{"pad":"` + strings.Repeat("a", 1<<20) + `"}]`
	if err := conn.Write(context.Background(), []byte(bomb), false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-conn.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection stayed open")
	}
	if code := websocket.CloseStatus(conn.Err()); code != websocket.StatusMessageTooBig {
		t.Fatalf("close code %d (%v), want 1009", code, conn.Err())
	}
}

// BenchmarkCompression measures a broadcast to 100 WebSocket clients with
// and without permessage-deflate: bytes the server wrote per delivery, and
// CPU time of the whole process (server and clients, which inflate) per
// delivery. chat is a typical chat message (under the 512-byte threshold,
// so it goes uncompressed unless CompressThreshold is negative); presence is a
// presence_state of a 40-member room.
func BenchmarkCompression(b *testing.B) {
	chat := map[string]any{"id": 1842, "user": "ann", "body": "are we still on for the demo at three? I moved it to the big room", "at": "2026-12-03T12:41:07Z"}
	members := map[string]any{}
	for i := 0; i < 40; i++ {
		members[fmt.Sprintf("user%d", i)] = map[string]any{"metas": []any{map[string]any{"phx_ref": fmt.Sprintf("F%015d", i*7919), "online_at": 1764765667 + i, "status": "online"}}}
	}
	for _, bc := range []struct {
		name      string
		payload   any
		compress  bool
		threshold int
	}{
		{"chat/off", chat, false, 0},
		{"chat/on", chat, true, 0},
		{"chat/on-every-message", chat, true, -1},
		{"presence/off", members, false, 0},
		{"presence/on", members, true, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const n = 100
			srv, url, written := newCountingServer(b, &phx.Options{Compress: bc.compress, CompressThreshold: bc.threshold, HeartbeatTimeout: time.Hour})
			var got sync.WaitGroup
			for i := 0; i < n; i++ {
				in := make(chan clienttest.Frame, 1)
				conn, _ := dialDeflate(b, url, in)
				if err := conn.Write(context.Background(), []byte(`["1","1","room:z","phx_join",{}]`), false); err != nil {
					b.Fatal(err)
				}
				<-in
				go func() {
					for {
						select {
						case <-in:
							got.Done()
						case <-conn.Done():
							return
						}
					}
				}()
			}
			before := written.Load()
			cpu0 := processCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				got.Add(n)
				if err := srv.Broadcast("room:z", "new_msg", bc.payload); err != nil {
					b.Fatal(err)
				}
				got.Wait()
			}
			b.StopTimer()
			deliveries := float64(b.N * n)
			b.ReportMetric(float64(written.Load()-before)/deliveries, "wire-B/delivery")
			b.ReportMetric(float64(processCPU()-cpu0)/deliveries, "cpu-ns/delivery")
		})
	}
}

// processCPU returns the process's user and system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
