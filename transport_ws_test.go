package phx_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
)

// The server functions whose goroutines TestIdleConnectionsKeepOnlyTheirReader
// counts.
const (
	fnReadLoop = "github.com/phxgo/phx.(*wsTransport).readLoop"
	fnWriter   = "github.com/phxgo/phx.(*wsTransport).writeLoop"
	fnRun      = "github.com/phxgo/phx.(*channel).run"
	fnDrain    = "github.com/phxgo/phx.(*channel).drain"
)

var goroutineLabelSeq atomic.Int64

// labelGoroutines labels the test's goroutine, and so every goroutine it
// starts and theirs in turn (the httptest server's, net/http's connection
// goroutines, phx's connection, writer and channel goroutines), so that
// countGoroutines can tell this test's server from others running in the
// same process. It returns the label's value.
func labelGoroutines(t *testing.T) string {
	t.Helper()
	v := fmt.Sprintf("%s#%d", t.Name(), goroutineLabelSeq.Add(1))
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("phxtest", v)))
	t.Cleanup(func() { pprof.SetGoroutineLabels(context.Background()) })
	return v
}

// countGoroutines parses the goroutine profile and returns, for each of
// fns, the number of goroutines with the label phxtest=label that have
// that function on their stack.
func countGoroutines(label string, fns ...string) map[string]int {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		panic(err)
	}
	labelLine := fmt.Sprintf("# labels: {%q:%q}", "phxtest", label)
	counts := make(map[string]int, len(fns))
	for _, fn := range fns {
		counts[fn] = 0
	}
	// The profile starts with a "goroutine profile: total N" line. Each
	// record is "N @ pcs", then "# labels: {...}" when the goroutines have
	// labels, then one "#\tpc\tfunction+off\tfile:line" line per frame.
	count, labeled := 0, false
	onStack := map[string]bool{}
	flush := func() {
		if labeled {
			for _, fn := range fns {
				if onStack[fn] {
					counts[fn] += count
				}
			}
		}
		count, labeled = 0, false
		clear(onStack)
	}
	for _, l := range strings.Split(buf.String(), "\n") {
		if n, _, ok := strings.Cut(l, " @ "); ok && !strings.HasPrefix(l, "#") {
			flush()
			count, _ = strconv.Atoi(n)
			continue
		}
		if l == labelLine {
			labeled = true
			continue
		}
		if f := strings.Split(l, "\t"); len(f) >= 3 && f[0] == "#" {
			name, _, _ := strings.Cut(f[2], "+0x")
			onStack[name] = true
		}
	}
	flush()
	return counts
}

// waitServerGoroutines polls countGoroutines until it equals want, and fails
// the test with the last counts after deadline.
func waitServerGoroutines(t *testing.T, label, when string, want map[string]int, deadline time.Duration) {
	t.Helper()
	fns := make([]string, 0, len(want))
	for fn := range want {
		fns = append(fns, fn)
	}
	end := time.Now().Add(deadline)
	for {
		got := countGoroutines(label, fns...)
		same := true
		for fn, n := range want {
			if got[fn] != n {
				same = false
			}
		}
		if same {
			return
		}
		if time.Now().After(end) {
			var b strings.Builder
			for _, fn := range fns {
				fmt.Fprintf(&b, "\n  %-45s %4d, want %d", fn, got[fn], want[fn])
			}
			t.Fatalf("%s: server goroutines after %v:%s", when, deadline, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIdleConnectionsKeepOnlyTheirReader(t *testing.T) {
	t.Parallel()
	label := labelGoroutines(t) // before the server starts
	ts, _ := newRoomServer(t, nil)
	const n = 20
	clients := make([]*wsClient, n)
	for i := range clients {
		c := dial(t, ts.url, fmt.Sprintf("user=u%d&vsn=2.0.0", i), nil)
		c.join("room:all", "1", map[string]any{})
		c.join(fmt.Sprintf("room:own%d", i), "2", map[string]any{})
		clients[i] = c
	}
	idle := map[string]int{fnReadLoop: n, fnWriter: 0, fnRun: 0, fnDrain: 0}
	waitServerGoroutines(t, label, "idle after joins", idle, 2*time.Second)

	// Traffic: pushes to both channels (replies come from the channels'
	// goroutines), plain broadcasts (fastlane, written by the writer) and
	// intercepted ones (HandleOut on the channel's goroutine), in rounds so
	// that writers and channel goroutines start and stop repeatedly.
	const rounds = 5
	streams := make([][][]string, n) // per client: expected frames, one stream per ordering guarantee
	for i := range streams {
		streams[i] = make([][]string, 6)
	}
	for k := 0; k < rounds; k++ {
		for i, c := range clients {
			own := fmt.Sprintf("room:own%d", i)
			c.send("1", fmt.Sprintf("a%d", k), "room:all", "echo", map[string]int{"k": k})
			c.send("2", fmt.Sprintf("b%d", k), own, "echo", map[string]int{"k": k})
			streams[i][0] = append(streams[i][0], fmt.Sprintf(`["1","a%d","room:all","phx_reply",{"status":"ok","response":{"k":%d}}]`, k, k))
			streams[i][1] = append(streams[i][1], fmt.Sprintf(`["2","b%d","%s","phx_reply",{"status":"ok","response":{"k":%d}}]`, k, own, k))
		}
		if err := ts.Broadcast("room:all", "news", map[string]int{"n": k}); err != nil {
			t.Fatal(err)
		}
		if err := ts.Broadcast("room:all", "secret", map[string]int{"n": k}); err != nil {
			t.Fatal(err)
		}
		for i := range clients {
			own := fmt.Sprintf("room:own%d", i)
			if err := ts.Broadcast(own, "dm", map[string]int{"n": k}); err != nil {
				t.Fatal(err)
			}
			streams[i][2] = append(streams[i][2], fmt.Sprintf(`[null,null,"room:all","news",{"n":%d}]`, k))
			streams[i][3] = append(streams[i][3], fmt.Sprintf(`["1",null,"room:all","secret",{"n":%d,"seen_by":"u%d"}]`, k, i))
			streams[i][4] = append(streams[i][4], fmt.Sprintf(`[null,null,"%s","dm",{"n":%d}]`, own, k))
		}
	}
	for i, c := range clients {
		total := 0
		for _, s := range streams[i] {
			total += len(s)
		}
		pos := make([]int, len(streams[i]))
		for got := 0; got < total; got++ {
			f := c.recv()
			matched := false
			for s, want := range streams[i] {
				if pos[s] < len(want) && want[pos[s]] == f {
					pos[s]++
					matched = true
					break
				}
			}
			if !matched {
				t.Fatalf("client %d: frame %d is unexpected or out of order: %s\nnext expected: %v", i, got, f, nextOf(streams[i], pos))
			}
		}
	}
	for i, c := range clients {
		select {
		case f := <-c.in:
			t.Fatalf("client %d: unexpected extra frame %s", i, f.data)
		default:
		}
	}

	waitServerGoroutines(t, label, "idle after traffic", idle, 2*time.Second)
}

func nextOf(streams [][]string, pos []int) []string {
	var out []string
	for s, want := range streams {
		if pos[s] < len(want) {
			out = append(out, want[pos[s]])
		}
	}
	return out
}

// rawUpgradeRequest is a V2 WebSocket upgrade request for /socket, with the
// key of RFC 6455's example (its accept value: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=).
func rawUpgradeRequest(addr string) string {
	return "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: " + addr + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
}

// maskedFrame returns a client-to-server WebSocket text frame (FIN, masked)
// carrying payload, which must be under 126 bytes.
func maskedFrame(payload string, key [4]byte) []byte {
	b := []byte{0x81, 0x80 | byte(len(payload))}
	b = append(b, key[:]...)
	for i := 0; i < len(payload); i++ {
		b = append(b, payload[i]^key[i%4])
	}
	return b
}

// readServerFrame reads one unmasked, unfragmented text frame.
func readServerFrame(t *testing.T, r io.Reader) string {
	t.Helper()
	h0, masked, p, err := readFrame(r)
	if err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	if h0 != 0x81 {
		t.Fatalf("frame header byte 0x%02x, want 0x81 (FIN, text)", h0)
	}
	if masked {
		t.Fatal("server frame is masked")
	}
	return p
}

// readFrame reads one WebSocket frame: its first header byte (FIN and
// opcode), whether it is masked, and its payload (unmasked frames only).
func readFrame(r io.Reader) (h0 byte, masked bool, payload string, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, false, "", err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return 0, false, "", err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return 0, false, "", err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if h[1]&0x80 != 0 {
		return h[0], true, "", nil
	}
	if n > 64<<20 {
		return 0, false, "", fmt.Errorf("frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, false, "", fmt.Errorf("reading a %d-byte frame payload: %w", n, err)
	}
	return h[0], false, string(p), nil
}

// TestPipelinedFrameAfterUpgrade sends frames in the same write as the
// upgrade request: net/http has read them along with the request by the
// time the connection is hijacked, and the server must still see them.
func TestPipelinedFrameAfterUpgrade(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, nil)
	addr := ts.http.Listener.Addr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))

	msg := []byte(rawUpgradeRequest(addr))
	msg = append(msg, maskedFrame(`["1","1","phoenix","heartbeat",{}]`, [4]byte{0x12, 0x34, 0x56, 0x78})...)
	msg = append(msg, maskedFrame(`["1","2","phoenix","heartbeat",{}]`, [4]byte{0x9a, 0xbc, 0xde, 0xf0})...)
	if _, err := c.Write(msg); err != nil { // one write: request and frames
		t.Fatal(err)
	}

	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatalf("reading the upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade response %s, want 101", resp.Status)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("Sec-WebSocket-Accept %q", got)
	}
	for _, ref := range []string{"1", "2"} {
		want := `[null,"` + ref + `","phoenix","phx_reply",{"status":"ok","response":{}}]`
		if got := readServerFrame(t, br); got != want {
			t.Fatalf("reply to pipelined heartbeat %s:\n got: %s\nwant: %s", ref, got, want)
		}
	}
	// Past the replayed bytes, the connection reads from the socket.
	if _, err := c.Write(maskedFrame(`["1","3","phoenix","heartbeat",{}]`, [4]byte{1, 2, 3, 4})); err != nil {
		t.Fatal(err)
	}
	if got, want := readServerFrame(t, br), `[null,"3","phoenix","phx_reply",{"status":"ok","response":{}}]`; got != want {
		t.Fatalf("reply to a later heartbeat:\n got: %s\nwant: %s", got, want)
	}
}

// stuckRoom reports on events when it is subscribed (from HandleInfo, which
// runs after the subscription) and when it terminates, tagged with the
// "who" of its join payload.
type stuckRoom struct {
	events chan<- string
	who    string
}

func (r *stuckRoom) Join(s *phx.Socket, p phx.Payload) (any, error) {
	var params struct{ Who string }
	if err := p.Decode(&params); err != nil {
		return nil, err
	}
	r.who = params.Who
	return nil, s.Send("subscribed")
}

func (r *stuckRoom) HandleInfo(s *phx.Socket, msg any) { r.events <- "subscribed:" + r.who }

func (r *stuckRoom) Terminate(s *phx.Socket, reason error) {
	r.events <- r.who + ":" + reasonName(reason)
}

func TestWriteTimeoutClosesStuckClient(t *testing.T) {
	t.Parallel()
	events := make(chan string, 64)
	ts := newTestServer(t, &phx.Options{
		WriteTimeout:      300 * time.Millisecond,
		MaxQueuedBytes:    256 << 20,
		MaxQueuedMessages: 1 << 20,
	}, func(s *phx.Server) {
		s.Channel("stuck:*", func() phx.Channel { return &stuckRoom{events: events} })
	})
	next := func(what string) string {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(5 * time.Second):
			t.Fatalf("timed out waiting for %s", what)
			return ""
		}
	}

	// The stuck client joins, then never reads again.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stuck, _, err := websocket.Dial(ctx, ts.url+"/websocket?vsn=2.0.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.CloseNow()
	if err := stuck.Write(ctx, websocket.MessageText, []byte(`["1","1","stuck:t","phx_join",{"who":"stuck"}]`)); err != nil {
		t.Fatal(err)
	}
	if ev := next("the stuck client's channel to subscribe"); ev != "subscribed:stuck" {
		t.Fatalf("event %q, want subscribed:stuck", ev)
	}
	reader := dial(t, ts.url, "vsn=2.0.0", nil)
	reader.join("stuck:t", "1", map[string]any{"who": "reader"})
	if ev := next("the reading client's channel to subscribe"); ev != "subscribed:reader" {
		t.Fatalf("event %q, want subscribed:reader", ev)
	}

	// Broadcast 64 KiB messages until the stuck client's socket buffers
	// are full and a write times out.
	pad := strings.Repeat("p", 64<<10)
	frameFor := func(i int) (json.RawMessage, string) {
		p := fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, pad)
		return json.RawMessage(p), `[null,null,"stuck:t","big",` + p + `]`
	}
	start := time.Now()
	var terminated string
	sent := 0
	for total := 0; total < 64<<20 && terminated == ""; total += 64 << 10 {
		p, want := frameFor(sent)
		if err := ts.Broadcast("stuck:t", "big", p); err != nil {
			t.Fatal(err)
		}
		sent++
		// The reading client keeps up (this also paces the loop).
		if got := reader.recv(); got != want {
			t.Fatalf("reading client, broadcast %d: got %d bytes %.60s..., want %.60s...", sent-1, len(got), got, want)
		}
		select {
		case terminated = <-events:
		default:
		}
	}
	if terminated == "" {
		terminated = next("the stuck client's channel to terminate")
	}
	t.Logf("stuck client's channel ended (%s) %v after the first of %d broadcasts of 64 KiB", terminated, time.Since(start).Round(time.Millisecond), sent)
	if terminated != "stuck:closed" {
		t.Fatalf("Terminate %q, want stuck:closed", terminated)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("stuck client closed after %v", d)
	}
	if n := ts.Stats().SlowClientsClosed; n != 0 {
		t.Fatalf("SlowClientsClosed = %d: the queue overflowed, the write timeout did not close the client", n)
	}

	// The reading client on the same topic is unaffected.
	for i := 0; i < 3; i++ {
		p, want := frameFor(sent)
		if err := ts.Broadcast("stuck:t", "big", p); err != nil {
			t.Fatal(err)
		}
		sent++
		if got := reader.recv(); got != want {
			t.Fatalf("reading client after the stuck one closed: got %.60s..., want %.60s...", got, want)
		}
	}
	select {
	case ev := <-events:
		t.Fatalf("unexpected event %q", ev)
	default:
	}
	reader.send("1", "2", "phoenix", "heartbeat", map[string]any{})
	reader.expect(`[null,"2","phoenix","phx_reply",{"status":"ok","response":{}}]`)
}

// randomText returns n pseudo-random letters and digits, the same for the
// same seed: a corrupted, truncated or reordered copy does not compare equal.
func randomText(n int, seed uint64) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func TestLargeFramesPassSmallBuffers(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, nil) // MaxMessageSize: the default 64 KiB
	c := dial(t, ts.url, "user=big&vsn=2.0.0", nil)
	c.join("room:big", "1", map[string]any{})

	// Inbound: a 48 KiB push, far past the 512-byte read buffer, echoed.
	in := `{"b":"` + randomText(48<<10, 1) + `"}`
	c.sendRaw(`["1","2","room:big","echo",` + in + `]`)
	if got, want := c.recv(), `["1","2","room:big","phx_reply",{"status":"ok","response":`+in+`}]`; got != want {
		t.Fatalf("echo of a 48 KiB push: got %d bytes, want %d", len(got), len(want))
	}

	// Outbound: MaxMessageSize limits only what clients send. Two 200 KiB
	// broadcasts and a small one, which a writer may batch together, then
	// a 200 KiB binary one: each arrives intact, in order.
	var want []string
	for _, text := range []string{randomText(200<<10, 2), randomText(200<<10, 3), "small"} {
		p := `{"b":"` + text + `"}`
		if err := ts.Broadcast("room:big", "blob", json.RawMessage(p)); err != nil {
			t.Fatal(err)
		}
		want = append(want, `[null,null,"room:big","blob",`+p+`]`)
	}
	bin := []byte(randomText(200<<10, 4))
	if err := ts.Broadcast("room:big", "bin", phx.Binary(bin)); err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		if got := c.recv(); got != w {
			t.Fatalf("broadcast %d: got %d bytes %.50s..., want %d bytes %.50s...", i, len(got), got, len(w), w)
		}
	}
	wantBin := append([]byte{2, byte(len("room:big")), byte(len("bin"))}, "room:bigbin"...)
	wantBin = append(wantBin, bin...)
	if f := c.recvFrame(); !f.binary || !bytes.Equal(f.data, wantBin) {
		t.Fatalf("binary broadcast: got binary=%v, %d bytes; want binary, %d bytes", f.binary, len(f.data), len(wantBin))
	}
}

// TestWebSocketOverTLS: behind TLS the hijacked connection is a *tls.Conn:
// the small buffers, the batched writes and their deadlines work on it as
// on TCP (a join, pipelined pushes and replies, broadcasts large and
// small).
func TestWebSocketOverTLS(t *testing.T) {
	t.Parallel()
	srv := phx.NewServer(&phx.Options{Logger: quietLogger()})
	srv.Channel("room:*", func() phx.Channel { return &room{} })
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	hs := httptest.NewTLSServer(mux)
	defer hs.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	url := "wss" + strings.TrimPrefix(hs.URL, "https") + "/socket"
	c := dial(t, url, "user=tls&vsn=2.0.0", &websocket.DialOptions{HTTPClient: hs.Client()})
	c.join("room:tls", "1", map[string]any{})
	for i := 2; i < 12; i++ { // sent back to back: replies may share a write
		c.send("1", strconv.Itoa(i), "room:tls", "echo", map[string]int{"n": i})
	}
	for i := 2; i < 12; i++ {
		c.expect(fmt.Sprintf(`["1","%d","room:tls","phx_reply",{"status":"ok","response":{"n":%d}}]`, i, i))
	}
	big := randomText(100<<10, 5)
	for _, body := range []string{big, "small"} {
		if err := srv.Broadcast("room:tls", "blob", map[string]string{"b": body}); err != nil {
			t.Fatal(err)
		}
	}
	for _, body := range []string{big, "small"} {
		if got, want := c.recv(), `[null,null,"room:tls","blob",{"b":"`+body+`"}]`; got != want {
			t.Fatalf("broadcast over TLS: got %d bytes, want %d", len(got), len(want))
		}
	}
}
