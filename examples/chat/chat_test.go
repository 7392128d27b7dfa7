package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

func TestTwoUsersChat(t *testing.T) {
	env := newTestEnv(t)
	ann, bob := env.dial(t, "ann"), env.dial(t, "bob")
	const topic = "room:lobby"
	ann.joinOK(topic, nil)
	bob.joinOK(topic, nil)

	before := time.Now().UnixMilli()
	if id := ann.say(topic, "hello bob"); id != 1 {
		t.Fatalf("first message id = %d, want 1", id)
	}
	after := time.Now().UnixMilli()
	// Every member gets the broadcast, the sender included.
	for _, cl := range []*client{ann, bob} {
		m := cl.nextEvent(topic, "new_msg").message(t)
		if m.ID != 1 || m.User != "ann" || m.Body != "hello bob" || m.At < before || m.At > after {
			t.Errorf("%s got %+v, want id 1 from ann, at in [%d, %d]", cl.name, m, before, after)
		}
	}
	// The broadcast carries exactly these fields.
	if id := bob.say(topic, "hi ann"); id != 2 {
		t.Fatalf("second message id = %d, want 2", id)
	}
	got := ann.nextEvent(topic, "new_msg")
	var raw map[string]any
	if err := json.Unmarshal(got.Payload, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 4 || raw["phx_offset"] != 2.0 || raw["user"] != "bob" || raw["body"] != "hi ann" {
		t.Errorf("ann got %s, want {user:bob,body:hi ann,at:...,phx_offset:2}", got.Payload)
	}
	if _, ok := raw["at"].(float64); !ok {
		t.Errorf("at is %T, want a number (unix ms)", raw["at"])
	}
	if got.JoinRef != nil || got.Ref != nil {
		t.Errorf("broadcast %v should have null join_ref and ref", got)
	}
}

func TestNewMsgErrors(t *testing.T) {
	env := newTestEnv(t)
	ann, bob := env.dial(t, "ann"), env.dial(t, "bob")
	const topic = "room:errors"
	ann.joinOK(topic, nil)
	bob.joinOK(topic, nil)

	for _, tc := range []struct {
		payload any
		reason  string
	}{
		{map[string]any{"body": ""}, "empty"},
		{map[string]any{"body": " \n\t "}, "empty"},
		{map[string]any{"body": strings.Repeat("x", maxBodyBytes+1)}, "too long"},
		{map[string]any{"body": strings.Repeat("é", maxBodyBytes/2+1)}, "too long"}, // bytes, not characters
		{map[string]any{}, "invalid message"},
		{map[string]any{"body": 42}, "invalid message"},
	} {
		r := ann.push(topic, "new_msg", tc.payload)
		want := fmt.Sprintf(`{"reason":%q}`, tc.reason)
		if r.Status != "error" || string(r.Response) != want {
			p, _ := json.Marshal(tc.payload)
			t.Errorf("new_msg %.60s: got %s %s, want error %s", p, r.Status, r.Response, want)
		}
	}
	if r := ann.push(topic, "shout", map[string]any{}); r.Status != "error" || string(r.Response) != `{"reason":"unknown event"}` {
		t.Errorf("unknown event: %s %s", r.Status, r.Response)
	}

	// Nothing was broadcast or stored: the next message is the first one
	// anyone receives, and it gets id 1. Exactly 2000 bytes is fine.
	long := strings.Repeat("y", maxBodyBytes)
	if id := ann.say(topic, long); id != 1 {
		t.Errorf("id after refused messages = %d, want 1", id)
	}
	for _, cl := range []*client{ann, bob} {
		if m := cl.nextEvent(topic, "new_msg").message(t); m.Body != long {
			t.Errorf("%s: first broadcast is %.40q, want the 2000-byte message", cl.name, m.Body)
		}
	}
}

func TestTypingGoesToOthersOnly(t *testing.T) {
	env := newTestEnv(t)
	ann, bob, carol := env.dial(t, "ann"), env.dial(t, "bob"), env.dial(t, "carol")
	const topic = "room:typing"
	for _, cl := range []*client{ann, bob, carol} {
		cl.joinOK(topic, nil)
	}
	if r := ann.push(topic, "typing", map[string]any{}); r.Status != "ok" {
		t.Fatalf("typing: %s %s", r.Status, r.Response)
	}
	for _, cl := range []*client{bob, carol} {
		f := cl.nextEvent(topic, "typing")
		if string(f.Payload) != `{"user":"ann"}` {
			t.Errorf("%s got typing %s, want {\"user\":\"ann\"}", cl.name, f.Payload)
		}
	}
	// ann's own frames up to a later message's broadcast hold no typing.
	ann.say(topic, "done typing")
	ann.nextEvent(topic, "new_msg")
	if ann.seenEvent(topic, "typing") {
		t.Errorf("the sender received its own typing event: %v", ann.Matching(nil))
	}
	// Nor is typing recorded in the room's history.
	page, err := env.app.socket.History().Read(context.Background(), topic, 0, 10)
	if err != nil || len(page.Messages) != 1 || page.Messages[0].Event != "new_msg" {
		t.Errorf("history %+v (%v), want only the message", page, err)
	}
}

func TestInvalidRoom(t *testing.T) {
	env := newTestEnv(t)
	c := env.dial(t, "ann")
	for _, topic := range []string{"room:", "room:Lobby", "room:a b", "room:a/b", "room:a.b", "room:é", "room:" + strings.Repeat("a", 65), "room:lobby:sub"} {
		r := c.join(topic, nil)
		if r.Status != "error" || string(r.Response) != `{"reason":"invalid room"}` {
			t.Errorf("join %q: %s %s, want error invalid room", topic, r.Status, r.Response)
		}
	}
	for _, topic := range []string{"room:a", "room:under_score-dash-09", "room:" + strings.Repeat("z", 64)} {
		c.joinOK(topic, nil)
	}
	// Other topics have no route at all.
	if r := c.join("lobby", nil); r.Status != "error" || string(r.Response) != `{"reason":"unmatched topic"}` {
		t.Errorf("join lobby: %s %s", r.Status, r.Response)
	}
}

func TestConnectRefused(t *testing.T) {
	env := newTestEnv(t)
	other, err := newAuth([]byte(strings.Repeat("s", 32)), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Signed by the right secret, but at a given time.
	signedAgo := func(d time.Duration) string {
		a, err := newAuth(testSecret, func() time.Time { return time.Now().Add(-d) })
		if err != nil {
			t.Fatal(err)
		}
		tok, err := a.signer.Sign(tokenData{User: "ann"})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	otherTok, _ := other.signer.Sign(tokenData{User: "ann"})
	badName, _ := env.app.auth.signer.Sign(tokenData{User: "not valid!"})
	good := env.token(t, "ann")

	for _, tc := range []struct {
		name   string
		params url.Values
		want   int
	}{
		{"valid", url.Values{"token": {good}}, http.StatusSwitchingProtocols},
		{"23h old", url.Values{"token": {signedAgo(23 * time.Hour)}}, http.StatusSwitchingProtocols},
		{"missing", url.Values{}, http.StatusForbidden},
		{"empty", url.Values{"token": {""}}, http.StatusForbidden},
		{"garbage", url.Values{"token": {"hello"}}, http.StatusForbidden},
		{"tampered", url.Values{"token": {good[:len(good)-2] + "xx"}}, http.StatusForbidden},
		{"other secret", url.Values{"token": {otherTok}}, http.StatusForbidden},
		{"expired (25h old)", url.Values{"token": {signedAgo(25 * time.Hour)}}, http.StatusForbidden},
		{"invalid user name inside", url.Values{"token": {badName}}, http.StatusForbidden},
		{"user param is not a token", url.Values{"user": {"ann"}}, http.StatusForbidden},
	} {
		if got := env.dialStatus(t, tc.params); got != tc.want {
			t.Errorf("%s: HTTP %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestSocketID(t *testing.T) {
	env := newTestEnv(t)
	c := env.dial(t, "ann")
	c.joinOK("room:lobby", nil)
	// Disconnect by socket ID closes ann's connection.
	if err := env.app.socket.Disconnect("users_socket:ann"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		t.Fatal("Disconnect(users_socket:ann) did not close ann's connection")
	}
}

// Concurrent senders in one room: every member receives the messages in ID
// order, with no gaps.
func TestConcurrentSendersKeepIDOrder(t *testing.T) {
	env := newTestEnv(t) // the library's history orders the broadcasts
	const topic = "room:busy"
	const senders, each = 6, 25
	watcher := env.dial(t, "watcher")
	watcher.joinOK(topic, nil)
	clients := make([]*client, senders)
	for i := range clients {
		clients[i] = env.dial(t, fmt.Sprintf("s%d", i))
		clients[i].joinOK(topic, nil)
	}
	var wg sync.WaitGroup
	var refused atomic.Int32
	for _, cl := range clients {
		wg.Go(func() {
			refs := make([]string, each)
			for j := range refs {
				refs[j] = cl.send(topic, "new_msg", map[string]string{"body": fmt.Sprint(cl.name, "-", j)})
			}
			for _, ref := range refs {
				if r := cl.replyTo(topic, ref); r.Status != "ok" {
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if refused.Load() > 0 {
		t.Fatalf("%d messages refused", refused.Load())
	}
	for want := int64(1); want <= senders*each; want++ {
		if m := watcher.nextEvent(topic, "new_msg").message(t); m.ID != want {
			t.Fatalf("broadcast #%d has id %d: out of order", want, m.ID)
		}
	}
}

func TestTokenEndpoint(t *testing.T) {
	env := newTestEnv(t)
	post := func(body string) (*http.Response, map[string]string) {
		t.Helper()
		resp, err := http.Post(env.srv.URL+"/api/token", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return resp, decodeBody(t, resp)
	}
	get := func(user string) (*http.Response, map[string]string) {
		t.Helper()
		resp, err := http.Get(env.srv.URL + "/api/token?user=" + url.QueryEscape(user))
		if err != nil {
			t.Fatal(err)
		}
		return resp, decodeBody(t, resp)
	}
	verify := func(tok, want string) {
		t.Helper()
		var d tokenData
		if err := env.app.auth.signer.Verify(tok, &d); err != nil || d.User != want {
			t.Errorf("token %q: user %q, err %v; want %q", tok, d.User, err, want)
		}
		// And it opens a socket.
		if got := env.dialStatus(t, url.Values{"token": {tok}}); got != http.StatusSwitchingProtocols {
			t.Errorf("connect with the token: HTTP %d", got)
		}
	}

	for _, name := range []string{"ann", "A", "Bob_the-2nd", strings.Repeat("z", 32)} {
		resp, body := post(fmt.Sprintf(`{"user":%q}`, name))
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("POST %q: %d %s %v", name, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		verify(body["token"], name)
		resp, body = get(name)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %q: %d %v", name, resp.StatusCode, body)
		}
		verify(body["token"], name)
	}

	for _, name := range []string{"", strings.Repeat("z", 33), "a b", "a.b", "é", "ann!", "<script>", "ann\n"} {
		resp, body := post(fmt.Sprintf(`{"user":%q}`, name))
		if resp.StatusCode != 400 || body["error"] == "" || body["token"] != "" {
			t.Errorf("POST %q: %d %v, want 400 with an error", name, resp.StatusCode, body)
		}
		resp, body = get(name)
		if resp.StatusCode != 400 || body["error"] == "" {
			t.Errorf("GET %q: %d %v, want 400 with an error", name, resp.StatusCode, body)
		}
	}
	for _, bad := range []string{"", "not json", `{"user":42}`, `["ann"]`} {
		if resp, body := post(bad); resp.StatusCode != 400 || body["error"] == "" {
			t.Errorf("POST body %q: %d %v, want 400 with an error", bad, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, env.srv.URL+"/api/token", strings.NewReader(`{"user":"ann"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d, want 405", resp.StatusCode)
	}
}

func decodeBody(t *testing.T, resp *http.Response) map[string]string {
	t.Helper()
	defer resp.Body.Close()
	var m map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("HTTP %d: body is not a JSON object of strings: %v", resp.StatusCode, err)
	}
	return m
}

// presenceKeys returns the keys of a presence_state or presence_diff side,
// each with its number of metas, e.g. "ann:1 bob:2".
func presenceKeys(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var m map[string]struct {
		Metas []map[string]any `json:"metas"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("presence payload %s: %v", raw, err)
	}
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s:%d", k, len(v.Metas)))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestOnlineUsers(t *testing.T) {
	env := newTestEnv(t)
	const topic = "room:lobby"
	ann := env.dial(t, "ann")
	ann.joinOK(topic, nil)
	if got := presenceKeys(t, ann.nextEvent(topic, "presence_state").Payload); got != "ann:1" {
		t.Fatalf("ann's presence_state = %s", got)
	}
	// bob in two tabs: listed once, with two metas.
	bob1, bob2 := env.dial(t, "bob"), env.dial(t, "bob")
	bob1.joinOK(topic, nil)
	bob2.joinOK(topic, nil)
	if got := presenceKeys(t, bob2.nextEvent(topic, "presence_state").Payload); got != "ann:1 bob:2" {
		t.Fatalf("bob's second tab got presence_state %s", got)
	}
	list := env.app.chat.presence.List(topic)
	if len(list) != 2 || len(list["bob"].Metas) != 2 {
		t.Fatalf("List = %v", list)
	}
	// A tab closing leaves bob listed once; the last one removes him.
	bob1.close()
	waitFor(t, func() bool { l := env.app.chat.presence.List(topic); return len(l["bob"].Metas) == 1 })
	bob2.close()
	waitFor(t, func() bool { _, ok := env.app.chat.presence.List(topic)["bob"]; return !ok })
	// ann heard about both of bob's tabs leaving as presence_diff leaves
	// (diffs are batched, so they may come in one diff or two).
	for bobLeft := 0; bobLeft < 2; {
		d := ann.nextEvent(topic, "presence_diff")
		var diff struct {
			Leaves map[string]struct{ Metas []any }
		}
		if err := json.Unmarshal(d.Payload, &diff); err != nil {
			t.Fatal(err)
		}
		bobLeft += len(diff.Leaves["bob"].Metas)
	}
	// Another room has its own list.
	ann.joinOK("room:other", nil)
	if got := presenceKeys(t, ann.nextEvent("room:other", "presence_state").Payload); got != "ann:1" {
		t.Fatalf("room:other presence_state = %s", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The rooms' history is the library's: a rejoin with the last
// phx_position gets recovered: true and the missed messages after the
// reply, then live ones; a position the server cannot honour gets
// recovered: false.
func TestLibraryHistoryCatchUp(t *testing.T) {
	env := newTestEnv(t)
	const topic = "room:lib"
	ann, bob := env.dial(t, "ann"), env.dial(t, "bob")
	ann.joinOK(topic, nil)
	first := bob.join(topic, map[string]any{"phx_position": map[string]any{"epoch": "", "offset": 0}})
	var reply struct {
		Recovered bool `json:"recovered"`
		Replayed  int  `json:"replayed"`
		Position  struct {
			Epoch  string `json:"epoch"`
			Offset int64  `json:"offset"`
		} `json:"phx_position"`
	}
	if err := json.Unmarshal(first.Response, &reply); err != nil || reply.Position.Epoch == "" || reply.Replayed != 0 {
		t.Fatalf("first join: %s %v", first.Response, err)
	}
	for i := 1; i <= 2; i++ {
		if id := ann.say(topic, fmt.Sprintf("m%d", i)); id != int64(i) {
			t.Fatalf("message id %d, want %d", id, i)
		}
		if m := bob.nextEvent(topic, "new_msg").message(t); m.ID != int64(i) || m.User != "ann" {
			t.Fatalf("bob got %+v", m)
		}
	}
	bob.push(topic, "phx_leave", nil)
	ann.say(topic, "m3")
	ann.say(topic, "m4")
	r := bob.join(topic, map[string]any{"phx_position": map[string]any{"epoch": reply.Position.Epoch, "offset": 2}})
	if err := json.Unmarshal(r.Response, &reply); err != nil || !reply.Recovered || reply.Replayed != 2 || reply.Position.Offset != 4 {
		t.Fatalf("rejoin: %s %v", r.Response, err)
	}
	for _, want := range []string{"m3", "m4"} {
		if m := bob.nextEvent(topic, "new_msg").message(t); m.Body != want {
			t.Fatalf("replayed %+v, want %s", m, want)
		}
	}
	ann.say(topic, "m5")
	if m := bob.nextEvent(topic, "new_msg").message(t); m.Body != "m5" || m.ID != 5 {
		t.Fatalf("live after the replay: %+v", m)
	}
	// A position from another run of the server (another epoch).
	carol := env.dial(t, "carol")
	r = carol.join(topic, map[string]any{"phx_position": map[string]any{"epoch": "0123456789abcdef01234567", "offset": 3}})
	if err := json.Unmarshal(r.Response, &reply); err != nil || reply.Recovered || reply.Replayed != 0 || reply.Position.Offset != 5 {
		t.Fatalf("other epoch: %s %v", r.Response, err)
	}
}

// unavailableHistory is a history store whose server does not answer.
type unavailableHistory struct{}

func (unavailableHistory) Append(context.Context, string, phx.HistoryMessage, phx.HistoryOptions) (phx.Position, error) {
	return phx.Position{}, fmt.Errorf("test store: %w", phx.ErrHistoryUnavailable)
}

func (unavailableHistory) Read(context.Context, string, uint64, int) (phx.HistoryPage, error) {
	return phx.HistoryPage{}, fmt.Errorf("test store: %w", phx.ErrHistoryUnavailable)
}

// While the history's store does not answer (the broker, on a cluster),
// rooms can still be joined, typing hints still go out, and a message is
// refused with "unavailable": not delivered to anyone, so the page can
// offer to send it again.
func TestHistoryUnavailable(t *testing.T) {
	env := newTestEnvWith(t, appConfig{History: unavailableHistory{}})
	const topic = "room:down"
	ann, bob := env.dial(t, "ann"), env.dial(t, "bob")
	if r := ann.JoinOK(topic, nil); string(r.Response) != "{}" {
		t.Fatalf("join with the store down: %s, want {} (no position to give)", r.Response)
	}
	r := bob.join(topic, map[string]any{"phx_position": map[string]any{"epoch": "0123456789abcdef01234567", "offset": 3}})
	if r.Status != "ok" || !strings.Contains(string(r.Response), `"recovered":false`) || strings.Contains(string(r.Response), "phx_position") {
		t.Fatalf("rejoin with the store down: %s %s, want ok, recovered false, no position", r.Status, r.Response)
	}
	if r := ann.push(topic, "new_msg", map[string]string{"body": "lost?"}); r.Status != "error" || string(r.Response) != `{"reason":"unavailable"}` {
		t.Fatalf("new_msg with the store down: %s %s", r.Status, r.Response)
	}
	if r := ann.push(topic, "typing", map[string]any{}); r.Status != "ok" {
		t.Fatalf("typing: %s %s", r.Status, r.Response)
	}
	bob.nextEvent(topic, "typing")
	if bob.seenEvent(topic, "new_msg") || ann.seenEvent(topic, "new_msg") {
		t.Fatal("a message that was not recorded was delivered")
	}
}
