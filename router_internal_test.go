package phx

import (
	"net/url"
	"strings"
	"testing"
)

type nopChannel struct{ name string }

func (nopChannel) Join(*Socket, Payload) (any, error) { return nil, nil }

func named(name string) ChannelFunc { return func() Channel { return nopChannel{name} } }

func TestRouterPrecedence(t *testing.T) {
	var r router
	// Registered in an order that would break a first-match router.
	r.add("*", named("fallback"))
	r.add("room:*", named("room"))
	r.add("room:lobby", named("lobby"))
	r.add("room:vip:*", named("vip"))
	tests := map[string]string{
		"room:lobby":  "lobby",
		"room:42":     "room",
		"room:":       "room",
		"room:vip:7":  "vip",
		"room:vip:":   "vip",
		"room:vip":    "room",
		"user:1":      "fallback",
		"":            "fallback",
		"room:lobby2": "room",
	}
	for topic, want := range tests {
		f := r.match(topic)
		if f == nil {
			t.Errorf("%q: no match, want %s", topic, want)
			continue
		}
		if got := f().(nopChannel).name; got != want {
			t.Errorf("%q -> %s, want %s", topic, got, want)
		}
	}
}

func TestRouterNoMatch(t *testing.T) {
	var r router
	r.add("room:*", named("room"))
	r.add("lobby", named("lobby"))
	for _, topic := range []string{"room", "roomx", "lobby:1", "lobb", "Room:1", ""} {
		if r.match(topic) != nil {
			t.Errorf("%q matched, want no match", topic)
		}
	}
}

func TestRouterPanicsOnBadPatterns(t *testing.T) {
	for _, tt := range []struct {
		setup     []string
		bad, want string
	}{
		{bad: "", want: "empty"},
		{bad: "room:*:x", want: "only allowed at the end"},
		{bad: "**", want: "only allowed at the end"},
		{setup: []string{"room:*"}, bad: "room:*", want: "duplicate"},
		{setup: []string{"a"}, bad: "a", want: "duplicate"},
	} {
		var r router
		for _, p := range tt.setup {
			r.add(p, named(p))
		}
		func() {
			defer func() {
				v := recover()
				if v == nil || !strings.Contains(v.(string), tt.want) {
					t.Errorf("add(%q): panic %v, want one mentioning %q", tt.bad, v, tt.want)
				}
			}()
			r.add(tt.bad, named("x"))
		}()
	}
}

func FuzzTopicRouter(f *testing.F) {
	for _, s := range []string{"room:1", "room", "roomx", "room:", "lobby", "", "room:vip:1"} {
		f.Add(s)
	}
	var r router
	r.add("room:*", named("room"))
	r.add("room:lobby", named("lobby"))
	f.Fuzz(func(t *testing.T, topic string) {
		fn := r.match(topic)
		switch {
		case topic == "room:lobby":
			if fn == nil || fn().(nopChannel).name != "lobby" {
				t.Fatalf("%q must match the exact route", topic)
			}
		case strings.HasPrefix(topic, "room:"):
			if fn == nil || fn().(nopChannel).name != "room" {
				t.Fatalf("%q must match room:*", topic)
			}
		default:
			if fn != nil {
				t.Fatalf("%q must not match", topic)
			}
		}
	})
}

func TestOriginPatterns(t *testing.T) {
	mustParse := func(ps ...string) []originPattern {
		var out []originPattern
		for _, p := range ps {
			op, err := parseOriginPattern(p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, op)
		}
		return out
	}
	allowed := mustParse("https://example.com", "//another.com:888", "//*.other.com")
	tests := []struct {
		origin string
		want   bool
	}{
		{"https://example.com", true},
		{"https://EXAMPLE.com", true},
		{"https://example.com:443", true},
		{"https://example.com:8443", false},
		{"http://example.com", false},
		{"https://sub.example.com", false},
		{"http://another.com:888", true},
		{"https://another.com:888", true},
		{"https://another.com", false},
		{"https://other.com", true},
		{"https://a.b.other.com", true},
		{"https://badother.com", false},
		{"https://other.com.evil.net", false},
		{"null", false},
		{"file://", false},
		{"", false},
		{"://x", false},
	}
	for _, tt := range tests {
		if got := originAllowed(tt.origin, "server.test", allowed); got != tt.want {
			t.Errorf("origin %q: allowed=%v, want %v", tt.origin, got, tt.want)
		}
	}
	// Same-host default: host must equal the request's host, port ignored.
	for _, tt := range []struct {
		origin, host string
		want         bool
	}{
		{"http://localhost:4000", "localhost:4000", true},
		{"https://localhost", "localhost:4000", true},
		{"http://127.0.0.1:5173", "127.0.0.1:4000", true},
		{"http://evil.test", "localhost:4000", false},
		{"http://[::1]:3000", "[::1]:4000", true},
		{"http://localhost.evil.test", "localhost", false},
	} {
		if got := originAllowed(tt.origin, tt.host, nil); got != tt.want {
			t.Errorf("same host: origin %q host %q: %v, want %v", tt.origin, tt.host, got, tt.want)
		}
	}
	for _, bad := range []string{"example.com", "https://*example.com", "//a.*.com", "https://x.com/path", "//"} {
		if _, err := parseOriginPattern(bad); err == nil {
			t.Errorf("parseOriginPattern(%q) accepted", bad)
		}
	}
}

func FuzzOriginCheck(f *testing.F) {
	for _, s := range []string{"https://a.example.com", "https://example.com", "http://badexample.com", "null", "https://example.com.evil"} {
		f.Add(s)
	}
	allowed := []originPattern{}
	op, _ := parseOriginPattern("//*.example.com")
	allowed = append(allowed, op)
	f.Fuzz(func(t *testing.T, origin string) {
		if !originAllowed(origin, "server.test", allowed) {
			return
		}
		// Property: an allowed origin's host is example.com or a true subdomain of it.
		host := strings.ToLower(hostOf(origin))
		if host != "example.com" && !strings.HasSuffix(host, ".example.com") {
			t.Fatalf("origin %q allowed with host %q", origin, host)
		}
	})
}

// hostOf returns the host name of an origin URL, "" when unparsable.
func hostOf(origin string) string {
	u, err := url.Parse(origin)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
