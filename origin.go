package phx

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// originPattern is one parsed entry of Options.AllowedOrigins.
type originPattern struct {
	scheme   string // "" matches any scheme
	host     string // lower case; the domain after "*." when wildcard
	port     string // "" matches any port
	wildcard bool   // "*.example.com": example.com and every subdomain
}

func parseOriginPattern(p string) (originPattern, error) {
	raw := p
	if strings.HasPrefix(p, "//") {
		p = "x:" + p // parse the authority with a placeholder scheme
	}
	u, err := url.Parse(p)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return originPattern{}, fmt.Errorf("%q: want \"https://host[:port]\" or \"//host[:port]\"", raw)
	}
	var op originPattern
	if u.Scheme != "x" {
		op.scheme = strings.ToLower(u.Scheme)
	}
	op.host = strings.ToLower(u.Hostname())
	op.port = u.Port()
	if op.port == "" {
		op.port = defaultPort(op.scheme)
	}
	if rest, ok := strings.CutPrefix(op.host, "*."); ok {
		op.wildcard, op.host = true, rest
	}
	if op.host == "" || strings.Contains(op.host, "*") {
		return originPattern{}, fmt.Errorf("%q: '*' is only allowed as the first label, as in //*.example.com", raw)
	}
	return op, nil
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	}
	return ""
}

func (op originPattern) match(u *url.URL) bool {
	scheme := strings.ToLower(u.Scheme)
	if op.scheme != "" && op.scheme != scheme {
		return false
	}
	if op.port != "" {
		port := u.Port()
		if port == "" {
			port = defaultPort(scheme)
		}
		if port != op.port {
			return false
		}
	}
	host := strings.ToLower(u.Hostname())
	if host == op.host {
		return true
	}
	return op.wildcard && strings.HasSuffix(host, "."+op.host)
}

// checkOrigin applies Options.CheckOrigin or Options.AllowedOrigins.
func (s *Server) checkOrigin(r *http.Request) bool {
	if s.opts.CheckOrigin != nil {
		return s.opts.CheckOrigin(r)
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	return originAllowed(origin, r.Host, s.origins)
}

// originAllowed reports whether origin may connect to a server reached as
// requestHost, given the parsed AllowedOrigins entries.
func originAllowed(origin, requestHost string, allowed []originPattern) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Scheme == "" {
		return false // includes "null" and "file://"
	}
	if len(allowed) == 0 {
		h := requestHost
		if host, _, err := net.SplitHostPort(requestHost); err == nil {
			h = host
		}
		return h != "" && strings.EqualFold(u.Hostname(), strings.Trim(h, "[]"))
	}
	for _, op := range allowed {
		if op.match(u) {
			return true
		}
	}
	return false
}
