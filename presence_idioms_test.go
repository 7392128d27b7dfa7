package phx_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/phxtest"
)

// userMeta is a typed presence meta.
type userMeta struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// lobby tracks a typed meta; "bad" tracks one that is not an object.
type lobby struct{ p *phx.Presence }

func (l lobby) Join(s *phx.Socket, _ phx.Payload) (any, error) {
	user, _ := s.Assigns["user"].(string)
	if user == "bad" {
		return nil, l.p.Track(s, user, []string{"not", "an", "object"})
	}
	return nil, l.p.Track(s, user, userMeta{Name: user, Status: "online"})
}

func (l lobby) HandleIn(s *phx.Socket, event string, _ phx.Payload) (any, error) {
	return nil, l.p.Update(s, s.Assigns["user"].(string), userMeta{Name: s.Assigns["user"].(string), Status: event})
}

func TestPresenceTypedMetasGetAndHandleMetas(t *testing.T) {
	t.Parallel()
	srv := phx.NewServer(&phx.Options{Logger: quietLogger()})
	// Every join's status and every leave, over all diffs: the
	// presence may coalesce changes into fewer diffs.
	var mu sync.Mutex
	var joined []string
	leaves := 0
	p := phx.NewPresence(srv, &phx.PresenceOptions{
		BatchInterval: -1,
		HandleMetas: func(topic string, joins, left map[string]*phx.PresenceEntry) {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range joins {
				for _, m := range e.Metas {
					joined = append(joined, m["status"].(string))
				}
			}
			for _, e := range left {
				leaves += len(e.Metas)
			}
		},
	})
	srv.Channel("lobby", func() phx.Channel { return lobby{p} })

	ann := phxtest.NewSocket(t, srv, phx.Assigns{"user": "ann"})
	ch := ann.JoinOK("lobby", nil)
	e, ok := p.Get("lobby", "ann")
	if !ok || len(e.Metas) != 1 || e.Metas[0]["name"] != "ann" || e.Metas[0]["status"] != "online" || e.Metas[0]["phx_ref"] == nil {
		t.Fatalf("Get(lobby, ann) = %+v, %v", e, ok)
	}
	if _, ok := p.Get("lobby", "nobody"); ok {
		t.Fatal("Get of an absent key reported true")
	}
	ch.AssertReply(ch.Push("away", nil), "ok", nil)
	// Clients get the struct's JSON. (The join's own diff may have been
	// published before the test watched the topic: skip to the update's.)
	for {
		m := ch.AwaitBroadcast("presence_diff")
		if strings.Contains(string(m.Payload), `"status":"away"`) {
			if !strings.Contains(string(m.Payload), `"name":"ann"`) {
				t.Fatalf("presence_diff %s", m.Payload)
			}
			break
		}
	}
	ch.Leave()

	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got, n := strings.Join(joined, ","), leaves
		mu.Unlock()
		if got == "online,away" && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HandleMetas saw joins %q and %d leaves, want online,away and 2", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}

	bad := phxtest.NewSocket(t, srv, phx.Assigns{"user": "bad"})
	if _, _, err := bad.Join("lobby", nil); err == nil {
		t.Fatal("a non-object meta was tracked")
	}
	var je *phxtest.JoinError
	_, _, err := bad.Join("lobby", nil)
	if !errors.As(err, &je) {
		t.Fatalf("join with a bad meta: %v", err)
	}
}
