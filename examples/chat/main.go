// Command chat is a small chat application built on github.com/phxgo/phx: a
// web page using the official phoenix JavaScript client, talking to Go
// channels over a WebSocket.
//
// Run it from a fresh clone with
//
//	make chat
//
// which installs the phoenix npm package (npm ci in examples/chat) and runs
// go run . in examples/chat (a module of its own, since it pulls in the NATS
// and Redis adapters). Then open the URL it logs, in two browser windows.
//
// Flags:
//
//	-addr HOST:PORT  address to listen on (default 127.0.0.1:4000, or
//	                 127.0.0.1:$PORT when PORT is set; port 0 picks a free one)
//	-assets DIR      the node_modules directory holding the phoenix package
//	                 (default: examples/chat/node_modules, found from the
//	                 source directory or the working directory)
//	-hosts A,B       the host names the chat is reached under; a request
//	                 naming another host gets 403 (default on a loopback
//	                 -addr: 127.0.0.1, localhost, [::1]; otherwise any host)
//
// Environment: CHAT_SECRET (at least 32 bytes) signs the login tokens; without
// it a random secret is made at start, and tokens do not survive a restart.
//
// HTTP API:
//
//	GET  /                 the chat page
//	POST /api/token        {"user":"NAME"} -> {"token":"..."} (or GET /api/token?user=NAME)
//	     /socket/websocket the Phoenix socket; connect with params {token}
//	GET  /metrics          Prometheus metrics (phx_..., go_..., process_...)
//
// The channel protocol is described on the room type in chat.go.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/telemetry/phxprometheus"
	"github.com/phxgo/phx/token"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed static
var staticFiles embed.FS

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

// run starts the server and serves until ctx ends, then shuts down
// gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	defaultAddr := "127.0.0.1:4000"
	if port := getenv("PORT"); port != "" {
		defaultAddr = net.JoinHostPort("127.0.0.1", port)
	}
	fset := flag.NewFlagSet("chat", flag.ContinueOnError)
	fset.SetOutput(stderr)
	addr := fset.String("addr", defaultAddr, "`address` to listen on (port 0 picks a free port)")
	assets := fset.String("assets", "", "node_modules `directory` holding the phoenix package (default: found next to the example's sources)")
	compress := fset.Bool("compress", false, "compress WebSocket messages (permessage-deflate) for browsers that offer it")
	noWS := fset.Bool("disable-websocket", false, "refuse WebSocket upgrades, so pages fall back to long-poll (for trying and testing the fallback)")
	pubsubURL := fset.String("pubsub", "", "broker `URL` (nats://HOST:PORT or redis://HOST:PORT) joining several copies into one chat; default: this process only")
	hosts := fset.String("hosts", "", "comma-separated host `names` the chat is reached under; requests naming another host are refused (DNS rebinding); default: the loopback names when -addr is a loopback address, any host otherwise")
	presenceDown := fset.Duration("presence-down", 0, "with -pubsub: how long a silent copy's users stay listed (`duration`; default 30s)")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fset.Args())
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))

	phoenixJS, err := findPhoenixJS(*assets)
	if err != nil {
		return err
	}
	secret, err := loadSecret(getenv, log)
	if err != nil {
		return err
	}
	ps, hist, closePS, err := dialPubSub(*pubsubURL, log)
	if err != nil {
		return err
	}
	defer closePS()
	cfg := appConfig{Secret: secret, PhoenixJS: phoenixJS, Logger: log, DisableWebSocket: *noWS, Compress: *compress, PubSub: ps,
		History: hist, Hosts: hostList(*hosts, *addr)}
	if len(cfg.Hosts) == 0 {
		log.Warn("chat: listening beyond loopback without -hosts: any Host header is accepted (a DNS-rebinding page could reach the chat)", "addr", *addr)
	}
	if *pubsubURL != "" {
		cfg.Cluster = true
		cfg.PresenceDown = *presenceDown
		log.Info("chat: clustered; history in the broker", "pubsub", *pubsubURL)
	}
	a, err := newApp(cfg)
	if err != nil {
		return err
	}
	defer a.stopReplication()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	log.Info("chat: listening; open the URL in a browser", "url", browserURL(ln.Addr()), "phoenix_js", phoenixJS)

	select {
	case err := <-serveErr:
		a.socket.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	log.Info("chat: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The http.Server first: it stops accepting, and its Shutdown starts
	// the phx server's drain (WebSockets closed with 1012 so that the
	// clients reconnect, held long-polls answered 410). Then the phx
	// server's Shutdown waits until every channel has terminated.
	err = errors.Join(hs.Shutdown(sctx), a.socket.Shutdown(sctx))
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("chat: stopped")
	return nil
}

// browserURL is the URL to open for a listener's address.
func browserURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// loadSecret returns CHAT_SECRET, or a random secret when it is not set.
func loadSecret(getenv func(string) string, log *slog.Logger) ([]byte, error) {
	if s := getenv("CHAT_SECRET"); s != "" {
		if len(s) < token.MinSecretLen {
			return nil, fmt.Errorf("CHAT_SECRET is %d bytes; it must be at least %d (try: openssl rand -base64 48)", len(s), token.MinSecretLen)
		}
		return []byte(s), nil
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	log.Warn("chat: CHAT_SECRET not set; using a random secret, so tokens will not survive a restart")
	return secret, nil
}

// phoenixModule is where the phoenix package keeps its ES module.
var phoenixModule = filepath.Join("phoenix", "priv", "static", "phoenix.mjs")

// findPhoenixJS returns the path of the phoenix package's ES module in the
// node_modules directory dir, or when dir is "" in examples/chat/node_modules,
// looked for next to this source file (go run, or go build on this machine)
// and then from the working directory (the repository root or examples/chat).
func findPhoenixJS(dir string) (string, error) {
	var candidates []string
	if dir != "" {
		candidates = []string{dir}
	} else {
		if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
			candidates = append(candidates, filepath.Join(filepath.Dir(file), "node_modules"))
		}
		candidates = append(candidates, filepath.Join("examples", "chat", "node_modules"), "node_modules")
	}
	for _, d := range candidates {
		p := filepath.Join(d, phoenixModule)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			if abs, err := filepath.Abs(p); err == nil {
				p = abs
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("the phoenix JavaScript client is not installed (looked for %s in %q): run `make chat` from the repository root, or `npm ci` in examples/chat", phoenixModule, candidates)
}

// appConfig configures newApp.
type appConfig struct {
	Secret    []byte           // signs the tokens; at least 32 bytes
	PhoenixJS string           // path of phoenix.mjs, served at /assets/phoenix.mjs
	Logger    *slog.Logger     // nil means slog.Default()
	Now       func() time.Time // nil means time.Now

	DisableWebSocket bool // refuse WebSocket upgrades: clients fall back to long-poll
	Compress         bool // permessage-deflate for WebSocket clients that offer it

	Hosts []string // the host names the chat is reached under (phx.Options.Hosts); nil: any

	PubSub       phx.PubSub       // nil means in memory, this process only
	History      phx.HistoryStore // the rooms' history; nil means in memory (one node)
	Cluster      bool             // PubSub spans nodes: replicate presence, watch rooms
	PresenceDown time.Duration    // with Cluster: how long a silent node's users stay listed (0: 30s)
}

// app is the chat application: its HTTP handler and the phx server behind
// /socket.
type app struct {
	handler http.Handler
	socket  *phx.Server
	auth    *auth
	chat    *chat

	stopReplication func() // ends presence replication (a no-op on one node)
}

func newApp(cfg appConfig) (*app, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	au, err := newAuth(cfg.Secret, cfg.Now)
	if err != nil {
		return nil, err
	}
	c := &chat{now: cfg.Now}
	// Each app has a registry of its own, served on /metrics.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := phxprometheus.New(phxprometheus.Options{Registerer: reg})
	if err != nil {
		return nil, err
	}

	srv, err := phx.New(&phx.Options{
		Telemetry:        metrics.Telemetry(),
		Connect:          au.connect,
		ID:               socketID,
		Logger:           cfg.Logger,
		DisableWebSocket: cfg.DisableWebSocket,
		Compress:         cfg.Compress,
		PubSub:           cfg.PubSub,
		History:          cfg.History,
		Hosts:            cfg.Hosts,
		// Every copy of a cluster has the same CHAT_SECRET: the same
		// long-poll secret lets any copy serve any copy's long-poll
		// session (requests are relayed to the owner), so a load balancer
		// needs no sticky routing.
		LongPoll: phx.LongPollOptions{Secret: longPollSecret(cfg.Secret, cfg.Cluster)},
	})
	if err != nil {
		return nil, err
	}
	c.presence = phx.NewPresence(srv, nil)
	srv.Channel("room:*", func() phx.Channel { return &room{chat: c} }, phx.WithHistory(roomHistory))
	stopReplication := func() {}
	if cfg.Cluster {
		if stopReplication, err = replicatePresence(c.presence, cfg.PresenceDown); err != nil {
			return nil, err
		}
	}

	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	index, err := fs.ReadFile(static, "index.html")
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		w.Write(index)
	})
	mux.Handle("GET /static/", noCache(http.StripPrefix("/static/", http.FileServerFS(static))))
	mux.HandleFunc("GET /assets/phoenix.mjs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFile(w, r, cfg.PhoenixJS)
	})
	mux.HandleFunc("GET /assets/phoenix.mjs.map", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, cfg.PhoenixJS+".map")
	})
	mux.HandleFunc("POST /api/token", au.handleToken)
	mux.HandleFunc("GET /api/token", au.handleToken)
	mux.Handle("/socket/", srv)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	var handler http.Handler = mux
	if len(cfg.Hosts) > 0 {
		handler = hostCheck(srv, mux)
	}
	return &app{handler: securityHeaders(handler), socket: srv, auth: au, chat: c, stopReplication: stopReplication}, nil
}

// hostList returns the -hosts flag's names, or for an empty flag the
// loopback names when addr is a loopback address (nil otherwise: any host).
func hostList(flagValue, addr string) []string {
	if flagValue != "" {
		var out []string
		for _, h := range strings.Split(flagValue, ",") {
			if h = strings.TrimSpace(h); h != "" {
				out = append(out, h)
			}
		}
		return out
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return []string{"127.0.0.1", "localhost", "[::1]"}
	}
	return nil
}

// hostCheck refuses, for the page and the API as phx does for the socket,
// requests whose Host (or Origin) names a host not in Options.Hosts.
func hostCheck(srv *phx.Server, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := srv.CheckRequest(r); err != nil {
			http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// longPollSecret is the long-poll token secret: derived from the chat's
// secret for a cluster (the same on every copy), nil (random per process)
// otherwise.
func longPollSecret(secret []byte, cluster bool) []byte {
	if !cluster {
		return nil
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("chat long-poll sessions"))
	return m.Sum(nil)
}

func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}
