package phx_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/phxtest"
)

var cardDecodes atomic.Int32

// card counts how often it is decoded from JSON.
type card struct {
	ID    int    `json:"id"`
	Title string `json:"title"`
}

func (c *card) UnmarshalJSON(b []byte) error {
	cardDecodes.Add(1)
	type plain card
	return json.Unmarshal(b, (*plain)(c))
}

// cardBoard intercepts "card" and reads it with OutPayload.
type cardBoard struct{}

func (cardBoard) Join(*phx.Socket, phx.Payload) (any, error) { return nil, nil }
func (cardBoard) Intercept() []string                        { return []string{"card"} }
func (cardBoard) HandleOut(s *phx.Socket, event string, _ phx.Payload) {
	c, err := phx.OutPayload[*card](s)
	if err != nil {
		_ = s.Push("bad", map[string]string{"err": err.Error()})
		return
	}
	_ = s.Push(event, map[string]any{"id": c.ID, "title": c.Title, "for": s.Assigns["user"]})
}

// The subscribers of one node share one decoding of an intercepted
// broadcast from another node, and a local broadcast's own value.
func TestOutPayloadDecodesOncePerBroadcast(t *testing.T) {
	cardDecodes.Store(0)
	srv := phx.NewServer(&phx.Options{Logger: quietLogger()})
	srv.Channel("board:*", func() phx.Channel { return cardBoard{} })
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	var chans []*phxtest.Channel
	for _, u := range []string{"a", "b", "c"} {
		chans = append(chans, phxtest.NewSocket(t, srv, phx.Assigns{"user": u}).JoinOK("board:1", nil))
	}

	// As from another node: JSON only.
	remote := &phx.Broadcast{Topic: "board:1", Event: "card", Payload: phx.Payload{Data: []byte(`{"id":7,"title":"ship it"}`)}}
	if err := srv.PubSub().LocalBroadcast(remote, nil); err != nil {
		t.Fatal(err)
	}
	for i, ch := range chans {
		ch.AssertPush("card", map[string]any{"id": 7, "title": "ship it", "for": []string{"a", "b", "c"}[i]})
	}
	if n := cardDecodes.Load(); n != 1 {
		t.Fatalf("%d decodings for three subscribers, want 1", n)
	}

	// Made here with a *card: no decoding at all.
	if err := srv.Broadcast("board:1", "card", &card{ID: 8, Title: "local"}); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chans {
		ch.AssertPush("card", phxtest.Subset(map[string]any{"id": 8, "title": "local"}))
	}
	if n := cardDecodes.Load(); n != 1 {
		t.Fatalf("%d decodings after a local broadcast, want still 1", n)
	}
}
