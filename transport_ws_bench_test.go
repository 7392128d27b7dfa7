package phx_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

// BenchmarkBroadcastToSockets measures one broadcast written to N real
// WebSocket connections on loopback, from Broadcast until every client has
// read the frame: encoding, the connections' queues, their writers,
// coder/websocket's framing and the write system calls. The clients are raw
// TCP readers that count bytes into a fixed buffer, so that (nearly) every
// allocation reported is the server's: allocs/op staying flat as N grows
// is the "zero allocations per subscriber" property.
func BenchmarkBroadcastToSockets(b *testing.B) {
	small := map[string]any{"body": "hello world", "user": "ann", "id": 42}
	large := map[string]any{"body": strings.Repeat("x", 32<<10)} // written past the batch, not copied
	for _, bc := range []struct {
		name    string
		n       int
		payload any
	}{
		{"subscribers=1", 1, small},
		{"subscribers=100", 100, small},
		{"subscribers=1000", 1000, small},
		{"subscribers=100/payload=32KiB", 100, large},
	} {
		n, payload := bc.n, bc.payload
		b.Run(bc.name, func(b *testing.B) {
			srv := phx.NewServer(&phx.Options{Logger: quietLogger(), HeartbeatTimeout: time.Hour})
			srv.Channel("room:*", func() phx.Channel { return benchRoom{} })
			mux := http.NewServeMux()
			mux.Handle("/socket/", srv)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			hs := &http.Server{Handler: mux}
			go hs.Serve(ln)
			defer hs.Close()
			defer srv.Shutdown(b.Context())

			var wg sync.WaitGroup
			var frameLen int
			readers := make([]net.Conn, n)
			for i := range readers {
				c, br := rawJoin(b, ln.Addr().String(), "room:bench")
				readers[i] = c
				defer c.Close()
				if i == n-1 { // learn the frame's size from one broadcast
					wg.Add(n)
					for j := 0; j < n-1; j++ {
						go func(c net.Conn) { // the others read it too
							defer wg.Done()
							rawReadFrame(c)
						}(readers[j])
					}
					if err := srv.Broadcast("room:bench", "new_msg", payload); err != nil {
						b.Fatal(err)
					}
					f, err := rawReadFrame(br)
					if err != nil {
						b.Fatalf("broadcast frame: %v", err)
					}
					switch frameLen = len(f) + 2; { // header: 2, 4 or 10 bytes
					case len(f) >= 1<<16:
						frameLen += 8
					case len(f) >= 126:
						frameLen += 2
					}
					wg.Done()
					wg.Wait()
				}
			}
			var done sync.WaitGroup
			for _, c := range readers {
				done.Add(1)
				go countFrames(c, make([]byte, 4<<10), frameLen, &wg, &done)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				wg.Add(n)
				if err := srv.Broadcast("room:bench", "new_msg", payload); err != nil {
					b.Fatal(err)
				}
				wg.Wait()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
			for _, c := range readers {
				c.Close()
			}
			done.Wait()
		})
	}
}

type benchRoom struct{}

func (benchRoom) Join(*phx.Socket, phx.Payload) (any, error) { return nil, nil }

// countFrames reads c into buf until it fails, calling got.Done once per
// frameLen bytes, without allocating.
func countFrames(c net.Conn, buf []byte, frameLen int, got, done *sync.WaitGroup) {
	defer done.Done()
	var pending int
	for {
		n, err := c.Read(buf)
		pending += n
		for pending >= frameLen {
			pending -= frameLen
			got.Done()
		}
		if err != nil {
			return
		}
	}
}

// rawJoin opens a WebSocket connection by hand and joins topic, returning
// the connection and its reader once the join reply has arrived.
func rawJoin(tb testing.TB, addr, topic string) (net.Conn, *bufio.Reader) {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	msg := append([]byte(rawUpgradeRequest(addr)), maskedFrame(`["1","1","`+topic+`","phx_join",{}]`, [4]byte{1, 2, 3, 4})...)
	if _, err := c.Write(msg); err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("upgrade: %v %v", resp, err)
	}
	if reply, err := rawReadFrame(br); err != nil || !strings.Contains(reply, `"status":"ok"`) {
		tb.Fatalf("join reply %s: %v", reply, err)
	}
	return c, br
}

// rawReadFrame reads one frame's payload (see readFrame).
func rawReadFrame(r io.Reader) (string, error) {
	_, _, p, err := readFrame(r)
	return p, err
}
