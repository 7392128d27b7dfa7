package phx_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

// The long-poll protocol spoken by hand with net/http, as phoenix.js's
// LongPoll does (docs/protocol.md §6).

// lpReply is a long-poll response body.
type lpReply struct {
	Status   int       `json:"status"`
	Token    *string   `json:"token"`
	Messages *[]string `json:"messages"`
	raw      string
	header   http.Header
}

func (r lpReply) token() string {
	if r.Token == nil {
		return ""
	}
	return *r.Token
}

func (r lpReply) messages() []string {
	if r.Messages == nil {
		return nil
	}
	return *r.Messages
}

// lpDo sends one request and decodes the JSON body; it fails the test on a
// transport error or an HTTP status other than 200.
func lpDo(t *testing.T, ts *testServer, method, rawURL string, hdr map[string]string, body string) lpReply {
	t.Helper()
	r := lpDoRaw(t, ts, method, rawURL, hdr, body)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: HTTP %d, want 200", method, rawURL, r.StatusCode)
	}
	b, _ := io.ReadAll(r.Body)
	var rep lpReply
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("%s %s: body %q is not JSON: %v", method, rawURL, b, err)
	}
	rep.raw, rep.header = string(b), r.Header
	return rep
}

func lpDoRaw(t *testing.T, ts *testServer, method, rawURL string, hdr map[string]string, body string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := ts.http.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

// lpClient is one long-poll session, driven by hand.
type lpClient struct {
	t     *testing.T
	ts    *testServer
	query string // connect params, vsn included
	token string
}

func lpURL(ts *testServer) string { return ts.http.URL + "/socket/longpoll" }

// lpOpen opens a session with the given query and expects status 410 with
// a token.
func lpOpen(t *testing.T, ts *testServer, query string) *lpClient {
	t.Helper()
	c := &lpClient{t: t, ts: ts, query: query}
	rep := lpDo(t, ts, "GET", lpURL(ts)+"?"+query, nil, "")
	if rep.Status != 410 || rep.token() == "" {
		t.Fatalf("open: got %s, want status 410 with a token", rep.raw)
	}
	c.token = rep.token()
	return c
}

// url is the session URL as phoenix.js 1.8 builds it: params, then the
// token last.
func (c *lpClient) url() string {
	return lpURL(c.ts) + "?" + c.query + "&token=" + url.QueryEscape(c.token)
}

func (c *lpClient) get() lpReply {
	c.t.Helper()
	return lpDo(c.t, c.ts, "GET", c.url(), map[string]string{"Accept": "application/json"}, "")
}

func (c *lpClient) post(contentType, body string) lpReply {
	c.t.Helper()
	return lpDo(c.t, c.ts, "POST", c.url(), map[string]string{"Content-Type": contentType}, body)
}

// send posts V2 frames as one ndjson batch and expects status 200.
func (c *lpClient) send(frames ...string) {
	c.t.Helper()
	if rep := c.post("application/x-ndjson", strings.Join(frames, "\n")); rep.Status != 200 {
		c.t.Fatalf("POST: got %s, want status 200", rep.raw)
	}
}

// recv polls until n messages arrived and returns them.
func (c *lpClient) recv(n int) []string {
	c.t.Helper()
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n {
		if time.Now().After(deadline) {
			c.t.Fatalf("got %d messages %q, want %d", len(got), got, n)
		}
		rep := c.get()
		switch rep.Status {
		case 200:
			if rep.token() != c.token {
				c.t.Fatalf("poll answered with token %q, want the session's %q", rep.token(), c.token)
			}
			got = append(got, rep.messages()...)
		case 204:
		default:
			c.t.Fatalf("poll: got %s, want 200 or 204", rep.raw)
		}
	}
	if len(got) > n {
		c.t.Fatalf("got %d messages %q, want %d", len(got), got, n)
	}
	return got
}

// expect polls for len(want) messages and compares them, in order.
func (c *lpClient) expect(want ...string) {
	c.t.Helper()
	got := c.recv(len(want))
	for i := range want {
		if got[i] != want[i] {
			c.t.Fatalf("message %d mismatch\n got: %s\nwant: %s", i, got[i], want[i])
		}
	}
}

// expectGone checks that the session is gone: a GET opens a new one.
func (c *lpClient) expectGone() {
	c.t.Helper()
	rep := c.get()
	if rep.Status != 410 || rep.token() == "" || rep.token() == c.token {
		c.t.Fatalf("GET of a closed session: got %s, want status 410 with a new token", rep.raw)
	}
}

func (c *lpClient) join(topic, ref string) {
	c.t.Helper()
	c.send(fmt.Sprintf(`[%q,%q,%q,"phx_join",{}]`, ref, ref, topic))
	want := fmt.Sprintf(`[%q,%q,%q,"phx_reply",{"status":"ok","response":`, ref, ref, topic)
	if got := c.recv(1)[0]; !strings.HasPrefix(got, want) {
		c.t.Fatalf("join reply %s, want prefix %s", got, want)
	}
}

func lpOptions(o *phx.Options) *phx.Options {
	if o == nil {
		o = &phx.Options{}
	}
	if o.LongPoll.Window == 0 {
		o.LongPoll.Window = 100 * time.Millisecond
	}
	return o
}

func TestLongPollOpenAndEmptyPoll(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var infos []phx.ConnectInfo
	ts, _ := newRoomServer(t, lpOptions(&phx.Options{
		LongPoll: phx.LongPollOptions{Window: 150 * time.Millisecond},
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			mu.Lock()
			infos = append(infos, *info)
			mu.Unlock()
			return phx.Assigns{"user": info.Params.Get("user")}, nil
		},
	}))
	// phoenix.js 1.8 appends an empty token before it has one: a bare "&".
	rep := lpDo(t, ts, "GET", lpURL(ts)+"?user=ann&vsn=2.0.0&",
		map[string]string{"Accept": "application/json", "X-Phoenix-AuthToken": "s3cret"}, "")
	if rep.Status != 410 || rep.token() == "" || rep.Messages == nil || len(rep.messages()) != 0 {
		t.Fatalf("open: %s, want {status:410, token, messages:[]}", rep.raw)
	}
	for k, want := range map[string]string{
		"Access-Control-Allow-Origin": "*",
		"Cache-Control":               "no-store",
		"Content-Type":                "application/json; charset=utf-8",
	} {
		if got := rep.header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	mu.Lock()
	if len(infos) != 1 || infos[0].Transport != "longpoll" || infos[0].AuthToken != "s3cret" || infos[0].Params.Get("user") != "ann" {
		t.Errorf("Connect saw %+v, want one longpoll connection with the auth token", infos)
	}
	mu.Unlock()
	if n := ts.Stats().Connections; n != 1 {
		t.Errorf("%d connections, want 1", n)
	}

	c := &lpClient{t: t, ts: ts, query: "user=ann&vsn=2.0.0", token: rep.token()}
	start := time.Now()
	rep = c.get()
	if rep.Status != 204 || rep.token() != c.token || rep.Messages == nil || len(rep.messages()) != 0 {
		t.Fatalf("empty poll: %s, want {status:204, same token, messages:[]}", rep.raw)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("empty poll answered after %v, want the 150ms window", d)
	}
	if rep.header.Get("Cache-Control") != "no-store" || rep.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("poll headers %v", rep.header)
	}
	// A heartbeat still gets its reply, although phoenix.js sends none.
	c.send(`[null,"7","phoenix","heartbeat",{}]`)
	c.expect(`[null,"7","phoenix","phx_reply",{"status":"ok","response":{}}]`)
}

func TestLongPollJoinPushReplyAndBroadcast(t *testing.T) {
	t.Parallel()
	ts, rec := newRoomServer(t, lpOptions(nil))
	c := lpOpen(t, ts, "user=lp&vsn=2.0.0")
	c.send(`["1","1","room:a","phx_join",{}]`)
	c.expect(`["1","1","room:a","phx_reply",{"status":"ok","response":{"topic":"room:a","user":"lp"}}]`)

	// Replies, pushes and several messages in order.
	c.send(`["1","2","room:a","echo",{"n":1}]`, `["1","3","room:a","push_me",{"p":true}]`, `["1","4","room:a","fail",{}]`)
	got := c.recv(4)
	want := []string{
		`["1","2","room:a","phx_reply",{"status":"ok","response":{"n":1}}]`,
		`["1",null,"room:a","pushed",{"p":true}]`,
		`["1","3","room:a","phx_reply",{"status":"ok","response":{}}]`,
		`["1","4","room:a","phx_reply",{"status":"error","response":{"reason":"nope"}}]`,
	}
	// push_me's push and its reply come from the channel goroutine in that
	// order; the rest is in the order sent.
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("messages\n got: %q\nwant: %q", got, want)
	}

	// A WebSocket client in the same topic: broadcasts cross transports.
	ws := dial(t, ts.url, "user=ws&vsn=2.0.0", nil)
	ws.join("room:a", "9", map[string]any{})
	c.send(`["1","5","room:a","shout",{"from":"lp"}]`)
	ws.expect(`[null,null,"room:a","shout",{"from":"lp"}]`)
	c.expect(`[null,null,"room:a","shout",{"from":"lp"}]`, `["1","5","room:a","phx_reply",{"status":"ok","response":{}}]`)
	ws.send("9", "10", "room:a", "shout", map[string]any{"from": "ws"})
	c.expect(`[null,null,"room:a","shout",{"from":"ws"}]`)

	// Leave: ok reply and phx_close, Terminate with ErrLeft.
	c.send(`["1","6","room:a","phx_leave",{}]`)
	c.expect(`["1","6","room:a","phx_reply",{"status":"ok","response":{}}]`, `["1","1","room:a","phx_close",{}]`)
	if got := rec.wait(t); got != "room:a:left" {
		t.Fatalf("Terminate reason %q", got)
	}
}

// echoLines returns n echo frames for room:b with refs first, first+1, ...
func echoLines(first, n int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf(`["1","%d","room:b","echo",{"i":%d}]`, first+i, first+i)
	}
	return lines
}

func TestLongPollBatchedPost(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, lpOptions(nil))
	for _, tc := range []struct {
		name  string
		lines int
		sep   string
		want  int
	}{
		{"1 line", 1, "\n", 1},
		{"3 lines", 3, "\n", 3},
		{"3 lines CRLF", 3, "\r\n", 3},
		{"100 lines", 100, "\n", 100},
		{"101 lines", 101, "\n", 100}, // extra lines ignored, as Phoenix
		{"101 lines CRLF", 101, "\r\n", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := lpOpen(t, ts, "user=batch&vsn=2.0.0")
			c.join("room:b", "1")
			body := strings.Join(echoLines(2, tc.lines), tc.sep)
			if rep := c.post("application/x-ndjson", body); rep.Status != 200 || rep.raw != `{"status":200}` {
				t.Fatalf("POST: %s, want {\"status\":200}", rep.raw)
			}
			got := c.recv(tc.want)
			for i, m := range got {
				want := fmt.Sprintf(`["1","%d","room:b","phx_reply",{"status":"ok","response":{"i":%d}}]`, i+2, i+2)
				if m != want {
					t.Fatalf("reply %d: %s, want %s", i, m, want)
				}
			}
			if rep := c.get(); rep.Status != 204 {
				t.Fatalf("after %d replies: %s, want 204 (nothing more dispatched)", tc.want, rep.raw)
			}
		})
	}
}

// binaryPush encodes a V2 binary push frame (kind 0).
func binaryPush(joinRef, ref, topic, event string, payload []byte) []byte {
	b := []byte{0, byte(len(joinRef)), byte(len(ref)), byte(len(topic)), byte(len(event))}
	b = append(b, joinRef...)
	b = append(b, ref...)
	b = append(b, topic...)
	b = append(b, event...)
	return append(b, payload...)
}

func TestLongPollBinary(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, lpOptions(nil))
	c := lpOpen(t, ts, "user=bin&vsn=2.0.0")
	c.join("room:bin", "1")
	// A base64 line is a binary frame: echo replies with its bytes, which
	// happen to be a JSON object.
	line := base64.StdEncoding.EncodeToString(binaryPush("1", "2", "room:bin", "echo", []byte(`{"raw":"bytes"}`)))
	c.send(line, `["1","3","room:bin","echo",{"text":true}]`)
	c.expect(
		`["1","2","room:bin","phx_reply",{"status":"ok","response":{"raw":"bytes"}}]`,
		`["1","3","room:bin","phx_reply",{"status":"ok","response":{"text":true}}]`)

	// Binary pushes, replies and broadcasts cannot travel over long-poll:
	// they are dropped, and the session carries on.
	c.send(base64.StdEncoding.EncodeToString(binaryPush("1", "4", "room:bin", "bin", []byte{1, 2, 0xff})))
	if err := ts.Broadcast("room:bin", "bin_bcast", phx.Binary{9, 9}); err != nil {
		t.Fatal(err)
	}
	if err := ts.Broadcast("room:bin", "text_bcast", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	c.send(`["1","5","room:bin","echo",{}]`)
	c.expect(`[null,null,"room:bin","text_bcast",{"n":1}]`, `["1","5","room:bin","phx_reply",{"status":"ok","response":{}}]`)
	if rep := c.get(); rep.Status != 204 {
		t.Fatalf("got %s, want nothing more", rep.raw)
	}
}

func TestLongPollLegacyAndContentTypes(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, lpOptions(nil))
	c := lpOpen(t, ts, "user=legacy&vsn=2.0.0")
	c.join("room:l", "1")
	// Legacy clients (phoenix.js <= 1.6): one message, application/json.
	for i, ct := range []string{"application/json", "application/json; charset=UTF-8", "text/plain", ""} {
		ref := fmt.Sprint(10 + i)
		if rep := c.post(ct, `["1","`+ref+`","room:l","echo",{"ct":"`+ct+`"}]`); rep.Status != 200 {
			t.Fatalf("%q: %s", ct, rep.raw)
		}
		c.expect(`["1","` + ref + `","room:l","phx_reply",{"status":"ok","response":{"ct":"` + ct + `"}}]`)
	}
	// ndjson with parameters is still ndjson.
	for _, ct := range []string{"application/x-ndjson; charset=UTF-8", "Application/X-NDJSON"} {
		if rep := c.post(ct, strings.Join(echoLines(20, 2), "\n")); rep.Status != 200 {
			t.Fatalf("%q: %s", ct, rep.raw)
		}
		got := c.recv(2)
		if !strings.Contains(got[0], `"20"`) || !strings.Contains(got[1], `"21"`) {
			t.Fatalf("%q: %q", ct, got)
		}
	}
}

func TestLongPollV1Serializer(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, lpOptions(nil))
	c := lpOpen(t, ts, "user=v1") // no vsn: V1 objects
	if rep := c.post("application/json", `{"topic":"room:v1","event":"phx_join","payload":{},"ref":"1"}`); rep.Status != 200 {
		t.Fatal(rep.raw)
	}
	c.expect(`{"topic":"room:v1","event":"phx_reply","payload":{"status":"ok","response":{"topic":"room:v1","user":"v1"}},"ref":"1"}`)
	// V1 objects in an ndjson batch are text frames too.
	c.send(`{"topic":"room:v1","event":"echo","payload":{"a":1},"ref":"2"}`, `{"topic":"room:v1","event":"echo","payload":{"b":2},"ref":"3"}`)
	c.expect(
		`{"topic":"room:v1","event":"phx_reply","payload":{"status":"ok","response":{"a":1}},"ref":"2"}`,
		`{"topic":"room:v1","event":"phx_reply","payload":{"status":"ok","response":{"b":2}},"ref":"3"}`)
}

func TestLongPollBadTokens(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, lpOptions(nil))
	other, _ := newRoomServer(t, lpOptions(nil)) // another random secret
	secret := bytes.Repeat([]byte{7}, 32)
	shared1, _ := newRoomServer(t, lpOptions(&phx.Options{LongPoll: phx.LongPollOptions{Secret: secret}}))
	shared2, _ := newRoomServer(t, lpOptions(&phx.Options{LongPoll: phx.LongPollOptions{Secret: secret}}))

	good := lpOpen(t, ts, "user=t&vsn=2.0.0")
	foreign := lpOpen(t, other, "user=t&vsn=2.0.0")
	sibling := lpOpen(t, shared1, "user=t&vsn=2.0.0")
	flipped := []byte(good.token)
	flipped[len(flipped)/2] ^= 1
	for name, tc := range map[string]struct {
		ts    *testServer
		token string
	}{
		"missing":                 {ts, ""},
		"garbage":                 {ts, "abc"},
		"flipped byte":            {ts, string(flipped)},
		"other secret":            {ts, foreign.token},
		"same secret, other node": {shared2, sibling.token},
	} {
		c := &lpClient{t: t, ts: tc.ts, query: "user=t&vsn=2.0.0", token: tc.token}
		if rep := c.post("application/x-ndjson", `[null,"1","phoenix","heartbeat",{}]`); rep.raw != `{"status":410}` {
			t.Errorf("POST with %s token: %s, want {\"status\":410}", name, rep.raw)
		}
	}
	if n, m := ts.Stats().Connections, shared2.Stats().Connections; n != 1 || m != 0 {
		t.Errorf("%d and %d sessions, want 1 and 0: a POST never opens one", n, m)
	}
	// The same token sent to the server sharing the secret: a GET opens a
	// new session there (the token's session lives elsewhere).
	c := &lpClient{t: t, ts: shared2, query: "user=t&vsn=2.0.0", token: sibling.token}
	c.expectGone()
	good.send(`[null,"1","phoenix","heartbeat",{}]`)
	good.expect(`[null,"1","phoenix","phx_reply",{"status":"ok","response":{}}]`)
}

func TestLongPollStaleSessionOpensNewOne(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var params []url.Values
	ts, rec := newRoomServer(t, lpOptions(&phx.Options{
		LongPoll: phx.LongPollOptions{IdleTimeout: 100 * time.Millisecond},
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			mu.Lock()
			params = append(params, info.Params)
			mu.Unlock()
			return phx.Assigns{"user": "u"}, nil
		},
	}))
	// The app passes a "token" param of its own, which comes first.
	c := lpOpen(t, ts, "token=app-token&vsn=2.0.0")
	c.join("room:stale", "1")
	if got := rec.wait(t); got != "room:stale:closed" {
		t.Fatalf("Terminate reason %q, want closed by the idle timeout", got)
	}
	old := c.token
	rep := c.get() // ?token=app-token&vsn=2.0.0&token=<old>
	if rep.Status != 410 || rep.token() == "" || rep.token() == old {
		t.Fatalf("GET of an expired session: %s, want status 410 and a new token", rep.raw)
	}
	mu.Lock()
	last := params[len(params)-1]
	mu.Unlock()
	if got := last["token"]; len(got) != 1 || got[0] != "app-token" {
		t.Errorf("Connect params token = %q, want only the app's [app-token]", got)
	}
	// A garbage token is not ours: it stays among the params.
	c2 := &lpClient{t: t, ts: ts, query: "vsn=2.0.0", token: "not-a-session"}
	c2.expectGone()
	mu.Lock()
	last = params[len(params)-1]
	mu.Unlock()
	if got := last["token"]; len(got) != 1 || got[0] != "not-a-session" {
		t.Errorf("Connect params token = %q, want [not-a-session]", got)
	}
}

func TestLongPollTokenPrecedence(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, lpOptions(nil))
	a := lpOpen(t, ts, "user=a&vsn=2.0.0")
	b := lpOpen(t, ts, "user=b&vsn=2.0.0")
	hb := `[null,"1","phoenix","heartbeat",{}]`

	// Header beats query: the heartbeat reaches a, not b.
	rep := lpDo(t, ts, "POST", lpURL(ts)+"?vsn=2.0.0&token="+b.token,
		map[string]string{"Content-Type": "application/x-ndjson", "X-Phoenix-Longpoll-Token": a.token}, hb)
	if rep.Status != 200 {
		t.Fatal(rep.raw)
	}
	a.expect(`[null,"1","phoenix","phx_reply",{"status":"ok","response":{}}]`)
	if rep := b.get(); rep.Status != 204 {
		t.Fatalf("b got %s", rep.raw)
	}
	// Header on GET too.
	rep = lpDo(t, ts, "GET", lpURL(ts)+"?vsn=2.0.0&token="+b.token, map[string]string{"X-Phoenix-Longpoll-Token": a.token}, "")
	if rep.Status != 204 || rep.token() != a.token {
		t.Fatalf("GET with header token: %s, want a's session", rep.raw)
	}
	// In the query the last token wins.
	rep = lpDo(t, ts, "POST", lpURL(ts)+"?token=app&token="+b.token+"&vsn=2.0.0&token="+a.token,
		map[string]string{"Content-Type": "application/x-ndjson"}, strings.Replace(hb, `"1"`, `"2"`, 1))
	if rep.Status != 200 {
		t.Fatal(rep.raw)
	}
	a.expect(`[null,"2","phoenix","phx_reply",{"status":"ok","response":{}}]`)
	rep = lpDo(t, ts, "POST", lpURL(ts)+"?token="+a.token+"&token=app",
		map[string]string{"Content-Type": "application/x-ndjson"}, hb)
	if rep.Status != 410 {
		t.Fatalf("POST whose last token is not a session: %s, want 410", rep.raw)
	}
}

func TestLongPollCORSAndMethods(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, lpOptions(nil))
	r := lpDoRaw(t, ts, "OPTIONS", lpURL(ts)+"?vsn=2.0.0", map[string]string{
		"Origin":                         ts.http.URL,
		"Access-Control-Request-Method":  "POST",
		"Access-Control-Request-Headers": "content-type, x-phoenix-longpoll-token",
	}, "")
	if r.StatusCode != 200 {
		t.Fatalf("preflight: HTTP %d", r.StatusCode)
	}
	for k, want := range map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Headers": "content-type, x-phoenix-longpoll-token",
		"Access-Control-Allow-Methods": "get, post, options",
		"Access-Control-Max-Age":       "3600",
		"Cache-Control":                "no-store",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("preflight %s: %q, want %q", k, got, want)
		}
	}
	for _, m := range []string{"PUT", "DELETE", "PATCH"} {
		if r := lpDoRaw(t, ts, m, lpURL(ts), nil, ""); r.StatusCode != 400 {
			t.Errorf("%s: HTTP %d, want 400", m, r.StatusCode)
		}
	}
}

func TestLongPollOriginRefused(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, lpOptions(&phx.Options{AllowedOrigins: []string{"https://good.example"}}))
	evil := map[string]string{"Origin": "https://evil.example"}
	if rep := lpDo(t, ts, "GET", lpURL(ts)+"?user=o&vsn=2.0.0", evil, ""); rep.raw != `{"status":403}` {
		t.Fatalf("GET from a refused origin: %s, want {\"status\":403}", rep.raw)
	}
	rep := lpDo(t, ts, "GET", lpURL(ts)+"?user=o&vsn=2.0.0", map[string]string{"Origin": "https://good.example"}, "")
	if rep.Status != 410 {
		t.Fatalf("GET from an allowed origin: %s", rep.raw)
	}
	evil["Content-Type"] = "application/x-ndjson"
	if rep := lpDo(t, ts, "POST", lpURL(ts)+"?token="+rep.token(), evil, `[null,"1","phoenix","heartbeat",{}]`); rep.raw != `{"status":403}` {
		t.Fatalf("POST from a refused origin: %s", rep.raw)
	}
	if n := ts.Stats().Connections; n != 1 {
		t.Fatalf("%d sessions, want 1", n)
	}
}

type lpStatusErr int

func (e lpStatusErr) Error() string   { return "refused" }
func (e lpStatusErr) StatusCode() int { return int(e) }

func TestLongPollConnectRefused(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, lpOptions(&phx.Options{
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			switch info.Params.Get("user") {
			case "bad":
				return nil, errors.New("no")
			case "limited":
				return nil, lpStatusErr(429)
			case "panic":
				panic("connect panic")
			}
			return nil, nil
		},
	}))
	for query, want := range map[string]string{
		"user=bad&vsn=2.0.0":     `{"status":403}`,
		"user=limited&vsn=2.0.0": `{"status":403}`, // the client knows no other refusal
		"user=panic&vsn=2.0.0":   `{"status":500}`,
		"user=ok&vsn=3.0.0":      `{"status":403}`,
		"user=ok&vsn=":           `{"status":403}`,
	} {
		if rep := lpDo(t, ts, "GET", lpURL(ts)+"?"+query, nil, ""); rep.raw != want {
			t.Errorf("GET ?%s: %s, want %s", query, rep.raw, want)
		}
	}
	if n := ts.Stats().Connections; n != 0 {
		t.Fatalf("%d sessions after refusals", n)
	}
}

func TestLongPollMalformedLineClosesSession(t *testing.T) {
	t.Parallel()
	ts, rec := newRoomServer(t, lpOptions(nil))
	good := lpOpen(t, ts, "user=good&vsn=2.0.0")
	good.join("room:m", "1")
	for i, bad := range []string{"not base64!", `[1,2,3]`, `["1","2","room:m"`, base64.StdEncoding.EncodeToString([]byte{1, 0, 0, 0, 0})} {
		c := lpOpen(t, ts, fmt.Sprintf("user=bad%d&vsn=2.0.0", i))
		c.join("room:m", "1")
		// The lines before the bad one are dispatched; the rest are not.
		body := `["1","2","room:m","echo",{}]` + "\n" + bad + "\n" + `["1","3","room:m","echo",{}]`
		if rep := c.post("application/x-ndjson", body); rep.raw != `{"status":410}` {
			t.Fatalf("%q: POST %s, want {\"status\":410}", bad, rep.raw)
		}
		if got := rec.wait(t); got != "room:m:closed" {
			t.Fatalf("%q: Terminate %q", bad, got)
		}
		c.expectGone()
	}
	if got := ts.Stats().MalformedFrames; got != 4 {
		t.Errorf("MalformedFrames = %d, want 4", got)
	}
	good.send(`["1","2","room:m","echo",{}]`)
	good.expect(`["1","2","room:m","phx_reply",{"status":"ok","response":{}}]`)
}

func TestLongPollBodyTooLarge(t *testing.T) {
	t.Parallel()
	ts, rec := newRoomServer(t, lpOptions(&phx.Options{LongPoll: phx.LongPollOptions{MaxBody: 1024}}))
	c := lpOpen(t, ts, "user=big&vsn=2.0.0")
	c.join("room:big", "1")
	r := lpDoRaw(t, ts, "POST", c.url(), map[string]string{"Content-Type": "application/x-ndjson"},
		`["1","2","room:big","echo",{"pad":"`+strings.Repeat("x", 2000)+`"}]`)
	if r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("HTTP %d, want 413", r.StatusCode)
	}
	if got := rec.wait(t); got != "room:big:closed" {
		t.Fatalf("Terminate %q", got)
	}
	c.expectGone()
}

// MaxMessageSize bounds each frame of a POST, as it bounds WebSocket
// messages: a larger one (text or binary) closes the session with 413.
func TestLongPollFrameTooLarge(t *testing.T) {
	t.Parallel()
	ts, rec := newRoomServer(t, lpOptions(&phx.Options{MaxMessageSize: 1024}))
	pad := strings.Repeat("x", 2000)
	for name, line := range map[string]string{
		"text":   `["1","2","room:big","echo",{"pad":"` + pad + `"}]`,
		"binary": base64.StdEncoding.EncodeToString(binaryPush("1", "2", "room:big", "echo", []byte(pad))),
		"legacy": `["1","2","room:big","echo",{"pad":"` + pad + `"}]`,
	} {
		c := lpOpen(t, ts, "user=big&vsn=2.0.0")
		c.join("room:big", "1")
		ct := "application/x-ndjson"
		if name == "legacy" {
			ct = "application/json"
		}
		// The small frame before the big one is dispatched.
		body := line
		if name != "legacy" {
			body = `["1","3","room:big","echo",{}]` + "\n" + line
		}
		r := lpDoRaw(t, ts, "POST", c.url(), map[string]string{"Content-Type": ct}, body)
		if r.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("%s: HTTP %d, want 413", name, r.StatusCode)
		}
		if got := rec.wait(t); got != "room:big:closed" {
			t.Fatalf("%s: Terminate %q", name, got)
		}
		c.expectGone()
	}
	c := lpOpen(t, ts, "user=small&vsn=2.0.0")
	c.join("room:small", "1")
	c.send(`["1","2","room:small","echo",{"pad":"` + strings.Repeat("x", 900) + `"}]`)
	if got := c.recv(1)[0]; !strings.Contains(got, `"ok"`) {
		t.Fatalf("frame under the limit: %s", got)
	}
}

func TestLongPollBoundedQueue(t *testing.T) {
	t.Parallel()
	ts, rec := newRoomServer(t, lpOptions(&phx.Options{MaxQueuedMessages: 8}))
	c := lpOpen(t, ts, "user=slow&vsn=2.0.0")
	c.join("room:q", "1")
	// The client stops polling; broadcasts pile up in its bounded queue.
	for i := 0; i < 20; i++ {
		if err := ts.Broadcast("room:q", "flood", map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.wait(t); got != "room:q:closed" {
		t.Fatalf("Terminate %q", got)
	}
	if n := ts.Stats().SlowClientsClosed; n != 1 {
		t.Fatalf("SlowClientsClosed = %d, want 1", n)
	}
	c.expectGone()
}

func TestLongPollIdleExpiry(t *testing.T) {
	t.Parallel()
	// HeartbeatTimeout is far shorter than the idle timeout: it must not
	// apply to long-poll sessions, whose clients send no heartbeats.
	ts, rec := newRoomServer(t, lpOptions(&phx.Options{
		LongPoll:         phx.LongPollOptions{Window: 50 * time.Millisecond, IdleTimeout: 300 * time.Millisecond},
		HeartbeatTimeout: 60 * time.Millisecond,
	}))
	idle := lpOpen(t, ts, "user=idle&vsn=2.0.0")
	idle.join("room:idle", "1")
	live := lpOpen(t, ts, "user=live&vsn=2.0.0")
	live.join("room:live", "1")
	start := time.Now()
	// live keeps polling (and sends nothing) while idle stops.
	for len(rec.ch) == 0 && time.Since(start) < 3*time.Second {
		if rep := live.get(); rep.Status != 204 {
			t.Fatalf("live poll: %s", rep.raw)
		}
	}
	if got := rec.wait(t); got != "room:idle:closed" {
		t.Fatalf("Terminate %q", got)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("idle session closed after %v, want the 300ms idle timeout", d)
	}
	idle.expectGone()
	// live outlived several idle timeouts' worth of HeartbeatTimeout.
	for time.Since(start) < 700*time.Millisecond {
		if rep := live.get(); rep.Status != 204 {
			t.Fatalf("live poll: %s", rep.raw)
		}
	}
	live.send(`["1","2","room:live","echo",{}]`)
	live.expect(`["1","2","room:live","phx_reply",{"status":"ok","response":{}}]`)
}

// lpPollAsync starts a GET of c and returns its reply on a channel.
func lpPollAsync(c *lpClient) <-chan lpReply {
	ch := make(chan lpReply, 1)
	go func() {
		resp, err := c.ts.http.Client().Get(c.url())
		if err != nil {
			ch <- lpReply{raw: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var rep lpReply
		_ = json.Unmarshal(b, &rep)
		rep.raw = string(b)
		ch <- rep
	}()
	return ch
}

func waitReply(t *testing.T, ch <-chan lpReply, within time.Duration) lpReply {
	t.Helper()
	select {
	case rep := <-ch:
		return rep
	case <-time.After(within):
		t.Fatalf("no poll answer within %v", within)
		return lpReply{}
	}
}

func TestLongPollOnlyNewestPollIsServed(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, lpOptions(&phx.Options{LongPoll: phx.LongPollOptions{Window: 5 * time.Second}}))
	c := lpOpen(t, ts, "user=two&vsn=2.0.0")
	first := lpPollAsync(c)
	time.Sleep(50 * time.Millisecond) // let the first poll be held
	second := lpPollAsync(c)
	if rep := waitReply(t, first, 2*time.Second); rep.Status != 204 {
		t.Fatalf("superseded poll: %s, want 204", rep.raw)
	}
	c.send(`[null,"1","phoenix","heartbeat",{}]`)
	rep := waitReply(t, second, 2*time.Second)
	if rep.Status != 200 || len(rep.messages()) != 1 {
		t.Fatalf("newest poll: %s, want the heartbeat reply", rep.raw)
	}
}

func TestLongPollDisconnectByID(t *testing.T) {
	t.Parallel()
	ts, rec := newRoomServer(t, lpOptions(&phx.Options{LongPoll: phx.LongPollOptions{Window: 5 * time.Second}}))
	zed := lpOpen(t, ts, "user=zed&vsn=2.0.0")
	zed.join("room:d", "1")
	anon := lpOpen(t, ts, "vsn=2.0.0")
	anon.join("room:d", "1")
	held := lpPollAsync(zed)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := ts.Disconnect("users_socket:zed"); err != nil {
		t.Fatal(err)
	}
	// The held poll answers 410 at once: the client reconnects and rejoins.
	rep := waitReply(t, held, 2*time.Second)
	if rep.Status != 410 {
		t.Fatalf("held poll of a disconnected session: %s, want 410", rep.raw)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("held poll answered %v after Disconnect", d)
	}
	if got := rec.wait(t); got != "room:d:closed" {
		t.Fatalf("Terminate %q", got)
	}
	zed.expectGone()
	anon.send(`["1","2","room:d","echo",{}]`)
	anon.expect(`["1","2","room:d","phx_reply",{"status":"ok","response":{}}]`)
}

func TestLongPollShutdown(t *testing.T) {
	t.Parallel()
	ts, rec := newRoomServer(t, lpOptions(&phx.Options{LongPoll: phx.LongPollOptions{Window: 5 * time.Second}}))
	const n = 5
	var held []<-chan lpReply
	for i := 0; i < n; i++ {
		c := lpOpen(t, ts, fmt.Sprintf("user=s%d&vsn=2.0.0", i))
		c.join("room:s", "1")
		held = append(held, lpPollAsync(c))
	}
	ws := dial(t, ts.url, "user=w&vsn=2.0.0", nil)
	ws.join("room:s", "1", map[string]any{})
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(rec.ch); got != n+1 {
		t.Fatalf("%d Terminate calls when Shutdown returned, want %d", got, n+1)
	}
	for i := 0; i < n+1; i++ {
		if got := rec.wait(t); got != "room:s:shutdown" {
			t.Fatalf("Terminate %q", got)
		}
	}
	for _, h := range held {
		if rep := waitReply(t, h, 2*time.Second); rep.Status != 410 {
			t.Fatalf("held poll at Shutdown: %s, want 410", rep.raw)
		}
	}
	// Draining: no new session.
	if rep := lpDo(t, ts, "GET", lpURL(ts)+"?user=late&vsn=2.0.0", nil, ""); rep.raw != `{"status":500}` {
		t.Fatalf("GET while draining: %s, want {\"status\":500}", rep.raw)
	}
	if n := ts.Stats().Connections; n != 0 {
		t.Fatalf("%d connections after Shutdown", n)
	}
}

// blockingChannel's ChannelFunc blocks until release is closed, which
// holds up the dispatch of the POST that joins it.
func TestLongPollDispatchTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	ts, _ := newRoomServer(t, lpOptions(&phx.Options{LongPoll: phx.LongPollOptions{Window: 100 * time.Millisecond}}))
	ts.Channel("block:*", func() phx.Channel {
		<-release
		return &room{}
	})
	t.Cleanup(unblock)
	c := lpOpen(t, ts, "user=blk&vsn=2.0.0")
	first := make(chan lpReply, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", c.url(), strings.NewReader(`["1","1","block:1","phx_join",{}]`))
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := ts.http.Client().Do(req)
		if err != nil {
			first <- lpReply{raw: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		first <- lpReply{raw: string(b)}
	}()
	time.Sleep(50 * time.Millisecond) // let the first POST start dispatching
	if rep := c.post("application/x-ndjson", `[null,"2","phoenix","heartbeat",{}]`); rep.raw != `{"status":408}` {
		t.Fatalf("POST behind a stuck dispatch: %s, want {\"status\":408}", rep.raw)
	}
	unblock()
	if rep := waitReply(t, first, 2*time.Second); rep.raw != `{"status":200}` {
		t.Fatalf("first POST: %s", rep.raw)
	}
	c.expect(`["1","1","block:1","phx_reply",{"status":"ok","response":{"topic":"block:1","user":"blk"}}]`)
}

func TestLongPollTransportSwitches(t *testing.T) {
	t.Parallel()
	noWS, _ := newRoomServer(t, lpOptions(&phx.Options{DisableWebSocket: true}))
	_, err := tryDial(t, noWS.url, "", nil)
	var de *dialError
	if !errorsAs(err, &de) || de.status != 404 {
		t.Fatalf("WebSocket with DisableWebSocket: %v, want HTTP 404", err)
	}
	c := lpOpen(t, noWS, "user=x&vsn=2.0.0")
	c.join("room:x", "1")

	noLP, _ := newRoomServer(t, lpOptions(&phx.Options{LongPoll: phx.LongPollOptions{Disable: true}}))
	if r := lpDoRaw(t, noLP, "GET", lpURL(noLP)+"?vsn=2.0.0", nil, ""); r.StatusCode != 404 {
		t.Fatalf("long-poll with LongPoll.Disable: HTTP %d, want 404", r.StatusCode)
	}
	dial(t, noLP.url, "", nil)
}

func TestLongPollSecretTooShortPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("NewServer accepted a 16-byte LongPoll.Secret")
		}
	}()
	phx.NewServer(&phx.Options{Logger: quietLogger(), LongPoll: phx.LongPollOptions{Secret: make([]byte, 16)}})
}

// An http.Server whose ReadTimeout and WriteTimeout are shorter than the
// poll window still answers polls; a POST body trickling in is cut off
// without harming the session.
func TestLongPollServerTimeouts(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	srv := phx.NewServer(&phx.Options{
		Logger:       quietLogger(),
		LongPoll:     phx.LongPollOptions{Window: 300 * time.Millisecond},
		WriteTimeout: 200 * time.Millisecond,
	})
	srv.Channel("room:*", func() phx.Channel { return &room{rec: rec} })
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	hs := httptest.NewUnstartedServer(mux)
	hs.Config.ReadTimeout = 100 * time.Millisecond
	hs.Config.WriteTimeout = 100 * time.Millisecond
	hs.Start()
	ts := &testServer{Server: srv, http: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
	})
	c := lpOpen(t, ts, "user=slowhttp&vsn=2.0.0")
	start := time.Now()
	if rep := c.get(); rep.Status != 204 {
		t.Fatalf("poll: %s, want 204", rep.raw)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("poll answered after %v, before the window", d)
	}
	c.join("room:slow", "1")

	// A body that never finishes: the request fails, the session stays.
	conn, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	u, _ := url.Parse(c.url())
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-ndjson\r\nContent-Length: 100\r\n\r\n[\"1\",", u.RequestURI(), u.Host)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(status, " 400 ") {
		t.Fatalf("trickled POST: %q, %v; want HTTP 400", status, err)
	}
	c.send(`["1","2","room:slow","echo",{}]`)
	c.expect(`["1","2","room:slow","phx_reply",{"status":"ok","response":{}}]`)
}

// FuzzLongPollBody posts arbitrary ndjson bodies to a joined session: the
// answer is always {"status":200} or {"status":410} (the session closed on
// a malformed line), and the server survives.
func FuzzLongPollBody(f *testing.F) {
	for _, seed := range []string{
		`["1","2","room:f","echo",{}]`,
		"[\"1\",\"2\",\"room:f\",\"echo\",{}]\r\n[\"1\",\"3\",\"room:f\",\"echo\",{}]\n",
		base64.StdEncoding.EncodeToString(binaryPush("1", "2", "room:f", "echo", []byte(`{"a":1}`))),
		base64.StdEncoding.EncodeToString([]byte{0, 200, 0, 0, 0}),
		"\n\n\r\n",
		"AAAA",
		"====",
		`{"topic":"room:f","event":"echo","payload":{},"ref":"1"}`,
		`[null,null,"phoenix","heartbeat",{}]` + strings.Repeat("\n[]", 120),
		"[\"1\",\"2\",\"room:f\",\"ech\xff\",{}]",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		ts, _ := newRoomServer(t, lpOptions(&phx.Options{LongPoll: phx.LongPollOptions{Window: 20 * time.Millisecond}}))
		c := lpOpen(t, ts, "user=fuzz&vsn=2.0.0")
		c.join("room:f", "1")
		rep := c.post("application/x-ndjson", body)
		if rep.raw != `{"status":200}` && rep.raw != `{"status":410}` {
			t.Fatalf("POST %q: %s", body, rep.raw)
		}
		if rep.Status == 410 {
			c.expectGone()
			return
		}
		// The session still works: its heartbeat reply arrives after
		// whatever the body caused.
		c.send(`[null,"hb","phoenix","heartbeat",{}]`)
		deadline := time.Now().Add(5 * time.Second)
		for {
			rep := c.get()
			if rep.Status != 200 && rep.Status != 204 {
				t.Fatalf("poll: %s", rep.raw)
			}
			if strings.Contains(rep.raw, `\"hb\"`) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("no heartbeat reply")
			}
		}
	})
}
