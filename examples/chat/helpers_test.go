package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx/internal/leaktest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	cleanupBinary()
	if code == 0 {
		if err := leaktest.Check(5 * time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "leaktest:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testSecret signs the tokens of the in-process test servers.
var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

// testEnv is the chat app served in-process by httptest.
type testEnv struct {
	app *app
	srv *httptest.Server
}

// newTestEnv starts the app with store (nil for a fresh memory store). Its
// logs go to the test log when -v is given.
func newTestEnv(t *testing.T, store Store) *testEnv {
	t.Helper()
	js := filepath.Join(t.TempDir(), "phoenix.mjs")
	if err := os.WriteFile(js, []byte("export const Socket = 'fake phoenix.mjs'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = tLogWriter{t}
	}
	a, err := newApp(appConfig{
		Secret:    testSecret,
		PhoenixJS: js,
		Store:     store,
		Logger:    slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{app: a, srv: httptest.NewServer(a.handler)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.socket.Shutdown(ctx); err != nil {
			t.Errorf("phx Shutdown: %v", err)
		}
		env.srv.Close()
	})
	return env
}

type tLogWriter struct{ t *testing.T }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// token returns a token for user from the app's own signer.
func (e *testEnv) token(t *testing.T, user string) string {
	t.Helper()
	tok, err := e.app.auth.signer.Sign(tokenData{User: user})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *testEnv) wsURL(params url.Values) string {
	params.Set("vsn", "2.0.0")
	return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/socket/websocket?" + params.Encode()
}

// dialStatus tries to connect with the given query parameters and returns
// the HTTP status of the refusal, or 101 when the connection was accepted
// (and then closed).
func (e *testEnv) dialStatus(t *testing.T, params url.Values) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, e.wsURL(params), nil)
	if err == nil {
		c.CloseNow()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	return resp.StatusCode
}

// frame is one V2 message: [join_ref, ref, topic, event, payload].
type frame struct {
	JoinRef, Ref *string
	Topic        string
	Event        string
	Payload      json.RawMessage
}

func (f *frame) UnmarshalJSON(b []byte) error {
	var arr []json.RawMessage
	if err := json.Unmarshal(b, &arr); err != nil {
		return err
	}
	if len(arr) != 5 {
		return fmt.Errorf("frame has %d elements: %s", len(arr), b)
	}
	for i, dst := range []any{&f.JoinRef, &f.Ref, &f.Topic, &f.Event, &f.Payload} {
		if err := json.Unmarshal(arr[i], dst); err != nil {
			return fmt.Errorf("frame element %d: %v: %s", i, err, b)
		}
	}
	return nil
}

func (f frame) String() string {
	s := func(p *string) string {
		if p == nil {
			return "null"
		}
		return strconv.Quote(*p)
	}
	return fmt.Sprintf("[%s,%s,%q,%q,%s]", s(f.JoinRef), s(f.Ref), f.Topic, f.Event, f.Payload)
}

// reply is the payload of a phx_reply.
type reply struct {
	Status   string          `json:"status"`
	Response json.RawMessage `json:"response"`
}

func (f frame) reply(t *testing.T) reply {
	t.Helper()
	var r reply
	if f.Event != "phx_reply" {
		t.Fatalf("not a reply: %v", f)
	}
	if err := json.Unmarshal(f.Payload, &r); err != nil {
		t.Fatalf("reply %v: %v", f, err)
	}
	return r
}

func (f frame) message(t *testing.T) Message {
	t.Helper()
	var m Message
	if err := json.Unmarshal(f.Payload, &m); err != nil {
		t.Fatalf("message %v: %v", f, err)
	}
	return m
}

// client is a raw WebSocket client speaking V2 frames, as phoenix.js does.
type client struct {
	t    *testing.T
	name string
	c    *websocket.Conn
	in   chan frame
	done chan struct{}

	mu       sync.Mutex
	ref      int
	joinRefs map[string]string
	seen     []frame // every frame received so far, in order
	pending  []frame // received frames next has not returned yet
}

// dial connects as user with a valid token.
func (e *testEnv) dial(t *testing.T, user string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, e.wsURL(url.Values{"token": {e.token(t, user)}}), nil)
	if err != nil {
		t.Fatalf("dial as %s: %v", user, err)
	}
	cl := &client{t: t, name: user, c: c, in: make(chan frame, 4096), done: make(chan struct{}), joinRefs: map[string]string{}}
	go cl.readLoop()
	t.Cleanup(cl.close)
	return cl
}

func (cl *client) readLoop() {
	defer close(cl.done)
	defer close(cl.in)
	for {
		_, b, err := cl.c.Read(context.Background())
		if err != nil {
			return
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			cl.t.Errorf("%s: bad frame: %v", cl.name, err)
			return
		}
		cl.in <- f
	}
}

func (cl *client) close() {
	cl.c.CloseNow()
	<-cl.done
}

// send writes a frame and returns its ref.
func (cl *client) send(topic, event string, payload any) string {
	cl.t.Helper()
	cl.mu.Lock()
	cl.ref++
	ref := strconv.Itoa(cl.ref)
	if event == "phx_join" {
		cl.joinRefs[topic] = ref
	}
	joinRef := cl.joinRefs[topic]
	cl.mu.Unlock()
	if payload == nil {
		payload = map[string]any{}
	}
	b, err := json.Marshal([]any{joinRef, ref, topic, event, payload})
	if err != nil {
		cl.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.c.Write(ctx, websocket.MessageText, b); err != nil {
		cl.t.Fatalf("%s: write: %v", cl.name, err)
	}
	return ref
}

// next returns the first frame not yet returned that matches match,
// waiting up to 5 s. Frames that do not match stay for later calls.
func (cl *client) next(what string, match func(frame) bool) frame {
	cl.t.Helper()
	for i, f := range cl.pending {
		if match(f) {
			cl.pending = append(cl.pending[:i], cl.pending[i+1:]...)
			return f
		}
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case f, ok := <-cl.in:
			if !ok {
				cl.t.Fatalf("%s: connection closed while waiting for %s", cl.name, what)
			}
			cl.seen = append(cl.seen, f)
			if match(f) {
				return f
			}
			cl.pending = append(cl.pending, f)
		case <-timeout:
			cl.t.Fatalf("%s: timed out waiting for %s; frames so far:\n%v", cl.name, what, cl.seen)
		}
	}
}

// replyTo waits for the reply to the push with ref.
func (cl *client) replyTo(topic, ref string) reply {
	cl.t.Helper()
	f := cl.next("reply to ref "+ref, func(f frame) bool {
		return f.Event == "phx_reply" && f.Topic == topic && f.Ref != nil && *f.Ref == ref
	})
	return f.reply(cl.t)
}

// push sends event and waits for its reply.
func (cl *client) push(topic, event string, payload any) reply {
	cl.t.Helper()
	return cl.replyTo(topic, cl.send(topic, event, payload))
}

// join joins topic and returns the reply.
func (cl *client) join(topic string, payload any) reply {
	cl.t.Helper()
	return cl.push(topic, "phx_join", payload)
}

// joinOK joins topic, fails unless accepted, and returns the history.
func (cl *client) joinOK(topic string, payload any) joinReply {
	cl.t.Helper()
	r := cl.join(topic, payload)
	if r.Status != "ok" {
		cl.t.Fatalf("%s: join %s: %s %s", cl.name, topic, r.Status, r.Response)
	}
	var jr joinReply
	if err := json.Unmarshal(r.Response, &jr); err != nil {
		cl.t.Fatalf("join reply %s: %v", r.Response, err)
	}
	if jr.Messages == nil {
		cl.t.Fatalf("join reply %s has no messages list", r.Response)
	}
	return jr
}

// say sends new_msg and returns the id of the accepted message.
func (cl *client) say(topic, body string) int64 {
	cl.t.Helper()
	r := cl.push(topic, "new_msg", map[string]string{"body": body})
	if r.Status != "ok" {
		cl.t.Fatalf("%s: new_msg %q: %s %s", cl.name, body, r.Status, r.Response)
	}
	var out struct {
		ID *int64 `json:"id"`
	}
	if err := json.Unmarshal(r.Response, &out); err != nil || out.ID == nil {
		cl.t.Fatalf("new_msg reply %s: want {\"id\": N}", r.Response)
	}
	return *out.ID
}

// nextEvent waits for the next push of event on topic.
func (cl *client) nextEvent(topic, event string) frame {
	cl.t.Helper()
	return cl.next(event+" on "+topic, func(f frame) bool { return f.Topic == topic && f.Event == event })
}

// seenEvent reports whether a frame of event on topic was received so far.
func (cl *client) seenEvent(topic, event string) bool {
	for _, f := range cl.seen {
		if f.Topic == topic && f.Event == event {
			return true
		}
	}
	return false
}

func bodies(msgs []Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Body
	}
	return out
}
