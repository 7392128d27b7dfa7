package phxtest_test

import (
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/leaktest"
	"github.com/phxgo/phx/phxtest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

type counter struct{ n int }

func (c *counter) Join(s *phx.Socket, p phx.Payload) (any, error) {
	var params struct{ Start int }
	_ = p.Decode(&params)
	if params.Start < 0 {
		return nil, phx.Errorf("negative start")
	}
	c.n = params.Start
	return map[string]int{"n": c.n}, nil
}

func (c *counter) HandleIn(s *phx.Socket, event string, p phx.Payload) (any, error) {
	switch event {
	case "inc":
		c.n++
		s.Broadcast("changed", map[string]any{"n": c.n, "by": s.Assigns["user"]})
		return map[string]int{"n": c.n}, nil
	case "ping":
		s.Push("pong", map[string]string{"to": s.Assigns["user"].(string)})
		return nil, phx.NoReply
	case "bin":
		return phx.Binary(append([]byte("echo:"), p.Data...)), nil
	case "done":
		s.Stop(nil)
		return nil, nil
	case "crash":
		panic("crash")
	}
	return nil, phx.Errorf("unknown")
}

func newServer(t *testing.T) *phx.Server {
	srv := phx.NewServer(&phx.Options{
		Logger: slog.New(slog.DiscardHandler),
		ID:     func(a phx.Assigns) string { return fmt.Sprintf("user:%v", a["user"]) },
	})
	srv.Channel("counter:*", func() phx.Channel { return &counter{} })
	t.Cleanup(func() { srv.Shutdown(t.Context()) })
	return srv
}

func TestChannelLifecycle(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	ann := phxtest.NewSocket(t, srv, phx.Assigns{"user": "ann"})
	bob := phxtest.NewSocket(t, srv, phx.Assigns{"user": "bob"})

	_, reply, err := ann.Join("counter:a", map[string]int{"start": 5})
	if err != nil || string(reply) != `{"n":5}` {
		t.Fatalf("join: %s %v", reply, err)
	}
	a := ann.JoinOK("counter:x", nil)
	b := bob.JoinOK("counter:x", nil)

	ref := a.Push("inc", nil)
	a.AssertReply(ref, "ok", map[string]int{"n": 1})
	a.AssertBroadcast("changed", map[string]any{"n": 1, "by": "ann"})
	b.AssertBroadcast("changed", map[string]any{"n": 1, "by": "ann"})
	// The clients' copies of the broadcast went with it.
	a.RefuteMessage("changed", 50*time.Millisecond)
	b.RefuteMessage("changed", 50*time.Millisecond)

	b.Push("ping", nil)
	b.AssertPush("pong", map[string]string{"to": "bob"})
	a.RefuteMessage("pong", 50*time.Millisecond)

	r := a.AssertReply(a.Push("nope", nil), "error", map[string]string{"reason": "unknown"})
	if r.Status != "error" {
		t.Fatal(r)
	}
	r = a.AssertReply(a.Push("bin", phx.Binary{1, 2}), "ok", nil)
	if string(r.Binary) != "echo:\x01\x02" {
		t.Fatalf("binary reply %q", r.Binary)
	}

	_, _, err = ann.Join("counter:neg", map[string]int{"start": -1})
	if je, ok := err.(*phxtest.JoinError); !ok || string(je.Response) != `{"reason":"negative start"}` {
		t.Fatalf("refused join: %v", err)
	}
	_, _, err = ann.Join("nowhere", nil)
	if je, ok := err.(*phxtest.JoinError); !ok || string(je.Response) != `{"reason":"unmatched topic"}` {
		t.Fatalf("unmatched join: %v", err)
	}

	a.Leave()
	a.AwaitReply(a.Push("inc", nil)) // unmatched topic now
	b.AssertReply(b.Push("done", nil), "ok", nil)
	b.AwaitClose()
	c := bob.JoinOK("counter:y", nil)
	c.Push("crash", nil)
	c.AwaitError()
}

func TestDisconnectAndShutdown(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	s1 := phxtest.NewSocket(t, srv, phx.Assigns{"user": "zed"})
	s2 := phxtest.NewSocketID(t, srv, nil, "custom")
	s1.JoinOK("counter:1", nil)
	if err := srv.Disconnect("user:zed"); err != nil {
		t.Fatal(err)
	}
	if code := s1.AwaitClosed(); code != 1001 {
		t.Fatalf("close code %d, want 1001", code)
	}
	s2.JoinOK("counter:2", nil)
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code := s2.AwaitClosed(); code != 1012 {
		t.Fatalf("close code %d, want 1012", code)
	}
}

// fakeT records a Fatal instead of failing the real test.
type fakeT struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatal(args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeT) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }

func TestTimeoutsFailReadably(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	ft := &fakeT{TB: t}
	probe := phxtest.NewSocket(ft, srv, phx.Assigns{"user": "probe"})
	probe.Timeout = 100 * time.Millisecond
	pch := probe.JoinOK("counter:t", nil)
	pch.Push("inc", nil) // its reply and broadcast stay unconsumed
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pch.AwaitPush("never")
	}()
	<-done
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("AwaitPush took %v with a 100ms timeout", d)
	}
	if !strings.Contains(ft.msg, `timed out after 100ms waiting for push "never" on counter:t`) ||
		!strings.Contains(ft.msg, "changed") {
		t.Fatalf("failure message:\n%s", ft.msg)
	}
}
