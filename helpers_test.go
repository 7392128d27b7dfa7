package phx_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/clienttest"
	"github.com/phxgo/phx/internal/leaktest"
	"github.com/phxgo/phx/internal/wire"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// quietLogger discards logs unless PHX_TEST_LOG is set.
func quietLogger() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}

// testServer is a phx.Server mounted on an httptest server.
type testServer struct {
	*phx.Server
	http *httptest.Server
	url  string // ws://host/socket
}

func newTestServer(t *testing.T, opts *phx.Options, setup func(*phx.Server)) *testServer {
	t.Helper()
	if opts == nil {
		opts = &phx.Options{}
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	srv := phx.NewServer(opts)
	if setup != nil {
		setup(srv)
	}
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	hs := httptest.NewServer(mux)
	ts := &testServer{Server: srv, http: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
	})
	return ts
}

// wsClient speaks raw V2 (or V1) frames to a test server. conn and done are
// those of its clienttest.Conn.
type wsClient struct {
	*clienttest.Conn
	inbox
	conn *websocket.Conn
}

// inbox is what raw test clients share, whatever their transport: the
// frames the server sent, as they arrived (done is closed when the
// connection has ended), and how to write a text frame.
type inbox struct {
	t         *testing.T
	in        chan wsFrame
	done      <-chan struct{}
	why       func() error // why the connection ended
	writeText func(frame string)
}

type wsFrame struct {
	binary bool
	data   []byte
}

func dial(t *testing.T, url string, query string, opts *websocket.DialOptions) *wsClient {
	t.Helper()
	c, err := tryDial(t, url, query, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return c
}

func tryDial(t *testing.T, url string, query string, opts *websocket.DialOptions) (*wsClient, error) {
	t.Helper()
	if query == "" {
		query = "vsn=2.0.0"
	}
	return tryDialURL(t, url+"/websocket?"+query, opts)
}

// tryDialURL dials the full WebSocket URL (path and query).
func tryDialURL(t *testing.T, url string, opts *websocket.DialOptions) (*wsClient, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := &wsClient{inbox: inbox{t: t, in: make(chan wsFrame, 4096)}}
	c.writeText = func(frame string) { c.write([]byte(frame), false) }
	conn, resp, err := clienttest.Dial(ctx, url, opts, func(f clienttest.Frame) {
		c.in <- wsFrame{binary: f.Binary, data: f.Data}
	})
	if err != nil {
		if resp != nil {
			return nil, &dialError{status: resp.StatusCode, err: err}
		}
		return nil, err
	}
	c.Conn, c.conn, c.done, c.why = conn, conn.WS(), conn.Done(), conn.Err
	t.Cleanup(conn.Close)
	return c, nil
}

type dialError struct {
	status int
	err    error
}

func (e *dialError) Error() string { return e.err.Error() }

func (e *dialError) Unwrap() error { return e.err }

func (c *wsClient) write(data []byte, binary bool) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, data, binary); err != nil {
		c.t.Fatal(err)
	}
}

// sendRaw writes one text frame as it is.
func (c *inbox) sendRaw(frame string) {
	c.t.Helper()
	c.writeText(frame)
}

func (c *wsClient) sendBinary(b []byte) {
	c.t.Helper()
	c.write(b, true)
}

// send writes a V2 frame [join_ref, ref, topic, event, payload], each ref
// and the payload encoded as JSON.
func (c *inbox) send(joinRef, ref any, topic, event string, payload any) {
	c.t.Helper()
	c.sendRaw(encodeV2(c.t, joinRef, ref, topic, event, payload))
}

// recvFrame returns the next frame, failing the test after a timeout.
func (c *inbox) recvFrame() wsFrame {
	c.t.Helper()
	select {
	case f := <-c.in:
		return f
	case <-c.done:
		select {
		case f := <-c.in:
			return f
		default:
		}
		c.t.Fatalf("connection closed while waiting for a frame: %v", c.why())
	case <-time.After(5 * time.Second):
		c.t.Fatal("timed out waiting for a frame")
	}
	return wsFrame{}
}

// recv returns the next text frame as a raw string.
func (c *inbox) recv() string {
	c.t.Helper()
	f := c.recvFrame()
	if f.binary {
		c.t.Fatalf("got binary frame %x, want text", f.data)
	}
	return string(f.data)
}

// expect reads the next frame and compares it with want (exact text).
func (c *inbox) expect(want string) {
	c.t.Helper()
	expectFrame(c.t, c.recv(), want)
}

// expectNothing checks that no frame arrives within d.
func (c *inbox) expectNothing(d time.Duration) {
	c.t.Helper()
	select {
	case f := <-c.in:
		c.t.Fatalf("unexpected frame: %s", f.data)
	case <-time.After(d):
	}
}

// expectClose waits for the server to close the connection and returns
// the close code.
func (c *wsClient) expectClose() websocket.StatusCode {
	c.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-c.in: // discard frames sent before the close
		case <-c.done:
			for len(c.in) > 0 {
				<-c.in
			}
			return websocket.CloseStatus(c.Err())
		case <-deadline:
			c.t.Fatal("timed out waiting for the server to close")
			return 0
		}
	}
}

// join sends phx_join with joinRef == ref and expects an ok reply.
func (c *inbox) join(topic, ref string, payload any) string {
	c.t.Helper()
	c.send(ref, ref, topic, "phx_join", payload)
	for {
		got := c.recv()
		// A broadcast to a channel joined before (a presence_diff batched
		// after its join) may come first: it is not this join's business.
		if m, err := wire.DecodeServerV2([]byte(got), false); err == nil && m.Topic != topic && m.Ref.IsNull() {
			continue
		}
		return joinReplyOK(c.t, topic, got)
	}
}

// recorder collects Terminate reasons and other server-side events.
type recorder struct {
	mu     sync.Mutex
	events []string
	ch     chan string
}

func newRecorder() *recorder { return &recorder{ch: make(chan string, 1024)} }

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.events = append(r.events, s)
	r.mu.Unlock()
	r.ch <- s
}

// wait returns the next recorded event.
func (r *recorder) wait(t *testing.T) string {
	t.Helper()
	select {
	case s := <-r.ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a server-side event")
		return ""
	}
}

func reasonName(err error) string {
	var pe *phx.PanicError
	switch {
	case errors.Is(err, phx.ErrLeft):
		return "left"
	case errors.Is(err, phx.ErrClosed):
		return "closed"
	case errors.Is(err, phx.ErrServerClosed):
		return "shutdown"
	case errors.Is(err, phx.ErrDuplicateJoin):
		return "duplicate_join"
	case errors.Is(err, phx.ErrStopped):
		return "stopped"
	case errors.Is(err, phx.ErrChannelOverloaded):
		return "overloaded"
	case errors.As(err, &pe):
		return "panic"
	case err == nil:
		return "nil"
	}
	return "error:" + err.Error()
}

func errorsAs(err error, target any) bool { return err != nil && errors.As(err, target) }

// newHTTPTestServer serves h and returns the ws:// URL of its /socket mount.
func newHTTPTestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket"
}
