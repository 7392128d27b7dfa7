package phxprometheus

import (
	"slices"
	"testing"

	"github.com/phxgo/phx"
)

func TestChainOrderAndNil(t *testing.T) {
	var calls []string
	a := &phx.Telemetry{
		ChannelJoined: func(e phx.ChannelJoined) { calls = append(calls, "a "+e.Topic) },
		SocketClosed:  func(phx.SocketClosed) { calls = append(calls, "a closed") },
	}
	b := &phx.Telemetry{
		ChannelJoined: func(e phx.ChannelJoined) { calls = append(calls, "b "+e.Topic) },
	}
	tel := Chain(nil, a, nil, b)
	tel.ChannelJoined(phx.ChannelJoined{Topic: "room:x"})
	tel.SocketClosed(phx.SocketClosed{})
	if want := []string{"a room:x", "b room:x", "a closed"}; !slices.Equal(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
	// Hooks no element sets stay nil: the server skips building their events.
	if tel.SocketConnected != nil || tel.ChannelHandledIn != nil || tel.ChannelTerminated != nil {
		t.Error("Chain set a hook that no element sets")
	}
	if Chain() != nil || Chain(nil, nil) != nil {
		t.Error("Chain of nothing is not nil")
	}
	if Chain(nil, a) != a {
		t.Error("Chain of one element is not that element")
	}
}

// A panicking hook does not keep the next ones from running; its panic is
// raised again afterwards, for the server to log.
func TestChainPanic(t *testing.T) {
	ran := 0
	tel := Chain(
		&phx.Telemetry{ChannelHandledIn: func(phx.ChannelHandledIn) { panic("first") }},
		&phx.Telemetry{ChannelHandledIn: func(phx.ChannelHandledIn) { ran++; panic("second") }},
		&phx.Telemetry{ChannelHandledIn: func(phx.ChannelHandledIn) { ran++ }},
	)
	defer func() {
		if v := recover(); v != "first" {
			t.Errorf("recovered %v, want the first panic", v)
		}
		if ran != 2 {
			t.Errorf("%d hooks ran after the panic, want 2", ran)
		}
	}()
	tel.ChannelHandledIn(phx.ChannelHandledIn{})
	t.Error("the panic was swallowed")
}

// The collector's hooks chain with an application's: both see every event.
func TestChainCollector(t *testing.T) {
	c, _ := newCollector(t, Options{})
	joined := 0
	tel := Chain(c.Telemetry(), &phx.Telemetry{ChannelJoined: func(phx.ChannelJoined) { joined++ }})
	tel.ChannelJoined(phx.ChannelJoined{Route: "room:*", Status: "ok"})
	tel.SocketConnected(phx.SocketConnected{Transport: "websocket"})
	if joined != 1 {
		t.Errorf("the application's hook ran %d times, want 1", joined)
	}
	if tel.SocketConnected == nil {
		t.Error("the collector's SocketConnected was dropped")
	}
}
