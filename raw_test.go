package phx_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
)

// echoSocket is a raw socket speaking a line protocol of its own:
// "echo X" → "X", "info N" → N HandleInfo pushes in order, "fail" returns
// an error, "panic" panics, "close" closes with 4000; a binary message is
// pushed back as is; pings are reported as "ping:PAYLOAD".
type echoSocket struct {
	id     string
	events chan<- string // Terminate reasons and connects, for the test
}

func (e *echoSocket) ID() string { return e.id }

func (e *echoSocket) Init(c *phx.RawConn) error {
	return c.Push(phx.RawMessage{Data: []byte("welcome " + c.Transport())})
}

func (e *echoSocket) HandleIn(c *phx.RawConn, m phx.RawMessage) error {
	if m.Binary {
		if err := c.Push(m); !errors.Is(err, phx.ErrBinaryUnsupported) {
			return err
		}
		return c.Push(phx.RawMessage{Data: []byte(fmt.Sprintf("%d binary bytes", len(m.Data)))})
	}
	cmd, arg, _ := strings.Cut(string(m.Data), " ")
	switch cmd {
	case "echo":
		return c.Push(phx.RawMessage{Data: []byte(arg)})
	case "info":
		var n int
		fmt.Sscan(arg, &n)
		for i := 1; i <= n; i++ {
			if err := c.Send(i); err != nil {
				return err
			}
		}
		return nil
	case "binary":
		err := c.Push(phx.RawMessage{Data: []byte{0, 1}, Binary: true})
		return c.Push(phx.RawMessage{Data: []byte(fmt.Sprint("binary push: ", errors.Is(err, phx.ErrBinaryUnsupported)))})
	case "fail":
		return errors.New("app says no")
	case "panic":
		panic("raw socket bug")
	case "close":
		c.Close(4000, "bye")
		return nil
	}
	return c.Push(phx.RawMessage{Data: []byte("unknown " + cmd)})
}

func (e *echoSocket) HandleInfo(c *phx.RawConn, msg any) {
	_ = c.Push(phx.RawMessage{Data: []byte(fmt.Sprint("info:", msg))})
}

func (e *echoSocket) HandleControl(c *phx.RawConn, f phx.ControlFrame) {
	if !f.Pong {
		_ = c.Push(phx.RawMessage{Data: []byte("ping:" + string(f.Payload))})
	}
}

func (e *echoSocket) Terminate(c *phx.RawConn, reason error) {
	var pe *phx.PanicError
	switch {
	case errors.As(reason, &pe):
		e.events <- e.id + " terminate: panic"
	case errors.Is(reason, phx.ErrServerClosed):
		e.events <- e.id + " terminate: server closed"
	case errors.Is(reason, phx.ErrClosed):
		e.events <- e.id + " terminate: closed"
	default:
		e.events <- e.id + " terminate: " + reason.Error()
	}
}

type rawServer struct {
	*phx.Server
	http   *httptest.Server
	ws     string // ws://.../raw/websocket
	lp     string // http://.../raw/longpoll
	events chan string
}

func newRawServer(t *testing.T, opts *phx.Options) *rawServer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	srv := phx.NewServer(opts)
	rs := &rawServer{Server: srv, events: make(chan string, 64)}
	mux := http.NewServeMux()
	mux.Handle("/raw/", srv.RawSocketHandler(func(info *phx.ConnectInfo) (phx.RawSocket, error) {
		switch user := info.Params.Get("user"); user {
		case "bad":
			return nil, errors.New("refused")
		case "panic":
			panic("connect bug")
		default:
			rs.events <- "connect " + user + " " + info.Transport
			return &echoSocket{id: "raw:" + user, events: rs.events}, nil
		}
	}))
	mux.Handle("/socket/", srv) // channel sockets on the same server
	rs.http = httptest.NewServer(mux)
	rs.ws = "ws" + strings.TrimPrefix(rs.http.URL, "http") + "/raw/websocket"
	rs.lp = rs.http.URL + "/raw/longpoll"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		rs.http.Close()
	})
	return rs
}

func (rs *rawServer) expectEvent(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-rs.events:
		if got != want {
			t.Fatalf("event %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no event, want %q", want)
	}
}

type rawWS struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialRaw(t *testing.T, rs *rawServer, query string) *rawWS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, rs.ws+"?"+query, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", query, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &rawWS{t: t, ws: ws}
}

func (c *rawWS) send(s string) {
	c.t.Helper()
	if err := c.ws.Write(context.Background(), websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawWS) expect(want string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, data, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v, want %q", err, want)
	}
	if got := string(data); typ != websocket.MessageText || got != want {
		c.t.Fatalf("got %v %q, want text %q", typ, got, want)
	}
}

func (c *rawWS) expectClose(code websocket.StatusCode) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			if got := websocket.CloseStatus(err); got != code {
				c.t.Fatalf("closed with %v (%v), want %v", got, err, code)
			}
			return
		}
		c.t.Logf("frame before close: %q", data)
	}
}

func TestRawSocketWebSocket(t *testing.T) {
	t.Parallel()
	rs := newRawServer(t, &phx.Options{MaxMessageSize: 1 << 10})
	c := dialRaw(t, rs, "user=ann")
	rs.expectEvent(t, "connect ann websocket")
	c.expect("welcome websocket")
	c.send("echo hello")
	c.expect("hello")
	c.send("info 3")
	c.expect("info:1")
	c.expect("info:2")
	c.expect("info:3")
	if err := c.ws.Write(context.Background(), websocket.MessageBinary, []byte{0xff, 0}); err != nil {
		t.Fatal(err)
	}
	if typ, data, err := c.ws.Read(context.Background()); err != nil || typ != websocket.MessageBinary || string(data) != "\xff\x00" {
		t.Fatalf("binary echo: %v %q %v", typ, data, err)
	}
	c.send("binary")
	if typ, _, err := c.ws.Read(context.Background()); err != nil || typ != websocket.MessageBinary {
		t.Fatalf("binary push: %v %v", typ, err)
	}
	c.expect("binary push: false")

	// A ping reaches HandleControl (and is answered: Ping returns).
	pinged := make(chan error, 1)
	go func() { pinged <- c.ws.Ping(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, data, err := c.ws.Read(ctx); err != nil || !strings.HasPrefix(string(data), "ping:") {
		t.Fatalf("after a ping: %q %v", data, err)
	}
	if err := <-pinged; err != nil {
		t.Fatalf("ping: %v", err)
	}

	// A channel socket on the same server is unaffected.
	ch := dial(t, strings.Replace(rs.ws, "/raw/websocket", "/socket", 1), "vsn=2.0.0", nil)
	ch.send(nil, "1", "phoenix", "heartbeat", map[string]any{})
	ch.expect(`[null,"1","phoenix","phx_reply",{"status":"ok","response":{}}]`)

	// Disconnect by the RawSocket's ID.
	if err := rs.Disconnect("raw:ann"); err != nil {
		t.Fatal(err)
	}
	c.expectClose(websocket.StatusGoingAway)
	rs.expectEvent(t, "raw:ann terminate: closed")
}

func TestRawSocketFailures(t *testing.T) {
	t.Parallel()
	rs := newRawServer(t, &phx.Options{MaxMessageSize: 1 << 10, AllowedOrigins: []string{"https://good.example"}})
	bystander := dialRaw(t, rs, "user=by")
	rs.expectEvent(t, "connect by websocket")
	bystander.expect("welcome websocket")

	for _, tc := range []struct {
		user, send string
		code       websocket.StatusCode
		event      string
	}{
		{"f1", "fail", websocket.StatusInternalError, "raw:f1 terminate: app says no"},
		{"f2", "panic", websocket.StatusInternalError, "raw:f2 terminate: panic"},
		{"f3", "close", 4000, "raw:f3 terminate: closed"},
		{"f4", strings.Repeat("x", 2<<10), websocket.StatusMessageTooBig, "raw:f4 terminate: closed"},
		{"f5", "\xff\xfe", websocket.StatusInvalidFramePayloadData, "raw:f5 terminate: closed"},
	} {
		c := dialRaw(t, rs, "user="+tc.user)
		rs.expectEvent(t, "connect "+tc.user+" websocket")
		c.expect("welcome websocket")
		c.send(tc.send)
		c.expectClose(tc.code)
		rs.expectEvent(t, tc.event)
	}
	for query, want := range map[string]int{"user=bad": 403, "user=panic": 500} {
		_, resp, err := websocket.Dial(context.Background(), rs.ws+"?"+query, nil)
		if err == nil || resp == nil || resp.StatusCode != want {
			t.Errorf("%s: %v, want HTTP %d", query, err, want)
		}
	}
	hdr := http.Header{"Origin": {"https://evil.example"}}
	if _, resp, err := websocket.Dial(context.Background(), rs.ws+"?user=o", &websocket.DialOptions{HTTPHeader: hdr}); err == nil || resp.StatusCode != 403 {
		t.Errorf("foreign origin: %v, want HTTP 403", err)
	}
	// The bystander carried on.
	bystander.send("echo still here")
	bystander.expect("still here")
}

func TestRawSocketLongPoll(t *testing.T) {
	t.Parallel()
	rs := newRawServer(t, &phx.Options{LongPoll: phx.LongPollOptions{Window: 200 * time.Millisecond}})
	ts := &testServer{Server: rs.Server, http: rs.http}
	open := lpDo(t, ts, "GET", rs.lp+"?user=lp", nil, "")
	if open.Status != 410 || open.token() == "" {
		t.Fatalf("open: %s", open.raw)
	}
	rs.expectEvent(t, "connect lp longpoll")
	tok := open.token()
	post := func(contentType, body string) {
		t.Helper()
		if rep := lpDo(t, ts, "POST", rs.lp+"?token="+url.QueryEscape(tok), map[string]string{"Content-Type": contentType}, body); rep.Status != 200 {
			t.Fatalf("post %q: %s", body, rep.raw)
		}
	}
	// A body is one text message; in an ndjson body, as Phoenix reads it,
	// a line starting with '[' is text and any other is base64 binary.
	post("text/plain", "echo one")
	post("text/plain", "echo a\nb")
	post("text/plain", "info 2")
	post("text/plain", "binary")
	post("application/x-ndjson", "AAEC\n[\"x\"]")
	var got []string
	want := []string{"welcome longpoll", "one", "a\nb", "info:1", "info:2", "binary push: true", "3 binary bytes", `unknown ["x"]`}
	for deadline := time.Now().Add(5 * time.Second); len(got) < len(want) && time.Now().Before(deadline); {
		rep := lpDo(t, ts, "GET", rs.lp+"?token="+url.QueryEscape(tok), nil, "")
		if rep.Messages != nil {
			got = append(got, *rep.Messages...)
		}
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("polled %q, want %q", got, want)
	}
	// The token names a raw session: on the channel socket's path of the
	// same server it names nothing (a POST gets 410, as for a gone one),
	// and a channel session's token names nothing on the raw path.
	if rep := lpDo(t, ts, "POST", rs.http.URL+"/socket/longpoll?token="+url.QueryEscape(tok), map[string]string{"Content-Type": "application/json"}, `["1","1","t","phx_join",{}]`); rep.Status != 410 {
		t.Fatalf("raw token on the channel path: %s", rep.raw)
	}
	chOpen := lpDo(t, ts, "GET", rs.http.URL+"/socket/longpoll?vsn=2.0.0", nil, "")
	if chOpen.Status != 410 || chOpen.token() == "" {
		t.Fatalf("channel long-poll open: %s", chOpen.raw)
	}
	if rep := lpDo(t, ts, "POST", rs.lp+"?token="+url.QueryEscape(chOpen.token()), map[string]string{"Content-Type": "text/plain"}, "echo x"); rep.Status != 410 {
		t.Fatalf("channel token on the raw path: %s", rep.raw)
	}
	if err := rs.Disconnect("raw:lp"); err != nil {
		t.Fatal(err)
	}
	rs.expectEvent(t, "raw:lp terminate: closed")
}

// Shutdown closes raw sockets with 1012, as channel sockets, and
// Terminate sees ErrServerClosed; telemetry pairs every connect with a
// close.
func TestRawSocketShutdownAndTelemetry(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	tel := &phx.Telemetry{
		SocketConnected: func(e phx.SocketConnected) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, fmt.Sprintf("connected %s %s err=%v", e.Transport, e.ID, e.Err != nil))
		},
		SocketClosed: func(e phx.SocketClosed) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, fmt.Sprintf("closed %s %s %d", e.Transport, e.ID, e.Code))
		},
	}
	rs := newRawServer(t, &phx.Options{Telemetry: tel})
	c := dialRaw(t, rs, "user=sd")
	rs.expectEvent(t, "connect sd websocket")
	c.expect("welcome websocket")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rs.Shutdown(ctx) }()
	c.expectClose(websocket.StatusServiceRestart)
	rs.expectEvent(t, "raw:sd terminate: server closed")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "connected websocket raw:sd err=false|closed websocket raw:sd 1012"; strings.Join(seen, "|") != want {
		t.Fatalf("telemetry %q, want %q", seen, want)
	}
}
