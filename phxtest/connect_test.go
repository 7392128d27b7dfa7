package phxtest_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/phxtest"
)

// board intercepts "card_added" and rewrites it per user.
type board struct{}

func (board) Join(*phx.Socket, phx.Payload) (any, error) { return nil, nil }

func (board) HandleIn(s *phx.Socket, event string, p phx.Payload) (any, error) {
	switch event {
	case "add":
		return map[string]any{"id": 7, "title": "write tests", "at": time.Now().UnixNano()},
			s.Broadcast("card_added", map[string]any{"id": 7, "title": "write tests", "by": s.Assigns["user"]})
	case "quiet":
		return nil, phx.NoReply
	}
	return nil, phx.Errorf("unknown")
}

func (board) Intercept() []string { return []string{"card_added"} }

func (board) HandleOut(s *phx.Socket, event string, p phx.Payload) {
	var m map[string]any
	_ = p.Decode(&m)
	if m["by"] == s.Assigns["user"] {
		return // not echoed to its author
	}
	_ = s.Push(event, map[string]any{"id": m["id"], "seen_by": s.Assigns["user"]})
}

func newBoardServer(t *testing.T) *phx.Server {
	srv := phx.NewServer(&phx.Options{
		Logger: slog.New(slog.DiscardHandler),
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			switch user := info.Params.Get("user"); {
			case user == "":
				return nil, &phx.RefusedError{Status: 401, Err: errors.New("no user")}
			case info.Header.Get("X-Banned") != "":
				return nil, errors.New("banned")
			default:
				return phx.Assigns{"user": user}, nil
			}
		},
	})
	srv.Channel("board:*", func() phx.Channel { return board{} })
	t.Cleanup(func() { srv.Shutdown(t.Context()) })
	return srv
}

func TestConnectRunsTheServersConnect(t *testing.T) {
	t.Parallel()
	srv := newBoardServer(t)
	sock, err := phxtest.Connect(t, srv, url.Values{"user": {"ann"}})
	if err != nil {
		t.Fatal(err)
	}
	ch := sock.JoinOK("board:1", nil)
	ch.AssertReply(ch.Push("add", nil), "ok", phxtest.Subset(map[string]any{"id": 7}))

	_, err = phxtest.Connect(t, srv, nil)
	var refused *phx.RefusedError
	if !errors.As(err, &refused) || refused.Status != 401 {
		t.Fatalf("Connect without a user: %v, want a 401 RefusedError", err)
	}
	_, err = phxtest.ConnectInfo(t, srv, &phx.ConnectInfo{
		Params: url.Values{"user": {"bob"}},
		Header: map[string][]string{"X-Banned": {"1"}},
	})
	if !errors.As(err, &refused) || refused.Status != 403 {
		t.Fatalf("ConnectInfo with a banned header: %v, want 403", err)
	}
}

// AssertBroadcast sees what was published on the topic, intercepted or
// not, as assert_broadcast does; AssertPush sees what HandleOut made of it.
func TestBroadcastAssertionsSeeInterceptedEvents(t *testing.T) {
	t.Parallel()
	srv := newBoardServer(t)
	ann, _ := phxtest.Connect(t, srv, url.Values{"user": {"ann"}})
	bob, _ := phxtest.Connect(t, srv, url.Values{"user": {"bob"}})
	a := ann.JoinOK("board:1", nil)
	b := bob.JoinOK("board:1", nil)

	a.Push("add", nil)
	a.AssertBroadcast("card_added", map[string]any{"id": 7, "title": "write tests", "by": "ann"})
	b.AssertBroadcast("card_added", phxtest.Subset(map[string]any{"by": "ann"}))
	b.AssertPush("card_added", map[string]any{"id": 7, "seen_by": "bob"})
	a.RefutePush("card_added", 50*time.Millisecond)      // HandleOut dropped ann's own
	a.RefuteBroadcast("card_added", 20*time.Millisecond) // consumed above: only one was published

	ref := a.Push("quiet", nil)
	a.RefuteReply(ref, 50*time.Millisecond)
}

func TestMatchersFailReadably(t *testing.T) {
	t.Parallel()
	srv := newBoardServer(t)
	for _, tc := range []struct {
		name string
		want any
		msg  string
	}{
		{"subset value", phxtest.Subset(map[string]any{"id": 8}), "no subset match at .id"},
		{"subset missing", phxtest.Subset(map[string]any{"owner": "x"}), ".owner (missing)"},
		{"func", phxtest.Func(func(p json.RawMessage) bool { return strings.Contains(string(p), "nope") }), "rejected by the Func matcher"},
		{"whole", map[string]any{"id": 7}, "want: {\"id\":7}"},
	} {
		ft := &fakeT{TB: t}
		sock, err := phxtest.Connect(ft, srv, url.Values{"user": {"cy"}})
		if err != nil {
			t.Fatal(err)
		}
		ch := sock.JoinOK("board:m", nil)
		ref := ch.Push("add", nil)
		done := make(chan struct{})
		go func() {
			defer close(done)
			ch.AssertReply(ref, "ok", tc.want)
		}()
		<-done
		if !strings.Contains(ft.msg, tc.msg) {
			t.Errorf("%s: failure message %q, want it to contain %q", tc.name, ft.msg, tc.msg)
		}
	}
	// And the matchers accept what they should.
	sock, _ := phxtest.Connect(t, srv, url.Values{"user": {"dee"}})
	ch := sock.JoinOK("board:m", nil)
	ch.AssertReply(ch.Push("add", nil), "ok", phxtest.Func(func(p json.RawMessage) bool {
		return strings.Contains(string(p), `"title":"write tests"`)
	}))
}
