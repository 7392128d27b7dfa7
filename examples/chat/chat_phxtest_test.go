package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/phxtest"
)

// The room channel tested with phxtest: no network, the app's real router,
// channels and PubSub; the connection's assigns are given directly, as if
// Connect had verified a token.
func TestRoomWithPhxtest(t *testing.T) {
	env := newTestEnv(t)
	env.app.chat.now = func() time.Time { return time.UnixMilli(1700000000000) }
	srv := env.app.socket

	ann := phxtest.NewSocket(t, srv, phx.Assigns{"user": "ann"})
	bob := phxtest.NewSocket(t, srv, phx.Assigns{"user": "bob"})
	a := ann.JoinOK("room:lobby", nil)
	b := bob.JoinOK("room:lobby", nil)
	// A round trip on each channel: both are joined.
	for _, ch := range []*phxtest.Channel{a, b} {
		ch.AssertReply(ch.Push("new_msg", map[string]string{"body": ""}), "error", map[string]string{"reason": "empty"})
	}

	ref := a.Push("new_msg", map[string]string{"body": "hello"})
	a.AssertReply(ref, "ok", map[string]int{"id": 1})
	want := map[string]any{"user": "ann", "body": "hello", "at": 1700000000000, "phx_offset": 1}
	a.AssertBroadcast("new_msg", want)
	b.AssertBroadcast("new_msg", want)

	a.AssertReply(a.Push("new_msg", map[string]string{"body": "  "}), "error", map[string]string{"reason": "empty"})
	b.RefuteMessage("new_msg", 50*time.Millisecond)

	b.Push("typing", nil)
	a.AssertBroadcast("typing", map[string]string{"user": "bob"})
	b.RefuteMessage("typing", 50*time.Millisecond)

	// A third user's first join asks for the room's recent messages: the
	// reply gives the position, and the message follows it.
	cy := phxtest.NewSocket(t, srv, phx.Assigns{"user": "cy"})
	c, reply, err := cy.Join("room:lobby", map[string]any{"phx_position": map[string]any{"epoch": "", "offset": 0}})
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Recovered bool
		Replayed  int
	}
	if err := json.Unmarshal(reply, &r); err != nil || !r.Recovered || r.Replayed != 1 {
		t.Fatalf("first join reply %s (%v), want recovered with 1 replayed", reply, err)
	}
	c.AssertPush("new_msg", want)
	if _, _, err := cy.Join("room:Not Valid", nil); err == nil {
		t.Fatal("invalid room joined")
	}
}
