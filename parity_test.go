package phx_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

// Frames where Phoenix's own integration tests pin down a detail the
// official clients do not look at.

// A join without join_ref (V1 clients, or a V2 frame with null) leaves
// Phoenix's socket without one: the join's reply and the channel's phx_close
// and phx_error carry null, while the channel uses the join's ref.
func TestLifecycleRefNullWithoutJoinRef(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, _ := newRoomServer(t, nil)
		v1 := dialMode(t, ts, m, "user=v1") // no vsn: V1 objects
		v1.sendRaw(`{"topic":"room:a","event":"phx_join","payload":{},"ref":"1"}`)
		v1.expect(`{"topic":"room:a","event":"phx_reply","payload":{"status":"ok","response":{"topic":"room:a","user":"v1"}},"ref":"1"}`)
		v1.sendRaw(`{"topic":"room:a","event":"phx_leave","payload":{},"ref":"2"}`)
		v1.expect(`{"topic":"room:a","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"2"}`)
		v1.expect(`{"topic":"room:a","event":"phx_close","payload":{},"ref":null}`)

		v1.sendRaw(`{"topic":"room:b","event":"phx_join","payload":{},"ref":"3"}`)
		v1.expect(`{"topic":"room:b","event":"phx_reply","payload":{"status":"ok","response":{"topic":"room:b","user":"v1"}},"ref":"3"}`)
		v1.sendRaw(`{"topic":"room:b","event":"crash","payload":{},"ref":"4"}`)
		v1.expect(`{"topic":"room:b","event":"phx_error","payload":{"reason":"channel_crash"},"ref":null}`)

		// A V2 join with a null join_ref: the join's reply and the channel's
		// lifecycle frames carry null, its other replies the join's ref.
		v2 := dialMode(t, ts, m, "user=v2&vsn=2.0.0")
		v2.sendRaw(`[null,"1","room:c","phx_join",{}]`)
		v2.expect(`[null,"1","room:c","phx_reply",{"status":"ok","response":{"topic":"room:c","user":"v2"}}]`)
		v2.sendRaw(`[null,"2","room:c","stop",{}]`)
		v2.expect(`["1","2","room:c","phx_reply",{"status":"ok","response":{"bye":"now"}}]`)
		v2.expect(`[null,null,"room:c","phx_close",{}]`)

		// With a join_ref, both carry it, as the official clients expect.
		v2.join("room:d", "5", map[string]any{})
		v2.send("5", "6", "room:d", "crash", map[string]any{})
		v2.expect(`["5","5","room:d","phx_error",{"reason":"channel_crash"}]`)
	})
}

// leaver pushes from Terminate, as the you_left channel of Phoenix's
// integration tests, and holds its topic's slot in owners from Join to the
// end of Terminate (which takes a while), refusing a Join while the slot
// is taken.
type leaver struct {
	rec    *recorder
	owners *sync.Map // topic -> join_ref
}

func (l *leaver) Join(s *phx.Socket, p phx.Payload) (any, error) {
	if prev, taken := l.owners.LoadOrStore(s.Topic(), s.JoinRef()); taken {
		return nil, phx.Errorf("slot still held by join %v", prev)
	}
	return nil, nil
}

func (l *leaver) HandleIn(s *phx.Socket, event string, p phx.Payload) (any, error) {
	switch event {
	case "stop":
		s.Stop(nil)
		return map[string]string{"bye": "now"}, nil
	case "crash":
		panic("crash")
	}
	return nil, nil
}

func (l *leaver) Terminate(s *phx.Socket, reason error) {
	err := s.Push("you_left", map[string]string{"reason": reasonName(reason)})
	time.Sleep(100 * time.Millisecond) // a slow release
	l.owners.Delete(s.Topic())
	l.rec.add(fmt.Sprintf("%s %s push=%v", s.Topic(), reasonName(reason), err))
}

func newLeaverServer(t *testing.T) (*testServer, *recorder) {
	rec := newRecorder()
	owners := &sync.Map{}
	ts := newTestServer(t, lpOptions(nil), func(s *phx.Server) {
		s.Channel("room:*", func() phx.Channel { return &leaver{rec: rec, owners: owners} })
	})
	return ts, rec
}

// As in Phoenix, a channel's Terminate can push a last message while its
// client is still connected (leave, Stop, crash): it arrives after the
// reply and before phx_close / phx_error. When the connection is gone,
// Push fails.
func TestTerminatePushesBeforeClose(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, rec := newLeaverServer(t)
		c := dialMode(t, ts, m, "vsn=2.0.0")
		c.join("room:a", "1", map[string]any{})
		c.send("1", "2", "room:a", "phx_leave", map[string]any{})
		c.expect(`["1","2","room:a","phx_reply",{"status":"ok","response":{}}]`)
		c.expect(`["1",null,"room:a","you_left",{"reason":"left"}]`)
		c.expect(`["1","1","room:a","phx_close",{}]`)
		if got := rec.wait(t); got != "room:a left push=<nil>" {
			t.Fatalf("Terminate: %q", got)
		}

		c.join("room:b", "3", map[string]any{})
		c.send("3", "4", "room:b", "stop", map[string]any{})
		c.expect(`["3","4","room:b","phx_reply",{"status":"ok","response":{"bye":"now"}}]`)
		c.expect(`["3",null,"room:b","you_left",{"reason":"stopped"}]`)
		c.expect(`["3","3","room:b","phx_close",{}]`)
		rec.wait(t)

		c.join("room:c", "5", map[string]any{})
		c.send("5", "6", "room:c", "crash", map[string]any{})
		c.expect(`["5",null,"room:c","you_left",{"reason":"panic"}]`)
		c.expect(`["5","5","room:c","phx_error",{"reason":"channel_crash"}]`)
		rec.wait(t)
	})
}

func TestTerminateAfterDisconnectCannotPush(t *testing.T) {
	t.Parallel()
	ts, rec := newLeaverServer(t)
	c := dial(t, ts.url, "vsn=2.0.0", nil)
	c.join("room:gone", "1", map[string]any{})
	c.conn.CloseNow()
	if got := rec.wait(t); got != "room:gone closed push=phx: channel closed" {
		t.Fatalf("Terminate: %q", got)
	}
}

// A second join of a joined topic waits for the old channel's Terminate
// (Phoenix waits for the old process to exit), so the new Join finds what
// Terminate released.
func TestDuplicateJoinWaitsForTerminate(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, rec := newLeaverServer(t)
		c := dialMode(t, ts, m, "vsn=2.0.0")
		c.join("room:d", "1", map[string]any{})
		c.send("2", "2", "room:d", "phx_join", map[string]any{})
		c.expect(`["1","1","room:d","phx_close",{}]`)
		c.expect(`["2","2","room:d","phx_reply",{"status":"ok","response":{}}]`)
		if got := rec.wait(t); got != "room:d duplicate_join push=phx: channel closed" {
			t.Fatalf("old Terminate: %q", got)
		}
	})
}
