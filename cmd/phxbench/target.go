package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// socketURLs turns the socket's mount URL, as given to phoenix.js's Socket
// ("ws://127.0.0.1:4000/socket", or http(s)://), into the transport's
// endpoint, as phoenix.js does: "/websocket" or "/longpoll" is appended
// unless the path already ends with it.
func socketURLs(mount, transport string) (*url.URL, error) {
	u, err := url.Parse(mount)
	if err != nil {
		return nil, fmt.Errorf("bad -url %q: %w", mount, err)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("bad -url %q: no host (want e.g. ws://127.0.0.1:4000/socket)", mount)
	}
	secure := false
	switch u.Scheme {
	case "ws", "http":
	case "wss", "https":
		secure = true
	default:
		return nil, fmt.Errorf("bad -url %q: scheme must be ws, wss, http or https", mount)
	}
	path := strings.TrimSuffix(u.Path, "/")
	path = strings.TrimSuffix(strings.TrimSuffix(path, "/websocket"), "/longpoll")
	switch transport {
	case "websocket":
		u.Scheme = map[bool]string{false: "ws", true: "wss"}[secure]
		u.Path = path + "/websocket"
	case "longpoll":
		u.Scheme = map[bool]string{false: "http", true: "https"}[secure]
		u.Path = path + "/longpoll"
	default:
		return nil, fmt.Errorf("bad -transport %q: websocket or longpoll", transport)
	}
	u.RawPath = ""
	return u, nil
}

// expand replaces {user}, {token} and {i} in a template, and {i%N} with
// the client number modulo N (clients spread over N rooms).
func expand(tmpl string, vars map[string]string) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		name := tmpl[i+1 : i+j]
		v, ok := vars[name]
		if !ok {
			v, ok = modulo(name, vars)
		}
		if ok {
			b.WriteString(tmpl[:i])
			b.WriteString(v)
		} else {
			b.WriteString(tmpl[:i+j+1])
		}
		tmpl = tmpl[i+j+1:]
	}
}

// modulo expands a variable named "i%N".
func modulo(name string, vars map[string]string) (string, bool) {
	v, n, ok := strings.Cut(name, "%")
	if !ok {
		return "", false
	}
	x, err1 := strconv.Atoi(vars[v])
	m, err2 := strconv.Atoi(n)
	if err1 != nil || err2 != nil || m < 1 {
		return "", false
	}
	return strconv.Itoa(x % m), true
}

// connectURL is the endpoint with the client's params (templates expanded)
// and then vsn, last, as phoenix.js sends them.
func connectURL(endpoint *url.URL, params []string, vars map[string]string, vsn string) (string, error) {
	u := *endpoint
	var q []string
	if u.RawQuery != "" {
		q = append(q, u.RawQuery)
	}
	for _, p := range params {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return "", fmt.Errorf("bad -param %q: want key=value", p)
		}
		q = append(q, url.QueryEscape(expand(k, vars))+"="+url.QueryEscape(expand(v, vars)))
	}
	if vsn != "" {
		q = append(q, "vsn="+url.QueryEscape(vsn))
	}
	u.RawQuery = strings.Join(q, "&")
	return u.String(), nil
}

// checkLoopback resolves host and returns an error unless every address is
// in 127.0.0.0/8 or ::1. Load must not leave the machine by accident.
func checkLoopback(ctx context.Context, host string) error {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		return errors.New("empty host")
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return fmt.Errorf("resolve %s: %w", host, err)
		}
		addrs = ips
	}
	if len(addrs) == 0 {
		return fmt.Errorf("%s resolves to no address", host)
	}
	for _, a := range addrs {
		if !isLoopback(a) {
			return fmt.Errorf("%s resolves to %s, which is not a loopback address (127.0.0.0/8, ::1); pass -allow-remote to load a remote server you are allowed to load", host, a)
		}
	}
	return nil
}

func isLoopback(a netip.Addr) bool {
	a = a.Unmap()
	if a.Is4() {
		return a.As4()[0] == 127
	}
	return a == netip.IPv6Loopback()
}

// sourceAddrs returns the local addresses to spread n connections over: k
// addresses 127.0.0.1, 127.0.0.2, ... (nil for k <= 1: the kernel picks).
// Each source address can hold about as many connections to one server as
// the ephemeral port range has ports (net.ipv4.ip_local_port_range, 28,232
// by default), because Go binds before connecting.
func sourceAddrs(k int) []net.Addr {
	if k <= 1 {
		return nil
	}
	out := make([]net.Addr, k)
	for i := range out {
		n := i + 1 // 127.0.0.1 .. 127.0.(k)
		out[i] = &net.TCPAddr{IP: net.IPv4(127, byte(n>>16), byte(n>>8), byte(n))}
	}
	return out
}

// autoSources is the number of source addresses for n connections when
// -sources is 0: one per 20,000 connections, leaving room in the port range
// for connections in TIME_WAIT.
func autoSources(n int) int {
	return (n + 19999) / 20000
}

// dialer hands out net.Dialers bound round-robin to the source addresses.
type dialer struct {
	srcs    []net.Addr
	next    atomic.Uint64
	timeout time.Duration
}

func (d *dialer) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout, KeepAlive: -1}
	if len(d.srcs) > 0 {
		nd.LocalAddr = d.srcs[d.next.Add(1)%uint64(len(d.srcs))]
	}
	return nd.DialContext(ctx, network, addr)
}

// tokenSource gets the token of user {user} from a URL template returning
// JSON with the token in field, e.g. GET /api/token?user={user} -> {"token"}.
type tokenSource struct {
	tmpl   string
	field  string
	client *http.Client
}

func (t *tokenSource) get(ctx context.Context, vars map[string]string) (string, error) {
	u := expand(t.tmpl, vars)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token URL %s: HTTP %d: %.200s", u, resp.StatusCode, body)
	}
	return tokenFromJSON(body, t.field)
}

// tokenFromJSON takes field (a string, or a number) from a JSON object.
func tokenFromJSON(body []byte, field string) (string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return "", fmt.Errorf("token URL answered non-JSON: %.200s", body)
	}
	raw, ok := m[field]
	if !ok {
		return "", fmt.Errorf("token URL answer has no %q field: %.200s", field, body)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), nil
	}
	return "", fmt.Errorf("token field %q is not a string: %s", field, raw)
}

// clientVars are the template variables of client i.
func clientVars(userTmpl string, i int) map[string]string {
	vars := map[string]string{"i": strconv.Itoa(i)}
	vars["user"] = expand(userTmpl, vars)
	return vars
}
