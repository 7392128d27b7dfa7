package phx_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
)

// Timing tests on a fake clock: testing/synctest runs each in a bubble
// whose time advances only when every goroutine in it is blocked, so a
// 60-second timeout takes no real time and is checked to the instant.
// Everything runs in the bubble: the server, and clients on the pipe
// transport (modes_test.go); a real network would stall the fake clock.

// newPipeRoomServer is newRoomServer without HTTP: pipe peers only.
func newPipeRoomServer(t *testing.T, opts *phx.Options) (*phx.Server, *recorder) {
	t.Helper()
	rec := newRecorder()
	if opts == nil {
		opts = &phx.Options{}
	}
	opts.Logger = quietLogger()
	opts.Connect = func(info *phx.ConnectInfo) (phx.Assigns, error) {
		return phx.Assigns{"user": info.Params.Get("user")}, nil
	}
	srv := phx.NewServer(opts)
	srv.Channel("room:*", func() phx.Channel { return &room{rec: rec} })
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return srv, rec
}

// isClosed reports whether the server has closed c, without waiting.
func (c *pipePeer) isClosed() bool {
	select {
	case code := <-c.closed:
		c.closed <- code // keep it for expectClosed
		return true
	default:
		return false
	}
}

func heartbeat(c *pipePeer, ref int) {
	c.t.Helper()
	c.send(nil, fmt.Sprint(ref), "phoenix", "heartbeat", map[string]any{})
	c.expect(fmt.Sprintf(`[null,"%d","phoenix","phx_reply",{"status":"ok","response":{}}]`, ref))
}

func TestIdleTimeoutOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, rec := newPipeRoomServer(t, nil) // HeartbeatTimeout: 60s by default
		idle := dialPipe(t, srv, "user=idle&vsn=2.0.0")
		live := dialPipe(t, srv, "user=live&vsn=2.0.0")
		idle.join("room:i", "1", map[string]any{}) // idle's last frame
		heartbeat(live, 1)
		start := time.Now()

		for i := 2; i <= 6; i++ { // live heartbeats every 30s, as phoenix.js does
			time.Sleep(30*time.Second - time.Millisecond)
			synctest.Wait()
			if elapsed := time.Since(start); elapsed < 60*time.Second && idle.isClosed() {
				t.Fatalf("idle connection closed after %v, want 60s", elapsed)
			}
			heartbeat(live, i)
		}
		idle.expectClosed(websocket.StatusGoingAway)
		if got := rec.wait(t); got != "room:i:closed" {
			t.Fatalf("Terminate reason = %q", got)
		}
		if live.isClosed() {
			t.Fatal("the heartbeating connection was closed")
		}
	})
}

func TestIdleTimeoutIsExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, _ := newPipeRoomServer(t, &phx.Options{HeartbeatTimeout: 10 * time.Second})
		c := dialPipe(t, srv, "user=a&vsn=2.0.0")
		heartbeat(c, 1)
		time.Sleep(10*time.Second - time.Nanosecond)
		synctest.Wait()
		if c.isClosed() {
			t.Fatal("closed before HeartbeatTimeout")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if !c.isClosed() {
			t.Fatal("not closed at HeartbeatTimeout")
		}
		c.expectClosed(websocket.StatusGoingAway)
	})
}

// One timer serves every connection (idle.go): each still closes exactly
// at its own deadline, whatever the order they were opened and heard
// from, and one that keeps sending stays open.
func TestIdleTimeoutIsExactPerConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, _ := newPipeRoomServer(t, &phx.Options{HeartbeatTimeout: 10 * time.Second})
		a := dialPipe(t, srv, "user=a&vsn=2.0.0")
		b := dialPipe(t, srv, "user=b&vsn=2.0.0")
		live := dialPipe(t, srv, "user=live&vsn=2.0.0")
		start := time.Now()
		heartbeat(b, 1) // b's deadline: start+10s
		time.Sleep(3 * time.Second)
		heartbeat(a, 1) // a's deadline: start+13s, though a was opened first
		ref := 2
		step := func(d time.Duration) {
			t.Helper()
			time.Sleep(d)
			synctest.Wait()
			heartbeat(live, ref)
			ref++
		}
		step(7*time.Second - time.Nanosecond) // start+10s-1ns
		if a.isClosed() || b.isClosed() {
			t.Fatalf("closed before its deadline: a %t, b %t", a.isClosed(), b.isClosed())
		}
		step(time.Nanosecond) // start+10s
		if !b.isClosed() || a.isClosed() {
			t.Fatalf("at b's deadline: b closed %t (want true), a closed %t (want false)", b.isClosed(), a.isClosed())
		}
		step(3*time.Second - time.Nanosecond) // start+13s-1ns
		if a.isClosed() {
			t.Fatal("a closed before its deadline")
		}
		step(time.Nanosecond) // start+13s
		if !a.isClosed() {
			t.Fatalf("a not closed at its deadline (%v after start)", time.Since(start))
		}
		for range 4 { // live keeps sending, every 9 s
			step(9 * time.Second)
		}
		if live.isClosed() {
			t.Fatal("the connection that kept sending was closed")
		}
		a.expectClosed(websocket.StatusGoingAway)
		b.expectClosed(websocket.StatusGoingAway)
	})
}

func TestJoinTimeoutOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, rec := newPipeRoomServer(t, &phx.Options{JoinTimeout: 200 * time.Millisecond})
		c := dialPipe(t, srv, "user=slow&vsn=2.0.0")
		c.join("room:other", "1", map[string]any{})
		start := time.Now()
		c.send("2", "2", "room:slow", "phx_join", map[string]any{"sleep_ms": 600})
		// Meanwhile the connection keeps working, at no time at all.
		heartbeat(c, 3)
		c.send("1", "4", "room:other", "echo", map[string]any{})
		c.expect(`["1","4","room:other","phx_reply",{"status":"ok","response":{}}]`)
		if d := time.Since(start); d != 0 {
			t.Fatalf("the connection waited %v for the slow Join", d)
		}
		c.expect(`["2","2","room:slow","phx_reply",{"status":"error","response":{"reason":"join timeout"}}]`)
		if d := time.Since(start); d != 200*time.Millisecond {
			t.Fatalf("join timeout reply after %v, want 200ms", d)
		}
		// Join returns at 600ms; its acceptance is discarded.
		if got := rec.wait(t); got != "room:slow:error:phx: join timed out" {
			t.Fatalf("Terminate reason = %q", got)
		}
		if d := time.Since(start); d != 600*time.Millisecond {
			t.Fatalf("Terminate after %v, want 600ms (when Join returned)", d)
		}
		c.expectNothing(time.Second) // no late ok reply
		c.send("2", "5", "room:slow", "echo", map[string]any{})
		c.expect(`[null,"5","room:slow","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
		if n := srv.Stats().JoinsTimedOut; n != 1 {
			t.Fatalf("JoinsTimedOut = %d, want 1", n)
		}
		c.join("room:slow", "6", map[string]any{}) // a quick rejoin works
	})
}

// echoOK pushes echo to room:a (joined with join_ref "j") and expects the
// ok reply; echoLimited expects the rate-limited refusal instead.
func echoOK(c *pipePeer, ref int) {
	c.t.Helper()
	c.send("j", fmt.Sprint(ref), "room:a", "echo", map[string]any{})
	c.expect(fmt.Sprintf(`["j","%d","room:a","phx_reply",{"status":"ok","response":{}}]`, ref))
}

func echoLimited(c *pipePeer, ref int) {
	c.t.Helper()
	c.send("j", fmt.Sprint(ref), "room:a", "echo", map[string]any{})
	c.expect(fmt.Sprintf(`["j","%d","room:a","phx_reply",{"status":"error","response":{"reason":"rate limited"}}]`, ref))
}

func TestInboundRateRefillsOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, _ := newPipeRoomServer(t, &phx.Options{MaxInboundRate: 20, InboundBurst: 30})
		c := dialPipe(t, srv, "user=a&vsn=2.0.0")
		c.join("room:a", "j", map[string]any{}) // one token
		ref := 0
		for ; ref < 29; ref++ { // the rest of the burst
			echoOK(c, ref)
		}
		echoLimited(c, ref) // none left
		ref++
		time.Sleep(time.Second) // 20 tokens back
		for i := 0; i < 20; i++ {
			echoOK(c, ref)
			ref++
		}
		echoLimited(c, ref)
		ref++
		time.Sleep(50 * time.Millisecond) // one more
		echoOK(c, ref)
		if c.isClosed() || srv.Stats().PolicyClosed != 0 {
			t.Fatal("the connection was closed for going over its rate")
		}
	})
}

func TestRateLimitedWindowOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, _ := newPipeRoomServer(t, &phx.Options{MaxInboundRate: 1, InboundBurst: 5, MaxRateLimited: 10})
		c := dialPipe(t, srv, "user=a&vsn=2.0.0")
		c.join("room:a", "j", map[string]any{})
		ref := 0
		for ; ref < 4; ref++ {
			echoOK(c, ref)
		}
		for i := 0; i < 10; i++ { // refused, within MaxRateLimited
			echoLimited(c, ref)
			ref++
		}
		time.Sleep(rateLimitedWindow + time.Millisecond) // a new window, a full bucket
		for i := 0; i < 5; i++ {
			echoOK(c, ref)
			ref++
		}
		for i := 0; i < 10; i++ {
			echoLimited(c, ref)
			ref++
		}
		if c.isClosed() {
			t.Fatal("closed within MaxRateLimited")
		}
		c.send("j", "over", "room:a", "echo", map[string]any{}) // the 11th in this window
		c.expectClosed(websocket.StatusPolicyViolation)
		if got := srv.Stats().PolicyClosed; got != 1 {
			t.Fatalf("PolicyClosed = %d, want 1", got)
		}
	})
}

// rateLimitedWindow is the window of Options.MaxRateLimited.
const rateLimitedWindow = 10 * time.Second

// TestCursorFlushOnTheClock is issue 15's scenario on the default limits:
// a phoenix.js app moving a cursor at 90 pushes a second loses its
// connection; phoenix.js buffers the pushes and sends them all at once
// when it has rejoined. Each must be answered (ok, or refused with an
// error reply past the burst), the connection must stay open, and once
// the burst is over the pushes at 90/s must all pass again. The worst
// case is 10 s of buffered pushes: phoenix.js drops older ones.
func TestCursorFlushOnTheClock(t *testing.T) {
	for _, outage := range []time.Duration{2500 * time.Millisecond, 10 * time.Second} {
		t.Run(outage.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, _ := newPipeRoomServer(t, nil) // the defaults: 100/s, bursts of 200
				const interval = time.Second / 90
				ref := 0
				move := func(c *pipePeer) {
					c.send("j", fmt.Sprint(ref), "room:a", "echo", map[string]int{"x": ref})
					ref++
				}
				// replies reads n replies and counts them by status; anything
				// else fails.
				replies := func(c *pipePeer, n int) (ok, limited int) {
					for i := 0; i < n; i++ {
						f := c.recv()
						switch {
						case strings.Contains(f, `"status":"ok"`):
							ok++
						case strings.HasSuffix(f, `{"status":"error","response":{"reason":"rate limited"}}]`):
							limited++
						default:
							t.Fatalf("unexpected frame %s", f)
						}
					}
					return ok, limited
				}

				before := dialPipe(t, srv, "user=a&vsn=2.0.0")
				before.join("room:a", "j", map[string]any{})
				for i := 0; i < 270; i++ { // 3 s of cursor moves
					move(before)
					time.Sleep(interval)
				}
				if ok, limited := replies(before, 270); limited != 0 {
					t.Fatalf("at 90/s: %d ok, %d refused", ok, limited)
				}
				before.nc.Close() // the outage

				after := dialPipe(t, srv, "user=a&vsn=2.0.0")
				after.join("room:a", "j", map[string]any{})
				buffered := int(outage / interval)
				for i := 0; i < buffered; i++ {
					move(after)
				}
				// A heartbeat, answered even though the bucket is empty.
				after.send(nil, "hb", "phoenix", "heartbeat", map[string]any{})
				ok, limited := replies(after, buffered+1)
				ok-- // the heartbeat's
				t.Logf("%d buffered pushes: %d ok, %d refused", buffered, ok, limited)
				if ok != 199 || limited != buffered-199 { // the burst, less the join
					t.Fatalf("%d ok, %d refused, want 199 and %d", ok, limited, buffered-199)
				}
				for i := 0; i < 450; i++ { // 5 s more at 90/s
					time.Sleep(interval)
					move(after)
				}
				if ok, limited := replies(after, 450); limited != 0 {
					t.Fatalf("at 90/s after the flush: %d ok, %d refused", ok, limited)
				}
				if after.isClosed() || srv.Stats().PolicyClosed != 0 {
					t.Fatal("the connection was closed")
				}
			})
		})
	}
}

func TestProtocolErrorWindowOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, _ := newPipeRoomServer(t, &phx.Options{MaxProtocolErrors: 5})
		c := dialPipe(t, srv, "user=a&vsn=2.0.0")
		unmatched := func(i int) {
			c.send(nil, fmt.Sprint(i), "nope:x", "phx_join", map[string]any{})
			c.expect(fmt.Sprintf(`[null,"%d","nope:x","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`, i))
		}
		for i := 1; i <= 5; i++ {
			unmatched(i)
		}
		time.Sleep(5*time.Second + time.Millisecond) // the window has passed
		for i := 6; i <= 10; i++ {
			unmatched(i)
		}
		c.send(nil, "11", "nope:x", "phx_join", map[string]any{}) // 6th in this window
		c.expectClosed(websocket.StatusPolicyViolation)
	})
}
