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
	"strings"
	"testing"
	"time"

	"github.com/phxgo/phx/internal/clienttest"
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

// newTestEnv starts the app on one node, with the library's history in
// memory. Its logs go to the test log when -v is given.
func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	return newTestEnvWith(t, appConfig{})
}

// newTestEnvWith is newTestEnv with cfg's PubSub, History and clock.
func newTestEnvWith(t *testing.T, cfg appConfig) *testEnv {
	t.Helper()
	js := filepath.Join(t.TempDir(), "phoenix.mjs")
	if err := os.WriteFile(js, []byte("export const Socket = 'fake phoenix.mjs'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = tLogWriter{t}
	}
	cfg.Secret, cfg.PhoenixJS = testSecret, js
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := newApp(cfg)
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
	c, resp, err := clienttest.Dial(ctx, e.wsURL(params), nil, func(clienttest.Frame) {})
	if err == nil {
		c.Close()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	return resp.StatusCode
}

// frame is one message a client received.
type frame struct{ *clienttest.Message }

// received is a new_msg as a client gets it: ID is its phx_offset.
type received struct {
	ID   int64 `json:"phx_offset"`
	User string
	Body string
	At   int64
}

func (f frame) message(t *testing.T) received {
	t.Helper()
	var m received
	if err := json.Unmarshal(f.Payload, &m); err != nil {
		t.Fatalf("message %v: %v", f, err)
	}
	return m
}

// client is a raw WebSocket client speaking V2 frames, as phoenix.js does.
type client struct {
	*clienttest.Client
	t    *testing.T
	name string
	done <-chan struct{}
}

// dial connects as user with a valid token.
func (e *testEnv) dial(t *testing.T, user string) *client {
	t.Helper()
	c := clienttest.New(t, user, e.wsURL(url.Values{"token": {e.token(t, user)}}), nil)
	return &client{Client: c, t: t, name: user, done: c.Done()}
}

func (cl *client) close() { cl.Close() }

// send writes a frame and returns its ref.
func (cl *client) send(topic, event string, payload any) string {
	cl.t.Helper()
	return cl.Push(topic, event, payload)
}

// replyTo waits for the reply to the push with ref.
func (cl *client) replyTo(topic, ref string) frame {
	cl.t.Helper()
	return frame{cl.Reply(topic, ref)}
}

// push sends event and waits for its reply.
func (cl *client) push(topic, event string, payload any) frame {
	cl.t.Helper()
	return cl.replyTo(topic, cl.Push(topic, event, payload))
}

// join joins topic and returns the reply.
func (cl *client) join(topic string, payload any) frame {
	cl.t.Helper()
	return frame{cl.Join(topic, payload)}
}

// joinOK joins topic, fails unless accepted with the room's position in
// its history, and returns the reply.
func (cl *client) joinOK(topic string, payload any) frame {
	cl.t.Helper()
	r := cl.JoinOK(topic, payload)
	var h struct {
		Position json.RawMessage `json:"phx_position"`
	}
	if json.Unmarshal(r.Response, &h) != nil || h.Position == nil {
		cl.t.Fatalf("join reply %s has no phx_position", r.Response)
	}
	return frame{r}
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
	return frame{cl.Next(event+" on "+topic, isEvent(topic, event))}
}

// seenEvent reports whether a frame of event on topic was received so far.
func (cl *client) seenEvent(topic, event string) bool {
	return len(cl.Matching(isEvent(topic, event))) > 0
}

func isEvent(topic, event string) func(*clienttest.Message) bool {
	return func(m *clienttest.Message) bool { return m.Topic == topic && m.Event == event }
}
