package phx_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

// presenceRoom tracks the connection's user on join and pushes the state.
type presenceRoom struct{ p *phx.Presence }

func (r *presenceRoom) Join(s *phx.Socket, payload phx.Payload) (any, error) {
	var params struct {
		Device string `json:"device"`
	}
	_ = payload.Decode(&params)
	if err := r.p.Track(s, s.Assigns["user"].(string), map[string]any{"device": params.Device}); err != nil {
		return nil, err
	}
	if err := r.p.PushState(s); err != nil {
		return nil, err
	}
	return nil, nil
}

func (r *presenceRoom) HandleIn(s *phx.Socket, event string, payload phx.Payload) (any, error) {
	switch event {
	case "away":
		return nil, r.p.Update(s, s.Assigns["user"].(string), map[string]any{"status": "away"})
	case "untrack":
		return nil, r.p.Untrack(s, s.Assigns["user"].(string))
	case "track_again":
		return nil, r.p.Track(s, s.Assigns["user"].(string), nil)
	case "crash":
		panic("boom")
	}
	return nil, nil
}

func newPresenceServer(t *testing.T, popts *phx.PresenceOptions) (*testServer, *phx.Presence) {
	t.Helper()
	var p *phx.Presence
	ts := newTestServer(t, &phx.Options{
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			return phx.Assigns{"user": info.Params.Get("user")}, nil
		},
	}, func(s *phx.Server) {
		p = phx.NewPresence(s, popts)
		s.Channel("room:*", func() phx.Channel { return &presenceRoom{p: p} })
	})
	return ts, p
}

// presenceFrame is a decoded presence_state or presence_diff.
type presenceFrame struct {
	event string
	state map[string]struct {
		Metas []map[string]any `json:"metas"`
	}
	joins, leaves map[string]struct {
		Metas []map[string]any `json:"metas"`
	}
}

// nextPresence reads frames until a presence event arrives.
func (c *wsClient) nextPresence() presenceFrame {
	c.t.Helper()
	for {
		var f []json.RawMessage
		raw := c.recv()
		if err := json.Unmarshal([]byte(raw), &f); err != nil {
			c.t.Fatal(err)
		}
		var event string
		json.Unmarshal(f[3], &event)
		switch event {
		case "presence_state":
			pf := presenceFrame{event: event}
			if err := json.Unmarshal(f[4], &pf.state); err != nil {
				c.t.Fatal(err)
			}
			return pf
		case "presence_diff":
			pf := presenceFrame{event: event}
			var d struct {
				Joins  map[string]struct{ Metas []map[string]any } `json:"joins"`
				Leaves map[string]struct{ Metas []map[string]any } `json:"leaves"`
			}
			if err := json.Unmarshal(f[4], &d); err != nil {
				c.t.Fatal(err)
			}
			pf.joins = map[string]struct {
				Metas []map[string]any `json:"metas"`
			}{}
			pf.leaves = map[string]struct {
				Metas []map[string]any `json:"metas"`
			}{}
			for k, v := range d.Joins {
				pf.joins[k] = struct {
					Metas []map[string]any `json:"metas"`
				}{v.Metas}
			}
			for k, v := range d.Leaves {
				pf.leaves[k] = struct {
					Metas []map[string]any `json:"metas"`
				}{v.Metas}
			}
			return pf
		}
	}
}

func keys[M ~map[string]V, V any](m M) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func TestPresenceStateAndDiffs(t *testing.T) {
	t.Parallel()
	ts, p := newPresenceServer(t, nil)
	ann := dial(t, ts.url, "user=ann&vsn=2.0.0", nil)
	ann.join("room:p", "1", map[string]any{"device": "laptop"})
	st := ann.nextPresence()
	if st.event != "presence_state" || keys(st.state) != "ann" {
		t.Fatalf("first presence event = %+v, want state with ann", st)
	}
	ref := st.state["ann"].Metas[0]["phx_ref"].(string)
	if len(ref) != 16 || st.state["ann"].Metas[0]["device"] != "laptop" {
		t.Fatalf("meta = %v", st.state["ann"].Metas[0])
	}
	if d := ann.nextPresence(); d.event != "presence_diff" || keys(d.joins) != "ann" || keys(d.leaves) != "" {
		t.Fatalf("diff = %+v, want ann joining", d)
	}

	bob := dial(t, ts.url, "user=bob&vsn=2.0.0", nil)
	bob.join("room:p", "1", map[string]any{"device": "phone"})
	if st := bob.nextPresence(); keys(st.state) != "ann,bob" {
		t.Fatalf("bob's state = %v", keys(st.state))
	}
	if d := bob.nextPresence(); keys(d.joins) != "bob" {
		t.Fatalf("bob saw %+v, want his own join", d)
	}
	if d := ann.nextPresence(); keys(d.joins) != "bob" {
		t.Fatalf("ann saw %+v, want bob joining", d)
	}

	// A second device of ann: one key, two metas.
	ann2 := dial(t, ts.url, "user=ann&vsn=2.0.0", nil)
	ann2.join("room:p", "1", map[string]any{"device": "tablet"})
	if d := bob.nextPresence(); keys(d.joins) != "ann" {
		t.Fatalf("bob saw %+v", d)
	}
	if d := ann.nextPresence(); keys(d.joins) != "ann" {
		t.Fatalf("ann saw %+v, want her second device", d)
	}
	list := p.List("room:p")
	if len(list["ann"].Metas) != 2 || len(list["bob"].Metas) != 1 {
		t.Fatalf("List = %v", list)
	}
	// Metas come decoded from the entry's JSON: new maps each call, which
	// the caller may change, with JSON's types.
	list["bob"].Metas[0]["device"] = "changed"
	if again, _ := p.Get("room:p", "bob"); again.Metas[0]["device"] != "phone" {
		t.Fatalf("changing a listed meta changed the entry: %v", again.Metas[0])
	}
	if _, ok := list["ann"].Metas[0]["phx_ref"].(string); !ok {
		t.Fatalf("phx_ref is %T, want string", list["ann"].Metas[0]["phx_ref"])
	}

	// Update: new meta joins with phx_ref_prev, old one leaves, one diff.
	bob.send("1", "2", "room:p", "away", map[string]any{})
	d := ann.nextPresence()
	if keys(d.joins) != "bob" || keys(d.leaves) != "bob" {
		t.Fatalf("update diff = %+v", d)
	}
	newMeta, oldMeta := d.joins["bob"].Metas[0], d.leaves["bob"].Metas[0]
	if newMeta["status"] != "away" || newMeta["phx_ref_prev"] != oldMeta["phx_ref"] || newMeta["phx_ref"] == oldMeta["phx_ref"] {
		t.Fatalf("update metas: new %v old %v", newMeta, oldMeta)
	}
	// bob gets the same diff; read it here: the broadcast reaches ann's
	// and bob's queues one after the other, so nothing orders bob's copy
	// against the reply to his next push.
	if d := bob.nextPresence(); keys(d.joins) != "bob" || keys(d.leaves) != "bob" {
		t.Fatalf("bob's update diff = %+v", d)
	}

	// Tracking twice from one channel is refused.
	bob.send("1", "3", "room:p", "track_again", map[string]any{})
	if got := bob.awaitReply("3"); !strings.Contains(got, `"status":"error"`) {
		t.Fatalf("second Track: %s", got)
	}

	// Closing ann's first connection: one of her metas leaves; she stays.
	ann.conn.CloseNow()
	d = bob.nextPresence()
	if keys(d.leaves) != "ann" || keys(d.joins) != "" {
		t.Fatalf("diff after close = %+v", d)
	}
	if l := p.List("room:p"); len(l["ann"].Metas) != 1 || l["ann"].Metas[0]["device"] != "tablet" {
		t.Fatalf("List after close = %v", l)
	}
	// A crash removes the entry too.
	ann2.send("1", "2", "room:p", "crash", map[string]any{})
	if d := bob.nextPresence(); keys(d.leaves) != "ann" {
		t.Fatalf("diff after crash = %+v", d)
	}
	if l := p.List("room:p"); keys(l) != "bob" {
		t.Fatalf("List after crash = %v", keys(l))
	}
}

func TestPresenceBatchesDiffs(t *testing.T) {
	t.Parallel()
	ts, _ := newPresenceServer(t, &phx.PresenceOptions{BatchInterval: 500 * time.Millisecond})
	watcher := dial(t, ts.url, "user=watcher&vsn=2.0.0", nil)
	watcher.join("room:b", "1", map[string]any{})
	watcher.nextPresence() // state
	watcher.nextPresence() // own join
	const n = 20
	for i := 0; i < n; i++ {
		c := dial(t, ts.url, fmt.Sprintf("user=u%02d&vsn=2.0.0", i), nil)
		c.join("room:b", "1", map[string]any{})
	}
	seen := map[string]bool{}
	diffs := 0
	for len(seen) < n {
		d := watcher.nextPresence()
		diffs++
		for k := range d.joins {
			seen[k] = true
		}
	}
	if diffs > 5 { // one per join without batching
		t.Fatalf("%d joins took %d diffs; want them coalesced", n, diffs)
	}
}

// TestPresenceReplicatorCallsBack: the replication callback runs with the
// Presence unlocked, so it may call back into it. Here it takes the delta
// at once and merges it into a second Presence, as a synchronous
// replicator would, and lists the topic. Track (in Join), Update, Untrack
// and a crash (the channel's end) each reach it; the deltas it takes merge
// without a gap, so they come in clock order.
func TestPresenceReplicatorCallsBack(t *testing.T) {
	t.Parallel()
	ts, pa := newPresenceServer(t, &phx.PresenceOptions{Replica: "A"})
	_, pb := newPresenceServer(t, &phx.PresenceOptions{Replica: "B"})
	var (
		mu    sync.Mutex
		calls int
		errs  []error
	)
	phx.PresenceSetReplicator(pa, func() {
		pa.List("room:r") // deadlocks if the Presence is locked
		mu.Lock()
		defer mu.Unlock()
		calls++
		if d, ok := phx.PresenceTakeDelta(pa); ok {
			if err := phx.PresenceMerge(pb, d); err != nil {
				errs = append(errs, err)
			}
		}
	})
	same := func(step string, want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			n, e := calls, errs
			mu.Unlock()
			if len(e) > 0 {
				t.Fatalf("%s: merge: %v", step, e)
			}
			la, lb := pa.List("room:r"), pb.List("room:r")
			if n > 0 && keys(la) == want && reflect.DeepEqual(la, lb) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: after %d calls A lists %v, B lists %v; want %s on both", step, n, la, lb, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	ann := dial(t, ts.url, "user=ann&vsn=2.0.0", nil)
	ann.join("room:r", "1", map[string]any{})
	bob := dial(t, ts.url, "user=bob&vsn=2.0.0", nil)
	bob.join("room:r", "1", map[string]any{})
	same("track", "ann,bob")
	ann.send("1", "2", "room:r", "away", map[string]any{})
	ann.awaitReply("2")
	same("update", "ann,bob")
	if m := pb.List("room:r")["ann"].Metas; len(m) != 1 || m[0]["status"] != "away" {
		t.Fatalf("B has ann's metas %v after the update", m)
	}
	ann.send("1", "3", "room:r", "untrack", map[string]any{})
	ann.awaitReply("3")
	same("untrack", "bob")
	bob.send("1", "2", "room:r", "crash", map[string]any{})
	same("channel end", "")
}

// TestPresenceReplication wires two servers' Presence together by hand,
// through the replication seam an adapter uses, and checks they converge.
func TestPresenceReplication(t *testing.T) {
	t.Parallel()
	tsA, pa := newPresenceServer(t, &phx.PresenceOptions{Replica: "A"})
	tsB, pb := newPresenceServer(t, &phx.PresenceOptions{Replica: "B"})
	ready := make(chan struct{}, 1)
	signal := func() {
		select {
		case ready <- struct{}{}:
		default:
		}
	}
	phx.PresenceSetReplicator(pa, signal)
	phx.PresenceSetReplicator(pb, signal)
	ship := func() {
		for _, pair := range [][2]*phx.Presence{{pa, pb}, {pb, pa}} {
			if d, ok := phx.PresenceTakeDelta(pair[0]); ok {
				if err := phx.PresenceMerge(pair[1], d); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	same := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			ship()
			la, lb := pa.List("room:r"), pb.List("room:r")
			if reflect.DeepEqual(la, lb) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("lists differ:\nA %v\nB %v", la, lb)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	a := dial(t, tsA.url, "user=ann&vsn=2.0.0", nil)
	a.join("room:r", "1", map[string]any{})
	b := dial(t, tsB.url, "user=bob&vsn=2.0.0", nil)
	b.join("room:r", "1", map[string]any{})
	same()
	if l := pb.List("room:r"); keys(l) != "ann,bob" {
		t.Fatalf("B lists %v", keys(l))
	}
	// B's client hears about ann through B's own diffs.
	for {
		d := b.nextPresence()
		if _, ok := d.joins["ann"]; ok {
			break
		}
		if _, ok := d.state["ann"]; ok {
			break
		}
	}
	a.send("1", "2", "room:r", "away", map[string]any{})
	a.send("1", "3", "room:r", "untrack", map[string]any{})
	a.awaitReply("3")
	same()
	if l := pb.List("room:r"); keys(l) != "bob" {
		t.Fatalf("B lists %v after ann untracked", keys(l))
	}

	// A delta out of order is refused; a snapshot repairs the gap.
	a2 := dial(t, tsA.url, "user=cat&vsn=2.0.0", nil)
	a2.join("room:r", "1", map[string]any{})
	time.Sleep(50 * time.Millisecond)
	phx.PresenceTakeDelta(pa) // lost in transit
	a3 := dial(t, tsA.url, "user=dan&vsn=2.0.0", nil)
	a3.join("room:r", "1", map[string]any{})
	time.Sleep(50 * time.Millisecond)
	d, ok := phx.PresenceTakeDelta(pa)
	if !ok {
		t.Fatal("no delta after a join")
	}
	if err := phx.PresenceMerge(pb, d); err == nil {
		t.Fatal("Merge accepted a delta after a gap")
	}
	if err := phx.PresenceMerge(pb, phx.PresenceSnapshot(pa)); err != nil {
		t.Fatal(err)
	}
	same()
	if l := pb.List("room:r"); keys(l) != "bob,cat,dan" {
		t.Fatalf("B lists %v after snapshot", keys(l))
	}
	// Node A goes down: B drops its entries.
	phx.PresenceReplicaDown(pb, "A")
	if l := pb.List("room:r"); keys(l) != "bob" {
		t.Fatalf("B lists %v after A went down", keys(l))
	}
}

// awaitReply reads frames until the reply to ref arrives.
func (c *wsClient) awaitReply(ref string) string {
	c.t.Helper()
	for {
		got := c.recv()
		var f []json.RawMessage
		if json.Unmarshal([]byte(got), &f) == nil && len(f) == 5 && string(f[1]) == `"`+ref+`"` && string(f[3]) == `"phx_reply"` {
			return got
		}
	}
}
