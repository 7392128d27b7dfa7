package phx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
)

// TestBadInputCorpus runs most WebSocket rows of docs/protocol.md §8 against
// one server while a control client, joined to a topic that gets a broadcast
// every 20ms, must receive every one of them, in order. Each case checks
// the offending connection's documented reaction; case names start with the
// row's ID.
func TestBadInputCorpus(t *testing.T) {
	ts, _ := newRoomServer(t, &phx.Options{
		MaxMessageSize:    64 << 10,
		MaxInboundRate:    50,
		InboundBurst:      50,
		MaxRateLimited:    100,
		MaxProtocolErrors: 50,
		InboundLimits:     []phx.InboundLimit{{Topic: "room:limited", Event: "echo", Rate: 0.001, Burst: 1}},
		AllowedOrigins:    []string{"https://good.example"},
	})
	baseline := runtime.NumGoroutine()

	// The control client and its broadcaster.
	control := dial(t, ts.url, "user=control&vsn=2.0.0", nil)
	control.join("room:control", "1", map[string]any{})
	stop := make(chan struct{})
	var sent int
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				sent++
				ts.Broadcast("room:control", "tick", map[string]int{"seq": sent})
			}
		}
	}()

	handshake := func(query string, hdr http.Header, proto []string) int {
		t.Helper()
		c, err := tryDial(t, ts.url, query, &websocket.DialOptions{HTTPHeader: hdr, Subprotocols: proto})
		if err == nil {
			c.conn.CloseNow()
			return 101
		}
		var de *dialError
		if errorsAs(err, &de) {
			return de.status
		}
		t.Fatalf("dial: %v", err)
		return 0
	}
	closeCode := func(send func(c *wsClient)) websocket.StatusCode {
		t.Helper()
		c := dial(t, ts.url, "user=offender&vsn=2.0.0", nil)
		send(c)
		return c.expectClose()
	}
	text := func(s string) func(*wsClient) { return func(c *wsClient) { c.sendRaw(s) } }
	binary := func(b []byte) func(*wsClient) { return func(c *wsClient) { c.sendBinary(b) } }
	origin := func(o string) http.Header { return http.Header{"Origin": {o}} }

	handshakes := []struct {
		row   string
		query string
		hdr   http.Header
		proto []string
		want  int
	}{
		{"H3 origin not allowed", "vsn=2.0.0", origin("https://evil.example"), nil, 403},
		{"H3 origin null", "vsn=2.0.0", origin("null"), nil, 403},
		{"H3 origin file://", "vsn=2.0.0", origin("file://"), nil, 403},
		{"H4 vsn 123.1.1", "vsn=123.1.1", nil, nil, 403},
		{"H4 vsn abc", "vsn=abc", nil, nil, 403},
		{"H4 vsn missing is V1", "user=x", nil, nil, 101},
		{"H5 bad base64 token", "vsn=2.0.0", nil, []string{"phoenix", "base64url.bearer.phx.%%%"}, 403},
		{"H5 100 KB token", "vsn=2.0.0", nil, []string{"phoenix", "base64url.bearer.phx." + strings.Repeat("QUFB", 25000)}, 403},
		{"H6 connect refused", "user=bad&vsn=2.0.0", nil, nil, 403},
	}
	for _, h := range handshakes {
		if got := handshake(h.query, h.hdr, h.proto); got != h.want {
			t.Errorf("row %s: HTTP %d, want %d", h.row, got, h.want)
		}
	}
	// H1 and H9: not an upgrade, or a broken one.
	base := strings.Replace(ts.url, "ws://", "http://", 1) + "/websocket?vsn=2.0.0"
	for _, tc := range []struct {
		row, method string
		hdr         map[string]string
		want        int
	}{
		{"H1 POST", "POST", nil, 400},
		{"H9 GET without upgrade", "GET", nil, 400},
		{"H9 Upgrade without Connection", "GET", map[string]string{"Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, 400},
		{"H9 missing key", "GET", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}, 400},
		{"H9 bad version", "GET", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, 400},
	} {
		req, _ := http.NewRequest(tc.method, base, nil)
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("row %s: HTTP %d, want %d", tc.row, resp.StatusCode, tc.want)
		}
	}

	frames := []struct {
		row  string
		send func(*wsClient)
		want websocket.StatusCode
	}{
		{"F1 invalid UTF-8", text("[null,\"1\",\"ph\xc3\x28\",\"heartbeat\",{}]"), websocket.StatusInvalidFramePayloadData},
		{"F5 64 KiB + 1", text(`[null,"1","phoenix","heartbeat",{"p":"` + strings.Repeat("x", 64<<10) + `"}]`), websocket.StatusMessageTooBig},
		{"F4 binary length past the end", binary([]byte{0, 9, 1, 1, 1, 'a'}), websocket.StatusInvalidFramePayloadData},
		{"F4 binary unknown kind", binary([]byte{7, 0, 0, 0, 0}), websocket.StatusInvalidFramePayloadData},
		{"F4 empty binary frame", binary([]byte{}), websocket.StatusInvalidFramePayloadData},
		{"F2 not json", text("not json"), websocket.StatusInvalidFramePayloadData},
		{"F2 [1,2,3]", text("[1,2,3]"), websocket.StatusInvalidFramePayloadData},
		{"F2 []", text("[]"), websocket.StatusInvalidFramePayloadData},
		{"F2 {}", text("{}"), websocket.StatusInvalidFramePayloadData},
		{"F2 null", text("null"), websocket.StatusInvalidFramePayloadData},
		{"F2 trailing garbage", text(`[null,"1","phoenix","heartbeat",{}]]`), websocket.StatusInvalidFramePayloadData},
		{"F3 topic 42", text(`[null,"1",42,"x",{}]`), websocket.StatusInvalidFramePayloadData},
		{"F3 topic null", text(`[null,"1",null,"x",{}]`), websocket.StatusInvalidFramePayloadData},
		{"F3 topic {}", text(`[null,"1",{},"x",{}]`), websocket.StatusInvalidFramePayloadData},
		{"F3 topic 300 bytes", text(`[null,"1","` + strings.Repeat("t", 300) + `","x",{}]`), websocket.StatusInvalidFramePayloadData},
		{"F3 event not a string", text(`[null,"1","room:1",7,{}]`), websocket.StatusInvalidFramePayloadData},
		{"F7 flood", func(c *wsClient) {
			for i := 0; i < 300; i++ { // 50 in the burst, 100 refused, then closed
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				err := c.conn.Write(ctx, websocket.MessageText, []byte(`[null,"1","phoenix","heartbeat",{}]`))
				cancel()
				if err != nil {
					return
				}
			}
		}, websocket.StatusPolicyViolation},
	}
	for _, f := range frames {
		if got := closeCode(f.send); got != f.want {
			t.Errorf("row %s: close code %d, want %d", f.row, got, f.want)
		}
	}

	// Protocol rows: replies, and the connection stays up.
	c := dial(t, ts.url, "user=proto&vsn=2.0.0", nil)
	c.send("1", "1", "room:nojoin", "echo", map[string]any{})
	c.expect(`[null,"1","room:nojoin","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`) // P1
	c.send(nil, "2", "other", "heartbeat", map[string]any{})
	c.expect(`[null,"2","other","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`) // P7
	c.send("3", "3", "room:p", "phx_join", "x")
	c.expect(`["3","3","room:p","phx_reply",{"status":"error","response":{"reason":"invalid join payload"}}]`) // P3
	c.send("4", "4", "room:p", "phx_join", []int{1})
	c.expect(`["4","4","room:p","phx_reply",{"status":"error","response":{"reason":"invalid join payload"}}]`)
	c.join("room:p", "5", map[string]any{})
	c.send("1", "6", "room:p", "echo", map[string]any{}) // P5: stale join_ref: ignored
	c.send("9", "7", "room:q", "phx_leave", map[string]any{})
	c.expect(`["9","7","room:q","phx_reply",{"status":"ok","response":{}}]`) // P6: leave not joined
	c.send(nil, "8", "phoenix", "heartbeat", map[string]any{})
	c.expect(`[null,"8","phoenix","phx_reply",{"status":"ok","response":{}}]`) // §5.1 heartbeat
	c.join("room:limited", "9", map[string]any{})
	c.send("9", "10", "room:limited", "echo", map[string]any{})
	c.expect(`["9","10","room:limited","phx_reply",{"status":"ok","response":{}}]`)
	c.send("9", "11", "room:limited", "echo", map[string]any{}) // P13: over the route's InboundLimit
	c.expect(`["9","11","room:limited","phx_reply",{"status":"error","response":{"reason":"rate limited"}}]`)
	c.send("9", "12", "room:limited", "fail", map[string]any{}) // other events are not limited
	c.expect(`["9","12","room:limited","phx_reply",{"status":"error","response":{"reason":"nope"}}]`)

	// P12: a burst over MaxInboundRate: every message is answered, those
	// over the limit with a refusal, and the connection stays open.
	eager := dial(t, ts.url, "user=eager&vsn=2.0.0", nil)
	eager.join("room:eager", "1", map[string]any{})
	for i := 0; i < 80; i++ {
		eager.send("1", fmt.Sprint(i), "room:eager", "echo", map[string]any{})
	}
	limited := 0
	for i := 0; i < 80; i++ {
		switch got := eager.recv(); {
		case strings.HasSuffix(got, `"phx_reply",{"status":"error","response":{"reason":"rate limited"}}]`):
			limited++
		case !strings.HasSuffix(got, `"phx_reply",{"status":"ok","response":{}}]`):
			t.Fatalf("row P12: got %s", got)
		}
	}
	if limited == 0 {
		t.Errorf("row P12: 80 messages at once within a burst of 50, none refused")
	}

	// P4: 101 joins on one connection, in its own connection (the
	// rate limit of this server is low, so pace the joins).
	many := dial(t, ts.url, "user=many&vsn=2.0.0", nil)
	for i := 1; i <= 101; i++ {
		ref := fmt.Sprint(i)
		many.send(ref, ref, fmt.Sprintf("room:m%d", i), "phx_join", map[string]any{})
		got := many.recv()
		if i <= 100 && !strings.Contains(got, `"status":"ok"`) {
			t.Fatalf("join %d: %s", i, got)
		}
		if i == 101 && got != `["101","101","room:m101","phx_reply",{"status":"error","response":{"reason":"too many channels joined"}}]` {
			t.Fatalf("join 101: %s", got)
		}
		if i%40 == 0 {
			time.Sleep(time.Second) // stay under 50 messages/s
		}
	}

	// The control client lost nothing.
	close(stop)
	pubWG.Wait()
	for want := 1; want <= sent; want++ {
		var f []json.RawMessage
		if err := json.Unmarshal([]byte(control.recv()), &f); err != nil {
			t.Fatal(err)
		}
		var p struct{ Seq int }
		json.Unmarshal(f[4], &p)
		if p.Seq != want {
			t.Fatalf("control client got tick %d, want %d", p.Seq, want)
		}
	}
	t.Logf("control client received all %d broadcasts in order", sent)
	control.conn.CloseNow()
	c.conn.CloseNow()
	many.conn.CloseNow()
	eager.conn.CloseNow()
	waitGoroutines(t, baseline)
}

// waitGoroutines waits until the goroutine count is back to at most
// baseline + slack.
func waitGoroutines(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline+4 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, baseline %d:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
