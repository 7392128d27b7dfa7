package phx

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stackRoom is phxmin's room: with presence it tracks every join and pushes
// presence_state, as examples/chat does.
type stackRoom struct{ presence *Presence }

var stackUsers atomic.Uint64

func (r stackRoom) Join(s *Socket, _ Payload) (any, error) {
	if r.presence == nil {
		return nil, nil
	}
	key := fmt.Sprintf("u%d", stackUsers.Add(1))
	if err := r.presence.Track(s, key, map[string]any{"online_at": time.Now().UnixMilli()}); err != nil {
		return nil, err
	}
	return nil, r.presence.PushState(s)
}

func (stackRoom) HandleIn(*Socket, string, Payload) (any, error) { return nil, nil }

// rawWSClient is a WebSocket client without a goroutine: it writes the
// handshake and masked frames itself and reads only what it is asked to,
// so that the goroutines and stacks of the process are the server's.
type rawWSClient struct {
	c  net.Conn
	br *bufio.Reader
}

func dialRawWS(t testing.TB, addr, path string) *rawWSClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	return &rawWSClient{c: c, br: br}
}

// send writes one masked text frame (mask zero: the payload goes as is).
func (r *rawWSClient) send(t testing.TB, msg string) {
	t.Helper()
	hdr := []byte{0x81}
	switch n := len(msg); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	default:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	}
	hdr = append(hdr, 0, 0, 0, 0)
	if _, err := r.c.Write(append(hdr, msg...)); err != nil {
		t.Fatal(err)
	}
}

// readUntil reads frames until one contains want.
func (r *rawWSClient) readUntil(t testing.TB, want string) {
	t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var h [2]byte
		if _, err := io.ReadFull(r.br, h[:]); err != nil {
			t.Fatal(err)
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			_, _ = io.ReadFull(r.br, b[:])
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			_, _ = io.ReadFull(r.br, b[:])
			n = binary.BigEndian.Uint64(b[:])
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r.br, data); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), want) {
			return
		}
	}
}

// TestStackPerConnection reports the goroutine stack bytes a joined, idle
// WebSocket connection holds (runtime.MemStats.StackInuse over the
// connections, after a GC has had the chance to shrink stacks), with and
// without presence in rooms of 100. Run with -v to see the figures.
func TestStackPerConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("measures memory: skipped with -short")
	}
	for _, presence := range []bool{false, true} {
		t.Run(fmt.Sprintf("presence=%v", presence), func(t *testing.T) {
			conns := 2000
			srv := NewServer(&Options{Logger: slog.New(slog.DiscardHandler)})
			var room stackRoom
			if presence {
				room.presence = NewPresence(srv, nil)
			}
			srv.Channel("room:*", func() Channel { return room })
			hs := httptest.NewServer(srv)
			defer hs.Close()
			addr := strings.TrimPrefix(hs.URL, "http://")

			stacks := func() (uint64, int) {
				runtime.GC()
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				return ms.StackInuse, runtime.NumGoroutine()
			}
			time.Sleep(50 * time.Millisecond)
			before, g0 := stacks()
			clients := make([]*rawWSClient, conns)
			// Joined 50 at a time, as a load generator would: the
			// runtime's starting stack size follows the average stack of
			// the goroutines at each GC, busy ones included.
			var wg sync.WaitGroup
			next := atomic.Int64{}
			for range 50 {
				wg.Go(func() {
					for {
						i := int(next.Add(1)) - 1
						if i >= conns {
							return
						}
						c := dialRawWS(t, addr, "/socket/websocket?vsn=2.0.0")
						c.send(t, fmt.Sprintf(`["1","1","room:p%d","phx_join",{}]`, i%(conns/100)))
						c.readUntil(t, `"phx_reply"`)
						clients[i] = c
					}
				})
			}
			wg.Wait()
			time.Sleep(200 * time.Millisecond) // presence flushes, writers return
			after, g1 := stacks()
			per := float64(after-before) / float64(conns)
			sample := []rtmetrics.Sample{{Name: "/gc/stack/starting-size:bytes"}}
			rtmetrics.Read(sample)
			t.Logf("presence=%v: %d connections, %d goroutines more, stacks %.0f B/conn (%.2f KiB), starting size %d",
				presence, conns, g1-g0, per, per/1024, sample[0].Value.Uint64())
			if os.Getenv("PHX_STACK_DUMP") != "" {
				panic("stack dump")
			}
			for _, c := range clients {
				c.c.Close()
			}
		})
	}
}
