package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/nodetest"
)

// HistoryInterop runs testdata/interop/history_nodes.mjs (interopDir is
// that directory, relative to the test's module) with the official
// phoenix.js client against two phx nodes on the shared store: clients
// are disconnected server-side again and again while both nodes broadcast,
// and each reconnection goes to the other node. Every client must end with
// every message exactly once, in order.
func HistoryInterop(t *testing.T, a, b HistoryNode, interopDir string) {
	node, flags := nodetest.Require(t, "phoenix.js history interop",
		filepath.Join(interopDir, "node_modules", "phoenix", "package.json"))
	var published, kicked atomic.Int64
	var pubWG sync.WaitGroup
	// B first: A's control handlers use both servers.
	srvB, urlB := startHistoryNode(t, b, nil)
	var nodeA atomic.Pointer[phx.Server] // set once A is up, before the script runs
	srvA, urlA := startHistoryNode(t, a, func(mux *http.ServeMux) {
		mux.HandleFunc("POST /ctl/publish", func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			topic, prefix := q.Get("topic"), q.Get("user_prefix")
			n, _ := strconv.Atoi(q.Get("n"))
			every, _ := strconv.Atoi(q.Get("every"))
			users, _ := strconv.Atoi(q.Get("users"))
			kicks, _ := strconv.Atoi(q.Get("kicks"))
			tick, _ := strconv.Atoi(q.Get("tick_ms"))
			done := make(chan struct{})
			pubWG.Add(2)
			go func() { // broadcasts alternate between the nodes
				defer pubWG.Done()
				defer close(done)
				next := time.Now()
				for i := 1; i <= n; i++ {
					s := srvB
					if i%2 == 1 {
						s = nodeA.Load()
					}
					if err := s.Broadcast(topic, "msg", map[string]int{"n": i}); err != nil {
						t.Errorf("broadcast %d: %v", i, err)
						return
					}
					published.Store(int64(i))
					next = next.Add(time.Duration(every) * time.Microsecond)
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
				}
			}()
			go func() { // server-side disconnects; Disconnect reaches both nodes
				defer pubWG.Done()
				tk := time.NewTicker(time.Duration(tick) * time.Millisecond)
				defer tk.Stop()
				for {
					select {
					case <-done:
						return
					case <-tk.C:
					}
					for range kicks {
						if err := srvB.Disconnect("user:" + prefix + strconv.Itoa(rand.IntN(users))); err != nil {
							t.Errorf("disconnect: %v", err)
						}
						kicked.Add(1)
					}
				}
			}()
			w.Header().Set("content-type", "application/json")
			_, _ = w.Write([]byte("{}"))
		})
		mux.HandleFunc("GET /ctl/published", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("content-type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]int64{"n": published.Load(), "kicked": kicked.Load()})
		})
	})
	nodeA.Store(srvA)
	t.Cleanup(pubWG.Wait)
	baseA := strings.TrimSuffix(strings.Replace(urlA, "ws", "http", 1), "/socket")
	baseB := strings.TrimSuffix(strings.Replace(urlB, "ws", "http", 1), "/socket")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append(slices.Clone(flags), filepath.Join(interopDir, "history_nodes.mjs"), baseA, "phoenix",
		"n"+strconv.FormatInt(time.Now().UnixNano(), 36))
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = append(cmd.Environ(), "PHX_BASE_B="+baseB)
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil || ctx.Err() != nil {
		t.Fatalf("history_nodes.mjs failed: %v\n%s", err, out.String())
	}
	t.Logf("history_nodes.mjs:\n%s", out.String())
}
