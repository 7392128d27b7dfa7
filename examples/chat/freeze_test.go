package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phxgo/phx/internal/clienttest"
	"github.com/phxgo/phx/internal/redistest"
)

// TestBrokerFrozen: two copies of the chat on a real redis-server, which
// holds the rooms' history and which the test freezes (SIGSTOP) for 3 s
// while ann, on copy 1, sends a message and a typing hint every 50 ms; bob
// is on copy 1 too, zed on copy 2. A message needs its place in the shared
// history before anyone may receive it, so while Redis is frozen messages
// are refused with "unavailable" (the first after the history's 500 ms
// Timeout, the others at once) and delivered to no one; typing hints, which
// are not recorded, still reach bob without waiting. After the thaw the
// next message gets the next ID on both copies: nothing from the freeze
// was recorded.
func TestBrokerFrozen(t *testing.T) {
	redis := redistest.Run(t)
	secret := fmt.Sprintf("freeze-secret-%d-0123456789abcdef0123456789", time.Now().UnixNano())
	n1 := startChatWithSecret(t, secret, "-pubsub", redis.URL())
	n2 := startChatWithSecret(t, secret, "-pubsub", redis.URL())
	ann, bob, zed := dialNode(t, n1, "ann_f"), dialNode(t, n1, "bob_f"), dialNode(t, n2, "zed_f")
	for _, c := range []*nodeClient{ann, bob, zed} {
		c.JoinOK("room:freeze", map[string]any{})
	}
	// The copies hear each other before the freeze.
	ann.send("room:freeze", "new_msg", map[string]any{"body": "warm-up"})
	zed.Next("warm-up on copy 2", isBody("warm-up"))

	const n = 60 // 3 s at one every 50 ms
	redis.Freeze(t)
	frozen := time.Now()
	sent := make([]time.Time, n)
	msgRefs, typingRefs := make([]string, n), make([]string, n)
	for i := range n {
		sent[i] = time.Now()
		msgRefs[i] = ann.Push("room:freeze", "new_msg", map[string]any{"body": fmt.Sprintf("m%d", i)})
		typingRefs[i] = ann.Push("room:freeze", "typing", map[string]any{})
		time.Sleep(50 * time.Millisecond)
	}
	var msgReply, typingReply, typingDelivery []time.Duration
	for i := range n {
		r := ann.Reply("room:freeze", msgRefs[i])
		if r.Status != "error" || string(r.Response) != `{"reason":"unavailable"}` {
			t.Fatalf("m%d while Redis is frozen: %s %s, want error unavailable", i, r.Status, r.Response)
		}
		msgReply = append(msgReply, r.At.Sub(sent[i]))
		tr := ann.Reply("room:freeze", typingRefs[i])
		if tr.Status != "ok" {
			t.Fatalf("typing %d while Redis is frozen: %s %s", i, tr.Status, tr.Response)
		}
		typingReply = append(typingReply, tr.At.Sub(sent[i]))
		m := bob.Next(fmt.Sprintf("typing %d at bob", i), func(m *clienttest.Message) bool { return m.Event == "typing" })
		typingDelivery = append(typingDelivery, m.At.Sub(sent[i]))
	}
	redis.Thaw(t)
	thawed := time.Now()
	// The first message after the thaw is accepted within a few seconds
	// (the history's probe sees Redis answer again) and gets ID 2.
	var id string
	for deadline := time.Now().Add(5 * time.Second); ; {
		r := ann.Reply("room:freeze", ann.Push("room:freeze", "new_msg", map[string]any{"body": "after"}))
		if r.Status == "ok" {
			id = string(r.Response)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new_msg after the thaw: %s %s", r.Status, r.Response)
		}
		time.Sleep(50 * time.Millisecond)
	}
	accepted := time.Since(thawed)
	if id != `{"id":2}` {
		t.Fatalf("first message after the thaw: %s, want id 2 (nothing from the freeze recorded)", id)
	}
	for name, c := range map[string]*nodeClient{"bob": bob, "zed": zed} {
		m := c.Next("after", isBody("after"))
		if !strings.Contains(string(m.Payload), `"phx_offset":2`) {
			t.Fatalf("%s got %s, want phx_offset 2", name, m.Payload)
		}
		if got := c.Matching(func(m *clienttest.Message) bool { return m.Event == "new_msg" }); len(got) != 2 {
			t.Fatalf("%s received %d messages, want warm-up and after only", name, len(got))
		}
	}
	p99 := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)*99/100]
	}
	// Each push waits behind the one before it on ann's channel: the
	// pushes sent while the first message waited for its refusal wait too.
	// Measure the ones sent after it came back.
	var later int
	for later = 1; later < n && sent[later].Before(sent[0].Add(msgReply[0])); later++ {
	}
	t.Logf("Redis frozen %v: first refusal after %v; the %d messages sent after it refused with p99 %v; their typing hints: reply p99 %v, delivery to bob p99 %v; a message accepted %v after the thaw",
		thawed.Sub(frozen).Round(time.Millisecond), msgReply[0].Round(time.Millisecond), n-later, p99(msgReply[later:]),
		p99(typingReply[later:]), p99(typingDelivery[later:]), accepted.Round(time.Millisecond))
	if msgReply[0] > 2*time.Second {
		t.Errorf("the first message was refused after %v, want about the history's 500 ms Timeout", msgReply[0])
	}
	if n-later < n/2 || p99(msgReply[later:]) > 50*time.Millisecond || p99(typingReply[later:]) > 50*time.Millisecond || p99(typingDelivery[later:]) > 50*time.Millisecond {
		t.Errorf("with Redis frozen, %d messages after the first refusal: refusal p99 %v, typing reply p99 %v, typing delivery p99 %v; want all under 50 ms",
			n-later, p99(msgReply[later:]), p99(typingReply[later:]), p99(typingDelivery[later:]))
	}
}

func isBody(body string) func(*clienttest.Message) bool {
	return func(m *clienttest.Message) bool {
		return m.Event == "new_msg" && strings.Contains(string(m.Payload), `"body":"`+body+`"`)
	}
}
