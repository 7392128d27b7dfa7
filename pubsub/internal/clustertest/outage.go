package clustertest

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Freezer is a Broker whose server process can be frozen (SIGSTOP: its
// connections stay open and nothing is answered) and thawed (SIGCONT).
type Freezer interface {
	Broker
	Freeze(t testing.TB)
	Thaw(t testing.TB)
}

// Outage is a fault RunOutage injects for 3 s.
type Outage int

// The faults.
const (
	Kill   Outage = iota // the broker is killed, restarted 3 s later on the same address
	Freeze               // the broker is frozen (SIGSTOP), thawed 3 s later
)

func (o Outage) String() string {
	if o == Kill {
		return "kill"
	}
	return "freeze"
}

// Outage timings.
const (
	outageAfter   = time.Second     // traffic before the fault
	outageFor     = 3 * time.Second // length of the fault
	outageTraffic = 6 * time.Second // traffic in all
	publishEvery  = 50 * time.Millisecond
)

// RunOutage runs two nodes with two clients each, of which one per node
// publishes a numbered shout every 50 ms (20 msgs/s), while the broker is
// killed or frozen for 3 s. Every client's stream of each publisher's
// shouts (two local streams and two remote ones per client) must arrive
// with nothing lost, duplicated or reordered; the counts are logged. The
// shouts' local delivery (p99) and the push replies must stay under 50 ms
// during the fault, and presence must agree again on both nodes.
func RunOutage(t *testing.T, br Broker, fault Outage) {
	const topic = "room:outage"
	fr, _ := br.(Freezer)
	if fault == Freeze && fr == nil {
		t.Fatal("broker cannot be frozen")
	}
	a, b := StartNode(t, br, "A"), StartNode(t, br, "B")
	pa, ra := DialClient(t, a.URL, "pa"), DialClient(t, a.URL, "ra")
	pb, rb := DialClient(t, b.URL, "pb"), DialClient(t, b.URL, "rb")
	clients := []*Client{pa, ra, pb, rb}
	for _, c := range clients {
		c.JoinOK(topic, nil)
	}
	WaitPresence(t, topic, "pa,pb,ra,rb", 5*time.Second, a, b)

	pubs := []*Client{pa, pb}
	n := int(outageTraffic / publishEvery)
	sentAt := make(map[string][]time.Time) // by publisher
	refs := make(map[string][]string)
	start := time.Now()
	faultAt, endAt := start.Add(outageAfter), start.Add(outageAfter+outageFor)
	faulted, ended := false, false
	for i := 1; i <= n; i++ {
		now := time.Now()
		if !faulted && !now.Before(faultAt) {
			faulted = true
			if fault == Kill {
				br.Stop(t)
			} else {
				fr.Freeze(t)
			}
			t.Logf("%s at %v (publishing %d msgs/s on each of 2 nodes)", fault, time.Since(start).Round(time.Millisecond), time.Second/publishEvery)
		}
		if faulted && !ended && !now.Before(endAt) {
			ended = true
			if fault == Kill {
				br.Start(t)
			} else {
				fr.Thaw(t)
			}
			t.Logf("broker back at %v", time.Since(start).Round(time.Millisecond))
		}
		for _, p := range pubs {
			sentAt[p.Name] = append(sentAt[p.Name], time.Now())
			refs[p.Name] = append(refs[p.Name], p.Push(topic, "shout", map[string]any{"from": p.Name, "n": i}))
		}
		if d := time.Until(start.Add(time.Duration(i) * publishEvery)); d > 0 {
			time.Sleep(d)
		}
	}

	// Every push was answered ok, promptly, even during the fault.
	var replyLat []time.Duration
	for _, p := range pubs {
		for i, ref := range refs[p.Name] {
			r := p.Reply(topic, ref)
			if r.Status != "ok" {
				t.Fatalf("%s's shout %d replied %s %s", p.Name, i+1, r.Status, r.Response)
			}
			replyLat = append(replyLat, r.At.Sub(sentAt[p.Name][i]))
		}
	}

	// Wait for the streams to complete (or to stop growing).
	shouts := func(c *Client, from string) []int {
		var ns []int
		for _, f := range c.Matching(Event(topic, "shout", map[string]string{"from": quote(from)})) {
			k, _ := strconv.Atoi(f.Field("n"))
			ns = append(ns, k)
		}
		return ns
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		done := true
		for _, c := range clients {
			for _, p := range pubs {
				if len(shouts(c, p.Name)) < n {
					done = false
				}
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // room for duplicates to show up

	// Count per stream.
	var localLat []time.Duration
	var firstBack, lastBack time.Duration // arrivals elsewhere of what was sent during the fault, after it
	bad := false
	node := map[string]string{"pa": "A", "ra": "A", "pb": "B", "rb": "B"}
	for _, c := range clients {
		for _, p := range pubs {
			got := shouts(c, p.Name)
			seen := make(map[int]int)
			reordered := 0
			for i, k := range got {
				seen[k]++
				if i > 0 && k < got[i-1] {
					reordered++
				}
			}
			lost, dup := 0, 0
			for k := 1; k <= n; k++ {
				if seen[k] == 0 {
					lost++
				}
			}
			for _, m := range seen {
				dup += m - 1
			}
			kind := "remote"
			if node[c.Name] != node[p.Name] {
				for _, f := range c.Matching(Event(topic, "shout", map[string]string{"from": quote(p.Name)})) {
					k, _ := strconv.Atoi(f.Field("n"))
					if k < 1 || k > n || sentAt[p.Name][k-1].Before(faultAt) || sentAt[p.Name][k-1].After(endAt) {
						continue
					}
					d := f.At.Sub(endAt)
					if firstBack == 0 || d < firstBack {
						firstBack = d
					}
					lastBack = max(lastBack, d)
				}
			}
			if node[c.Name] == node[p.Name] {
				kind = "local"
				for _, f := range c.Matching(Event(topic, "shout", map[string]string{"from": quote(p.Name)})) {
					k, _ := strconv.Atoi(f.Field("n"))
					if k >= 1 && k <= n {
						localLat = append(localLat, f.At.Sub(sentAt[p.Name][k-1]))
					}
				}
			}
			t.Logf("stream %s→%s (%s): sent %d, received %d, lost %d, duplicated %d, reordered %d",
				p.Name, c.Name, kind, n, len(got), lost, dup, reordered)
			if lost != 0 || dup != 0 || reordered != 0 {
				bad = true
			}
		}
	}
	for _, nd := range []*Node{a, b} {
		s := nd.Adapter.Counters()
		t.Logf("node %s: published %d, replayed %d, dropped %d, duplicates dropped %d, publish errors %d, disconnects %d, gaps %d",
			nd.Name, s.Published, s.Replayed, s.Dropped, s.Duplicates, s.PublishErrors, s.Disconnects, len(nd.Gaps()))
	}
	t.Logf("broadcasts made during the %s reached the other node from %v to %v after the broker came back",
		fault, firstBack.Round(time.Millisecond), lastBack.Round(time.Millisecond))
	t.Logf("local delivery during the run: %s; push replies: %s", percentiles(localLat), percentiles(replyLat))
	if bad {
		t.Fatal("a stream lost, duplicated or reordered messages")
	}
	if p := pct(localLat, 99); p > 50*time.Millisecond {
		t.Errorf("local delivery p99 %v, want < 50ms while the broker is down", p)
	}
	if p := pct(replyLat, 99); p > 50*time.Millisecond {
		t.Errorf("push reply p99 %v, want < 50ms while the broker is down", p)
	}
	took := WaitPresence(t, topic, "pa,pb,ra,rb", 10*time.Second, a, b)
	t.Logf("presence agrees on both nodes (%v after the streams completed)", took.Round(time.Millisecond))
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func percentiles(ds []time.Duration) string {
	return fmt.Sprintf("p50 %v p99 %v max %v (%d samples)", pct(ds, 50).Round(10*time.Microsecond),
		pct(ds, 99).Round(10*time.Microsecond), pct(ds, 100).Round(10*time.Microsecond), len(ds))
}
