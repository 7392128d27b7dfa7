package phxtest_test

import (
	"testing"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/phxtest"
)

// Greeter is the channel under test.
type Greeter struct{}

func (Greeter) Join(s *phx.Socket, p phx.Payload) (any, error) { return nil, nil }

func (Greeter) HandleIn(s *phx.Socket, event string, p phx.Payload) (any, error) {
	return map[string]string{"hello": s.Assigns["user"].(string)}, nil
}

// A channel test joins through the real router, pushes, and asserts the
// reply. This is the body of a TestGreeter(t *testing.T) function; it runs
// as TestExampleGreeter in this package.
func Example() {
	testGreeter := func(t *testing.T) {
		srv := phx.NewServer(nil)
		srv.Channel("greet:*", func() phx.Channel { return Greeter{} })

		sock := phxtest.NewSocket(t, srv, phx.Assigns{"user": "ann"})
		ch := sock.JoinOK("greet:lobby", nil)
		ref := ch.Push("hi", nil)
		ch.AssertReply(ref, "ok", map[string]string{"hello": "ann"})
	}
	_ = testGreeter
}

func TestExampleGreeter(t *testing.T) {
	srv := phx.NewServer(nil)
	srv.Channel("greet:*", func() phx.Channel { return Greeter{} })
	sock := phxtest.NewSocket(t, srv, phx.Assigns{"user": "ann"})
	ch := sock.JoinOK("greet:lobby", nil)
	ref := ch.Push("hi", nil)
	ch.AssertReply(ref, "ok", map[string]string{"hello": "ann"})
}
