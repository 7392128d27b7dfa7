package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/phxgo/phx/internal/redistest"
)

// TestBrowserAcrossNodes runs e2e/browser_nodes.mjs: two pages in headless
// Chromium on a clustered chat whose rooms' history is in the broker, first
// Redis, then NATS JetStream. ann's page is on a copy of its own and sends
// a message every 50 ms; bob's page goes through a proxy that moves it to
// another copy twice, once by stopping its copy (SIGTERM: a server-side
// disconnect, close code 1012) and once by killing it (SIGKILL), and is
// unavailable for moveOutage after each move. After
// each move bob's page rejoins on another copy and recovers; at the end it
// has received every message exactly once, in order.
func TestBrowserAcrossNodes(t *testing.T) {
	requireNode(t)
	requireChromium(t)
	artifacts, err := filepath.Abs(filepath.Join("..", "..", "testdata", "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("redis", func(t *testing.T) {
		browserAcrossNodes(t, redistest.Run(t).URL(), artifacts)
	})
	t.Run("nats", func(t *testing.T) {
		ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		t.Cleanup(ns.Shutdown)
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats-server did not start")
		}
		browserAcrossNodes(t, ns.ClientURL(), artifacts)
	})
}

func browserAcrossNodes(t *testing.T, broker, artifacts string) {
	secret := fmt.Sprintf("nodes-secret-%d-0123456789abcdef0123456789", time.Now().UnixNano())
	// ann's copy, then the three copies bob's page moves through.
	var copies []*chatProcess
	for range 4 {
		copies = append(copies, startChatWithSecret(t, secret, "-pubsub", broker))
	}
	px := &movingProxy{copies: copies[1:]}
	srv := httptest.NewServer(px)
	t.Cleanup(srv.Close)
	runNode(t, 90*time.Second, []string{"CHROMIUM=" + chromiumPath},
		filepath.Join("e2e", "browser_nodes.mjs"), copies[0].url, srv.URL, artifacts)
	px.mu.Lock()
	moves := px.moves
	px.mu.Unlock()
	if moves != 2 {
		t.Fatalf("the proxy moved bob %d times, want 2", moves)
	}
	if fi, err := os.Stat(filepath.Join(artifacts, "chat-nodes-bob.png")); err != nil || fi.Size() < 10_000 {
		t.Errorf("screenshot missing or tiny: %v", err)
	}
}

// movingProxy forwards every request (WebSocket upgrades included) to its
// current copy of the chat, and serves the scenario's two controls:
// POST /__test/drain and /__test/kill point it at the next copy, then stop
// the previous one with SIGTERM or SIGKILL.
type movingProxy struct {
	copies []*chatProcess

	mu       sync.Mutex
	current  int
	moves    int
	downTill time.Time // after a move, requests wait (drain) or get 502 (kill) until then
	refuse   bool
}

// moveOutage is how long the proxy is unavailable after a move, as a load
// balancer is until it notices the copy is gone: bob's page misses what
// ann sends meanwhile (about 15 messages) and must recover it. After the
// drain the proxy holds requests meanwhile, so the page's WebSocket
// reconnects (slowly); after the kill it answers 502, and phoenix.js falls
// back to long-poll (the page sets longPollFallbackMs), so both transports
// recover across copies.
const moveOutage = 700 * time.Millisecond

func (p *movingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/__test/drain", "/__test/kill":
		p.move(w, r.URL.Path == "/__test/kill")
		return
	}
	p.mu.Lock()
	target, err := url.Parse(p.copies[p.current].url)
	wait, refuse := time.Until(p.downTill), p.refuse
	p.mu.Unlock()
	if wait > 0 && refuse {
		http.Error(w, "no copy available yet", http.StatusBadGateway)
		return
	}
	if wait > 0 {
		time.Sleep(wait)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // the chat checks the Host and Origin the browser sent
		},
	}
	rp.ServeHTTP(w, r)
}

func (p *movingProxy) move(w http.ResponseWriter, kill bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current+1 >= len(p.copies) {
		http.Error(w, "no copy left to move to", http.StatusConflict)
		return
	}
	old := p.copies[p.current]
	p.current++
	p.moves++
	p.downTill, p.refuse = time.Now().Add(moveOutage), kill
	if kill {
		old.killed = true
		if err := old.cmd.Process.Kill(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "copy %d killed (SIGKILL); now on copy %d", p.current, p.current+1)
		return
	}
	if err := old.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "copy %d stopped (SIGTERM); now on copy %d", p.current, p.current+1)
}
