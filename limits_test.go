package phx_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/phxgo/phx"
)

// TestInboundLimits: limits per topic pattern and event refuse what is
// over them with an error reply, per joined channel, and never close the
// connection.
func TestInboundLimits(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, _ := newRoomServer(t, &phx.Options{
			MaxRateLimited: 1, // limits of channels do not count towards it
			InboundLimits: []phx.InboundLimit{
				{Topic: "room:cursor*", Event: "echo", Rate: 0.001, Burst: 3},
				{Topic: "room:whole", Rate: 0.001, Burst: 2},
				{Topic: "room:default_burst", Rate: 2.5}, // Burst 3
				{Event: "fail", Rate: 0.001, Burst: 1},   // every topic
			},
		})
		c := dialMode(t, ts, m, "user=a&vsn=2.0.0")
		ok := func(topic, joinRef, ref, event, response string) {
			t.Helper()
			c.send(joinRef, ref, topic, event, map[string]any{})
			c.expect(fmt.Sprintf(`["%s","%s","%s","phx_reply",{"status":"ok","response":%s}]`, joinRef, ref, topic, response))
		}
		failed := func(topic, joinRef, ref, event, reason string) {
			t.Helper()
			c.send(joinRef, ref, topic, event, map[string]any{})
			c.expect(fmt.Sprintf(`["%s","%s","%s","phx_reply",{"status":"error","response":{"reason":"%s"}}]`, joinRef, ref, topic, reason))
		}
		pushMe := func(topic, joinRef, ref string) {
			t.Helper()
			c.send(joinRef, ref, topic, "push_me", map[string]any{})
			c.expect(fmt.Sprintf(`["%s",null,"%s","pushed",{}]`, joinRef, topic))
			c.expect(fmt.Sprintf(`["%s","%s","%s","phx_reply",{"status":"ok","response":{}}]`, joinRef, ref, topic))
		}
		c.join("room:cursor1", "1", map[string]any{})
		c.join("room:cursor2", "2", map[string]any{})
		c.join("room:whole", "3", map[string]any{})
		c.join("room:default_burst", "4", map[string]any{})
		c.join("room:free", "5", map[string]any{})

		for i := 0; i < 3; i++ {
			ok("room:cursor1", "1", fmt.Sprint("a", i), "echo", "{}")
		}
		for i := 0; i < 20; i++ { // refused again and again: the connection stays
			failed("room:cursor1", "1", fmt.Sprint("b", i), "echo", "rate limited")
		}
		pushMe("room:cursor1", "1", "c") // another event
		for i := 0; i < 3; i++ {         // each channel has its own bucket
			ok("room:cursor2", "2", fmt.Sprint("d", i), "echo", "{}")
		}
		failed("room:cursor2", "2", "e", "echo", "rate limited")

		ok("room:whole", "3", "f", "echo", "{}")
		pushMe("room:whole", "3", "g")
		failed("room:whole", "3", "h", "echo", "rate limited")
		failed("room:whole", "3", "i", "push_me", "rate limited")
		// Leaves are not limited.
		c.send("3", "j", "room:whole", "phx_leave", map[string]any{})
		c.expect(`["3","j","room:whole","phx_reply",{"status":"ok","response":{}}]`)
		c.expect(`["3","3","room:whole","phx_close",{}]`)

		for i := 0; i < 3; i++ {
			ok("room:default_burst", "4", fmt.Sprint("k", i), "echo", "{}")
		}
		failed("room:default_burst", "4", "l", "echo", "rate limited")

		// The event-only limit applies to every topic, and only to "fail"
		// (whose reply is its own error); and both limits count it.
		failed("room:free", "5", "m", "fail", "nope")
		failed("room:free", "5", "n", "fail", "rate limited")
		failed("room:cursor2", "2", "o", "fail", "nope")
		for i := 0; i < 10; i++ {
			ok("room:free", "5", fmt.Sprint("p", i), "echo", "{}")
		}
		if n := ts.Stats().PolicyClosed; n != 0 {
			t.Fatalf("PolicyClosed = %d, want 0", n)
		}
	})
}

func TestInboundLimitsValidated(t *testing.T) {
	for _, l := range []phx.InboundLimit{
		{Topic: "room:*:x", Rate: 1},
		{Topic: "*room", Rate: 1},
		{Topic: "room:*", Rate: 0},
		{Topic: "room:*", Rate: -1},
		{Topic: "room:*", Rate: math.NaN()},
		{Topic: "room:*", Rate: math.Inf(1)},
		{Topic: "room:*", Rate: 1, Burst: -1},
	} {
		_, err := phx.New(&phx.Options{Logger: quietLogger(), InboundLimits: []phx.InboundLimit{l}})
		if !errors.Is(err, phx.ErrInvalidOptions) || !strings.Contains(fmt.Sprint(err), "InboundLimits[0]") {
			t.Errorf("New(%+v): %v, want an ErrInvalidOptions naming the limit", l, err)
		}
	}
}
