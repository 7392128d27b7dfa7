package wire

import (
	"strings"
	"testing"
)

func FuzzAuthTokenSubprotocol(f *testing.F) {
	for _, s := range []string{
		"phoenix, base64url.bearer.phx.czNjcjN0",
		"phoenix,base64url.bearer.phx.czNjcjN0==",
		"base64url.bearer.phx.%%%",
		"phoenix, base64url.bearer.phx.a, base64url.bearer.phx.b",
		"",
		",,,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		var offered []string
		for _, p := range strings.Split(header, ",") {
			if p = strings.TrimSpace(p); p != "" {
				offered = append(offered, p)
			}
		}
		token, rest, err := ExtractAuthToken(offered)
		if err != nil {
			return
		}
		for _, p := range rest {
			if strings.HasPrefix(p, AuthTokenPrefix) {
				t.Fatalf("token element left in %q", rest)
			}
		}
		if len(rest)+btoi(token != "" || strings.Contains(header, AuthTokenPrefix)) < len(offered) {
			t.Fatalf("lost elements: offered %q rest %q", offered, rest)
		}
		if token != "" {
			// The token must round-trip through the client's encoding.
			got, _, err := ExtractAuthToken([]string{AuthTokenProtocol(token)})
			if err != nil || got != token {
				t.Fatalf("round trip of %q: %q %v", token, got, err)
			}
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
