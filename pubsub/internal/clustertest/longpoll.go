package clustertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/nodetest"
)

// Long-poll timings of the cross-node scenario: a short window so polls
// cycle quickly, and a short ForwardTimeout so a dead owner is noticed
// quickly.
const (
	lpWindow         = time.Second
	lpForwardTimeout = 500 * time.Millisecond
)

// lpSecret is the LongPoll.Secret the scenario's nodes share.
var lpSecret = bytes.Repeat([]byte("lp-cluster-secret"), 2)

// RoundRobin is a reverse proxy sending each request to the next of its
// live backends in turn, as a load balancer without sticky sessions does.
type RoundRobin struct {
	mu       sync.Mutex
	backends []*rrBackend
	next     int
}

type rrBackend struct {
	name     string
	proxy    *httputil.ReverseProxy
	live     bool
	requests int
}

// NewRoundRobin returns a proxy over the nodes, in order.
func NewRoundRobin(t testing.TB, nodes ...*Node) *RoundRobin {
	t.Helper()
	rr := &RoundRobin{}
	for _, n := range nodes {
		u, err := url.Parse(n.http.URL)
		if err != nil {
			t.Fatal(err)
		}
		p := httputil.NewSingleHostReverseProxy(u)
		p.ErrorLog = log.New(io.Discard, "", 0) // requests the client gave up on
		rr.backends = append(rr.backends, &rrBackend{name: n.Name, proxy: p, live: true})
	}
	return rr
}

// ServeHTTP implements http.Handler.
func (rr *RoundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rr.mu.Lock()
	var b *rrBackend
	for range rr.backends {
		c := rr.backends[rr.next%len(rr.backends)]
		rr.next++
		if c.live {
			b = c
			break
		}
	}
	if b != nil {
		b.requests++
	}
	rr.mu.Unlock()
	if b == nil {
		http.Error(w, "no live backend", http.StatusBadGateway)
		return
	}
	b.proxy.ServeHTTP(w, r)
}

// Remove takes the node named name out of the rotation.
func (rr *RoundRobin) Remove(name string) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	for _, b := range rr.backends {
		if b.name == name {
			b.live = false
		}
	}
}

// Requests returns how many requests went to each node, by name.
func (rr *RoundRobin) Requests() map[string]int {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	m := make(map[string]int)
	for _, b := range rr.backends {
		m[b.name] = b.requests
	}
	return m
}

// interopDir finds testdata/interop, walking up from the working
// directory (a package directory of the phx repository).
func interopDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		d := filepath.Join(dir, "testdata", "interop")
		if _, err := os.Stat(filepath.Join(d, "lib.mjs")); err == nil {
			return d
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testdata/interop not found above the working directory")
		}
		dir = parent
	}
}

// RunLongPoll is the long-poll scenario across nodes: two nodes on br
// sharing LongPoll.Secret, behind a round-robin reverse proxy, and the
// official phoenix.js LongPoll client (testdata/interop/longpoll_cluster.mjs
// under Node) talking through the proxy, a WebSocket client on the second
// node sharing its topic. Every request for the session that lands on the
// second node is relayed to the first; the client joins, pushes, gets
// replies, broadcasts and presence both ways without reconnecting. Then the
// owner dies mid-session, in two ways: cut off (out of the proxy and off
// the broker, its requests in flight finishing, so that the survivor's
// relaying finds it gone), or crashed (also its connections cut and the
// server stopped). Either way the client reconnects through the survivor
// and rejoins, nothing panics, and no goroutine is left once the nodes stop
// (the test packages' TestMain checks that).
func RunLongPoll(t *testing.T, br Broker) {
	t.Run("owner cut off", func(t *testing.T) { runLongPoll(t, br, false) })
	t.Run("owner crashes", func(t *testing.T) { runLongPoll(t, br, true) })
}

func runLongPoll(t *testing.T, br Broker, crash bool) {
	dir := interopDir(t)
	node, flags := nodetest.Require(t, "long-poll cluster scenario", filepath.Join(dir, "node_modules", "phoenix", "package.json"))
	tune := func(o *phx.Options) {
		o.LongPoll.Secret = lpSecret
		o.LongPoll.Window = lpWindow
		o.LongPoll.IdleTimeout = 2 * lpWindow
		o.LongPoll.ForwardTimeout = lpForwardTimeout
	}
	a, b := StartNodeWith(t, br, "A", tune), StartNodeWith(t, br, "B", tune)
	rr := NewRoundRobin(t, a, b)

	var killedMu sync.Mutex
	var before map[string]int // requests per node when A was cut off
	mux := http.NewServeMux()
	mux.Handle("/socket/", rr)
	mux.HandleFunc("/ctl/kill", func(w http.ResponseWriter, r *http.Request) {
		// The LongPoll client opened its session with the proxy's first
		// request, on A; B has the WebSocket client.
		if n := a.Server.Stats().Connections; n != 1 {
			http.Error(w, fmt.Sprintf("A has %d connections, want the long-poll session", n), http.StatusInternalServerError)
			return
		}
		killedMu.Lock()
		before = rr.Requests()
		killedMu.Unlock()
		rr.Remove(a.Name)
		_ = a.Adapter.Close()
		if crash {
			a.http.CloseClientConnections()
			a.Kill()
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	})
	proxy := httptest.NewServer(mux)
	defer proxy.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id := fmt.Sprintf("lpc%d", time.Now().UnixNano()%1e9)
	args := append(slices.Clone(flags), filepath.Join(dir, "longpoll_cluster.mjs"), proxy.URL, "phoenix", id)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = append(os.Environ(), "PHX_WS_URL="+b.URL)
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	if err != nil {
		t.Logf("node output:\n%s", out.String())
		t.Fatalf("longpoll_cluster.mjs failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if testing.Verbose() {
		t.Logf("node: ok in %v\n%s", time.Since(start).Round(time.Millisecond), out.String())
	}
	killedMu.Lock()
	defer killedMu.Unlock()
	if before == nil {
		t.Fatal("the scenario did not cut A off")
	}
	t.Logf("requests through the proxy before A was cut off: %v; in all: %v", before, rr.Requests())
	if before["A"] < 3 || before["B"] < 3 {
		t.Fatalf("requests per node before the cut %v: want several on each (round robin)", before)
	}
	if !strings.Contains(out.String(), "PASS") {
		t.Fatalf("no PASS in the output:\n%s", out.String())
	}
}
