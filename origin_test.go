package phx_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/phxgo/phx"
)

// originStatus sends one handshake to transport ("websocket" or
// "longpoll") with the given Host and Origin headers (nil: none) and
// returns the status the server answered with: 101 for an accepted
// WebSocket upgrade, the long-poll body's status (410 for a new session).
func originStatus(t *testing.T, ts *testServer, transport, host string, origin []string) int {
	t.Helper()
	req, err := http.NewRequest("GET", ts.http.URL+"/socket/"+transport+"?user=o&vsn=2.0.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for _, o := range origin {
		req.Header.Add("Origin", o)
	}
	if transport == "websocket" {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if transport == "websocket" || resp.StatusCode != http.StatusOK {
		return resp.StatusCode
	}
	body, _ := io.ReadAll(resp.Body)
	switch {
	case strings.Contains(string(body), `"status":410`):
		return 410
	case strings.Contains(string(body), `"status":403`):
		return 403
	}
	t.Fatalf("long-poll answered %s", body)
	return 0
}

func TestOriginAndHostChecks(t *testing.T) {
	t.Parallel()
	none := []string(nil)
	one := func(o string) []string { return []string{o} }
	cases := []struct {
		name   string
		opts   phx.Options
		host   string // "" keeps the test server's 127.0.0.1:port
		origin []string
		want   int // 0: accepted
	}{
		{name: "native client, no Origin", origin: none},
		{name: "same host", origin: one("http://127.0.0.1:5173")},
		{name: "empty Origin refused as Phoenix does", origin: one(""), want: 403},
		{name: "two Origin headers", origin: []string{"http://127.0.0.1", "http://127.0.0.1"}, want: 403},
		{name: "other host", origin: one("http://evil.test"), want: 403},
		// DNS rebinding: the hostile name resolves to this server, so the
		// page's Origin and the Host header agree. The request-Host
		// default cannot tell; Hosts can.
		{name: "rebinding passes the request-Host default", host: "evil.test:4000", origin: one("http://evil.test:4000")},
		{name: "rebinding refused with Hosts", opts: phx.Options{Hosts: []string{"127.0.0.1", "localhost"}}, host: "evil.test:4000", origin: one("http://evil.test:4000"), want: 403},
		{name: "Hosts: foreign Host without Origin", opts: phx.Options{Hosts: []string{"localhost"}}, host: "evil.test", origin: none, want: 403},
		{name: "Hosts: listed Host, no Origin", opts: phx.Options{Hosts: []string{"localhost"}}, host: "LOCALHOST:4000", origin: none},
		{name: "Hosts: Origin on a listed host, other port", opts: phx.Options{Hosts: []string{"127.0.0.1", "localhost"}}, origin: one("http://localhost:5173")},
		{name: "Hosts: Origin on another host", opts: phx.Options{Hosts: []string{"127.0.0.1"}}, origin: one("http://localhost"), want: 403},
		{name: "Hosts: wildcard", opts: phx.Options{Hosts: []string{"127.0.0.1", "*.example.com"}}, origin: one("https://app.example.com")},
		{name: "Hosts: empty Origin", opts: phx.Options{Hosts: []string{"127.0.0.1"}}, origin: one(""), want: 403},
		{name: "Hosts with AllowedOrigins", opts: phx.Options{Hosts: []string{"127.0.0.1"}, AllowedOrigins: []string{"https://app.example.com"}}, origin: one("https://app.example.com")},
		{name: "Hosts apply under CheckOrigin", opts: phx.Options{Hosts: []string{"localhost"}, CheckOrigin: func(*http.Request) bool { return true }}, host: "evil.test", origin: none, want: 403},
		{name: "CheckOrigin sees the empty header", opts: phx.Options{CheckOrigin: func(r *http.Request) bool { return len(r.Header.Values("Origin")) == 1 }}, origin: one("")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			ts, _ := newRoomServer(t, lpOptions(&opts))
			for _, transport := range []string{"websocket", "longpoll"} {
				want := tc.want
				if want == 0 {
					want = map[string]int{"websocket": 101, "longpoll": 410}[transport]
				}
				if got := originStatus(t, ts, transport, tc.host, tc.origin); got != want {
					t.Errorf("%s: status %d, want %d", transport, got, want)
				}
			}
		})
	}
}

func TestCheckRequest(t *testing.T) {
	srv, err := phx.New(&phx.Options{Hosts: []string{"example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://evil.test/socket/websocket", nil)
	var re *phx.RefusedError
	if err := srv.CheckRequest(r); !errors.Is(err, phx.ErrHostNotAllowed) || !errors.As(err, &re) || re.Status != 403 {
		t.Fatalf("foreign host: %v, want a 403 RefusedError wrapping ErrHostNotAllowed", err)
	}
	r = httptest.NewRequest("GET", "http://example.com/socket/websocket", nil)
	r.Header.Set("Origin", "https://evil.test")
	if err := srv.CheckRequest(r); !errors.Is(err, phx.ErrOriginNotAllowed) {
		t.Fatalf("foreign origin: %v, want ErrOriginNotAllowed", err)
	}
	r.Header.Set("Origin", "https://example.com")
	if err := srv.CheckRequest(r); err != nil {
		t.Fatalf("own origin: %v", err)
	}
	for _, bad := range []string{"", "https://example.com", "example.com:443", "example.com/path", "a.*.com", "user@example.com"} {
		if _, err := phx.New(&phx.Options{Hosts: []string{bad}}); !errors.Is(err, phx.ErrInvalidOptions) {
			t.Errorf("Hosts %q: %v, want ErrInvalidOptions", bad, err)
		}
	}
	for _, good := range []string{"localhost", "*.example.com", "127.0.0.1", "[::1]"} {
		if _, err := phx.New(&phx.Options{Hosts: []string{good}}); err != nil {
			t.Errorf("Hosts %q: %v", good, err)
		}
	}
}
