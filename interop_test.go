package phx_test

// Interop suite: the official phoenix.js clients (npm "phoenix" 1.8.16 and
// the 1.7 line, aliased "phoenix17"), run under Node over a real WebSocket,
// against a server built on this library. Each scenario is a script in
// testdata/interop; a subtest runs it with
//
//	node --experimental-websocket testdata/interop/<scenario>.mjs <base-url> <client> <id>
//
// and then checks what the server saw (Connect attempts, joins, Terminate
// reasons) through the same recorder the control API below exposes to the
// scripts. `make test` installs the npm packages; see requireInteropNode for
// what happens when they are missing.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/nodetest"
)

// interopClient is one official client package installed under
// testdata/interop/node_modules.
type interopClient struct {
	pkg   string // npm package name (or alias) the scripts import
	label string // subtest name
	short string // prefix of scenario IDs (topics, user names)
	v18   bool   // phoenix.js >= 1.8 (authToken option)
}

var interopClients = []interopClient{
	{pkg: "phoenix", short: "v18", v18: true},
	{pkg: "phoenix17", short: "v17"},
}

const interopDir = "testdata/interop"

// requireInteropNode returns node's path and flags. When node, its global
// WebSocket or the npm packages are missing it fails the test under CI=true
// and skips it otherwise, pointing at `make test`.
func requireInteropNode(t *testing.T) (string, []string) {
	t.Helper()
	var pkgs []string
	for _, c := range interopClients {
		pkgs = append(pkgs, filepath.Join(interopDir, "node_modules", c.pkg, "package.json"))
	}
	return nodetest.Require(t, "interop suite", pkgs...)
}

// runInteropScript runs one scenario script and fails t if it exits
// non-zero, logging its whole output.
func runInteropScript(t *testing.T, base, script string, c interopClient, id string) {
	t.Helper()
	node, flags := requireInteropNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	args := append(slices.Clone(flags), filepath.Join(interopDir, script+".mjs"), base, c.pkg, id)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	if err != nil || ctx.Err() != nil {
		t.Logf("node %s (%s) output:\n%s", script, c.pkg, out.String())
		if ctx.Err() != nil {
			t.Fatalf("scenario %s killed after %v: %v", script, time.Since(start).Round(time.Millisecond), ctx.Err())
		}
		t.Fatalf("scenario %s failed after %v: %v", script, time.Since(start).Round(time.Millisecond), err)
	}
	if testing.Verbose() {
		t.Logf("node %s: ok in %v\n%s", script, time.Since(start).Round(time.Millisecond), out.String())
	}
}

// ---------------------------------------------------------------------------
// The test server: channels exercising every hook, and a recorder of what
// happened server-side.

type interopConnect struct {
	Params    map[string][]string `json:"params"`
	AuthToken string              `json:"auth_token"`
	Accepted  bool                `json:"accepted"`
}

type interopEnv struct {
	srv      *phx.Server
	pubsub   *phx.MemoryPubSub
	presence *phx.Presence
	http     *httptest.Server
	base     string // http://127.0.0.1:port

	mu           sync.Mutex
	connects     map[string][]interopConnect       // by "user" param
	joins        map[string]int                    // accepted joins by topic
	terminated   map[string][]string               // Terminate reasons by topic
	live         map[string]map[*phx.Socket]string // joined sockets by topic -> user
	replyErrs    []string                          // failed async replies
	logs         interopLogBuffer
	shutdown     chan error    // result of a /ctl/shutdown
	shutdownTook time.Duration // of a /ctl/http_shutdown (read after shutdown delivers)
	proxy        *cutProxy     // under mu; set by tests that cut the network (/ctl/proxy, /ctl/cut)
}

// interopLogBuffer keeps the server's debug log, shown when a test fails.
type interopLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *interopLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *interopLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newInteropEnv starts a test server; configure, if not nil, adjusts its
// Options.
func newInteropEnv(t *testing.T, configure func(*phx.Options)) *interopEnv {
	e := &interopEnv{
		pubsub:     phx.NewMemoryPubSub(),
		connects:   map[string][]interopConnect{},
		joins:      map[string]int{},
		terminated: map[string][]string{},
		live:       map[string]map[*phx.Socket]string{},
		shutdown:   make(chan error, 1),
	}
	opts := &phx.Options{
		Connect: e.connect,
		ID: func(a phx.Assigns) string {
			user, _ := a["user"].(string)
			if user == "" || strings.HasPrefix(user, "anon") {
				return ""
			}
			return "user_socket:" + user
		},
		PubSub: e.pubsub,
		Logger: slog.New(slog.NewTextHandler(&e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if configure != nil {
		configure(opts)
	}
	e.srv = phx.NewServer(opts)
	e.srv.Channel("room:*", func() phx.Channel { return &interopRoom{env: e} })
	e.srv.Channel("bare:*", func() phx.Channel { return interopBare{} })
	e.presence = phx.NewPresence(e.srv, nil)
	e.srv.Channel("presence:*", func() phx.Channel { return &interopPresence{p: e.presence} })

	mux := http.NewServeMux()
	mux.Handle("/socket/", e.srv)
	mux.HandleFunc("/ctl/", e.serveControl)
	e.http = httptest.NewServer(mux)
	e.base = e.http.URL
	return e
}

// connect is Options.Connect: params.user names the connection (its socket
// ID is "user_socket:<user>"); a "refuse" param or no user refuses it.
func (e *interopEnv) connect(info *phx.ConnectInfo) (phx.Assigns, error) {
	user := info.Params.Get("user")
	ok := user != "" && info.Params.Get("refuse") == ""
	e.mu.Lock()
	e.connects[user] = append(e.connects[user], interopConnect{Params: info.Params, AuthToken: info.AuthToken, Accepted: ok})
	e.mu.Unlock()
	if !ok {
		return nil, errors.New("interop: connection refused on request")
	}
	params := map[string]string{}
	for k, v := range info.Params {
		params[k] = v[len(v)-1]
	}
	return phx.Assigns{"user": user, "params": params, "auth_token": info.AuthToken}, nil
}

func (e *interopEnv) connectsFor(user string) []interopConnect {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.connects[user])
}

func (e *interopEnv) terminatedFor(topic string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.terminated[topic])
}

func (e *interopEnv) joinsFor(topic string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.joins[topic]
}

func (e *interopEnv) liveSockets(topic, user string) []*phx.Socket {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*phx.Socket
	for s, u := range e.live[topic] {
		if user == "" || u == user {
			out = append(out, s)
		}
	}
	return out
}

// close shuts the server down and reports goroutines still running phx code
// (or more goroutines than before the server started) once it is gone.
func (e *interopEnv) close(t *testing.T, baseline int) {
	t.Helper()
	// Every node process has exited: the server must have noticed each
	// connection going away before Shutdown is even called.
	interopEventually(t, 5*time.Second, "all connections closed after the clients exited", func() (bool, string) {
		n := e.srv.Stats().Connections
		return n == 0, fmt.Sprintf("%d connections still open", n)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	e.http.Close()
	e.mu.Lock()
	if len(e.replyErrs) > 0 {
		t.Errorf("async replies failed: %q", e.replyErrs)
	}
	e.mu.Unlock()
	interopNoGoroutineLeak(t, baseline)
	if t.Failed() {
		logs := e.logs.String()
		if len(logs) > 64<<10 {
			logs = "...\n" + logs[len(logs)-64<<10:]
		}
		t.Logf("server log:\n%s", logs)
	}
}

// interopNoGoroutineLeak waits up to 3 s for the goroutine count to fall
// back to baseline, then lists the goroutines running phx code.
func interopNoGoroutineLeak(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			var phxStacks []string
			for _, g := range strings.Split(string(buf), "\n\n") {
				if strings.Contains(g, "phxgo/phx.") && !strings.Contains(g, "interopNoGoroutineLeak") {
					phxStacks = append(phxStacks, g)
				}
			}
			t.Errorf("goroutine leak: %d goroutines after the server closed, %d before it started; phx goroutines:\n%s",
				n, baseline, strings.Join(phxStacks, "\n\n"))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// interopEventually polls cond until it holds or d passes.
func interopEventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("timed out after %v waiting for %s: %s", d, what, state)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantTerminated waits until topic's Terminate reasons equal want (in order).
func (e *interopEnv) wantTerminated(t *testing.T, topic string, want ...string) {
	t.Helper()
	interopEventually(t, 3*time.Second, fmt.Sprintf("Terminate reasons %q for %s", want, topic), func() (bool, string) {
		got := e.terminatedFor(topic)
		return slices.Equal(got, want), fmt.Sprintf("got %q", got)
	})
}

// ---------------------------------------------------------------------------
// Control API, for the scripts: trigger server-side actions, read facts.

func (e *interopEnv) serveControl(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var body json.RawMessage
	if r.Method == http.MethodPost {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if len(bytes.TrimSpace(b)) > 0 {
			body = b
		}
	}
	var payload any // the body, or nil for {}
	if body != nil {
		payload = body
	}
	var resp any
	var err error
	switch strings.TrimPrefix(r.URL.Path, "/ctl/") {
	case "connects": // GET ?user=
		resp = e.connectsFor(q.Get("user"))
	case "terminated": // GET ?topic=
		resp = e.terminatedFor(q.Get("topic"))
	case "joins": // GET ?topic=
		topic := q.Get("topic")
		resp = map[string]int{
			"joins":       e.joinsFor(topic),
			"live":        len(e.liveSockets(topic, "")),
			"subscribers": e.pubsub.SubscriberCount(topic),
		}
	case "broadcast": // POST ?topic=&event= body=payload: srv.Broadcast
		err = e.srv.Broadcast(q.Get("topic"), q.Get("event"), payload)
		resp = map[string]bool{"ok": err == nil}
	case "push": // POST ?topic=&user=&event= body=payload: s.Push to that user's channel(s)
		socks := e.liveSockets(q.Get("topic"), q.Get("user"))
		for _, s := range socks {
			if err = s.Push(q.Get("event"), payload); err != nil {
				break
			}
		}
		resp = map[string]int{"pushed": len(socks)}
	case "disconnect": // POST ?id=: srv.Disconnect
		err = e.srv.Disconnect(q.Get("id"))
		resp = map[string]bool{"ok": err == nil}
	case "http_shutdown": // POST: http.Server.Shutdown, then srv.Shutdown, in the background
		hs, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			err := errors.Join(hs.Shutdown(ctx), e.srv.Shutdown(ctx))
			e.shutdownTook = time.Since(start)
			e.shutdown <- err
		}()
		resp = map[string]bool{"ok": true}
	case "shutdown": // POST: srv.Shutdown in the background
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			e.shutdown <- e.srv.Shutdown(ctx)
		}()
		resp = map[string]bool{"ok": true}
	case "stats":
		resp = e.srv.Stats()
	case "proxy": // GET: the WebSocket mount point through the cutting proxy
		e.mu.Lock()
		p := e.proxy
		e.mu.Unlock()
		if p == nil {
			http.NotFound(w, r)
			return
		}
		resp = map[string]string{"url": p.url()}
	case "cut": // POST ?ms=: drop every connection through the proxy and refuse new ones for ms
		e.mu.Lock()
		p := e.proxy
		e.mu.Unlock()
		ms, perr := strconv.Atoi(q.Get("ms"))
		if p == nil || perr != nil {
			http.Error(w, "no proxy, or a bad ms", http.StatusBadRequest)
			return
		}
		resp = map[string]int{"dropped": p.cut(time.Duration(ms) * time.Millisecond)}
	case "presence": // GET ?topic=: Presence.List
		resp = e.presence.List(q.Get("topic"))
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// ---------------------------------------------------------------------------
// Channels.

// interopRoom implements every hook. Join params: {"refuse": true,
// "reason": R} refuses with {"reason": R}; {"crash": true} panics;
// {"welcome": true} pushes "welcome" from inside Join.
type interopRoom struct {
	env  *interopEnv
	user string
}

var (
	_ phx.InHandler   = (*interopRoom)(nil)
	_ phx.OutHandler  = (*interopRoom)(nil)
	_ phx.InfoHandler = (*interopRoom)(nil)
	_ phx.Terminator  = (*interopRoom)(nil)
)

// interopInfoPush is sent to the channel itself with s.Send; HandleInfo
// pushes it to the client.
type interopInfoPush struct {
	event   string
	payload json.RawMessage
}

func (r *interopRoom) Join(s *phx.Socket, p phx.Payload) (any, error) {
	var params map[string]any
	if err := p.Decode(&params); err != nil {
		return nil, phx.Errorf("bad join params: %v", err)
	}
	if params["crash"] == true {
		panic("interop: join crash requested")
	}
	if params["refuse"] == true {
		return nil, phx.Error(map[string]any{"reason": params["reason"]})
	}
	if params["bad_reply"] == true {
		return "not an object", nil // an app bug: the client gets an error
	}
	r.user, _ = s.Assigns["user"].(string)
	if params["welcome"] == true {
		if err := s.Push("welcome", map[string]any{"hello": r.user}); err != nil {
			return nil, err
		}
	}
	e := r.env
	e.mu.Lock()
	e.joins[s.Topic()]++
	if e.live[s.Topic()] == nil {
		e.live[s.Topic()] = map[*phx.Socket]string{}
	}
	e.live[s.Topic()][s] = r.user
	e.mu.Unlock()
	return map[string]any{
		"topic":          s.Topic(),
		"user":           r.user,
		"socket_id":      s.ID(),
		"join_ref":       s.JoinRef(),
		"transport":      s.Transport(),
		"params":         params,
		"connect_params": s.Assigns["params"],
		"auth_token":     s.Assigns["auth_token"],
	}, nil
}

func (r *interopRoom) HandleIn(s *phx.Socket, event string, p phx.Payload) (any, error) {
	data := bytes.Clone(p.Data) // p shares memory with the frame
	raw := json.RawMessage(data)
	if p.Binary {
		switch event {
		case "binary":
			// Reply with the bytes reversed, and push them prefixed.
			rev := slices.Clone(data)
			slices.Reverse(rev)
			if err := s.Push("bin_push", phx.Binary(append([]byte{0xfe, 0x00}, data...))); err != nil {
				return nil, err
			}
			return phx.Binary(rev), nil
		case "binary_broadcast":
			return nil, s.Broadcast("bin_bcast", phx.Binary(data))
		}
		return nil, phx.Errorf("unexpected binary payload for %s", event)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, phx.Errorf("bad payload: %v", err)
	}
	switch event {
	case "bad_reply":
		return []string{"not", "an", "object"}, nil
	case "echo":
		return raw, nil
	case "fail":
		return nil, phx.Error(map[string]any{"reason": "failed", "got": m})
	case "custom_status":
		return nil, &phx.ReplyError{Status: "warn", Response: map[string]any{"level": "yellow"}}
	case "noreply":
		return nil, phx.NoReply
	case "async":
		ref := s.ReplyRef()
		go func() {
			time.Sleep(100 * time.Millisecond)
			if err := ref.Reply("ok", map[string]any{"async": true, "n": m["n"]}); err != nil {
				r.env.mu.Lock()
				r.env.replyErrs = append(r.env.replyErrs, err.Error())
				r.env.mu.Unlock()
			}
		}()
		return nil, phx.NoReply
	case "broadcast":
		return nil, s.Broadcast("shout", raw)
	case "broadcast_from":
		return nil, s.BroadcastFrom("shout", raw)
	case "censored": // intercepted: HandleOut filters and transforms it
		return nil, s.Broadcast("censored", raw)
	case "push_me": // s.Send -> HandleInfo -> s.Push
		ev, _ := m["event"].(string)
		pl, _ := json.Marshal(m["payload"])
		return nil, s.Send(interopInfoPush{event: ev, payload: pl})
	case "stop":
		s.Stop(nil)
		return map[string]any{"stopping": true}, nil
	case "crash":
		panic("interop: crash requested")
	case "whoami":
		return map[string]any{"user": r.user, "join_ref": s.JoinRef(), "socket_id": s.ID()}, nil
	}
	return nil, phx.Errorf("unknown event %q", event)
}

func (r *interopRoom) Intercept() []string { return []string{"censored"} }

// HandleOut drops "censored" for the user named in hide_from and sends
// everybody else an upper-cased copy addressed to them.
func (r *interopRoom) HandleOut(s *phx.Socket, event string, p phx.Payload) {
	var m struct {
		Text     string `json:"text"`
		HideFrom string `json:"hide_from"`
	}
	if err := p.Decode(&m); err != nil {
		s.Logger().Error("interop: bad censored payload", "err", err)
		return
	}
	if m.HideFrom == r.user {
		return
	}
	_ = s.Push(event, map[string]any{"text": strings.ToUpper(m.Text), "for": r.user})
}

func (r *interopRoom) HandleInfo(s *phx.Socket, msg any) {
	if ip, ok := msg.(interopInfoPush); ok {
		_ = s.Push(ip.event, ip.payload)
	}
}

func (r *interopRoom) Terminate(s *phx.Socket, reason error) {
	e := r.env
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.live[s.Topic()], s)
	e.terminated[s.Topic()] = append(e.terminated[s.Topic()], interopReason(reason))
}

// interopReason names a Terminate reason for the control API.
func interopReason(err error) string { return reasonName(err) }

// interopPresence tracks the connection's user on join, with the join
// params' device as meta, and pushes presence_state, as Phoenix apps do.
type interopPresence struct{ p *phx.Presence }

func (c *interopPresence) Join(s *phx.Socket, payload phx.Payload) (any, error) {
	var params struct {
		Device string `json:"device"`
	}
	_ = payload.Decode(&params)
	user := s.Assigns["user"].(string)
	if err := c.p.Track(s, user, map[string]any{"device": params.Device}); err != nil {
		return nil, err
	}
	return nil, c.p.PushState(s)
}

func (c *interopPresence) HandleIn(s *phx.Socket, event string, payload phx.Payload) (any, error) {
	user := s.Assigns["user"].(string)
	switch event {
	case "away":
		return nil, c.p.Update(s, user, map[string]any{"status": "away"})
	case "untrack":
		return nil, c.p.Untrack(s, user)
	}
	return nil, phx.Errorf("unknown event")
}

// interopBare has only Join: pushes to it get {"reason":"unhandled event"}.
type interopBare struct{}

func (interopBare) Join(*phx.Socket, phx.Payload) (any, error) { return nil, nil }

// ---------------------------------------------------------------------------
// Scenarios.

type interopScenario struct {
	name string
	// check, if set, verifies server-side facts after the script passed.
	// id is the scenario's unique ID, from which the script derives its
	// topics ("room:<id>", ...) and users ("<id>_a", ...).
	check func(t *testing.T, e *interopEnv, c interopClient, id string)
}

var interopScenarios = []interopScenario{
	{name: "connect_params", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		cs := e.connectsFor(id + "_a")
		if len(cs) != 1 || !cs[0].Accepted {
			t.Fatalf("Connect saw %+v, want one accepted connection", cs)
		}
		p := cs[0].Params
		for k, want := range map[string]string{"token": "abc", "vsn": "2.0.0", "nested[a]": "1", "list[0]": "x", "list[1]": "y", "sp ace": "a b&c=d"} {
			if got := p[k]; len(got) != 1 || got[0] != want {
				t.Errorf("Connect params[%q] = %q, want [%q]", k, got, want)
			}
		}
	}},
	{name: "connect_refused", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		cs := e.connectsFor(id + "_r")
		if len(cs) == 0 {
			t.Fatal("Connect never saw the refused client")
		}
		for _, rec := range cs {
			if rec.Accepted {
				t.Errorf("a refused connection was accepted: %+v", rec)
			}
		}
		if n := e.joinsFor("room:" + id); n != 0 {
			t.Errorf("%d joins from a refused client", n)
		}
	}},
	{name: "auth_token", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		want := "~~~>tok.en"
		if !c.v18 {
			want = "" // phoenix.js 1.7 has no authToken option: nothing is sent
		}
		cs := e.connectsFor(id + "_a")
		if len(cs) != 1 || !cs[0].Accepted || cs[0].AuthToken != want {
			t.Fatalf("Connect saw %+v, want one accepted connection with AuthToken %q", cs, want)
		}
	}},
	{name: "join_ok", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		if n := e.joinsFor("room:" + id); n != 1 {
			t.Errorf("%d joins, want 1", n)
		}
		e.wantTerminated(t, "room:"+id, "closed")
	}},
	{name: "join_refused", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		// Terminate runs only for accepted joins: the refused first
		// attempt and the crashed join leave no trace.
		if n := e.joinsFor("room:" + id); n != 1 {
			t.Errorf("%d accepted joins, want 1 (the retry)", n)
		}
		e.wantTerminated(t, "room:"+id, "closed")
		if got := e.terminatedFor("room:" + id + "_crash"); len(got) != 0 {
			t.Errorf("Terminate ran for a channel whose Join panicked: %q", got)
		}
	}},
	{name: "join_unmatched"},
	{name: "push_ok"},
	{name: "push_error"},
	{name: "push_noreply"},
	{name: "push_async"},
	{name: "push_unhandled"},
	{name: "broadcast"},
	{name: "broadcast_from"},
	{name: "intercept"},
	{name: "server_push"},
	{name: "server_broadcast"},
	{name: "binary"},
	{name: "v1_serializer"},
	{name: "heartbeat", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		if cs := e.connectsFor(id + "_a"); len(cs) != 1 {
			t.Errorf("%d connections during the heartbeat scenario, want 1 (no reconnect)", len(cs))
		}
	}},
	{name: "duplicate_join", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		// Raw duplicate phx_join: the first instance is replaced.
		e.wantTerminated(t, "room:"+id+"_raw", "duplicate_join", "closed")
		// Two Channel objects: the client leaves the first before joining
		// the second. The server may see the leave (left) or, if the join
		// overtakes the leave's processing, a duplicate join.
		interopEventually(t, 3*time.Second, "Terminate of both objects' channels", func() (bool, string) {
			got := e.terminatedFor("room:" + id + "_objs")
			ok := len(got) == 2 && (got[0] == "left" || got[0] == "duplicate_join") && got[1] == "closed"
			return ok, fmt.Sprintf("got %q", got)
		})
	}},
	{name: "leave", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		e.wantTerminated(t, "room:"+id, "left", "left") // left, joined again, left again
	}},
	{name: "server_stop", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		e.wantTerminated(t, "room:"+id, "stopped")
		if n := e.joinsFor("room:" + id); n != 1 {
			t.Errorf("%d joins, want 1 (no rejoin after phx_close)", n)
		}
	}},
	{name: "crash", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		e.wantTerminated(t, "room:"+id+"_crash", "panic", "closed")
		if n := e.joinsFor("room:" + id + "_crash"); n != 2 {
			t.Errorf("%d joins of the crashing topic, want 2 (join + automatic rejoin)", n)
		}
		e.wantTerminated(t, "room:"+id+"_other", "closed")
	}},
	{name: "disconnect_id", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		if cs := e.connectsFor(id + "_a"); len(cs) != 2 {
			t.Errorf("%d connections of the disconnected user, want 2 (initial + reconnect)", len(cs))
		}
		if cs := e.connectsFor("anon_" + id); len(cs) != 1 {
			t.Errorf("%d connections of the anonymous user, want 1", len(cs))
		}
		e.wantTerminated(t, "room:"+id, "closed", "closed")
	}},
	{name: "too_many_channels"},
	{name: "bad_reply"},
	{name: "presence"},
	{name: "too_big", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		e.wantTerminated(t, "room:"+id, "closed", "closed")
	}},
}

// TestInterop runs every scenario with both official clients, in parallel
// against one shared server; scenarios use distinct topics and users.
func TestInterop(t *testing.T) {
	requireInteropNode(t)
	baseline := runtime.NumGoroutine()
	e := newInteropEnv(t, nil)
	// Cleanup runs once every parallel subtest has finished.
	t.Cleanup(func() { e.close(t, baseline) })
	for _, c := range interopClients {
		c.label = "phoenix-" + interopVersion(t, c)
		t.Run(c.label, func(t *testing.T) {
			t.Parallel()
			for _, sc := range interopScenarios {
				t.Run(sc.name, func(t *testing.T) {
					t.Parallel()
					id := c.short + "_" + sc.name
					runInteropScript(t, e.base, sc.name, c, id)
					if sc.check != nil {
						sc.check(t, e, c, id)
					}
				})
			}
		})
	}
}

// TestInteropShutdown: Server.Shutdown closes the official clients with
// 1012; they try to reconnect (and are refused while the server drains);
// every channel terminates with ErrServerClosed. Each client gets its own server.
func TestInteropShutdown(t *testing.T) {
	requireInteropNode(t)
	for _, c := range interopClients {
		c.label = "phoenix-" + interopVersion(t, c)
		t.Run(c.label, func(t *testing.T) {
			baseline := runtime.NumGoroutine()
			e := newInteropEnv(t, nil)
			defer e.close(t, baseline)
			id := c.short + "_shutdown"
			runInteropScript(t, e.base, "shutdown", c, id)
			select {
			case err := <-e.shutdown:
				if err != nil {
					t.Errorf("Shutdown returned %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Shutdown did not return")
			}
			e.wantTerminated(t, "room:"+id, "shutdown")
			e.wantTerminated(t, "room:"+id+"_b", "shutdown")
		})
	}
}

// TestInteropIdleTimeout: with Options.HeartbeatTimeout = 1200ms, a
// heartbeating client stays connected and an idle one is closed (non-1000),
// then reconnects and rejoins. Each client gets its own server.
func TestInteropIdleTimeout(t *testing.T) {
	requireInteropNode(t)
	for _, c := range interopClients {
		c.label = "phoenix-" + interopVersion(t, c)
		t.Run(c.label, func(t *testing.T) {
			baseline := runtime.NumGoroutine()
			e := newInteropEnv(t, func(o *phx.Options) { o.HeartbeatTimeout = 1200 * time.Millisecond })
			defer e.close(t, baseline)
			id := c.short + "_idle"
			runInteropScript(t, e.base, "idle_timeout", c, id)
			// Closed once or more (it idles again after the rejoin).
			interopEventually(t, 3*time.Second, "Terminate of the idle client's channel", func() (bool, string) {
				got := e.terminatedFor("room:" + id + "_idle")
				ok := len(got) >= 2
				for _, r := range got {
					ok = ok && r == "closed"
				}
				return ok, fmt.Sprintf("got %q", got)
			})
			e.wantTerminated(t, "room:"+id+"_busy", "closed")
			if n := len(e.connectsFor(id + "_busy")); n != 1 {
				t.Errorf("the heartbeating client connected %d times, want 1", n)
			}
		})
	}
}

// interopVersion reads the installed version of c's package.
func interopVersion(t *testing.T, c interopClient) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(interopDir, "node_modules", c.pkg, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pj struct{ Version string }
	if err := json.Unmarshal(b, &pj); err != nil || pj.Version == "" {
		t.Fatalf("%s/package.json: no version (%v)", c.pkg, err)
	}
	return pj.Version
}
