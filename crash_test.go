package phx_test

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

// crashy panics in the hook its join params name.
type crashy struct {
	rec   *recorder
	where string
	p     *phx.Presence
}

func (c *crashy) Join(s *phx.Socket, p phx.Payload) (any, error) {
	var params struct{ Where string }
	p.Decode(&params)
	c.where = params.Where
	if c.p != nil {
		c.p.Track(s, s.Assigns["user"].(string), nil)
	}
	return nil, nil
}

func (c *crashy) HandleIn(s *phx.Socket, event string, p phx.Payload) (any, error) {
	switch event {
	case "info":
		return nil, s.Send("x")
	case "out":
		return nil, s.Broadcast("out", nil)
	}
	return nil, nil
}

func (c *crashy) Intercept() []string {
	if c.where == "intercept" {
		panic("intercept")
	}
	return []string{"out"}
}

func (c *crashy) HandleOut(s *phx.Socket, event string, p phx.Payload) {
	if c.where == "handle_out" {
		panic("handle_out")
	}
	s.Push("out_ok", nil)
}

func (c *crashy) HandleInfo(s *phx.Socket, msg any) {
	if c.where == "handle_info" {
		panic("handle_info")
	}
}

func (c *crashy) Terminate(s *phx.Socket, reason error) {
	c.rec.add(s.Assigns["user"].(string) + ":" + reasonName(reason))
	if c.where == "terminate" {
		panic("terminate")
	}
}

func newCrashServer(t *testing.T, opts *phx.Options) (*testServer, *recorder, *phx.Presence) {
	rec := newRecorder()
	var p *phx.Presence
	if opts == nil {
		opts = &phx.Options{}
	}
	opts.Connect = func(info *phx.ConnectInfo) (phx.Assigns, error) {
		if info.Params.Get("user") == "panic" {
			panic("connect")
		}
		return phx.Assigns{"user": info.Params.Get("user")}, nil
	}
	ts := newTestServer(t, opts, func(s *phx.Server) {
		p = phx.NewPresence(s, &phx.PresenceOptions{BatchInterval: 5 * time.Millisecond})
		s.Channel("c:*", func() phx.Channel { return &crashy{rec: rec, p: p} })
	})
	return ts, rec, p
}

// TestCrashContainment: a panic in any hook we run takes down at most the
// channel it belongs to (docs/protocol.md §8, after the P rows).
func TestCrashContainment(t *testing.T) {
	t.Parallel()

	t.Run("handle_out: only that recipient's channel", func(t *testing.T) {
		ts, rec, _ := newCrashServer(t, nil)
		bad := dial(t, ts.url, "user=bad&vsn=2.0.0", nil)
		good := dial(t, ts.url, "user=good&vsn=2.0.0", nil)
		bad.join("c:1", "1", map[string]any{"where": "handle_out"})
		good.join("c:1", "1", map[string]any{})
		good.send("1", "2", "c:1", "out", map[string]any{})
		good.awaitReply("2")
		good.expect(`["1",null,"c:1","out_ok",{}]`)
		for {
			if f := bad.recv(); strings.Contains(f, "phx_error") {
				break
			}
		}
		if got := rec.wait(t); got != "bad:panic" {
			t.Fatalf("Terminate = %q", got)
		}
	})

	t.Run("handle_info", func(t *testing.T) {
		ts, rec, _ := newCrashServer(t, nil)
		c := dial(t, ts.url, "user=u&vsn=2.0.0", nil)
		c.join("c:1", "1", map[string]any{"where": "handle_info"})
		c.join("c:2", "2", map[string]any{})
		c.send("1", "3", "c:1", "info", map[string]any{})
		c.awaitReply("3")
		c.expect(`["1","1","c:1","phx_error",{"reason":"channel_crash"}]`)
		if got := rec.wait(t); got != "u:panic" {
			t.Fatalf("Terminate = %q", got)
		}
		c.send("2", "4", "c:2", "x", map[string]any{})
		c.awaitReply("4")
	})

	t.Run("intercept: logged, the channel works without intercepts", func(t *testing.T) {
		ts, _, _ := newCrashServer(t, nil)
		c := dial(t, ts.url, "user=u&vsn=2.0.0", nil)
		c.join("c:1", "1", map[string]any{"where": "intercept"})
		c.send("1", "2", "c:1", "out", map[string]any{})
		c.expect(`[null,null,"c:1","out",{}]`) // not intercepted
		c.awaitReply("2")
	})

	t.Run("terminate: cleanup still finishes", func(t *testing.T) {
		ts, rec, p := newCrashServer(t, nil)
		c := dial(t, ts.url, "user=u&vsn=2.0.0", nil)
		c.join("c:1", "1", map[string]any{"where": "terminate"})
		if len(p.List("c:1")) != 1 {
			t.Fatal("not tracked")
		}
		c.send("1", "2", "c:1", "phx_leave", map[string]any{})
		c.awaitReply("2")
		c.expect(`["1","1","c:1","phx_close",{}]`)
		if got := rec.wait(t); got != "u:left" {
			t.Fatalf("Terminate = %q", got)
		}
		deadline := time.Now().Add(2 * time.Second)
		for len(p.List("c:1")) != 0 {
			if time.Now().After(deadline) {
				t.Fatal("presence entry of a channel whose Terminate panicked was not removed")
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.join("c:1", "3", map[string]any{})
	})

	t.Run("connect: HTTP 500, server carries on", func(t *testing.T) {
		ts, _, _ := newCrashServer(t, nil)
		_, err := tryDial(t, ts.url, "user=panic&vsn=2.0.0", nil)
		var de *dialError
		if !errors.As(err, &de) || de.status != http.StatusInternalServerError {
			t.Fatalf("dial: %v, want HTTP 500", err)
		}
		dial(t, ts.url, "user=ok&vsn=2.0.0", nil).join("c:1", "1", map[string]any{})
	})

	t.Run("pubsub dispatch: a panicking subscriber does not stop the others", func(t *testing.T) {
		ts, _, _ := newCrashServer(t, nil)
		var got atomic.Int64
		ps := ts.PubSub()
		ps.Subscribe("c:x", phx.NewSubscriber(func(*phx.Broadcast) { panic("subscriber") }))
		ps.Subscribe("c:x", phx.NewSubscriber(func(*phx.Broadcast) { got.Add(1) }))
		if err := ts.Broadcast("c:x", "e", nil); err != nil {
			t.Fatal(err)
		}
		if got.Load() != 1 {
			t.Fatal("the second subscriber missed the broadcast")
		}
	})

	t.Run("timers: a panicking presence Fetch in the diff timer", func(t *testing.T) {
		rec := newRecorder()
		var p *phx.Presence
		ts := newTestServer(t, &phx.Options{Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			return phx.Assigns{"user": info.Params.Get("user")}, nil
		}}, func(s *phx.Server) {
			p = phx.NewPresence(s, &phx.PresenceOptions{
				BatchInterval: 5 * time.Millisecond,
				Fetch:         func(string, map[string]*phx.PresenceEntry) { panic("fetch") },
			})
			s.Channel("c:*", func() phx.Channel { return &crashy{rec: rec, p: p} })
		})
		c := dial(t, ts.url, "user=u&vsn=2.0.0", nil)
		c.join("c:1", "1", map[string]any{})
		// The diff still goes out, unenriched.
		for {
			if f := c.recv(); strings.Contains(f, "presence_diff") {
				break
			}
		}
	})
}
