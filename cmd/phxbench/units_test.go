package main

import (
	"context"
	"math"
	"math/rand"
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestHistIndexMonotonicAndBounded(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 2, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, math.MaxUint64 >> 1, math.MaxUint64} {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d (prev %d, buckets %d)", v, i, prev, histBuckets)
		}
		prev = i
		if v < 1<<50 {
			got := histValue(i)
			if v < histLinear && got != float64(v) {
				t.Fatalf("histValue(histIndex(%d)) = %v, want exact", v, got)
			}
			if rel := math.Abs(got-float64(v)) / math.Max(float64(v), 1); rel > 1.0/64 {
				t.Fatalf("histValue(histIndex(%d)) = %v: error %.3f%%", v, got, rel*100)
			}
		}
	}
	// Every value maps into the bucket whose range holds it.
	for v := uint64(0); v < 100000; v += 7 {
		i := histIndex(v)
		if i+1 < histBuckets && histIndex(v+1) < i {
			t.Fatalf("not monotonic at %d", v)
		}
	}
}

func TestHistQuantilesMatchExact(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var h hist
	var vals []float64
	for i := 0; i < 20000; i++ {
		// Log-normal-ish latencies from 50 µs to seconds.
		us := math.Exp(rng.NormFloat64()*1.5 + 7)
		d := time.Duration(us) * time.Microsecond
		h.record(d)
		vals = append(vals, float64(d/time.Microsecond))
	}
	sort.Float64s(vals)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		want := exactQuantile(vals, q)
		got := h.quantile(q)
		if math.Abs(got-want) > math.Max(want/64, 1) {
			t.Errorf("q%.3f: hist %.1f µs, exact %.1f µs", q, got, want)
		}
	}
	s := h.summary()
	if s.Count != 20000 || s.Max != vals[len(vals)-1]/1000 || s.Min != vals[0]/1000 {
		t.Errorf("summary %+v: count/min/max wrong (exact min %v max %v)", s, vals[0], vals[len(vals)-1])
	}
}

func TestExactQuantileNearestRank(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for q, want := range map[float64]float64{0.5: 5, 0.9: 9, 0.99: 10, 1: 10, 0.1: 1, 0.11: 2, 0: 1} {
		if got := exactQuantile(v, q); got != want {
			t.Errorf("exactQuantile(1..10, %v) = %v, want %v", q, got, want)
		}
	}
	if exactQuantile(nil, 0.5) != 0 {
		t.Error("empty input")
	}
	var h hist
	for _, x := range v {
		h.record(time.Duration(x) * time.Microsecond)
	}
	if h.quantile(0.5) != 5 || h.quantile(0.99) != 10 {
		t.Errorf("small exact values: p50 %v p99 %v", h.quantile(0.5), h.quantile(0.99))
	}
	var empty hist
	if empty.summary().Count != 0 || empty.quantile(0.5) != 0 {
		t.Error("empty hist")
	}
}

func TestParseStatusAndStat(t *testing.T) {
	status := "Name:\tchat\nVmPeak:\t  100 kB\nVmHWM:\t   5000 kB\nVmRSS:\t    4321 kB\nThreads:\t7\n"
	mi, err := parseStatus(strings.NewReader(status))
	if err != nil || mi.RSSKiB != 4321 || mi.HWMKiB != 5000 || mi.Threads != 7 {
		t.Fatalf("parseStatus = %+v, %v", mi, err)
	}
	if _, err := parseStatus(strings.NewReader("Name: x\n")); err == nil {
		t.Error("status without VmRSS accepted")
	}
	stat := "1234 (my (weird) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 100 1000 200"
	if got := parseStatCPU(stat); got != 3 {
		t.Errorf("parseStatCPU = %v, want 3 (250+50 ticks)", got)
	}
	if parseStatCPU("garbage") != 0 {
		t.Error("garbage stat")
	}
}

func TestSocketURLs(t *testing.T) {
	for _, tc := range []struct{ in, tr, want string }{
		{"ws://127.0.0.1:4000/socket", "websocket", "ws://127.0.0.1:4000/socket/websocket"},
		{"ws://127.0.0.1:4000/socket/", "websocket", "ws://127.0.0.1:4000/socket/websocket"},
		{"http://127.0.0.1:4000/socket", "websocket", "ws://127.0.0.1:4000/socket/websocket"},
		{"wss://localhost/socket/websocket", "websocket", "wss://localhost/socket/websocket"},
		{"ws://127.0.0.1:4000/socket", "longpoll", "http://127.0.0.1:4000/socket/longpoll"},
		{"wss://localhost/live/websocket", "longpoll", "https://localhost/live/longpoll"},
		{"ws://[::1]:4000/socket?x=1", "websocket", "ws://[::1]:4000/socket/websocket?x=1"},
	} {
		u, err := socketURLs(tc.in, tc.tr)
		if err != nil || u.String() != tc.want {
			t.Errorf("socketURLs(%q, %s) = %v, %v; want %s", tc.in, tc.tr, u, err, tc.want)
		}
	}
	for _, bad := range []string{"", "127.0.0.1:4000/socket", "ftp://127.0.0.1/socket", "ws:///socket"} {
		if _, err := socketURLs(bad, "websocket"); err == nil {
			t.Errorf("socketURLs(%q) accepted", bad)
		}
	}
	if _, err := socketURLs("ws://127.0.0.1/socket", "carrier-pigeon"); err == nil {
		t.Error("bad transport accepted")
	}
}

func TestConnectURLAndTemplates(t *testing.T) {
	u, _ := socketURLs("ws://127.0.0.1:4000/socket", "websocket")
	vars := clientVars("bench{i}", 7)
	vars["token"] = "a b&c=d"
	got, err := connectURL(u, []string{"token={token}", "user={user}", "room=lobby{i}", "{user}=x"}, vars, "2.0.0")
	want := "ws://127.0.0.1:4000/socket/websocket?token=a+b%26c%3Dd&user=bench7&room=lobby7&bench7=x&vsn=2.0.0"
	if err != nil || got != want {
		t.Errorf("connectURL = %s, %v\nwant %s", got, err, want)
	}
	if _, err := connectURL(u, []string{"novalue"}, vars, "2.0.0"); err == nil {
		t.Error("param without = accepted")
	}
	if got := expand("{user}-{unknown}-{i}-{", map[string]string{"user": "u", "i": "1"}); got != "u-{unknown}-1-{" {
		t.Errorf("expand = %q", got)
	}
	if got := expand("room:{i%100}/{i%0}", map[string]string{"i": "1234"}); got != "room:34/{i%0}" {
		t.Errorf("expand modulo = %q", got)
	}
	if got := expand("room:lobby", nil); got != "room:lobby" {
		t.Errorf("expand without braces = %q", got)
	}
}

func TestCheckLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, h := range []string{"127.0.0.1", "127.0.0.1:4000", "127.9.8.7:1", "[::1]:4000", "::1", "localhost:4000", "[::ffff:127.0.0.1]:80"} {
		if err := checkLoopback(ctx, h); err != nil {
			t.Errorf("checkLoopback(%q) = %v, want allowed", h, err)
		}
	}
	// Literal addresses only: resolving a real name would send a query.
	for _, h := range []string{"10.0.0.1:4000", "192.168.1.1", "8.8.8.8:53", "[2001:db8::1]:80", "0.0.0.0:4000", "[::]:4000", "128.0.0.1", ""} {
		if err := checkLoopback(ctx, h); err == nil {
			t.Errorf("checkLoopback(%q) allowed", h)
		}
	}
	cfg := &config{url: "ws://127.0.0.1:4000/socket", tokenURL: "http://10.1.2.3/api/token?user={user}"}
	if err := cfg.checkTargets(ctx); err == nil || !strings.Contains(err.Error(), "10.1.2.3") {
		t.Errorf("token URL on a private address: %v", err)
	}
	cfg.allowRemote = true
	if err := cfg.checkTargets(ctx); err != nil {
		t.Errorf("-allow-remote: %v", err)
	}
	if !isLoopback(netip.MustParseAddr("127.255.255.255")) || isLoopback(netip.MustParseAddr("::2")) {
		t.Error("isLoopback")
	}
}

func TestSourceAddrs(t *testing.T) {
	if sourceAddrs(1) != nil || sourceAddrs(0) != nil {
		t.Error("one source: kernel's choice expected")
	}
	a := sourceAddrs(300)
	if len(a) != 300 || a[0].String() != "127.0.0.1:0" || a[1].String() != "127.0.0.2:0" || a[255].String() != "127.0.1.0:0" {
		t.Errorf("sourceAddrs: %v %v %v", a[0], a[1], a[255])
	}
	for _, x := range a {
		ip, _ := netip.AddrFromSlice(x.(*net.TCPAddr).IP)
		if !isLoopback(ip) {
			t.Fatalf("%v is not loopback", x)
		}
	}
	for n, want := range map[int]int{1: 1, 20000: 1, 20001: 2, 100000: 5} {
		if got := autoSources(n); got != want {
			t.Errorf("autoSources(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestTokenFromJSON(t *testing.T) {
	for body, want := range map[string]string{`{"token":"abc"}`: "abc", `{"token":42,"x":1}`: "42"} {
		if got, err := tokenFromJSON([]byte(body), "token"); err != nil || got != want {
			t.Errorf("tokenFromJSON(%s) = %q, %v", body, got, err)
		}
	}
	for _, body := range []string{`{"jwt":"x"}`, `not json`, `{"token":{"a":1}}`} {
		if _, err := tokenFromJSON([]byte(body), "token"); err == nil {
			t.Errorf("tokenFromJSON(%s) accepted", body)
		}
	}
}

func TestV2FrameRoundTrip(t *testing.T) {
	for _, m := range []msg{
		{JoinRef: "3", Ref: "3", Topic: "room:lobby", Event: "phx_join", Payload: []byte(`{"token":"x"}`)},
		{Ref: "4", Topic: "phoenix", Event: "heartbeat", Payload: []byte(`{}`)},
		{Topic: "room:é \"q\"", Event: "new_msg", Payload: []byte(`{"body":"[1,2]"}`)},
		{JoinRef: "1", Topic: "t", Event: "e"},
	} {
		data := encodeV2(nil, m)
		got, err := decodeV2(data)
		if err != nil {
			t.Fatalf("decodeV2(%s): %v", data, err)
		}
		wantPayload := string(m.Payload)
		if wantPayload == "" {
			wantPayload = "{}"
		}
		if got.JoinRef != m.JoinRef || got.Ref != m.Ref || got.Topic != m.Topic || got.Event != m.Event || string(got.Payload) != wantPayload {
			t.Errorf("round trip of %s: %+v", data, got)
		}
	}
	if s := string(encodeV2(nil, msg{Ref: "4", Topic: "phoenix", Event: "heartbeat"})); s != `[null,"4","phoenix","heartbeat",{}]` {
		t.Errorf("heartbeat frame %s", s)
	}
}

func TestDecodeV2ServerFrames(t *testing.T) {
	for data, want := range map[string]msg{
		`["3","3","room:lobby","phx_reply",{"status":"ok","response":{}}]`: {JoinRef: "3", Ref: "3", Topic: "room:lobby", Event: "phx_reply", Payload: []byte(`{"status":"ok","response":{}}`)},
		`[null,null,"room:lobby","new_msg",{"body":"hi"}]`:                 {Topic: "room:lobby", Event: "new_msg", Payload: []byte(`{"body":"hi"}`)},
		` [ null , 12 , "t\u00e9" , "e\"v" , [1,[2]] ] `:                   {Ref: "12", Topic: "té", Event: `e"v`, Payload: []byte(`[1,[2]]`)},
	} {
		got, err := decodeV2([]byte(data))
		if err != nil || got.JoinRef != want.JoinRef || got.Ref != want.Ref || got.Topic != want.Topic || got.Event != want.Event || string(got.Payload) != string(want.Payload) {
			t.Errorf("decodeV2(%s) = %+v, %v", data, got, err)
		}
	}
	for _, bad := range []string{``, `{}`, `[`, `[null,null,"t","e"]`, `[null,null,"t","e",]`, `[nul,null,"t","e",{}]`, `["unterminated`, `[true,null,"t","e",{}]`, `["a\q",null,"t","e",{}]`} {
		if m, err := decodeV2([]byte(bad)); err == nil {
			t.Errorf("decodeV2(%s) accepted: %+v", bad, m)
		}
	}
	st, resp := replyStatus([]byte(`{"status":"error","response":{"reason":"unmatched topic"}}`))
	if st != "error" || string(resp) != `{"reason":"unmatched topic"}` {
		t.Errorf("replyStatus = %q %s", st, resp)
	}
}

func TestV1Frames(t *testing.T) {
	m := msg{JoinRef: "1", Ref: "2", Topic: "room:a", Event: "new_msg", Payload: []byte(`{"body":"x"}`)}
	data := encodeV1(nil, m)
	if string(data) != `{"topic":"room:a","event":"new_msg","payload":{"body":"x"},"ref":"2","join_ref":"1"}` {
		t.Errorf("encodeV1 = %s", data)
	}
	got, err := decodeV1([]byte(`{"topic":"room:a","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"2"}`))
	if err != nil || got.Ref != "2" || got.JoinRef != "" || got.Event != "phx_reply" {
		t.Errorf("decodeV1 = %+v, %v", got, err)
	}
	got, _ = decodeV1([]byte(`{"topic":"t","event":"e","payload":{},"ref":null}`))
	if got.Ref != "" {
		t.Errorf("null ref = %q", got.Ref)
	}
	if _, err := decodeV1([]byte(`[1]`)); err == nil {
		t.Error("V2 frame accepted as V1")
	}
}

func TestStamps(t *testing.T) {
	s := makeStamp("ab12", 42, 1700000000123456789, 100)
	if len(s) != 100 || !strings.HasPrefix(string(s), "phxbench:ab12:42:1700000000123456789:x") {
		t.Fatalf("makeStamp = %q (%d bytes)", s, len(s))
	}
	if short := makeStamp("ab12", 1, 5, 0); string(short) != "phxbench:ab12:1:5:" {
		t.Errorf("unpadded stamp %q", short)
	}
	p := payloadWithStamp(`{"body":"{stamp}","n":1}`, s)
	type hit struct {
		seq   int
		nanos int64
	}
	var hits []hit
	// A batched frame with two stamps, a stamp of another run and a broken one.
	frame := append(append([]byte(`{"push":`), p...), []byte(`}`+"\n"+`{"pub":"phxbench:zz99:1:2:","x":"phxbench:ab12:7:","y":"phxbench:ab12:7:99:"}`)...)
	n := findStamps(frame, "ab12", func(seq int, nanos int64) { hits = append(hits, hit{seq, nanos}) })
	if n != 2 || len(hits) != 2 || hits[0] != (hit{42, 1700000000123456789}) || hits[1] != (hit{7, 99}) {
		t.Errorf("findStamps = %d %v", n, hits)
	}
	if findStamps([]byte(`{"body":"hello"}`), "ab12", func(int, int64) {}) != 0 {
		t.Error("stamp found in plain text")
	}
	if got := string(payloadWithStamp(`{"a":1}`, s)); got != `{"a":1}` {
		t.Errorf("template without {stamp}: %s", got)
	}
}

func TestParseFlagsValidation(t *testing.T) {
	var sb strings.Builder
	cfg, err := parseFlags([]string{"-url", "ws://127.0.0.1:1/socket", "-scenario", "fanout", "-clients", "5", "-param", "a=b", "-param", "c={i}"}, &sb)
	if err != nil || cfg.clients != 5 || len(cfg.params) != 2 || cfg.heartbeat != 30*time.Second {
		t.Fatalf("parseFlags: %+v, %v", cfg, err)
	}
	for _, args := range [][]string{
		{},
		{"-url", "ws://127.0.0.1:1/socket", "-scenario", "nope"},
		{"-url", "ws://127.0.0.1:1/socket", "-vsn", "3.0.0"},
		{"-url", "ws://127.0.0.1:1/socket", "-clients", "0"},
		{"-url", "ws://127.0.0.1:1/socket", "-scenario", "fanout", "-payload", `{"body":"no stamp"}`},
		{"-url", "ws://127.0.0.1:1/socket", "-payload", `{"body":{stamp}`},
		{"-url", "ws://127.0.0.1:1/socket", "-join-payload", `{`},
		{"-url", "ws://127.0.0.1:1/socket", "-rate", "-1"},
		{"-url", "ws://127.0.0.1:1/socket", "extra"},
	} {
		if _, err := parseFlags(args, &sb); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}

// The tool refuses a non-loopback target before sending anything.
func TestRunRefusesRemoteTarget(t *testing.T) {
	var out, errb strings.Builder
	code := runMain(context.Background(), []string{"-url", "ws://192.0.2.1:4000/socket", "-clients", "1", "-quiet"}, &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), "not a loopback address") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
