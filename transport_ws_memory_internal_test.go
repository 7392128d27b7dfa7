package phx

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
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
	c         net.Conn
	br        *bufio.Reader
	fragments int // frames of the last message readUntil returned
}

func dialRawWS(t testing.TB, addr, path string, early ...string) *rawWSClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	for _, m := range early { // sent with the request, in the same write
		req = append(req, clientFrame(m)...)
	}
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(c, 256)
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
	if _, err := r.c.Write(clientFrame(msg)); err != nil {
		t.Fatal(err)
	}
}

// clientFrame is msg as a client's text frame, masked with a zero mask.
func clientFrame(msg string) []byte {
	hdr := []byte{0x81}
	switch n := len(msg); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	default:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	}
	hdr = append(hdr, 0, 0, 0, 0)
	return append(hdr, msg...)
}

// readUntil reads messages until one contains want, and returns it.
func (r *rawWSClient) readUntil(t testing.TB, want string) []byte {
	t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var msg []byte
	r.fragments = 0
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
		msg = append(msg, data...)
		r.fragments++
		if h[0]&0x80 == 0 { // not the last fragment
			continue
		}
		if strings.Contains(string(msg), want) {
			return msg
		}
		msg, r.fragments = nil, 0
	}
}

// TestAwaitInputBuffered: frames the reader already holds are read without
// waiting for more input: frames sent in the same packet as the upgrade
// request (net/http read them), and several frames in one write (the
// reader's buffer holds the rest after the first).
func TestAwaitInputBuffered(t *testing.T) {
	srv := NewServer(&Options{Logger: slog.New(slog.DiscardHandler)})
	srv.Channel("room:*", func() Channel { return stackRoom{} })
	hs := httptest.NewServer(srv)
	defer hs.Close()
	addr := strings.TrimPrefix(hs.URL, "http://")
	c := dialRawWS(t, addr, "/socket/websocket?vsn=2.0.0",
		`["1","1","room:a","phx_join",{}]`, `[null,"2","phoenix","heartbeat",{}]`)
	defer c.c.Close()
	// The heartbeat's reply may come before the join's: either order.
	seen := map[string]bool{}
	for len(seen) < 2 {
		m := string(c.readUntil(t, `"phx_reply"`))
		for _, want := range []string{`"1","1","room:a","phx_reply"`, `"2","phoenix","phx_reply"`} {
			if strings.Contains(m, want) {
				seen[want] = true
			}
		}
	}
	time.Sleep(20 * time.Millisecond) // the reader waits on the socket again
	var burst []byte
	for ref := 3; ref < 6; ref++ {
		burst = append(burst, clientFrame(fmt.Sprintf(`[null,"%d","phoenix","heartbeat",{}]`, ref))...)
	}
	if _, err := c.c.Write(burst); err != nil {
		t.Fatal(err)
	}
	for ref := 3; ref < 6; ref++ {
		c.readUntil(t, fmt.Sprintf(`"%d","phoenix","phx_reply"`, ref))
	}
}

// TestPresenceStateInPieces: a presence_state over sharedPayloadMin goes
// out as a frame in pieces (fragments of one message) and arrives whole,
// with the joiner's own join_ref; over long-poll and other transports
// (TakeFrames) it is one piece.
func TestPresenceStateInPieces(t *testing.T) {
	srv := NewServer(&Options{Logger: slog.New(slog.DiscardHandler)})
	room := stackRoom{presence: NewPresence(srv, nil)}
	srv.Channel("room:*", func() Channel { return room })
	hs := httptest.NewServer(srv)
	defer hs.Close()
	addr := strings.TrimPrefix(hs.URL, "http://")
	const members = 120 // ≈ 75 bytes an entry: over 4 KiB
	var last []byte
	fragments := 0
	for i := range members {
		c := dialRawWS(t, addr, "/socket/websocket?vsn=2.0.0")
		defer c.c.Close()
		c.send(t, fmt.Sprintf(`["j%d","1","room:big","phx_join",{}]`, i))
		last = c.readUntil(t, `"presence_state"`)
		fragments = c.fragments
	}
	if fragments < 2 {
		t.Errorf("the last presence_state came in %d frame(s), want fragments", fragments)
	}
	var f []json.RawMessage
	if err := json.Unmarshal(last, &f); err != nil || len(f) != 5 {
		t.Fatalf("presence_state frame %.200q: %v", last, err)
	}
	if want := fmt.Sprintf(`"j%d"`, members-1); string(f[0]) != want || string(f[1]) != "null" || string(f[2]) != `"room:big"` {
		t.Fatalf("frame head = %s %s %s, want %s null \"room:big\"", f[0], f[1], f[2], want)
	}
	var state map[string]json.RawMessage
	if err := json.Unmarshal(f[4], &state); err != nil || len(state) != members {
		t.Fatalf("state of %d entries (%v), want %d", len(state), err, members)
	}
	if len(f[4]) < sharedPayloadMin {
		t.Fatalf("state of %d bytes: under sharedPayloadMin, not in pieces", len(f[4]))
	}

	// A frame in pieces is handed whole by TakeFrames.
	c := newConn(context.Background(), srv, codec{ser: v2JSON}, "", nil, "test")
	payload := Payload{Data: append([]byte(`{"k":"`), append(bytes.Repeat([]byte("x"), sharedPayloadMin), `"}`...)...)}
	if err := c.pushShared(Ref(`"7"`), "room:x", "presence_state", payload); err != nil {
		t.Fatal(err)
	}
	if q := c.out.frames; len(q) != 1 || q[0].rest == nil {
		t.Fatalf("queued %d frames, in pieces: %v", len(q), len(q) == 1 && q[0].rest != nil)
	}
	frames, _ := c.pub.TakeFrames(nil)
	want := `["7",null,"room:x","presence_state",` + string(payload.Data) + `]`
	if len(frames) != 1 || string(frames[0].Data) != want || frames[0].rest != nil {
		t.Fatalf("TakeFrames = %d frames, first %.80q", len(frames), frames[0].Data)
	}
}

// TestStackPerConnection measures the goroutine stack bytes a joined, idle
// WebSocket connection holds (runtime.MemStats.StackInuse over 2,000
// connections, after GCs have had the chance to shrink stacks), with and
// without presence in rooms of 100, and the live heap they add (the
// clients' side included: a socket and a 256-byte reader each). Run with
// -v to see the figures; PHX_HEAP_PROFILE=file writes a heap profile of
// the presence case, PHX_STACK_DUMP=1 panics there for a traceback with
// frame addresses (with GOTRACEBACK=system).
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

			var heap uint64
			stacks := func() (uint64, int) {
				runtime.GC()
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				heap = ms.HeapAlloc
				return ms.StackInuse, runtime.NumGoroutine()
			}
			time.Sleep(50 * time.Millisecond)
			before, g0 := stacks()
			heap0 := heap
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
			t.Logf("presence=%v: %d connections, %d goroutines more, stacks %.0f B/conn (%.2f KiB), starting size %d; live heap %.2f KiB/conn",
				presence, conns, g1-g0, per, per/1024, sample[0].Value.Uint64(), float64(heap-heap0)/float64(conns)/1024)
			// A reader parked between frames holds a 4 KiB stack, never
			// the 8 KiB it may have started with during the joins.
			if limit := 5 << 10; !raceEnabled && per > float64(limit) {
				t.Errorf("stacks: %.0f bytes per connection, want at most %d", per, limit)
			}
			// The live heap, both sides of each connection together, was
			// 5.96 KiB without presence and 6.30 KiB with it (2026-12-04):
			// a change that makes every connection keep 0.7 KiB more fails.
			if live, limit := float64(heap-heap0)/float64(conns), 7.0*1024; !raceEnabled && live > limit {
				t.Errorf("live heap: %.0f bytes per connection, want at most %.0f", live, limit)
			}
			if f := os.Getenv("PHX_HEAP_PROFILE"); f != "" && presence {
				out, err := os.Create(f)
				if err != nil {
					t.Fatal(err)
				}
				_ = pprof.WriteHeapProfile(out)
				out.Close()
			}
			if os.Getenv("PHX_STACK_DUMP") != "" {
				panic("stack dump")
			}
			for _, c := range clients {
				c.c.Close()
			}
		})
	}
}

// TestStructSizeClasses: a connection and a channel, one of each per joined
// client, stay within the allocator's size classes they fit today (640 and
// 384 bytes). A field that pushes one into the next class costs every
// connection 64 or 32 bytes more: look for padding, or a field that can
// go, before raising the bound. An object over 512 bytes that holds
// pointers carries an 8-byte header in its allocation (Go 1.22 and later),
// so a 640-byte conn would take 704.
func TestStructSizeClasses(t *testing.T) {
	allocated := func(size uintptr) uintptr {
		if size > 512 {
			size += 8
		}
		return size
	}
	for _, s := range []struct {
		name       string
		size, want uintptr
	}{
		{"conn", allocated(unsafe.Sizeof(conn{})), 640},
		{"channel", allocated(unsafe.Sizeof(channel{})), 384},
	} {
		if s.size > s.want {
			t.Errorf("%s takes %d bytes with its allocation header, over the %d-byte size class", s.name, s.size, s.want)
		}
	}
}
