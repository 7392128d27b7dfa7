package phx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/wire"
)

// room is the channel the protocol tests join. Its events exercise every
// hook and reply form.
type room struct {
	rec    *recorder
	joined int
}

var (
	_ phx.Channel     = (*room)(nil)
	_ phx.InHandler   = (*room)(nil)
	_ phx.OutHandler  = (*room)(nil)
	_ phx.InfoHandler = (*room)(nil)
	_ phx.Terminator  = (*room)(nil)
)

func (r *room) Join(s *phx.Socket, p phx.Payload) (any, error) {
	var params map[string]any
	if err := p.Decode(&params); err != nil {
		return nil, err
	}
	switch {
	case params["deny"] != nil:
		return nil, phx.Errorf("denied")
	case params["crash"] != nil:
		panic("join crash")
	case params["plain_error"] != nil:
		return nil, fmt.Errorf("database down")
	case params["sleep_ms"] != nil:
		time.Sleep(time.Duration(params["sleep_ms"].(float64)) * time.Millisecond)
	case params["push"] != nil:
		if err := s.Push("welcome", map[string]any{"n": 1}); err != nil {
			return nil, err
		}
	}
	return map[string]any{"topic": s.Topic(), "user": s.Assigns["user"]}, nil
}

func (r *room) HandleIn(s *phx.Socket, event string, p phx.Payload) (any, error) {
	switch event {
	case "echo":
		return json.RawMessage(p.Data), nil
	case "fail":
		return nil, phx.Error(map[string]string{"reason": "nope"})
	case "custom_status":
		return nil, &phx.ReplyError{Status: "later", Response: map[string]int{"n": 1}}
	case "plain_error":
		return nil, fmt.Errorf("boom")
	case "noreply":
		return nil, phx.NoReply
	case "async":
		ref := s.ReplyRef()
		go func() {
			time.Sleep(20 * time.Millisecond)
			ref.Reply("ok", map[string]string{"async": "yes"})
		}()
		return nil, phx.NoReply
	case "shout":
		return nil, s.Broadcast("shout", json.RawMessage(p.Data))
	case "shout_from":
		return nil, s.BroadcastFrom("shout", json.RawMessage(p.Data))
	case "secret":
		return nil, s.Broadcast("secret", json.RawMessage(p.Data))
	case "push_me":
		return nil, s.Push("pushed", json.RawMessage(p.Data))
	case "bin":
		if !p.Binary {
			return nil, phx.Errorf("want binary")
		}
		out := append([]byte("re:"), p.Data...)
		if err := s.Push("bin_push", phx.Binary(out)); err != nil {
			return nil, err
		}
		return phx.Binary(out), nil
	case "crash":
		panic("handle_in crash")
	case "stop":
		s.Stop(nil)
		return map[string]string{"bye": "now"}, nil
	case "stop_error":
		s.Stop(fmt.Errorf("fatal state"))
		return nil, phx.NoReply
	case "info":
		return nil, s.Send("tick")
	case "slow":
		time.Sleep(300 * time.Millisecond)
		return nil, nil
	}
	return nil, phx.Errorf("unknown event %s", event)
}

func (r *room) Intercept() []string { return []string{"secret"} }

func (r *room) HandleOut(s *phx.Socket, event string, p phx.Payload) {
	var m map[string]any
	_ = p.Decode(&m)
	if m["to"] != nil && m["to"] != s.Assigns["user"] {
		return // not for this user
	}
	m["seen_by"] = s.Assigns["user"]
	_ = s.Push(event, m)
}

func (r *room) HandleInfo(s *phx.Socket, msg any) {
	_ = s.Push("info", map[string]any{"msg": msg})
}

func (r *room) Terminate(s *phx.Socket, reason error) {
	if r.rec != nil {
		r.rec.add(s.Topic() + ":" + reasonName(reason))
	}
}

// newRoomServer serves room on "room:*" with a Connect that takes the user
// from the "user" param and names the socket users_socket:<user>.
func newRoomServer(t *testing.T, opts *phx.Options) (*testServer, *recorder) {
	t.Helper()
	rec := newRecorder()
	if opts == nil {
		opts = &phx.Options{}
	}
	if opts.Connect == nil {
		opts.Connect = func(info *phx.ConnectInfo) (phx.Assigns, error) {
			user := info.Params.Get("user")
			if user == "bad" {
				return nil, fmt.Errorf("bad user")
			}
			return phx.Assigns{"user": user, "token": info.AuthToken}, nil
		}
	}
	if opts.ID == nil {
		opts.ID = func(a phx.Assigns) string {
			if u, _ := a["user"].(string); u != "" {
				return "users_socket:" + u
			}
			return ""
		}
	}
	ts := newTestServer(t, lpOptions(opts), func(s *phx.Server) {
		s.Channel("room:*", func() phx.Channel { return &room{rec: rec} })
	})
	return ts, rec
}

func TestHeartbeat(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, _ := newRoomServer(t, nil)
		c := dialMode(t, ts, m, "vsn=2.0.0")
		c.send(nil, "1", "phoenix", "heartbeat", map[string]any{})
		c.expect(`[null,"1","phoenix","phx_reply",{"status":"ok","response":{}}]`)
		// nshafer/phx sends "" for join_ref and null for the payload; the
		// reply's join_ref is null whatever the client sent, as Phoenix's.
		c.sendRaw(`["","2","phoenix","heartbeat",null]`)
		c.expect(`[null,"2","phoenix","phx_reply",{"status":"ok","response":{}}]`)
		// Numeric refs keep their JSON type.
		c.sendRaw(`[null,17,"phoenix","heartbeat",{}]`)
		c.expect(`[null,17,"phoenix","phx_reply",{"status":"ok","response":{}}]`)
	})
}

func TestJoinReplies(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, _ := newRoomServer(t, nil)
		c := dialMode(t, ts, m, "user=ann&vsn=2.0.0")

		c.send("1", "1", "room:a", "phx_join", map[string]any{})
		c.expect(`["1","1","room:a","phx_reply",{"status":"ok","response":{"topic":"room:a","user":"ann"}}]`)

		c.send("2", "2", "room:b", "phx_join", map[string]any{"deny": true})
		c.expect(`["2","2","room:b","phx_reply",{"status":"error","response":{"reason":"denied"}}]`)

		c.send("3", "3", "room:c", "phx_join", map[string]any{"plain_error": true})
		c.expect(`["3","3","room:c","phx_reply",{"status":"error","response":{"reason":"join refused"}}]`)

		c.send("4", "4", "room:d", "phx_join", map[string]any{"crash": true})
		c.expect(`["4","4","room:d","phx_reply",{"status":"error","response":{"reason":"join crashed"}}]`)

		c.send("5", "5", "lobby", "phx_join", map[string]any{})
		c.expect(`[null,"5","lobby","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)

		c.send("6", "6", "room:e", "phx_join", "not an object")
		c.expect(`["6","6","room:e","phx_reply",{"status":"error","response":{"reason":"invalid join payload"}}]`)

		// Pushes made in Join arrive after the join reply.
		c.send("7", "7", "room:f", "phx_join", map[string]any{"push": true})
		c.expect(`["7","7","room:f","phx_reply",{"status":"ok","response":{"topic":"room:f","user":"ann"}}]`)
		c.expect(`["7",null,"room:f","welcome",{"n":1}]`)

		// A refused topic is not joined: a push to it is unmatched.
		c.send("2", "8", "room:b", "echo", map[string]any{})
		c.expect(`[null,"8","room:b","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
	})
}

func TestHandleInReplies(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, _ := newRoomServer(t, nil)
		c := dialMode(t, ts, m, "user=bo&vsn=2.0.0")
		c.join("room:1", "1", map[string]any{})

		c.send("1", "2", "room:1", "echo", map[string]any{"x": 1})
		c.expect(`["1","2","room:1","phx_reply",{"status":"ok","response":{"x":1}}]`)
		c.send("1", "3", "room:1", "fail", map[string]any{})
		c.expect(`["1","3","room:1","phx_reply",{"status":"error","response":{"reason":"nope"}}]`)
		c.send("1", "4", "room:1", "custom_status", map[string]any{})
		c.expect(`["1","4","room:1","phx_reply",{"status":"later","response":{"n":1}}]`)
		c.send("1", "5", "room:1", "plain_error", map[string]any{})
		c.expect(`["1","5","room:1","phx_reply",{"status":"error","response":{"reason":"internal error"}}]`)
		c.send("1", "6", "room:1", "noreply", map[string]any{})
		c.send("1", "7", "room:1", "async", map[string]any{})
		c.expect(`["1","7","room:1","phx_reply",{"status":"ok","response":{"async":"yes"}}]`)
		c.send("1", "8", "room:1", "push_me", map[string]any{"a": "b"})
		c.expect(`["1",null,"room:1","pushed",{"a":"b"}]`)
		c.expect(`["1","8","room:1","phx_reply",{"status":"ok","response":{}}]`)
		c.send("1", "9", "room:1", "info", map[string]any{})
		c.expect(`["1","9","room:1","phx_reply",{"status":"ok","response":{}}]`)
		c.expect(`["1",null,"room:1","info",{"msg":"tick"}]`)
		// join_ref null is accepted for a joined topic (Phoenix parity).
		c.send(nil, "10", "room:1", "echo", map[string]any{"y": 2})
		c.expect(`["1","10","room:1","phx_reply",{"status":"ok","response":{"y":2}}]`)
		// A stale join_ref is dropped silently.
		c.send("99", "11", "room:1", "echo", map[string]any{})
		c.expectNothing(100 * time.Millisecond)
		// Unjoined topic.
		c.send("1", "12", "room:zzz", "echo", map[string]any{})
		c.expect(`[null,"12","room:zzz","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
	})
}

func TestLeave(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, rec := newRoomServer(t, nil)
		c := dialMode(t, ts, m, "user=cy&vsn=2.0.0")
		c.join("room:1", "1", map[string]any{})

		c.send("1", "2", "room:1", "phx_leave", map[string]any{})
		c.expect(`["1","2","room:1","phx_reply",{"status":"ok","response":{}}]`)
		c.expect(`["1","1","room:1","phx_close",{}]`)
		if got := rec.wait(t); got != "room:1:left" {
			t.Fatalf("Terminate reason = %q, want room:1:left", got)
		}
		// Now unjoined; leave of an unknown topic is acknowledged.
		c.send("1", "3", "room:1", "echo", map[string]any{})
		c.expect(`[null,"3","room:1","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
		c.send("5", "4", "room:9", "phx_leave", map[string]any{})
		c.expect(`["5","4","room:9","phx_reply",{"status":"ok","response":{}}]`)
	})
}

func TestServerStop(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, rec := newRoomServer(t, nil)
		c := dialMode(t, ts, m, "user=di&vsn=2.0.0")
		c.join("room:1", "1", map[string]any{})
		c.join("room:2", "2", map[string]any{})

		c.send("1", "3", "room:1", "stop", map[string]any{})
		c.expect(`["1","3","room:1","phx_reply",{"status":"ok","response":{"bye":"now"}}]`)
		c.expect(`["1","1","room:1","phx_close",{}]`)
		if got := rec.wait(t); got != "room:1:stopped" {
			t.Fatalf("Terminate reason = %q", got)
		}
		c.send("2", "4", "room:2", "stop_error", map[string]any{})
		c.expect(`["2","2","room:2","phx_error",{"reason":"channel_crash"}]`)
		if got := rec.wait(t); got != "room:2:error:fatal state" {
			t.Fatalf("Terminate reason = %q", got)
		}
	})
}

func TestChannelPanicIsContained(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, rec := newRoomServer(t, nil)
		c := dialMode(t, ts, m, "user=ed&vsn=2.0.0")
		other := dialMode(t, ts, m, "user=fi&vsn=2.0.0")
		c.join("room:1", "1", map[string]any{})
		c.join("room:2", "2", map[string]any{})
		other.join("room:1", "1", map[string]any{})

		c.send("1", "3", "room:1", "crash", map[string]any{})
		c.expect(`["1","1","room:1","phx_error",{"reason":"channel_crash"}]`)
		if got := rec.wait(t); got != "room:1:panic" {
			t.Fatalf("Terminate reason = %q", got)
		}
		// The other channel of the same socket still answers.
		c.send("2", "4", "room:2", "echo", map[string]any{"ok": true})
		c.expect(`["2","4","room:2","phx_reply",{"status":"ok","response":{"ok":true}}]`)
		// The crashed topic is gone until the client rejoins.
		c.send("1", "5", "room:1", "echo", map[string]any{})
		c.expect(`[null,"5","room:1","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
		c.join("room:1", "6", map[string]any{})
		// Other sockets on the crashed topic are unaffected.
		other.send("1", "2", "room:1", "echo", map[string]any{})
		other.expect(`["1","2","room:1","phx_reply",{"status":"ok","response":{}}]`)
	})
}

func TestBroadcasts(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, _ := newRoomServer(t, nil)
		a := dialMode(t, ts, m, "user=a&vsn=2.0.0")
		b := dialMode(t, ts, m, "user=b&vsn=2.0.0")
		v1 := dialMode(t, ts, m, "user=c&vsn=1.0.0")
		a.join("room:x", "1", map[string]any{})
		b.join("room:x", "1", map[string]any{})
		v1.sendRaw(`{"topic":"room:x","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}`)
		v1.expect(`{"topic":"room:x","event":"phx_reply","payload":{"status":"ok","response":{"topic":"room:x","user":"c"}},"ref":"1"}`)

		a.send("1", "2", "room:x", "shout", map[string]any{"m": 1})
		a.expect(`[null,null,"room:x","shout",{"m":1}]`)
		a.expect(`["1","2","room:x","phx_reply",{"status":"ok","response":{}}]`)
		b.expect(`[null,null,"room:x","shout",{"m":1}]`)
		v1.expect(`{"topic":"room:x","event":"shout","payload":{"m":1},"ref":null}`)

		// broadcast_from skips the sender.
		a.send("1", "3", "room:x", "shout_from", map[string]any{"m": 2})
		a.expect(`["1","3","room:x","phx_reply",{"status":"ok","response":{}}]`)
		b.expect(`[null,null,"room:x","shout",{"m":2}]`)
		v1.expect(`{"topic":"room:x","event":"shout","payload":{"m":2},"ref":null}`)
		a.expectNothing(50 * time.Millisecond)

		// From outside any channel.
		if err := ts.Broadcast("room:x", "news", map[string]string{"h": "i"}); err != nil {
			t.Fatal(err)
		}
		a.expect(`[null,null,"room:x","news",{"h":"i"}]`)
		b.expect(`[null,null,"room:x","news",{"h":"i"}]`)

		// Intercepted: HandleOut runs per subscriber and pushes with the join_ref.
		a.send("1", "4", "room:x", "secret", map[string]any{"to": "b"})
		a.expect(`["1","4","room:x","phx_reply",{"status":"ok","response":{}}]`)
		b.expect(`["1",null,"room:x","secret",{"seen_by":"b","to":"b"}]`)
		a.expectNothing(50 * time.Millisecond)
	})
}

func TestBinaryFrames(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, nil)
	c := dial(t, ts.url, "user=bin&vsn=2.0.0", nil)
	c.join("room:b", "1", map[string]any{})
	// kind 0 push: join_ref "1", ref "2", topic "room:b", event "bin", payload 01 02 03
	frame := []byte{0, 1, 1, 6, 3}
	frame = append(frame, "12room:bbin"...)
	frame = append(frame, 1, 2, 3)
	c.sendBinary(frame)
	push := c.recvFrame()
	wantPush := append([]byte{0, 1, 6, 8}, "1room:bbin_push"...)
	wantPush = append(wantPush, "re:\x01\x02\x03"...)
	if !push.binary || string(push.data) != string(wantPush) {
		t.Fatalf("binary push = %v %x, want %x", push.binary, push.data, wantPush)
	}
	reply := c.recvFrame()
	wantReply := append([]byte{1, 1, 1, 6, 2}, "12room:bok"...)
	wantReply = append(wantReply, "re:\x01\x02\x03"...)
	if !reply.binary || string(reply.data) != string(wantReply) {
		t.Fatalf("binary reply = %v %x, want %x", reply.binary, reply.data, wantReply)
	}
	// Binary broadcast: kind 2.
	if err := ts.Broadcast("room:b", "blob", phx.Binary{9, 8}); err != nil {
		t.Fatal(err)
	}
	bc := c.recvFrame()
	wantBC := append([]byte{2, 6, 4}, "room:bblob"...)
	wantBC = append(wantBC, 9, 8)
	if !bc.binary || string(bc.data) != string(wantBC) {
		t.Fatalf("binary broadcast = %x, want %x", bc.data, wantBC)
	}
}

func TestDuplicateJoin(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, rec := newRoomServer(t, nil)
		c := dialMode(t, ts, m, "user=dup&vsn=2.0.0")
		c.join("room:d", "1", map[string]any{})
		c.send("5", "5", "room:d", "phx_join", map[string]any{})
		c.expect(`["1","1","room:d","phx_close",{}]`)
		c.expect(`["5","5","room:d","phx_reply",{"status":"ok","response":{"topic":"room:d","user":"dup"}}]`)
		if got := rec.wait(t); got != "room:d:duplicate_join" {
			t.Fatalf("Terminate reason = %q", got)
		}
		// One subscription remains: a broadcast arrives once.
		ts.Broadcast("room:d", "once", nil)
		c.expect(`[null,null,"room:d","once",{}]`)
		c.expectNothing(100 * time.Millisecond)
		// Messages with the old join_ref are stale now.
		c.send("1", "6", "room:d", "echo", map[string]any{})
		c.expectNothing(50 * time.Millisecond)
		c.send("5", "7", "room:d", "echo", map[string]any{})
		c.expect(`["5","7","room:d","phx_reply",{"status":"ok","response":{}}]`)
	})
}

func TestMaxChannels(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, _ := newRoomServer(t, &phx.Options{MaxChannels: 3})
		c := dialMode(t, ts, m, "user=max&vsn=2.0.0")
		for i := 1; i <= 3; i++ {
			c.join(fmt.Sprintf("room:%d", i), fmt.Sprint(i), map[string]any{})
		}
		c.send("4", "4", "room:4", "phx_join", map[string]any{})
		c.expect(`["4","4","room:4","phx_reply",{"status":"error","response":{"reason":"too many channels joined"}}]`)
		// The joined ones still work.
		c.send("3", "5", "room:3", "echo", map[string]any{})
		c.expect(`["3","5","room:3","phx_reply",{"status":"ok","response":{}}]`)
		// Leaving frees a slot.
		c.send("1", "6", "room:1", "phx_leave", map[string]any{})
		c.expect(`["1","6","room:1","phx_reply",{"status":"ok","response":{}}]`)
		c.expect(`["1","1","room:1","phx_close",{}]`)
		c.join("room:4", "7", map[string]any{})
	})
}

func TestDefaultMaxChannelsIs100(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, nil)
	c := dial(t, ts.url, "user=hundred&vsn=2.0.0", nil)
	for i := 1; i <= 100; i++ {
		c.join(fmt.Sprintf("room:%d", i), fmt.Sprint(i), map[string]any{})
	}
	c.send("101", "101", "room:101", "phx_join", map[string]any{})
	c.expect(`["101","101","room:101","phx_reply",{"status":"error","response":{"reason":"too many channels joined"}}]`)
}

func TestDisconnectByID(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, rec := newRoomServer(t, nil)
		a1 := dialMode(t, ts, m, "user=zed&vsn=2.0.0")
		a2 := dialMode(t, ts, m, "user=zed&vsn=2.0.0")
		b := dialMode(t, ts, m, "user=yan&vsn=2.0.0")
		anon := dialMode(t, ts, m, "vsn=2.0.0")
		a1.join("room:1", "1", map[string]any{})
		b.join("room:1", "1", map[string]any{})

		// Other events on the ID topic are ignored.
		ts.Broadcast("users_socket:zed", "hello", nil)
		if err := ts.Disconnect("users_socket:zed"); err != nil {
			t.Fatal(err)
		}
		a1.expectClosed(websocket.StatusGoingAway)
		a2.expectClosed(websocket.StatusGoingAway)
		if got := rec.wait(t); got != "room:1:closed" {
			t.Fatalf("Terminate reason = %q", got)
		}
		b.send("1", "2", "room:1", "echo", map[string]any{})
		b.expect(`["1","2","room:1","phx_reply",{"status":"ok","response":{}}]`)
		anon.send(nil, "1", "phoenix", "heartbeat", map[string]any{})
		anon.expect(`[null,"1","phoenix","phx_reply",{"status":"ok","response":{}}]`)
	})
}

// TestDisconnectRightAfterConnect: a connection is subscribed to its ID
// before the upgrade response goes out, so a Disconnect made as soon as the
// client has its connection (no frame exchanged yet) closes it.
func TestDisconnectRightAfterConnect(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, nil)
	for i := 0; i < 20; i++ {
		user := fmt.Sprintf("fresh%d", i)
		c := dial(t, ts.url, "user="+user+"&vsn=2.0.0", nil)
		if err := ts.Disconnect("users_socket:" + user); err != nil {
			t.Fatal(err)
		}
		if code := c.expectClose(); code != websocket.StatusGoingAway {
			t.Fatalf("connection %d: close code = %d, want 1001", i, code)
		}
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	srv := phx.NewServer(&phx.Options{Logger: quietLogger()})
	srv.Channel("room:*", func() phx.Channel { return &room{rec: rec} })
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	ts := &testServer{Server: srv}
	hs := newHTTPTestServer(t, mux)
	ts.url = hs
	const n = 20
	clients := make([]*wsClient, n)
	for i := range clients {
		clients[i] = dial(t, ts.url, fmt.Sprintf("user=u%d&vsn=2.0.0", i), nil)
		clients[i].join("room:s", "1", map[string]any{})
		clients[i].join("room:t", "2", map[string]any{})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Every Terminate ran before Shutdown returned.
	if len(rec.ch) != 2*n {
		t.Fatalf("%d Terminate calls when Shutdown returned, want %d", len(rec.ch), 2*n)
	}
	for i := 0; i < 2*n; i++ {
		if got := rec.wait(t); !strings.HasSuffix(got, ":shutdown") {
			t.Fatalf("Terminate reason = %q, want shutdown", got)
		}
	}
	for _, c := range clients {
		if code := c.expectClose(); code != websocket.StatusServiceRestart {
			t.Fatalf("close code = %d, want 1012", code)
		}
	}
	// New connections are refused while draining.
	_, err := tryDial(t, ts.url, "", nil)
	var de *dialError
	if !errorsAs(err, &de) || de.status != http.StatusServiceUnavailable {
		t.Fatalf("dial after Shutdown: %v, want HTTP 503", err)
	}
	if st := srv.Stats(); st.Connections != 0 {
		t.Fatalf("%d connections after Shutdown", st.Connections)
	}
}

func TestMalformedFrameClosesOnlyThatConnection(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, _ := newRoomServer(t, nil)
		good := dialMode(t, ts, m, "user=good&vsn=2.0.0")
		good.join("room:m", "1", map[string]any{})
		for _, bad := range []string{`not json`, `[1,2,3]`, `[]`, `{}`, `null`, `[null,"1","phoenix","heartbeat",{}] x`, "[null,\"1\",\"ph\xff\",\"e\",{}]"} {
			c := dialMode(t, ts, m, "user=bad1&vsn=2.0.0")
			c.sendRaw(bad)
			c.expectClosed(websocket.StatusInvalidFramePayloadData)
		}
		good.send("1", "2", "room:m", "echo", map[string]any{})
		good.expect(`["1","2","room:m","phx_reply",{"status":"ok","response":{}}]`)
		if got := ts.Stats().MalformedFrames; got != 7 {
			t.Fatalf("MalformedFrames = %d, want 7", got)
		}
	})
}

func TestMessageTooBig(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, _ := newRoomServer(t, &phx.Options{MaxMessageSize: 1024})
		c := dialMode(t, ts, m, "user=big&vsn=2.0.0")
		c.join("room:big", "1", map[string]any{})
		c.send("1", "2", "room:big", "echo", map[string]any{"b": strings.Repeat("x", 1000)})
		c.expectClosed(websocket.StatusMessageTooBig)
	})
}

func TestSlowConsumerIsDropped(t *testing.T) {
	t.Parallel()
	// A long write timeout: if Broadcast waited on the slow client, it
	// would wait that long, far over the 2s the loop below allows.
	ts, _ := newRoomServer(t, &phx.Options{MaxQueuedMessages: 64, WriteTimeout: 20 * time.Second})
	// The slow client never reads: the raw connection stops taking bytes.
	slowConn, _, err := websocket.Dial(context.Background(), ts.url+"/websocket?user=slow&vsn=2.0.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slowConn.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	slowConn.Write(ctx, websocket.MessageText, []byte(`["1","1","room:slow","phx_join",{}]`))
	fast := dial(t, ts.url, "user=fast&vsn=2.0.0", nil)
	fast.join("room:slow", "1", map[string]any{})
	time.Sleep(50 * time.Millisecond) // let the slow join land

	payload := map[string]string{"pad": strings.Repeat("p", 4096)}
	var published atomic.Int64
	deadline := time.Now().Add(10 * time.Second)
	for ts.Stats().SlowClientsClosed == 0 && time.Now().Before(deadline) {
		start := time.Now()
		if err := ts.Broadcast("room:slow", "flood", payload); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Broadcast blocked for %v", d)
		}
		published.Add(1)
		// The fast client keeps up.
		fast.recv()
	}
	if ts.Stats().SlowClientsClosed != 1 {
		t.Fatalf("slow client not dropped after %d broadcasts", published.Load())
	}
}

func TestHandshakeRefusals(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, &phx.Options{AllowedOrigins: []string{"https://good.example", "//*.friends.example"}})
	tests := []struct {
		name   string
		query  string
		origin string
		proto  []string
		status int // 0: success
	}{
		{name: "no origin", query: "vsn=2.0.0"},
		{name: "allowed origin", query: "vsn=2.0.0", origin: "https://good.example"},
		{name: "wildcard origin", query: "vsn=2.0.0", origin: "http://a.friends.example"},
		{name: "wildcard apex", query: "vsn=2.0.0", origin: "http://friends.example"},
		{name: "bad origin", query: "vsn=2.0.0", origin: "https://evil.example", status: 403},
		{name: "suffix trick", query: "vsn=2.0.0", origin: "https://evilfriends.example", status: 403},
		{name: "wrong scheme", query: "vsn=2.0.0", origin: "http://good.example", status: 403},
		{name: "null origin", query: "vsn=2.0.0", origin: "null", status: 403},
		{name: "missing vsn is V1", query: "user=x"},
		{name: "vsn 2.0.3", query: "vsn=2.0.3"},
		{name: "vsn 2.1.0", query: "vsn=2.1.0", status: 403},
		{name: "vsn abc", query: "vsn=abc", status: 403},
		{name: "vsn array", query: "vsn[]=1", status: 403},
		{name: "vsn empty", query: "user=x&vsn=", status: 403},
		{name: "last vsn wins", query: "vsn=9.9.9&vsn=2.0.0"},
		{name: "connect refused", query: "user=bad&vsn=2.0.0", status: 403},
		{name: "subprotocol without phoenix", query: "vsn=2.0.0", proto: []string{"chat"}, status: 403},
		{name: "bad auth token", query: "vsn=2.0.0", proto: []string{"phoenix", "base64url.bearer.phx.%%%"}, status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := &websocket.DialOptions{Subprotocols: tt.proto, HTTPHeader: http.Header{}}
			if tt.origin != "" {
				opts.HTTPHeader.Set("Origin", tt.origin)
			}
			c, err := tryDial(t, ts.url, tt.query, opts)
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("dial failed: %v", err)
				}
				c.conn.CloseNow()
				return
			}
			var de *dialError
			if !errorsAs(err, &de) || de.status != tt.status {
				t.Fatalf("dial error %v, want HTTP %d", err, tt.status)
			}
		})
	}
}

func TestAuthTokenSubprotocol(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, &phx.Options{
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			if info.AuthToken != "s3cr3t/+token" {
				return nil, fmt.Errorf("bad token %q", info.AuthToken)
			}
			return phx.Assigns{"user": "tok"}, nil
		},
	})
	for _, enc := range []string{"czNjcjN0Lyt0b2tlbg", "czNjcjN0Lyt0b2tlbg==", "czNjcjN0Lyt0b2tlbg"} {
		c := dial(t, ts.url, "vsn=2.0.0", &websocket.DialOptions{Subprotocols: []string{"phoenix", "base64url.bearer.phx." + enc}})
		if got := c.conn.Subprotocol(); got != "phoenix" {
			t.Fatalf("subprotocol = %q, want phoenix", got)
		}
		c.join("room:t", "1", map[string]any{})
	}
	_, err := tryDial(t, ts.url, "vsn=2.0.0", &websocket.DialOptions{Subprotocols: []string{"phoenix", "base64url.bearer.phx.d3Jvbmc"}})
	var de *dialError
	if !errorsAs(err, &de) || de.status != 403 {
		t.Fatalf("wrong token: %v, want 403", err)
	}
}

func TestNotFoundAndMethod(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, nil)
	base := strings.Replace(ts.url, "ws://", "http://", 1)
	for path, want := range map[string]int{"/other": 404, "/websocket": 400} {
		resp, err := http.Post(base+path, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestChannelQueueOverflow(t *testing.T) {
	t.Parallel()
	ts, rec := newRoomServer(t, &phx.Options{MaxChannelQueue: 4})
	c := dial(t, ts.url, "user=flood&vsn=2.0.0", nil)
	c.join("room:f", "1", map[string]any{})
	c.join("room:g", "2", map[string]any{})
	c.send("1", "3", "room:f", "slow", map[string]any{})
	for i := 0; i < 10; i++ {
		c.send("1", fmt.Sprint(10+i), "room:f", "echo", map[string]any{})
	}
	for {
		got := c.recv()
		if strings.Contains(got, "phx_error") {
			if got != `["1","1","room:f","phx_error",{"reason":"channel_crash"}]` {
				t.Fatalf("got %s", got)
			}
			break
		}
	}
	if got := rec.wait(t); got != "room:f:overloaded" {
		t.Fatalf("Terminate reason = %q", got)
	}
	// The connection and its other channel are fine.
	c.send("2", "30", "room:g", "echo", map[string]any{})
	c.awaitReply("30")
}

// TestInboundRateLimit: messages over MaxInboundRate are refused with an
// error reply to their ref and join_ref, and the connection stays open;
// heartbeats and leaves are still handled. The refill rate is so low that
// no token comes back during the test.
func TestInboundRateLimit(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, rec := newRoomServer(t, &phx.Options{MaxInboundRate: 0.001, InboundBurst: 10, MaxRateLimited: 50})
		c := dialMode(t, ts, m, "user=busy&vsn=2.0.0")
		other := dialMode(t, ts, m, "user=other&vsn=2.0.0") // a bucket of its own
		c.join("room:r", "1", map[string]any{})             // token 1
		for i := 2; i <= 15; i++ {
			c.send("1", fmt.Sprint(i), "room:r", "echo", map[string]int{"n": i})
		}
		// Refusals come from the connection, ok replies from the channel:
		// match them by ref.
		got := map[string]string{}
		for len(got) < 14 {
			f := c.recv()
			reply, err := wire.DecodeServerV2([]byte(f), false)
			if err != nil {
				t.Fatalf("bad frame %s: %v", f, err)
			}
			got[string(reply.Ref)] = f
		}
		for i := 2; i <= 15; i++ {
			want := fmt.Sprintf(`["1","%d","room:r","phx_reply",{"status":"ok","response":{"n":%d}}]`, i, i)
			if i > 10 { // tokens 2..10 were the burst's last
				want = fmt.Sprintf(`["1","%d","room:r","phx_reply",{"status":"error","response":{"reason":"rate limited"}}]`, i)
			}
			expectFrame(t, got[fmt.Sprintf("%q", fmt.Sprint(i))], want)
		}
		// Over the limit, a heartbeat is still answered ok.
		c.send(nil, "hb", "phoenix", "heartbeat", map[string]any{})
		c.expect(`[null,"hb","phoenix","phx_reply",{"status":"ok","response":{}}]`)
		// A join is refused, with its join_ref.
		c.send("j", "j", "room:other", "phx_join", map[string]any{})
		c.expect(`["j","j","room:other","phx_reply",{"status":"error","response":{"reason":"rate limited"}}]`)
		// A leave is handled.
		c.send("1", "lv", "room:r", "phx_leave", map[string]any{})
		c.expect(`["1","lv","room:r","phx_reply",{"status":"ok","response":{}}]`)
		c.expect(`["1","1","room:r","phx_close",{}]`)
		if got := rec.wait(t); got != "room:r:left" {
			t.Fatalf("Terminate reason = %q", got)
		}
		// The other connection has its whole burst.
		other.join("room:o", "1", map[string]any{})
		for i := 2; i <= 10; i++ {
			other.send("1", fmt.Sprint(i), "room:o", "echo", map[string]any{})
			other.expect(fmt.Sprintf(`["1","%d","room:o","phx_reply",{"status":"ok","response":{}}]`, i))
		}
		c.expectNothing(50 * time.Millisecond) // still open, nothing pending
		if n := ts.Stats().PolicyClosed; n != 0 {
			t.Fatalf("PolicyClosed = %d, want 0", n)
		}
	})
}

// TestInboundRateFloodCloses: past MaxRateLimited messages over the rate
// within the window, the connection is closed with 1008. Heartbeats count
// even though they are answered.
func TestInboundRateFloodCloses(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, _ := newRoomServer(t, &phx.Options{MaxInboundRate: 0.001, InboundBurst: 10, MaxRateLimited: 5})
		c := dialMode(t, ts, m, "user=flood&vsn=2.0.0")
		for i := 1; i <= 15; i++ { // the burst, then 5 over the rate
			c.send(nil, fmt.Sprint(i), "phoenix", "heartbeat", map[string]any{})
			c.expect(fmt.Sprintf(`[null,"%d","phoenix","phx_reply",{"status":"ok","response":{}}]`, i))
		}
		c.send(nil, "16", "phoenix", "heartbeat", map[string]any{})
		c.expectClosed(websocket.StatusPolicyViolation)
		if n := ts.Stats().PolicyClosed; n != 1 {
			t.Fatalf("PolicyClosed = %d, want 1", n)
		}
	})
}

func TestProtocolErrorBudget(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, &phx.Options{MaxProtocolErrors: 5})
	c := dial(t, ts.url, "user=prober&vsn=2.0.0", nil)
	for i := 1; i <= 5; i++ {
		c.send(nil, fmt.Sprint(i), "nope:"+fmt.Sprint(i), "phx_join", map[string]any{})
		c.expect(fmt.Sprintf(`[null,"%d","nope:%d","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`, i, i))
	}
	c.send(nil, "6", "room:never", "echo", map[string]any{}) // the 6th error
	if code := c.expectClose(); code != websocket.StatusPolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
}

// TestQueuedMessagesOwnTheirBytes: a transport may reuse a frame's bytes
// once Receive returns (the pipe transport's line scanner does), while the
// channel handles queued pushes and joins later: each must keep its own
// ref and payload.
func TestQueuedMessagesOwnTheirBytes(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, _ := newRoomServer(t, nil)
		c := dialMode(t, ts, m, "user=a&vsn=2.0.0")
		c.join("room:a", "1", map[string]any{})
		c.send("1", "slow", "room:a", "slow", map[string]any{}) // the next pushes wait in the mailbox
		pad := func(i int) string { return strings.Repeat(fmt.Sprint(i%10), 100+i%7) }
		const n = 100 // more than a 4 KiB read buffer holds
		for i := 0; i < n; i++ {
			c.send("1", fmt.Sprintf("r%d", i), "room:a", "echo", map[string]string{"pad": pad(i)})
		}
		c.expect(`["1","slow","room:a","phx_reply",{"status":"ok","response":{}}]`)
		for i := 0; i < n; i++ {
			c.expect(fmt.Sprintf(`["1","r%d","room:a","phx_reply",{"status":"ok","response":{"pad":"%s"}}]`, i, pad(i)))
		}
	})
}
