package phx_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

// linkPubSub is one node's view of a shared in-process PubSub, with a
// switch that cuts the node off (a partition): while cut, its broadcasts
// go nowhere and it receives nothing.
type linkPubSub struct {
	shared *phx.MemoryPubSub
	cut    atomic.Bool
	mu     sync.Mutex
	subs   map[phx.Subscriber]*linkSub
}

type linkSub struct {
	l *linkPubSub
	s phx.Subscriber
}

func (s *linkSub) Deliver(b *phx.Broadcast) {
	if !s.l.cut.Load() {
		s.s.Deliver(b)
	}
}

func newLink(shared *phx.MemoryPubSub) *linkPubSub {
	return &linkPubSub{shared: shared, subs: map[phx.Subscriber]*linkSub{}}
}

func (l *linkPubSub) wrap(s phx.Subscriber) *linkSub {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.subs[s]
	if w == nil {
		w = &linkSub{l: l, s: s}
		l.subs[s] = w
	}
	return w
}

func (l *linkPubSub) Subscribe(topic string, s phx.Subscriber) error {
	return l.shared.Subscribe(topic, l.wrap(s))
}

func (l *linkPubSub) Unsubscribe(topic string, s phx.Subscriber) error {
	return l.shared.Unsubscribe(topic, l.wrap(s))
}

func (l *linkPubSub) Broadcast(_ context.Context, b *phx.Broadcast, from phx.Subscriber) error {
	if l.cut.Load() {
		return errors.New("cut off")
	}
	return l.shared.LocalBroadcast(b, l.wrap(from))
}

func (l *linkPubSub) LocalBroadcast(b *phx.Broadcast, from phx.Subscriber) error {
	return l.shared.LocalBroadcast(b, l.wrap(from))
}

// waitLists waits until every presence lists exactly the keys want on topic.
func waitLists(t *testing.T, topic, want string, d time.Duration, ps ...*phx.Presence) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok := true
		var got []string
		for _, p := range ps {
			k := keys(p.List(topic))
			got = append(got, phx.PresenceReplicaName(p)+"="+k)
			if k != want {
				ok = false
			}
		}
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("presence lists %v after %v, want %q everywhere", got, d, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPresenceReplicateConverges(t *testing.T) {
	t.Parallel()
	shared := phx.NewMemoryPubSub()
	const hb, down = 100 * time.Millisecond, 600 * time.Millisecond
	type node struct {
		ts   *testServer
		p    *phx.Presence
		link *linkPubSub
		stop func()
	}
	newNode := func(name string) *node {
		n := &node{link: newLink(shared)}
		n.ts = newTestServer(t, &phx.Options{
			PubSub: n.link,
			Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
				return phx.Assigns{"user": info.Params.Get("user")}, nil
			},
		}, func(s *phx.Server) {
			n.p = phx.NewPresence(s, &phx.PresenceOptions{Replica: name})
			s.Channel("room:*", func() phx.Channel { return &presenceRoom{p: n.p} })
		})
		return n
	}
	start := func(n *node) {
		stop, err := n.p.Replicate(context.Background(), nil, &phx.ReplicateOptions{HeartbeatPeriod: hb, DownPeriod: down})
		if err != nil {
			t.Fatal(err)
		}
		n.stop = stop
		t.Cleanup(stop)
	}
	a, b, c := newNode("A"), newNode("B"), newNode("C")
	start(a)
	start(b)
	if _, err := a.p.Replicate(context.Background(), nil, nil); !errors.Is(err, phx.ErrAlreadyReplicating) {
		t.Fatalf("second Replicate: %v", err)
	}
	dial(t, a.ts.url, "user=ann&vsn=2.0.0", nil).join("room:r", "1", map[string]any{})
	bob := dial(t, b.ts.url, "user=bob&vsn=2.0.0", nil)
	bob.join("room:r", "1", map[string]any{})
	// C has a user before it starts replicating: its start-up snapshot
	// announces it, and its transfer request fetches the others' state.
	cat := dial(t, c.ts.url, "user=cat&vsn=2.0.0", nil)
	cat.join("room:r", "1", map[string]any{})
	waitLists(t, "room:r", "ann,bob", 2*time.Second, a.p, b.p)
	start(c)
	waitLists(t, "room:r", "ann,bob,cat", 2*time.Second, a.p, b.p, c.p)
	if la, lc := a.p.List("room:r"), c.p.List("room:r"); !reflect.DeepEqual(la, lc) {
		t.Fatalf("lists differ:\nA %v\nC %v", la, lc)
	}

	// bob leaves: a delta.
	bob.send("1", "2", "room:r", "phx_leave", map[string]any{})
	waitLists(t, "room:r", "ann,cat", 2*time.Second, a.p, b.p, c.p)

	// C is cut off: after DownPeriod the others drop cat, and cat's client
	// hears nothing of it (C still lists everyone it knew until A and B go
	// down for it too).
	c.link.cut.Store(true)
	took := waitLists(t, "room:r", "ann", down+hb+time.Second, a.p, b.p)
	if took < down-2*hb {
		t.Fatalf("cat dropped after %v, before DownPeriod %v", took, down)
	}
	waitLists(t, "room:r", "cat", down+hb+time.Second, c.p)
	// The partition heals: heartbeats bring the states back.
	c.link.cut.Store(false)
	waitLists(t, "room:r", "ann,cat", 3*time.Second, a.p, b.p, c.p)

	// A stops gracefully: its permdown removes ann at once elsewhere.
	a.stop()
	if took := waitLists(t, "room:r", "cat", down, b.p, c.p); took > down/2 {
		t.Fatalf("ann removed after %v; the permdown should be immediate", took)
	}
}
