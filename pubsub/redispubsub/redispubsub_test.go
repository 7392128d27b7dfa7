package redispubsub

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/leaktest"
	"github.com/phxgo/phx/internal/redistest"
	"github.com/phxgo/phx/pubsub/internal/clustertest"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) {
	if os.Getenv("PHX_TEST_LOG") == "" {
		redis.SetLogger(quietRedisLog{}) // go-redis logs failed dials during the restart test
	}
	leaktest.Main(m)
}

type quietRedisLog struct{}

func (quietRedisLog) Printf(context.Context, string, ...any) {}

// redisServer is a real redis-server process on a random loopback port
// (internal/redistest), and the adapter's constructor for clustertest.
type redisServer struct{ *redistest.Server }

func startRedis(t testing.TB) *redisServer { return &redisServer{redistest.Run(t)} }

func (rs *redisServer) addr() string { return rs.Addr() }

func (rs *redisServer) url() string { return rs.URL() }

type adapter struct{ *PubSub }

func (a adapter) Counters() clustertest.Stats {
	s := a.Stats()
	return clustertest.Stats{
		Published: s.Published, PublishErrors: s.PublishErrors, Received: s.Received,
		DroppedOwn: s.DroppedOwn, DecodeErrors: s.DecodeErrors,
		Queued: s.Queued, Replayed: s.Replayed, Dropped: s.Dropped, Duplicates: s.Duplicates,
		Disconnects: s.Disconnects, Reconnects: s.Reconnects, Connected: s.Connected,
	}
}

func (rs *redisServer) Dial(t testing.TB, id string, onGap func(start, end time.Time)) clustertest.Adapter {
	t.Helper()
	ps, err := Dial(rs.url(), &Options{
		NodeID: id,
		Logger: clustertest.Logger(),
		OnGap: func(g Gap) {
			if onGap != nil {
				onGap(g.Start, g.End)
			}
		},
		MaxReconnectWait: 100 * time.Millisecond,
		PingInterval:     time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	return adapter{ps}
}

func (rs *redisServer) Inject(t testing.TB, a clustertest.Adapter, topic string, msg []byte) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: rs.addr()})
	defer c.Close()
	if err := c.Publish(context.Background(), a.(adapter).Channel(topic), msg).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestCluster(t *testing.T) {
	clustertest.Run(t, startRedis(t))
}

// A connection that stops answering without closing (a half-open TCP
// connection, a frozen server) is detected by the PING watchdog and
// replaced; subscriptions come back.
func TestFrozenServerIsDetected(t *testing.T) {
	rs := startRedis(t)
	ps, err := Dial(rs.url(), &Options{NodeID: "A", Logger: clustertest.Logger(), PingInterval: 200 * time.Millisecond, MaxReconnectWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	got := make(chan *phx.Broadcast, 10)
	if err := ps.Subscribe("t", phx.NewSubscriber(func(b *phx.Broadcast) { got <- b })); err != nil {
		t.Fatal(err)
	}
	// Freeze redis-server for a second: connections stay open, nothing is
	// answered.
	c := redis.NewClient(&redis.Options{Addr: rs.addr()})
	defer c.Close()
	if err := c.Do(context.Background(), "CLIENT", "PAUSE", "1000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ps.Stats().Reconnects == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("frozen server not detected and recovered: %+v", ps.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	other, err := Dial(rs.url(), &Options{NodeID: "B", Logger: clustertest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	b, _ := phx.NewBroadcast("t", "e", map[string]int{"n": 1})
	if err := other.Broadcast(context.Background(), b, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.Event != "e" || string(r.Payload.Data) != `{"n":1}` {
			t.Fatalf("got %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("subscription not restored: %+v", ps.Stats())
	}
}

func TestCloseAndDialErrors(t *testing.T) {
	rs := startRedis(t)
	a := rs.Dial(t, "A", nil)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := phx.NewBroadcast("t", "e", nil)
	if err := a.Broadcast(context.Background(), b, nil); !errors.Is(err, phx.ErrPubSubClosed) {
		t.Fatalf("Broadcast after Close: %v", err)
	}
	if err := a.Subscribe("t", phx.NewSubscriber(func(*phx.Broadcast) {})); !errors.Is(err, phx.ErrPubSubClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	if _, err := Dial("redis://127.0.0.1:1", &Options{SubscribeTimeout: 500 * time.Millisecond}); err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
	if _, err := Dial("http://x", nil); err == nil {
		t.Fatal("Dial of a non-redis URL succeeded")
	}
}

func BenchmarkCrossNodeFanout(b *testing.B) {
	rs := startRedis(b)
	for _, c := range []struct{ subs, window int }{{1, 1}, {1, 256}, {100, 256}} {
		name := fmt.Sprintf("subscribers=%d/window=%d", c.subs, c.window)
		b.Run(name, func(b *testing.B) { clustertest.BenchFanout(b, rs, c.subs, c.window) })
	}
}

// A 3 s outage (redis-server killed, restarted) with publishers at 20
// msgs/s on two nodes: nothing lost, duplicated or reordered.
func TestOutageKill(t *testing.T) { clustertest.RunOutage(t, startRedis(t), clustertest.Kill) }

// The same with redis-server frozen (SIGSTOP) for 3 s.
func TestOutageFreeze(t *testing.T) { clustertest.RunOutage(t, startRedis(t), clustertest.Freeze) }

// With redis-server frozen, Broadcast returns at once and local
// subscribers get the broadcast at once; Subscribe returns within
// SubscribeTimeout and Close within PublishTimeout (+100 ms each); the
// broadcasts reach the other node once the server is thawed.
func TestFrozenServerDoesNotBlock(t *testing.T) {
	rs := startRedis(t)
	opts := func(id string) *Options {
		return &Options{NodeID: id, Logger: clustertest.Logger(), PublishTimeout: 500 * time.Millisecond,
			SubscribeTimeout: 300 * time.Millisecond, PingInterval: 5 * time.Second, MaxReconnectWait: 100 * time.Millisecond}
	}
	a, err := Dial(rs.url(), opts("A"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Dial(rs.url(), opts("B"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pair := clustertest.NewFrozenPair(t, a, b)
	rs.Freeze(t)
	thawed := false
	defer func() {
		if !thawed {
			rs.Thaw(t)
		}
	}()
	pair.SendWhileFrozen(t, "redis-server")
	start := time.Now()
	if err := a.Subscribe("u", phx.NewSubscriber(func(*phx.Broadcast) {})); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 300*time.Millisecond+100*time.Millisecond {
		t.Fatalf("Subscribe while frozen took %v, SubscribeTimeout 300ms", took)
	} else {
		t.Logf("Subscribe while frozen returned after %v (SubscribeTimeout 300ms)", took)
	}
	rs.Thaw(t)
	thawed = true
	pair.ExpectAllAtB(t, func() any { return a.Stats() })
	rs.Freeze(t)
	m, _ := phx.NewBroadcast("t", "e", map[string]int{"n": 99})
	if err := a.Broadcast(context.Background(), m, nil); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	a.Close()
	took := time.Since(start)
	rs.Thaw(t)
	t.Logf("Close with a frozen server and a broadcast queued took %v (PublishTimeout 500ms)", took)
	if took > 2*500*time.Millisecond+200*time.Millisecond {
		t.Fatalf("Close took %v", took)
	}
}

// Once the adapter has seen the connection drop, nothing waits on Redis:
// Broadcast returns at once, the sender does not keep trying the dead
// server (no retry loop), and Close returns at once; the queued
// broadcast is counted as dropped at Close.
func TestKilledServerFailsFast(t *testing.T) {
	rs := startRedis(t)
	ps, err := Dial(rs.url(), &Options{NodeID: "A", Logger: clustertest.Logger(), MaxReconnectWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 10)
	if err := ps.Subscribe("t", phx.NewSubscriber(func(*phx.Broadcast) { got <- struct{}{} })); err != nil {
		t.Fatal(err)
	}
	rs.Stop(t)
	deadline := time.Now().Add(5 * time.Second)
	for ps.Stats().Connected {
		if time.Now().After(deadline) {
			t.Fatal("the crash was not noticed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	before := ps.Stats().PublishErrors
	m, _ := phx.NewBroadcast("t", "e", nil)
	start := time.Now()
	if err := ps.Broadcast(context.Background(), m, nil); err != nil {
		t.Fatalf("Broadcast while disconnected: %v (want it queued)", err)
	}
	took := time.Since(start)
	<-got
	time.Sleep(500 * time.Millisecond)
	s := ps.Stats()
	t.Logf("after the crash: Broadcast returned in %v; publish attempts in 500ms: %d; queued %d", took, s.PublishErrors-before, s.Queued)
	if took > 10*time.Millisecond || s.PublishErrors != before || s.Queued != 1 {
		t.Fatalf("Broadcast took %v; %d publish attempts against the dead server; queued %d", took, s.PublishErrors-before, s.Queued)
	}
	start = time.Now()
	ps.Close()
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("Close while disconnected took %v", took)
	}
	if d := ps.Stats().Dropped; d != 1 {
		t.Fatalf("dropped %d at Close, want 1", d)
	}
}
