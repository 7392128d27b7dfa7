package phx_test

// Long-poll interop: the official phoenix.js client (npm "phoenix" 1.8.16)
// with transport: LongPoll, and its WebSocket-to-LongPoll fallback, under
// Node against a server built on this library. The scenarios are the
// testdata/interop/longpoll_*.mjs scripts; they run through the interop
// suite's runner (interop_test.go) against the same test channels and
// control API, on servers configured with short long-poll timings.
//
// Only phoenix.js 1.8 runs here: the 1.7 line's Ajax needs XMLHttpRequest,
// which Node does not have (1.8 falls back to fetch).

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

// Long-poll timings of the interop servers: a short window, so polls cycle
// quickly, and a short idle timeout, so sessions of exited clients close
// (and the expiry scenario runs) in about a second instead of 15.
const (
	lpInteropWindow = time.Second
	lpInteropIdle   = time.Second
)

// newLongPollInteropEnv is newInteropEnv (same channels, Connect, ID,
// recorder and control API) with short long-poll timings, further adjusted
// by tune when it is not nil.
func newLongPollInteropEnv(t *testing.T, tune func(*phx.Options)) *interopEnv {
	t.Helper()
	return newInteropEnv(t, func(o *phx.Options) {
		o.LongPoll.Window = lpInteropWindow
		o.LongPoll.IdleTimeout = lpInteropIdle
		if tune != nil {
			tune(o)
		}
	})
}

// lpInteropClient is the client the long-poll scenarios run with.
func lpInteropClient(t *testing.T) interopClient {
	t.Helper()
	for _, c := range interopClients {
		if c.pkg == "phoenix" {
			c.label = "phoenix-" + interopVersion(t, c)
			return c
		}
	}
	t.Fatal("no phoenix 1.8 client among interopClients")
	return interopClient{}
}

var longPollScenarios = []interopScenario{
	{name: "longpoll_push", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		cs := e.connectsFor(id + "_a")
		if len(cs) != 1 || !cs[0].Accepted || cs[0].AuthToken != "~~~>lp.tok" {
			t.Errorf("Connect saw %+v, want one accepted session (no reconnect) with the auth token", cs)
		}
		e.wantTerminated(t, "room:"+id, "closed")
	}},
	{name: "longpoll_broadcast", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		if n := e.joinsFor("room:" + id); n != 2 {
			t.Errorf("%d joins, want 2", n)
		}
		e.wantTerminated(t, "room:"+id, "closed", "closed")
	}},
	{name: "longpoll_server_stop", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		e.wantTerminated(t, "room:"+id, "stopped")
		e.wantTerminated(t, "room:"+id+"_crash", "panic", "closed")
		e.wantTerminated(t, "room:"+id+"_other", "closed")
	}},
	{name: "longpoll_refused", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		if n := e.joinsFor("room:" + id); n != 0 {
			t.Errorf("%d joins from a refused client", n)
		}
	}},
	{name: "longpoll_expiry", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		// Expired, then the rejoined channel closed when the client left.
		e.wantTerminated(t, "room:"+id, "closed", "closed")
		// The first session, the one the stale poll opened (and the
		// client dropped: it reconnects afresh), and the reconnect's.
		cs := e.connectsFor(id + "_a")
		if len(cs) < 2 {
			t.Errorf("%d sessions, want at least 2 (initial + reconnect)", len(cs))
		}
		t.Logf("sessions opened: %d", len(cs))
	}},
	{name: "longpoll_disconnect", check: func(t *testing.T, e *interopEnv, c interopClient, id string) {
		e.wantTerminated(t, "room:"+id, "closed", "closed")
	}},
}

// TestInteropLongPoll runs the long-poll scenarios in parallel against one
// server.
func TestInteropLongPoll(t *testing.T) {
	requireInteropNode(t)
	c := lpInteropClient(t)
	baseline := runtime.NumGoroutine()
	e := newLongPollInteropEnv(t, nil)
	t.Cleanup(func() { e.close(t, baseline) })
	t.Run(c.label, func(t *testing.T) {
		for _, sc := range longPollScenarios {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				id := fmt.Sprintf("%s_%s", c.short, sc.name)
				runInteropScript(t, e.base, sc.name, c, id)
				if sc.check != nil {
					sc.check(t, e, c, id)
				}
			})
		}
	})
}

// TestInteropLongPollFallback: WebSocket upgrades refused, the client with
// longPollFallbackMs falls back to LongPoll.
func TestInteropLongPollFallback(t *testing.T) {
	requireInteropNode(t)
	c := lpInteropClient(t)
	baseline := runtime.NumGoroutine()
	e := newLongPollInteropEnv(t, func(o *phx.Options) { o.DisableWebSocket = true })
	defer e.close(t, baseline)
	t.Run(c.label, func(t *testing.T) {
		id := c.short + "_longpoll_fallback"
		runInteropScript(t, e.base, "longpoll_fallback", c, id)
		cs := e.connectsFor(id + "_a")
		if len(cs) != 1 || !cs[0].Accepted {
			t.Errorf("Connect saw %+v, want exactly one (long-poll) connection: the WebSocket attempts were refused before Connect", cs)
		}
		e.wantTerminated(t, "room:"+id, "closed")
	})
}
