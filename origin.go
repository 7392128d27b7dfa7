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
	return op.matchHost(u.Hostname())
}

// matchHost reports whether host (a name or IP, no port) is the pattern's
// host or, for a wildcard, one of its subdomains.
func (op originPattern) matchHost(host string) bool {
	host = strings.ToLower(strings.Trim(host, "[]"))
	return host == op.host || op.wildcard && strings.HasSuffix(host, "."+op.host)
}

// parseHostPattern parses one entry of Options.Hosts: "example.com",
// "*.example.com" or an IP address, without scheme, port or path.
func parseHostPattern(h string) (originPattern, error) {
	if h == "" || (strings.ContainsAny(h, "/:?#@") && !strings.HasPrefix(h, "[")) {
		return originPattern{}, fmt.Errorf("%q: want a host name such as \"example.com\" or \"*.example.com\", without scheme or port", h)
	}
	op, err := parseOriginPattern("//" + h)
	if err != nil {
		return originPattern{}, err
	}
	op.port = "" // a host entry never constrains the port
	return op, nil
}

// matchHost reports whether host (a name or IP, no port) matches one of
// the patterns.
func matchHost(host string, hosts []originPattern) bool {
	for _, op := range hosts {
		if op.matchHost(host) {
			return true
		}
	}
	return false
}

// hostname is a Host header's value without its port.
func hostname(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return host
	}
	return hostport
}

// checkHost applies Options.Hosts: with it set, a request must name one of
// them in its Host header.
func (s *Server) checkHost(r *http.Request) bool {
	return len(s.hosts) == 0 || matchHost(hostname(r.Host), s.hosts)
}

// CheckRequest applies [Options.Hosts] and the origin check
// ([Options.AllowedOrigins] or [Options.CheckOrigin]) to an HTTP request,
// as the WebSocket and long-poll transports do before anything else; a
// custom transport served over HTTP calls it before [Server.Accept]. A
// refusal is a [*RefusedError] with status 403 wrapping
// [ErrHostNotAllowed] or [ErrOriginNotAllowed].
func (s *Server) CheckRequest(r *http.Request) error {
	if !s.checkHost(r) {
		return &RefusedError{Status: http.StatusForbidden, Err: ErrHostNotAllowed}
	}
	if !s.checkOrigin(r) {
		return &RefusedError{Status: http.StatusForbidden, Err: ErrOriginNotAllowed}
	}
	return nil
}

// checkOrigin applies Options.CheckOrigin or Options.AllowedOrigins (or,
// without them, Options.Hosts or the request's own Host).
func (s *Server) checkOrigin(r *http.Request) bool {
	if s.opts.CheckOrigin != nil {
		return s.opts.CheckOrigin(r)
	}
	origins := r.Header.Values("Origin")
	switch {
	case len(origins) == 0:
		return true // a native client
	case len(origins) > 1:
		return false // no browser sends two
	}
	if len(s.origins) == 0 && len(s.hosts) > 0 {
		u, ok := parseOrigin(origins[0])
		return ok && matchHost(u.Hostname(), s.hosts)
	}
	return originAllowed(origins[0], r.Host, s.origins)
}

// parseOrigin parses an Origin header value; "", "null" and "file://" are
// not origins a server can allow.
func parseOrigin(origin string) (*url.URL, bool) {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Scheme == "" {
		return nil, false
	}
	return u, true
}

// originAllowed reports whether origin may connect to a server reached as
// requestHost, given the parsed AllowedOrigins entries.
func originAllowed(origin, requestHost string, allowed []originPattern) bool {
	u, ok := parseOrigin(origin)
	if !ok {
		return false
	}
	if len(allowed) == 0 {
		h := hostname(requestHost)
		return h != "" && strings.EqualFold(u.Hostname(), strings.Trim(h, "[]"))
	}
	for _, op := range allowed {
		if op.match(u) {
			return true
		}
	}
	return false
}
