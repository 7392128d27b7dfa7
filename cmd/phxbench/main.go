// Command phxbench loads a Phoenix Channels server: this repository's
// library, or an Elixir Phoenix application, since it speaks the protocol
// the official clients speak (V2 JSON over WebSocket; V1 and long-poll on
// request).
//
// It connects N clients, each joining a topic and sending a heartbeat every
// 30 s as phoenix.js does, and runs one scenario:
//
//	idle    connect and join, then report the server's memory per
//	        connection (with -pid: VmRSS of /proc/PID/status, before and after)
//	fanout  one more client, the publisher, pushes -messages messages at
//	        -rate per second on the topic (-event, -payload); the server is
//	        expected to broadcast them. Every receiver timestamps what
//	        arrives: deliveries/s, latency percentiles, losses
//	echo    every client pushes -messages requests (at -rate per client, 0
//	        for back to back) and waits for each reply: latency, replies/s
//	churn   -cycles connect/join/leave/close cycles at -rate per second with
//	        -concurrency in flight: cycles/s, latency, errors
//
// The send time travels inside the payload: the publisher replaces {stamp}
// in -payload with "phxbench:<run>:<seq>:<unix nanos>:" padded to -size
// bytes, and receivers look for that text in what arrives on -event. Any
// server that passes the text on (a chat that broadcasts the message body,
// as examples/chat does) can be measured.
//
// Example, against examples/chat (cd examples/chat && go run . -addr 127.0.0.1:4000):
//
//	phxbench -url ws://127.0.0.1:4000/socket \
//	  -token-url 'http://127.0.0.1:4000/api/token?user={user}' -param 'token={token}' \
//	  -topic room:bench -scenario fanout -clients 1000 -messages 100 -rate 20
//
// Targets must be loopback addresses (127.0.0.0/8, ::1) unless -allow-remote
// is given: the host is resolved and every address checked. Load only
// servers you run or are allowed to load.
//
// Many connections: a process may open at most its file-descriptor limit of
// sockets (ulimit -n; Go raises the soft limit to the hard one), and the
// server needs as many. To one server address, each source address holds
// at most as many connections as the ephemeral port range has ports
// (net.ipv4.ip_local_port_range, 32768-60999 = 28,232 by default), fewer
// while closed connections sit in TIME_WAIT. -sources K spreads the
// connections over 127.0.0.1 … 127.0.0.K (loopback targets only; 0 picks
// one address per 20,000 connections).
//
// Progress goes to stderr once a second; the result to stdout, as text or,
// with -json, as one JSON object.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// config is the command line.
type config struct {
	scenario    string
	url         string
	transport   string
	vsn         string
	params      multiFlag
	tokenURL    string
	tokenField  string
	user        string
	topic       string
	joinPayload string
	clients     int
	sources     int
	concurrency int
	connectRate float64
	heartbeat   time.Duration
	timeout     time.Duration
	duration    time.Duration
	pid         int
	settle      time.Duration
	hold        time.Duration
	messages    int
	cycles      int
	rate        float64
	event       string
	payload     string
	size        int
	drain       time.Duration
	readLimit   int64
	jsonOut     bool
	quiet       bool
	allowRemote bool
	label       string
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("phxbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: phxbench -url ws://127.0.0.1:4000/socket -scenario idle|fanout|echo|churn [flags]")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.scenario, "scenario", "idle", "`name`: idle, fanout, echo or churn")
	fs.StringVar(&c.url, "url", "", "the socket's mount `URL`, as given to phoenix.js's Socket (ws://host:port/socket); /websocket or /longpoll is appended")
	fs.StringVar(&c.transport, "transport", "websocket", "websocket or longpoll")
	fs.StringVar(&c.vsn, "vsn", "2.0.0", "protocol version: 2.0.0 (V2 JSON arrays) or 1.0.0 (V1 objects)")
	fs.Var(&c.params, "param", "connect parameter `key=value`, repeatable; {user}, {token} and {i} are replaced per client")
	fs.StringVar(&c.tokenURL, "token-url", "", "`URL` template giving each client a token, e.g. 'http://127.0.0.1:4000/api/token?user={user}', answering JSON with the token in -token-field; the token is {token} in -param")
	fs.StringVar(&c.tokenField, "token-field", "token", "JSON `field` holding the token in the -token-url answer")
	fs.StringVar(&c.user, "user", "bench{i}", "user name `template` ({i}: client number)")
	fs.StringVar(&c.topic, "topic", "room:bench", "`topic` to join; {i} and {user} are replaced per client, {i%N} by the client number modulo N (N rooms) (echo: use a topic per client, e.g. room:echo{i}, if the server broadcasts)")
	fs.StringVar(&c.joinPayload, "join-payload", "{}", "join payload (`JSON` object)")
	fs.IntVar(&c.clients, "clients", 100, "number of clients (fanout: receivers; the publisher is one more)")
	fs.IntVar(&c.sources, "sources", 0, "spread connections over `K` source addresses 127.0.0.1..K (0: one per 20,000 connections)")
	fs.IntVar(&c.concurrency, "concurrency", 100, "connects (and churn cycles) in flight at once")
	fs.Float64Var(&c.connectRate, "connect-rate", 0, "connects started per second (0: as fast as -concurrency allows)")
	fs.DurationVar(&c.heartbeat, "heartbeat", 30*time.Second, "heartbeat interval per client (0: none), as phoenix.js")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "timeout of one connect, join or reply")
	fs.DurationVar(&c.duration, "duration", 5*time.Minute, "the whole run's limit: everything stops then")
	fs.IntVar(&c.pid, "pid", 0, "server process `ID`, to report its memory (VmRSS) and CPU time from /proc")
	fs.DurationVar(&c.settle, "settle", 3*time.Second, "wait after connecting before measuring the server (idle) or publishing (fanout)")
	fs.DurationVar(&c.hold, "hold", 0, "idle: keep the connections open this long after measuring")
	fs.IntVar(&c.messages, "messages", 100, "fanout: messages published; echo: requests per client")
	fs.IntVar(&c.cycles, "cycles", 1000, "churn: connect/join/leave/close cycles")
	fs.Float64Var(&c.rate, "rate", 20, "fanout: messages/s published; echo: requests/s per client; churn: cycles/s (0: no pacing)")
	fs.StringVar(&c.event, "event", "new_msg", "event pushed by the publisher and expected back as broadcast (fanout) or reply (echo)")
	fs.StringVar(&c.payload, "payload", `{"body":"{stamp}"}`, "payload `template` of pushed messages; {stamp} is replaced by the timestamp text")
	fs.IntVar(&c.size, "size", 64, "length of the stamp text in `bytes` (padded), i.e. the message size")
	fs.DurationVar(&c.drain, "drain", 10*time.Second, "fanout: after the last publish, wait at most this long for deliveries")
	fs.Int64Var(&c.readLimit, "read-limit", 64<<20, "largest frame a client accepts, in `bytes` (presence_state of a big room is large)")
	fs.BoolVar(&c.jsonOut, "json", false, "print the result as JSON")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress lines on stderr")
	fs.BoolVar(&c.allowRemote, "allow-remote", false, "allow a target that is not a loopback address")
	fs.StringVar(&c.label, "label", "", "free text copied into the result (e.g. the server's name)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return c, c.validate()
}

func (c *config) validate() error {
	switch c.scenario {
	case "idle", "fanout", "echo", "churn":
	default:
		return fmt.Errorf("-scenario %q: want idle, fanout, echo or churn", c.scenario)
	}
	if c.url == "" {
		return errors.New("-url is required (e.g. ws://127.0.0.1:4000/socket)")
	}
	switch c.vsn {
	case "2.0.0", "1.0.0":
	default:
		return fmt.Errorf("-vsn %q: want 2.0.0 or 1.0.0", c.vsn)
	}
	switch {
	case c.clients < 0, c.clients == 0 && c.scenario != "churn":
		return errors.New("-clients must be at least 1")
	case c.concurrency < 1:
		return errors.New("-concurrency must be at least 1")
	case c.messages < 1 && (c.scenario == "fanout" || c.scenario == "echo"):
		return errors.New("-messages must be at least 1")
	case c.cycles < 1 && c.scenario == "churn":
		return errors.New("-cycles must be at least 1")
	case c.rate < 0 || c.connectRate < 0:
		return errors.New("-rate and -connect-rate must not be negative")
	case c.timeout <= 0 || c.duration <= 0:
		return errors.New("-timeout and -duration must be positive")
	case c.size < 0 || c.size > 1<<20:
		return errors.New("-size must be between 0 and 1 MiB")
	case c.sources < 0 || c.sources > 1<<16:
		return errors.New("-sources must be between 0 and 65536")
	case c.scenario == "fanout" && int64(c.messages)*int64(c.clients) > 2e9:
		return errors.New("-messages × -clients is over 2e9: the loss accounting would not fit in memory")
	}
	if !json.Valid([]byte(strings.ReplaceAll(c.payload, "{stamp}", "x"))) {
		return fmt.Errorf("-payload %q is not JSON once {stamp} is replaced", c.payload)
	}
	if (c.scenario == "fanout" || c.scenario == "echo") && !strings.Contains(c.payload, "{stamp}") {
		return errors.New("-payload must contain {stamp} (inside a JSON string) for fanout and echo")
	}
	if !json.Valid([]byte(c.joinPayload)) {
		return fmt.Errorf("-join-payload %q is not JSON", c.joinPayload)
	}
	return nil
}

// checkTargets refuses non-loopback hosts without -allow-remote: the socket
// URL's and the token URL's.
func (c *config) checkTargets(ctx context.Context) error {
	if c.allowRemote {
		return nil
	}
	hosts := []string{}
	for _, s := range []string{c.url, c.tokenURL} {
		if s == "" {
			continue
		}
		u, err := url.Parse(strings.NewReplacer("{user}", "u", "{i}", "0").Replace(s))
		if err != nil {
			return fmt.Errorf("bad URL %q: %w", s, err)
		}
		hosts = append(hosts, u.Host)
	}
	for _, h := range hosts {
		if err := checkLoopback(ctx, h); err != nil {
			return fmt.Errorf("refusing to load %s: %w", h, err)
		}
	}
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(runMain(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "phxbench:", err)
		return 2
	}
	res, err := run(ctx, cfg, stderr)
	if res != nil {
		if cfg.jsonOut {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(res)
		} else {
			res.print(stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "phxbench:", err)
		return 1
	}
	return 0
}
