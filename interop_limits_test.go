package phx_test

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

// TestInteropExpiry: Connect gives the first connection of a user a
// 700 ms expiry and no Refresh: the official client is closed with 4001,
// reconnects through Connect and rejoins. Each client gets its own server.
func TestInteropExpiry(t *testing.T) {
	requireInteropNode(t)
	for _, c := range interopClients {
		c.label = "phoenix-" + interopVersion(t, c)
		t.Run(c.label, func(t *testing.T) {
			baseline := runtime.NumGoroutine()
			var mu sync.Mutex
			seen := map[string]bool{}
			e := newInteropEnv(t, func(o *phx.Options) {
				connect := o.Connect
				o.Connect = func(info *phx.ConnectInfo) (phx.Assigns, error) {
					a, err := connect(info)
					user := info.Params.Get("user")
					mu.Lock()
					if err == nil && strings.HasSuffix(user, "_exp") && !seen[user] {
						seen[user] = true
						info.ExpiresAt = time.Now().Add(700 * time.Millisecond)
					}
					mu.Unlock()
					return a, err
				}
			})
			defer e.close(t, baseline)
			id := c.short + "_expiry"
			runInteropScript(t, e.base, "expiry", c, id)
			e.wantTerminated(t, "room:"+id, "error:phx: connection expired", "closed")
		})
	}
}

// TestInteropMaxConnectionsPerID: with MaxConnectionsPerID = 1 the official
// client's second connection of a user is refused until the first leaves.
func TestInteropMaxConnectionsPerID(t *testing.T) {
	requireInteropNode(t)
	for _, c := range interopClients {
		c.label = "phoenix-" + interopVersion(t, c)
		t.Run(c.label, func(t *testing.T) {
			baseline := runtime.NumGoroutine()
			e := newInteropEnv(t, func(o *phx.Options) { o.MaxConnectionsPerID = 1 })
			defer e.close(t, baseline)
			runInteropScript(t, e.base, "per_id_limit", c, c.short+"_limit")
		})
	}
}

// TestInteropHTTPShutdownFirst: the documented sequence, http.Server.Shutdown
// then Server.Shutdown, with an official WebSocket client and a LongPoll
// client holding a poll: both end at once, and the whole shutdown takes far
// less than the poll's 10 s window (it used to wait it out). phoenix.js 1.8
// only: 1.7's LongPoll needs XMLHttpRequest, which Node lacks.
func TestInteropHTTPShutdownFirst(t *testing.T) {
	requireInteropNode(t)
	c := lpInteropClient(t)
	baseline := runtime.NumGoroutine()
	e := newInteropEnv(t, nil) // LongPoll.Window: the default 10 s
	defer e.close(t, baseline)
	id := c.short + "_httpshutdown"
	runInteropScript(t, e.base, "http_shutdown", c, id)
	select {
	case err := <-e.shutdown:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown did not return")
	}
	if e.shutdownTook > 5*time.Second {
		t.Errorf("shutdown took %v with a long-poll held; want it well under the 10 s window", e.shutdownTook)
	}
	e.wantTerminated(t, "room:"+id+"_ws", "shutdown")
	e.wantTerminated(t, "room:"+id+"_lp", "shutdown")
}
