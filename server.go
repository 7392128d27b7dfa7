package phx

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a Phoenix socket handler: it accepts connections from the
// official Phoenix clients, authenticates them with [Options.Connect], routes
// their joins to channels registered with [Server.Channel], and delivers
// broadcasts. Mount it on a mux under any prefix:
//
//	mux.Handle("/socket/", srv) // serves /socket/websocket
//
// All methods are safe for concurrent use.
type Server struct {
	opts         Options
	serializers  []versionedCodec
	origins      []originPattern
	hosts        []originPattern // Options.Hosts
	subprotocols []string        // "phoenix", then Options.Subprotocols
	log          *slog.Logger
	pubsub       PubSub
	routes       router
	history      HistoryStore
	topicLocks   [64]sync.Mutex // recorded publishes, by topic hash; see topicLock
	lockSeed     maphash.Seed

	mu    sync.Mutex
	conns map[*conn]struct{}
	// The idle timer (idle.go), under mu: armed (idleArmed) to fire at
	// idleAt, Unix nanoseconds; idleWatching counts the watched conns.
	idleTimer    *time.Timer
	idleAt       int64
	idleArmed    bool
	idleWatching int
	perID        map[string]int // connections per socket ID, for MaxConnectionsPerID
	draining     bool
	wg           sync.WaitGroup // every conn, until fully torn down

	// The drain (see Shutdown): started once, by Shutdown or by the
	// Shutdown of an http.Server that serves this one. drainStarted is
	// closed when it begins, hurry to close the rest at once, drained once
	// every connection is torn down.
	drainOnce    sync.Once
	drainStarted chan struct{}
	hurryOnce    sync.Once
	hurry        chan struct{}
	drained      chan struct{}
	httpServers  sync.Map // *http.Server whose Shutdown starts the drain
	// transportLogs: the logger with a transport's name as attribute, by
	// name, made once (a logger With an attribute is an allocation of a
	// few hundred bytes, kept by every connection).
	transportLogs sync.Map

	// writers runs the WebSocket connections' writers (write_pool.go).
	writers *writePool

	metrics metrics
	lp      *longPoll // long-poll sessions; see transport_longpoll.go
}

type metrics struct {
	slowClosed    atomic.Int64
	badFrames     atomic.Int64
	policyClosed  atomic.Int64
	joinsTimedOut atomic.Int64
}

// Stats is a snapshot of a server's counters.
type Stats struct {
	// Connections is the number of open connections.
	Connections int
	// SlowClientsClosed counts connections closed because their outbound
	// queue overflowed.
	SlowClientsClosed int64
	// MalformedFrames counts connections closed for sending a frame that
	// could not be decoded.
	MalformedFrames int64
	// PolicyClosed counts connections closed for going over
	// MaxRateLimited or MaxProtocolErrors.
	PolicyClosed int64
	// JoinsTimedOut counts joins answered with "join timeout".
	JoinsTimedOut int64
}

// Stats returns the server's current counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	return Stats{
		Connections:       n,
		SlowClientsClosed: s.metrics.slowClosed.Load(),
		MalformedFrames:   s.metrics.badFrames.Load(),
		PolicyClosed:      s.metrics.policyClosed.Load(),
		JoinsTimedOut:     s.metrics.joinsTimedOut.Load(),
	}
}

// New returns a Server configured by opts (nil for all defaults), or an
// error wrapping [ErrInvalidOptions] when opts cannot be used: an
// AllowedOrigins entry is malformed, LongPoll.Secret is shorter than 32
// bytes (the error also wraps token.ErrSecretTooShort), a Serializers entry
// has a malformed version requirement or a nil Serializer, or
// LongPoll.Window is negative. Use New when the options come from
// configuration; [NewServer] panics instead.
func New(opts *Options) (*Server, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	setDefault(&o.HeartbeatTimeout, 60*time.Second)
	setDefault(&o.MaxMessageSize, 64<<10)
	setDefault(&o.MaxChannels, 100)
	setDefault(&o.WriteTimeout, 10*time.Second)
	setDefault(&o.MaxQueuedMessages, 1024)
	setDefault(&o.MaxQueuedBytes, 1<<20)
	setDefault(&o.MaxChannelQueue, 1024)
	setDefault(&o.MaxInboundRate, 100)
	setDefault(&o.InboundBurst, 200)
	if o.InboundBurst < 0 { // an unlimited burst: no rate limit
		o.MaxInboundRate = -1
	}
	if o.MaxRateLimited == 0 {
		o.MaxRateLimited = max(o.InboundBurst, int(math.Min(math.Ceil(10*o.MaxInboundRate), 1<<30)))
	}
	limits, err := compileInboundLimits(o.InboundLimits)
	if err != nil {
		return nil, err
	}
	o.InboundLimits = limits
	setDefault(&o.MaxProtocolErrors, 20)
	setDefault(&o.DrainBatchSize, 10000)
	setDefault(&o.DrainBatchInterval, 2*time.Second)
	setDefault(&o.JoinTimeout, 10*time.Second)
	if o.LongPoll.Window < 0 {
		return nil, fmt.Errorf("%w: LongPoll.Window %v: a poll must be held for a while (zero means the default, 10s)", ErrInvalidOptions, o.LongPoll.Window)
	}
	setDefault(&o.LongPoll.Window, 10*time.Second)
	setDefault(&o.LongPoll.IdleTimeout, 15*time.Second)
	setDefault(&o.LongPoll.MaxBody, 1<<20)

	o.AllowedOrigins = append([]string(nil), o.AllowedOrigins...)
	origins := make([]originPattern, len(o.AllowedOrigins))
	for i, p := range o.AllowedOrigins {
		op, err := parseOriginPattern(p)
		if err != nil {
			return nil, fmt.Errorf("%w: AllowedOrigins[%d]: %w", ErrInvalidOptions, i, err)
		}
		origins[i] = op
	}
	o.Hosts = append([]string(nil), o.Hosts...)
	hosts := make([]originPattern, len(o.Hosts))
	for i, h := range o.Hosts {
		op, err := parseHostPattern(h)
		if err != nil {
			return nil, fmt.Errorf("%w: Hosts[%d]: %w", ErrInvalidOptions, i, err)
		}
		hosts[i] = op
	}
	serializers, err := compileSerializers(o.Serializers)
	if err != nil {
		return nil, err
	}
	lp, err := newLongPoll(o.LongPoll.Secret)
	if err != nil {
		return nil, err
	}
	o.LongPoll.Secret = nil // kept only as the signer's derived keys
	if o.PubSub == nil {
		o.PubSub = NewMemoryPubSub()
	}
	if o.History == nil {
		o.History = NewMemoryHistory()
	}
	if l, ok := o.PubSub.(interface{ UseLogger(*slog.Logger) }); ok {
		l.UseLogger(o.Logger) // adapters without a logger of their own log with ours
	}
	if t, ok := o.PubSub.(interface{ UseTelemetry(*Telemetry) }); ok && o.Telemetry != nil {
		t.UseTelemetry(o.Telemetry)
	}
	subprotocols := []string{"phoenix"}
	for _, p := range o.Subprotocols {
		if p == "" || strings.ContainsAny(p, ", \t\r\n\"") {
			return nil, fmt.Errorf("%w: Subprotocols entry %q is not a subprotocol token", ErrInvalidOptions, p)
		}
		if !slices.Contains(subprotocols, p) {
			subprotocols = append(subprotocols, p)
		}
	}
	return &Server{
		opts:         o,
		serializers:  serializers,
		subprotocols: subprotocols,
		origins:      origins,
		hosts:        hosts,
		log:          o.Logger,
		pubsub:       o.PubSub,
		history:      o.History,
		lockSeed:     maphash.MakeSeed(),
		conns:        make(map[*conn]struct{}),
		drainStarted: make(chan struct{}),
		hurry:        make(chan struct{}),
		drained:      make(chan struct{}),
		lp:           lp,
		writers:      newWritePool(defaultWriteWorkers()),
	}, nil
}

// logger is the server's logger, as a logSource.
func (s *Server) logger() *slog.Logger { return s.log }

// NewServer is [New] for options written in the program: it panics where
// New returns an error, as regexp.MustCompile does.
func NewServer(opts *Options) *Server {
	s, err := New(opts)
	if err != nil {
		panic(err)
	}
	return s
}

// setDefault sets *v to def when it is zero, the rule every numeric
// [Options] field follows.
func setDefault[T int | int64 | float64 | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// Channel routes joins of topics matching pattern to channels made by
// newChannel, which is called once per join. Patterns are exact topics
// ("room:lobby") or prefixes ending in '*' ("room:*").
//
// # Precedence
//
// An exact pattern beats every wildcard, and among wildcards the longest
// prefix wins, whatever the order of the calls: with "room:*" and
// "room:vip:*" registered, "room:vip:1" joins the second.
//
// Options such as [WithHistory] configure the route.
//
// Channel panics on an invalid or duplicate pattern.
func (s *Server) Channel(pattern string, newChannel ChannelFunc, opts ...RouteOption) {
	var rt route
	for _, o := range opts {
		o(&rt)
	}
	if rt.history != nil {
		s.warnMemoryHistoryAcrossNodes(pattern)
	}
	s.routes.addRoute(pattern, newChannel, rt.history)
}

// warnMemoryHistoryAcrossNodes logs, once per route, that a route with
// history keeps it in this process's memory while the PubSub is not the
// in-memory one: each node would number its own offsets, so a client
// moving between nodes could not recover.
func (s *Server) warnMemoryHistoryAcrossNodes(pattern string) {
	_, memHistory := s.history.(*MemoryHistory)
	_, memPubSub := s.pubsub.(*MemoryPubSub)
	if memHistory && !memPubSub {
		s.log.Warn("phx: route with history uses the in-memory history store while the PubSub may span nodes; "+
			"each node numbers its own offsets and clients that move between nodes get recovered: false. "+
			"Set Options.History to a shared store (redispubsub.NewHistory, natspubsub.NewHistory)",
			"pattern", pattern)
	}
}

// PubSub returns the PubSub the server broadcasts through.
func (s *Server) PubSub() PubSub { return s.pubsub }

// Broadcast sends event with payload to every subscriber of topic on every
// node. It never waits for slow clients. payload is encoded as for
// [Socket.Push]. The bundled PubSub adapters (NATS, Redis) do not wait for
// their broker either: they deliver on this node and queue for the others.
// On a route [WithHistory] the broadcast is first recorded: with a shared
// store that waits for the store (bounded by its timeout; see
// [ErrHistoryUnavailable]). BroadcastContext bounds it by a context.
func (s *Server) Broadcast(topic, event string, payload any) error {
	return s.BroadcastContext(context.Background(), topic, event, payload)
}

// BroadcastContext is Broadcast with ctx handed to the PubSub: an
// adapter gives up waiting for its broker when ctx ends.
func (s *Server) BroadcastContext(ctx context.Context, topic, event string, payload any) error {
	b, err := NewBroadcast(topic, event, payload)
	if err != nil {
		return err
	}
	_, err = s.publishRecorded(ctx, b, nil, s.routes.lookup(topic).history)
	return err
}

// publish hands b to the PubSub (this node only when local), and sends the
// Broadcast telemetry event when a hook wants it.
func (s *Server) publish(ctx context.Context, b *Broadcast, from Subscriber, local bool) error {
	t := s.opts.Telemetry
	if t == nil || t.Broadcast == nil {
		return s.hand(ctx, b, from, local)
	}
	start := time.Now()
	subs := -1
	if sc, ok := s.pubsub.(interface{ SubscriberCount(string) int }); ok {
		subs = sc.SubscriberCount(b.Topic)
	}
	err := s.hand(ctx, b, from, local)
	t.broadcast(s, BroadcastSent{Topic: b.Topic, Event: b.Event, Subscribers: subs, Local: local,
		Duration: time.Since(start), Err: err})
	return err
}

// hand gives b to the PubSub: this node's subscribers only when local.
func (s *Server) hand(ctx context.Context, b *Broadcast, from Subscriber, local bool) error {
	if local {
		return s.pubsub.LocalBroadcast(b, from)
	}
	return s.pubsub.Broadcast(ctx, b, from)
}

// LocalBroadcast is [Server.Broadcast] restricted to this node's subscribers.
func (s *Server) LocalBroadcast(topic, event string, payload any) error {
	b, err := NewBroadcast(topic, event, payload)
	if err != nil {
		return err
	}
	return s.publish(context.Background(), b, nil, true)
}

// Disconnect closes every connection whose [Options.ID] is id, on every
// node, with close code 1001, so the clients reconnect and authenticate
// again ("log out everywhere"). Their channels terminate with [ErrClosed].
// Anonymous connections are never affected. A WebSocket connection is
// reachable from the moment its client has the upgrade response (it is
// subscribed to its ID just before); a long-poll session from its first
// poll.
func (s *Server) Disconnect(id string) error {
	return s.DisconnectContext(context.Background(), id)
}

// DisconnectContext is Disconnect, its publish bounded by ctx (see
// BroadcastContext).
func (s *Server) DisconnectContext(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("phx: Disconnect needs a socket ID")
	}
	b, err := NewBroadcast(id, "disconnect", nil)
	if err != nil {
		return err
	}
	return s.publish(ctx, b, nil, false)
}

// ServeHTTP serves the transports under the mount prefix: a request whose
// path ends in /websocket is a WebSocket connection, one whose path ends in
// /longpoll a long-poll request (see [Options.DisableWebSocket] and
// [Options.LongPoll.Disable]). Anything else gets 404.
//
// The first request served through an [http.Server] registers the drain
// with its RegisterOnShutdown: from then on, that http.Server's Shutdown
// starts [Server.Shutdown]'s drain too.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.follow(r)
	switch {
	case strings.HasSuffix(r.URL.Path, "/websocket") && !s.opts.DisableWebSocket:
		s.serveWebSocket(w, r)
	case strings.HasSuffix(r.URL.Path, "/longpoll") && !s.opts.LongPoll.Disable:
		s.serveLongPoll(w, r)
	default:
		http.NotFound(w, r)
	}
}

// follow registers the drain with the http.Server serving r, if any.
func (s *Server) follow(r *http.Request) {
	if hs, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok {
		s.followHTTPServer(hs)
	}
}

// WebSocketHandler returns the WebSocket transport alone, to mount on a
// path of your own, as Phoenix's websocket: [path: "/live/:tenant"]:
//
//	mux.Handle("GET /live/{tenant}", srv.WebSocketHandler())
//
// Connect then reads info.Request.PathValue("tenant"). phoenix.js itself
// always appends /websocket to its endpoint; custom paths serve other
// clients. With [Options.DisableWebSocket] the handler answers 404.
func (s *Server) WebSocketHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.follow(r)
		if s.opts.DisableWebSocket {
			http.NotFound(w, r)
			return
		}
		s.serveWebSocket(w, r)
	})
}

// LongPollHandler returns the long-poll transport alone, to mount on a
// path of your own (see WebSocketHandler). phoenix.js derives its
// long-poll URL from the WebSocket one by replacing /websocket with
// /longpoll. With [LongPollOptions.Disable] the handler answers 404.
func (s *Server) LongPollHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.follow(r)
		if s.opts.LongPoll.Disable {
			http.NotFound(w, r)
			return
		}
		s.serveLongPoll(w, r)
	})
}

// Shutdown drains the server and waits until it is done:
//
//   - new connections are refused with 503 (new long-poll sessions with
//     status 500);
//   - open WebSocket connections are closed with code 1012,
//     DrainBatchSize at a time, DrainBatchInterval apart (the clients
//     reconnect, to another instance if there is one);
//   - long-poll sessions close at once when they are being polled (the
//     held poll answers status 410 now, so that no request outlives the
//     http.Server's own Shutdown), and otherwise at their next request or
//     in their batch, whichever comes first;
//   - every channel's Terminate runs with [ErrServerClosed].
//
// Shutdown returns once every connection is torn down, or with ctx's
// error when ctx ends first (the connections still open are then closed
// at once, without waiting for their batch).
//
// # With net/http
//
// http.Server.Shutdown does not close hijacked connections (WebSockets)
// and waits for active requests (held long-polls). So a Server registers
// itself with every http.Server it is served through
// ([http.Server.RegisterOnShutdown], on the first request): that
// http.Server's Shutdown starts this drain, without waiting for it. The
// recommended sequence is therefore
//
//	hs.Shutdown(ctx)  // stop accepting; phx starts draining at once
//	srv.Shutdown(ctx) // wait for the drain and every Terminate
//
// and the reverse order works as well. A Server served by several
// http.Servers starts draining when the first of them shuts down.
func (s *Server) Shutdown(ctx context.Context) error {
	s.startDrain()
	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
		s.hurryOnce.Do(func() { close(s.hurry) })
		return ctx.Err()
	}
}

// startDrain starts the drain Shutdown waits for, once; it does not wait.
func (s *Server) startDrain() {
	s.drainOnce.Do(func() {
		s.mu.Lock()
		s.draining = true
		close(s.drainStarted)
		conns := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		go s.drain(conns)
	})
}

// drain closes conns in paced batches (all at once after hurry), then
// waits for every connection to be torn down.
func (s *Server) drain(conns []*conn) {
	hurried := false
	size := s.opts.DrainBatchSize
	if size <= 0 {
		size = len(conns)
	}
	for i, c := range conns {
		if i > 0 && i%size == 0 {
			s.drainProgress(i, len(conns), size, hurried)
			if !hurried && s.opts.DrainBatchInterval > 0 {
				t := time.NewTimer(s.opts.DrainBatchInterval)
				select {
				case <-t.C:
				case <-s.hurry: // out of time: close the rest now
					hurried = true
				}
				t.Stop()
			}
		}
		c.close(closeServiceRestart, "server shutting down", ErrServerClosed)
	}
	if len(conns) > 0 {
		s.drainProgress(len(conns), len(conns), size, hurried)
	}
	s.wg.Wait()
	close(s.drained)
}

// drainProgress logs a drain batch and sends its telemetry event.
func (s *Server) drainProgress(closed, total, size int, hurried bool) {
	batch := (closed + size - 1) / size
	s.log.Info("phx: draining", "closed", closed, "total", total, "batch", batch)
	s.opts.Telemetry.drain(s, DrainProgress{Closed: closed, Total: total, Batch: batch, Hurry: hurried})
}

// followHTTPServer makes hs's Shutdown start the drain, once per
// http.Server.
func (s *Server) followHTTPServer(hs *http.Server) {
	if _, known := s.httpServers.Load(hs); known {
		return
	}
	if _, known := s.httpServers.LoadOrStore(hs, struct{}{}); known {
		return
	}
	hs.RegisterOnShutdown(func() {
		if !s.isDraining() {
			s.log.Info("phx: http.Server shutting down; draining connections")
		}
		s.startDrain()
	})
}

// register adds c to the live connections; false when draining.
func (s *Server) register(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.unwatchIdle(c)
	s.mu.Unlock()
	s.wg.Done()
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// connect runs the user's Connect and ID hooks, containing panics.
func (s *Server) connect(info *ConnectInfo) (assigns Assigns, id string, status int, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("phx: Connect panicked", "panic", v, "stack", string(debug.Stack()))
			assigns, id, status, err = nil, "", http.StatusInternalServerError, fmt.Errorf("phx: Connect panicked: %v", v)
		}
	}()
	if s.opts.Connect != nil {
		assigns, err = s.opts.Connect(info)
		if err != nil {
			return nil, "", refusalStatus(err), err
		}
	}
	if assigns == nil {
		assigns = Assigns{}
	}
	if s.opts.ID != nil {
		id = s.opts.ID(assigns)
	}
	return assigns, id, 0, nil
}

// refusalStatus is the HTTP status for a connection a connect function
// refused with err: 403, or the error's StatusCode() when it has one of
// 400 or more.
func refusalStatus(err error) int {
	var sc interface{ StatusCode() int }
	if errors.As(err, &sc) && sc.StatusCode() >= 400 {
		return sc.StatusCode()
	}
	return http.StatusForbidden
}
