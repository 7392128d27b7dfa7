// Package clustertest holds the multi-node scenario and the cross-node
// benchmark shared by the tests of the PubSub adapters. Each adapter's test
// package starts a real broker and implements Broker for it.
package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

// Stats are the adapter counters the scenario checks.
type Stats struct {
	Published, PublishErrors, Received, DroppedOwn, DecodeErrors int64
	Queued                                                       int
	Replayed, Dropped, Duplicates                                int64
	Disconnects, Reconnects                                      int64
	Connected                                                    bool
}

// Adapter is a PubSub adapter under test.
type Adapter interface {
	phx.PubSub
	Close() error
	Counters() Stats
}

// Broker is a real broker server run by the test, and the adapter's
// constructor.
type Broker interface {
	// Dial returns a new adapter connected to the broker, with node ID id,
	// calling onGap after each outage. It must reconnect quickly (≤ 200ms
	// after the broker is back).
	Dial(t testing.TB, id string, onGap func(start, end time.Time)) Adapter
	// Stop stops the broker server abruptly; Start starts it again on the
	// same address.
	Stop(t testing.TB)
	Start(t testing.TB)
	// Inject publishes msg raw (not through an adapter) where a's
	// broadcasts on topic go.
	Inject(t testing.TB, a Adapter, topic string, msg []byte)
}

// Logger returns the logger for adapters and servers in tests: silent
// unless PHX_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("PHX_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// Replication timings used by the scenario.
const (
	Heartbeat  = 200 * time.Millisecond
	DownPeriod = 1500 * time.Millisecond
)

// Node is one phx.Server with its adapter, Presence and replication,
// served over HTTP on loopback.
type Node struct {
	Name     string
	Adapter  Adapter
	Server   *phx.Server
	Presence *phx.Presence
	URL      string // ws://127.0.0.1:port/socket

	http     *httptest.Server
	stopRepl func()
	gapMu    sync.Mutex
	gaps     [][2]time.Time
	stopOnce sync.Once
}

// room tracks the user on join and broadcasts on "shout"/"shout_from".
type room struct{ p *phx.Presence }

func (r *room) Join(s *phx.Socket, _ phx.Payload) (any, error) {
	if err := r.p.Track(s, s.Assigns["user"].(string), map[string]any{"node": s.Assigns["node"]}); err != nil {
		return nil, err
	}
	return nil, r.p.PushState(s)
}

func (r *room) HandleIn(s *phx.Socket, event string, p phx.Payload) (any, error) {
	switch event {
	case "shout":
		return nil, s.Broadcast("shout", json.RawMessage(p.Data))
	case "shout_from":
		return nil, s.BroadcastFrom("shout", json.RawMessage(p.Data))
	}
	return nil, phx.Errorf("unknown event")
}

// StartNode starts a node named name on br.
func StartNode(t testing.TB, br Broker, name string) *Node {
	t.Helper()
	return StartNodeWith(t, br, name, nil)
}

// StartNodeWith is StartNode with the server's options adjusted by tune
// (when not nil) before the server is made.
func StartNodeWith(t testing.TB, br Broker, name string, tune func(*phx.Options)) *Node {
	t.Helper()
	n := &Node{Name: name}
	n.Adapter = br.Dial(t, name, func(start, end time.Time) {
		n.gapMu.Lock()
		n.gaps = append(n.gaps, [2]time.Time{start, end})
		n.gapMu.Unlock()
	})
	opts := &phx.Options{
		PubSub: n.Adapter,
		Logger: Logger(),
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			return phx.Assigns{"user": info.Params.Get("user"), "node": name}, nil
		},
	}
	if tune != nil {
		tune(opts)
	}
	n.Server = phx.NewServer(opts)
	n.Presence = phx.NewPresence(n.Server, &phx.PresenceOptions{Replica: name})
	n.Server.Channel("room:*", func() phx.Channel { return &room{p: n.Presence} })
	stop, err := n.Presence.Replicate(context.Background(), nil, &phx.ReplicateOptions{
		HeartbeatPeriod: Heartbeat, DownPeriod: DownPeriod, Logger: Logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	n.stopRepl = stop
	mux := http.NewServeMux()
	mux.Handle("/socket/", n.Server)
	n.http = httptest.NewServer(mux)
	n.URL = "ws" + strings.TrimPrefix(n.http.URL, "http") + "/socket"
	t.Cleanup(n.Stop)
	return n
}

// Stop shuts the node down gracefully: replication stops with a permdown,
// clients are closed, the adapter is closed last.
func (n *Node) Stop() {
	n.stopOnce.Do(func() {
		n.stopRepl()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Server.Shutdown(ctx)
		n.http.Close()
		_ = n.Adapter.Close()
	})
}

// Kill stops the node as a crash would look to the others: its adapter is
// closed first, so nothing more (no permdown, no leaves) reaches them.
func (n *Node) Kill() {
	n.stopOnce.Do(func() {
		_ = n.Adapter.Close()
		n.stopRepl()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Server.Shutdown(ctx)
		n.http.Close()
	})
}

// Gaps returns the outages reported to OnGap.
func (n *Node) Gaps() [][2]time.Time {
	n.gapMu.Lock()
	defer n.gapMu.Unlock()
	return append([][2]time.Time(nil), n.gaps...)
}

func sortedKeys[V any](m map[string]V) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// WaitPresence waits until every node lists exactly the keys want (sorted,
// comma-separated) on topic, with identical metas, and returns how long it
// took.
func WaitPresence(t testing.TB, topic, want string, d time.Duration, nodes ...*Node) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok := true
		var got []string
		first := nodes[0].Presence.List(topic)
		for _, n := range nodes {
			l := n.Presence.List(topic)
			got = append(got, n.Name+"="+sortedKeys(l))
			if sortedKeys(l) != want || !reflect.DeepEqual(l, first) {
				ok = false
			}
		}
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("presence lists %v after %v, want %q on every node", got, d, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Run is the three-node scenario: cross-node broadcasts arrive exactly
// once, broadcast_from skips only the sender, presence converges on joins
// and leaves, a killed node's users leave everywhere within the documented
// bound, and a broker restart is survived with the gap counted.
func Run(t *testing.T, br Broker) {
	const topic = "room:1"
	a, b, c := StartNode(t, br, "A"), StartNode(t, br, "B"), StartNode(t, br, "C")
	ann, amy := DialClient(t, a.URL, "ann"), DialClient(t, a.URL, "amy")
	bob, cat := DialClient(t, b.URL, "bob"), DialClient(t, c.URL, "cat")
	clients := []*Client{ann, amy, bob, cat}
	for _, cl := range clients {
		cl.JoinOK(topic, nil)
	}
	took := WaitPresence(t, topic, "amy,ann,bob,cat", 5*time.Second, a, b, c)
	t.Logf("presence converged on 3 nodes %v after the last join", took.Round(time.Millisecond))
	// Every client sees every join through its own node's diffs.
	for _, cl := range clients {
		for _, u := range []string{"amy", "ann", "bob", "cat"} {
			cl.Wait("presence of "+u, func(f *Frame) bool {
				if f.Topic != topic || (f.Event != "presence_state" && f.Event != "presence_diff") {
					return false
				}
				m := f.Payload
				if f.Event == "presence_diff" {
					m = json.RawMessage(f.Field("joins"))
				}
				var keys map[string]json.RawMessage
				_ = json.Unmarshal(m, &keys)
				_, ok := keys[u]
				return ok
			}, 1, 5*time.Second)
		}
	}

	t.Run("broadcasts from C reach every client exactly once, in order", func(t *testing.T) {
		const n = 30
		for i := 1; i <= n; i++ {
			cat.Push(topic, "shout", map[string]any{"from": "cat", "n": i})
		}
		if err := c.Server.Broadcast(topic, "news", map[string]string{"from": "server C"}); err != nil {
			t.Fatal(err)
		}
		shouts := Event(topic, "shout", map[string]string{"from": quote("cat")})
		news := Event(topic, "news", nil)
		for _, cl := range clients {
			cl.Wait("shouts from cat", shouts, n, 5*time.Second)
			cl.Wait("news", news, 1, 5*time.Second)
		}
		time.Sleep(300 * time.Millisecond) // room for duplicates to show up
		for _, cl := range clients {
			fs := cl.Matching(shouts)
			if len(fs) != n {
				t.Fatalf("%s got %d shouts, want %d:%s", cl.Name, len(fs), n, describe(fs))
			}
			for i, f := range fs {
				if f.Field("n") != fmt.Sprint(i+1) {
					t.Fatalf("%s: shout %d has n=%s: out of order", cl.Name, i+1, f.Field("n"))
				}
			}
			if fs := cl.Matching(news); len(fs) != 1 {
				t.Fatalf("%s got %d news, want 1", cl.Name, len(fs))
			}
		}
		if s := c.Adapter.Counters(); s.DroppedOwn < n {
			t.Fatalf("C dropped %d own messages coming back, want ≥ %d (stats %+v)", s.DroppedOwn, n, s)
		}
		if s := a.Adapter.Counters(); s.Received < n+1 {
			t.Fatalf("A received %d, want ≥ %d", s.Received, n+1)
		}
	})

	t.Run("broadcast_from excludes only the sender", func(t *testing.T) {
		ann.Push(topic, "shout_from", map[string]any{"from": "ann"})
		fromAnn := Event(topic, "shout", map[string]string{"from": quote("ann")})
		for _, cl := range []*Client{amy, bob, cat} {
			cl.Wait("shout_from of ann", fromAnn, 1, 5*time.Second)
		}
		time.Sleep(300 * time.Millisecond)
		for _, cl := range []*Client{amy, bob, cat} {
			if n := len(cl.Matching(fromAnn)); n != 1 {
				t.Fatalf("%s got ann's broadcast_from %d times", cl.Name, n)
			}
		}
		if n := len(ann.Matching(fromAnn)); n != 0 {
			t.Fatalf("ann got her own broadcast_from %d times", n)
		}
	})

	t.Run("unknown envelope version is dropped and counted", func(t *testing.T) {
		before := a.Adapter.Counters().DecodeErrors
		br.Inject(t, a.Adapter, topic, []byte{99, 0, 1, 'X', 6, 'r', 'o', 'o', 'm', ':', '1', 5, 's', 'h', 'o', 'u', 't', '{', '}'})
		deadline := time.Now().Add(5 * time.Second)
		for a.Adapter.Counters().DecodeErrors == before {
			if time.Now().After(deadline) {
				t.Fatal("A did not count the message with version 99")
			}
			time.Sleep(10 * time.Millisecond)
		}
		// The nodes still work.
		amy.Push(topic, "shout", map[string]any{"from": "amy", "after": "v99"})
		for _, cl := range clients {
			cl.Wait("amy's shout", Event(topic, "shout", map[string]string{"after": quote("v99")}), 1, 5*time.Second)
		}
	})

	t.Run("leaves converge", func(t *testing.T) {
		bob.Push(topic, "phx_leave", nil)
		WaitPresence(t, topic, "amy,ann,cat", 5*time.Second, a, b, c)
		for _, cl := range []*Client{ann, amy, cat} {
			cl.Wait("bob leaving", Leaves(topic, "bob"), 1, 5*time.Second)
		}
		bob.JoinOK(topic, nil) // back, for the next steps
		WaitPresence(t, topic, "amy,ann,bob,cat", 5*time.Second, a, b, c)
	})

	t.Run("a killed node's users leave within DownPeriod+Heartbeat", func(t *testing.T) {
		killed := time.Now()
		c.Kill()
		took := WaitPresence(t, topic, "amy,ann,bob", DownPeriod+Heartbeat+2*time.Second, a, b)
		bound := DownPeriod + Heartbeat
		t.Logf("cat gone from A and B %v after C was killed (bound %v + broker latency)", took.Round(time.Millisecond), bound)
		if took > bound+500*time.Millisecond {
			t.Fatalf("cat left after %v, documented bound %v", took, bound)
		}
		for _, cl := range []*Client{ann, amy, bob} {
			fs := cl.Wait("cat leaving", Leaves(topic, "cat"), 1, time.Second)
			if d := fs[0].At.Sub(killed); d < DownPeriod-Heartbeat {
				t.Fatalf("%s saw cat leave %v after the kill, before DownPeriod", cl.Name, d)
			}
		}
	})

	t.Run("broker restart: local fanout goes on, delivery and presence return, gap counted", func(t *testing.T) {
		sa, sb := a.Adapter.Counters(), b.Adapter.Counters()
		br.Stop(t)
		stopped := time.Now()
		waitStats(t, "A and B disconnected", 5*time.Second, func() bool {
			return !a.Adapter.Counters().Connected && !b.Adapter.Counters().Connected
		})
		t.Logf("disconnection noticed after %v", time.Since(stopped).Round(time.Millisecond))

		// Local fanout keeps working; the broadcast is queued for the
		// other nodes.
		ref := amy.Push(topic, "shout", map[string]any{"from": "amy", "phase": "outage"})
		if st := amy.Reply(topic, ref).Status; st != "ok" {
			t.Fatalf("shout during the outage replied %s, want ok (delivered locally, queued for B)", st)
		}
		ann.Wait("local shout during the outage", Event(topic, "shout", map[string]string{"phase": quote("outage")}), 1, 2*time.Second)
		if s := a.Adapter.Counters(); s.Queued == 0 {
			t.Fatalf("nothing queued during the outage: %+v", s)
		}

		// Outlast DownPeriod: each node then drops the other's users, and
		// they must come back through transfers once the broker returns.
		WaitPresence(t, topic, "amy,ann", DownPeriod+Heartbeat+2*time.Second, a)
		WaitPresence(t, topic, "bob", DownPeriod+Heartbeat+2*time.Second, b)
		ann.Wait("bob leaving during the outage", Leaves(topic, "bob"), 2, time.Second)

		br.Start(t)
		started := time.Now()
		waitStats(t, "A and B reconnected", 10*time.Second, func() bool {
			return a.Adapter.Counters().Connected && b.Adapter.Counters().Connected
		})
		t.Logf("reconnected %v after the broker restarted (outage %v)", time.Since(started).Round(time.Millisecond),
			time.Since(stopped).Round(time.Millisecond))
		for _, n := range []*Node{a, b} {
			s := n.Adapter.Counters()
			before := sa
			if n == b {
				before = sb
			}
			if s.Disconnects <= before.Disconnects || s.Reconnects <= before.Reconnects {
				t.Fatalf("%s: disconnects %d reconnects %d, want more than %d, %d", n.Name, s.Disconnects, s.Reconnects, before.Disconnects, before.Reconnects)
			}
			waitStats(t, n.Name+"'s OnGap", 10*time.Second, func() bool { return len(n.Gaps()) > 0 })
			gaps := n.Gaps()
			if len(gaps) == 0 || !gaps[len(gaps)-1][1].After(gaps[len(gaps)-1][0]) {
				t.Fatalf("%s: OnGap calls %v", n.Name, gaps)
			}
		}

		// Cross-node delivery returns: B's broadcasts reach A's clients.
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; ; i++ {
			if err := b.Server.Broadcast(topic, "news", map[string]any{"phase": "after", "try": i}); err != nil {
				t.Logf("broadcast after restart: %v", err)
			}
			got := false
			for poll := time.Now().Add(200 * time.Millisecond); !got && time.Now().Before(poll); time.Sleep(2 * time.Millisecond) {
				got = len(ann.Matching(Event(topic, "news", map[string]string{"phase": quote("after")}))) > 0
			}
			if got {
				fs := ann.Matching(Event(topic, "news", map[string]string{"phase": quote("after")}))
				t.Logf("cross-node delivery back %v after the broker restarted (attempt %s arrived first, of %d)",
					fs[0].At.Sub(started).Round(time.Millisecond), fs[0].Field("try"), i+1)
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no cross-node delivery 10s after the broker restarted")
			}
		}
		// The shout queued during the outage was replayed to bob, once.
		outage := Event(topic, "shout", map[string]string{"phase": quote("outage")})
		bob.Wait("amy's shout of the outage, replayed", outage, 1, 5*time.Second)
		bob.Push(topic, "shout", map[string]any{"from": "bob", "phase": "final"})
		final := Event(topic, "shout", map[string]string{"phase": quote("final")})
		for _, cl := range []*Client{ann, amy, bob} {
			cl.Wait("bob's shout after the restart", final, 1, 5*time.Second)
		}
		time.Sleep(200 * time.Millisecond)
		for _, cl := range []*Client{ann, amy, bob} {
			if n := len(cl.Matching(final)); n != 1 {
				t.Fatalf("%s got bob's shout %d times", cl.Name, n)
			}
			if n := len(cl.Matching(outage)); n != 1 {
				t.Fatalf("%s got amy's shout of the outage %d times", cl.Name, n)
			}
		}
		WaitPresence(t, topic, "amy,ann,bob", 5*time.Second, a, b)
		t.Logf("presence converged again %v after the broker restarted", time.Since(started).Round(time.Millisecond))
		ann.Wait("bob back after the outage", func(f *Frame) bool {
			return f.Topic == topic && f.Event == "presence_diff" && strings.Contains(f.Field("joins"), `"bob"`) && f.At.After(started)
		}, 1, time.Second)
	})
}

func waitStats(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
