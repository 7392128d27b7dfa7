package natspubsub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/leaktest"
	"github.com/phxgo/phx/pubsub/internal/clustertest"
)

func TestMain(m *testing.M) {
	if port := os.Getenv(childEnv); port != "" {
		runChildServer(port) // this process is a NATS server for a test
		return
	}
	leaktest.Main(m)
}

// natsServer is a real NATS server, embedded, on a random loopback port.
type natsServer struct {
	port int
	srv  *server.Server
}

func startNATS(t testing.TB) *natsServer {
	t.Helper()
	ns := &natsServer{port: server.RANDOM_PORT}
	ns.Start(t)
	ns.port = ns.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() { ns.Stop(t) })
	return ns
}

func (ns *natsServer) url() string { return ns.srv.ClientURL() }

func (ns *natsServer) Start(t testing.TB) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: ns.port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server not ready after 5s")
	}
	ns.srv = srv
}

func (ns *natsServer) Stop(testing.TB) {
	if ns.srv != nil {
		ns.srv.Shutdown()
		ns.srv.WaitForShutdown()
		ns.srv = nil
	}
}

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

func (ns *natsServer) Dial(t testing.TB, id string, onGap func(start, end time.Time)) clustertest.Adapter {
	t.Helper()
	return dialTest(t, ns.url(), id, onGap)
}

// dialTest dials url with the options of the tests: quick reconnection.
func dialTest(t testing.TB, url, id string, onGap func(start, end time.Time)) clustertest.Adapter {
	t.Helper()
	ps, err := Dial(url, &Options{
		NodeID: id,
		Logger: clustertest.Logger(),
		OnGap: func(g Gap) {
			if onGap != nil {
				onGap(g.Start, g.End)
			}
		},
		NATSOptions: []nats.Option{
			nats.ReconnectWait(50 * time.Millisecond),
			nats.ReconnectJitter(0, 0),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	return adapter{ps}
}

func (ns *natsServer) Inject(t testing.TB, a clustertest.Adapter, topic string, msg []byte) {
	t.Helper()
	inject(t, ns.url(), a, topic, msg)
}

func inject(t testing.TB, url string, a clustertest.Adapter, topic string, msg []byte) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish(a.(adapter).Subject(topic), msg); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestCluster(t *testing.T) {
	clustertest.Run(t, startNATS(t))
}

func TestSubject(t *testing.T) {
	for topic, want := range map[string]string{
		"room:lobby":      "phx.room:lobby",
		"users_socket:42": "phx.users_socket:42",
		"":                "phx.%",
		"a.b *>c%":        "phx.a%2Eb%20%2A%3Ec%25",
		"é":               "phx.%C3%A9",
	} {
		if got := subject("phx", topic); got != want {
			t.Errorf("subject(%q) = %q, want %q", topic, got, want)
		}
	}
}

// Topics with NATS-special characters still work end to end, and
// broadcasts are refused after Close.
func TestOddTopicsAndClose(t *testing.T) {
	ns := startNATS(t)
	a := ns.Dial(t, "A", nil)
	b := ns.Dial(t, "B", nil)
	got := make(chan *phx.Broadcast, 10)
	sub := phx.NewSubscriber(func(bc *phx.Broadcast) { got <- bc })
	for _, topic := range []string{"a.b", "x > y", "*", ""} {
		if err := b.Subscribe(topic, sub); err != nil {
			t.Fatal(err)
		}
		bc, _ := phx.NewBroadcast(topic, "e", phx.Binary{1, 2, 3})
		if err := a.Broadcast(context.Background(), bc, nil); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			if r.Topic != topic || !r.Payload.Binary || string(r.Payload.Data) != "\x01\x02\x03" {
				t.Fatalf("got %+v", r)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("topic %q: nothing received", topic)
		}
		if err := b.Unsubscribe(topic, sub); err != nil {
			t.Fatal(err)
		}
	}
	if n := a.(adapter).Stats().Topics; n != 0 {
		t.Fatalf("A has %d broker topics, want 0", n)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	bc, _ := phx.NewBroadcast("t", "e", nil)
	if err := b.Broadcast(context.Background(), bc, nil); !errors.Is(err, phx.ErrPubSubClosed) {
		t.Fatalf("Broadcast after Close: %v", err)
	}
	if err := b.Subscribe("t", sub); !errors.Is(err, phx.ErrPubSubClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
}

func BenchmarkCrossNodeFanout(b *testing.B) {
	ns := startNATS(b)
	for _, c := range []struct{ subs, window int }{{1, 1}, {1, 256}, {100, 256}} {
		name := fmt.Sprintf("subscribers=%d/window=%d", c.subs, c.window)
		b.Run(name, func(b *testing.B) { clustertest.BenchFanout(b, ns, c.subs, c.window) })
	}
}
