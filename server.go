package phx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a [Server]. The zero value is usable: every field
// documents its default, applied once by [New] (or [NewServer]).
//
// Every number and duration follows one rule: zero means the default, and
// a negative value disables the limit or timeout (no bound, no deadline, no
// pacing). The one setting that cannot be disabled, LongPoll.Window, makes
// New return an error when negative.
type Options struct {
	// Connect authenticates a new transport connection, before the
	// WebSocket upgrade. It returns the assigns every channel joined on the
	// connection starts with, or an error to refuse the connection: the
	// client then gets HTTP 403, or the status of a [*RefusedError]
	// (&phx.RefusedError{Status: 429, Err: err} for rate limiting), or of
	// any error implementing interface{ StatusCode() int }. The error text
	// is never sent to the client.
	//
	// Connect runs on the request's goroutine; info.Context is the
	// request's context. nil accepts every connection with no assigns.
	Connect func(info *ConnectInfo) (Assigns, error)

	// ConnectErrorHandler, when set, writes the HTTP response of a
	// WebSocket connection Connect refused (or whose vsn no serializer
	// matches), as Phoenix's error_handler: err is the [*RefusedError],
	// its Status the response's default and Err Connect's error. nil
	// answers Status with its standard text. Long-poll refusals keep
	// their JSON statuses, the only answers phoenix.js reads there.
	ConnectErrorHandler func(w http.ResponseWriter, r *http.Request, err *RefusedError)

	// ID names the connection from its assigns, e.g. "users_socket:42".
	// Connections that share an ID can be closed together with
	// [Server.Disconnect]. An empty ID (or a nil ID func) makes the
	// connection anonymous.
	ID func(assigns Assigns) string

	// PubSub carries broadcasts. nil means a fresh [NewMemoryPubSub]. A
	// PubSub with a method UseLogger(*slog.Logger), as the NATS and Redis
	// adapters have, is given Logger, so that it logs where the server
	// does unless it was built with a logger of its own.
	PubSub PubSub

	// Logger receives the server's logs: connection and channel lifecycle
	// at Debug, bad client input at Info or Warn, crashes at Error.
	// nil means slog.Default().
	Logger *slog.Logger
	// ConnectLogLevel and JoinLogLevel are the levels of the lines logged
	// for each accepted connection ("phx: socket connected", with its
	// transport, socket ID, vsn, Connect's duration and params, password
	// and token values filtered) and each accepted join ("phx: joined",
	// with the route and duration), as Phoenix's log: and log_join:
	// options. Zero means Info; slog.LevelDebug hides them under a
	// handler at Info.
	ConnectLogLevel slog.Level
	JoinLogLevel    slog.Level

	// Telemetry receives the server's lifecycle events (connects, joins,
	// HandleIn, ends) with their durations; nil for none. See [Telemetry].
	Telemetry *Telemetry

	// AllowedOrigins lists the browser origins allowed to connect, checked
	// only when a request carries an Origin header (native clients send
	// none). Empty means same host: the Origin's host must equal the
	// request's Host (scheme and port ignored), as Phoenix's
	// check_origin: true. Entries are "https://example.com" (scheme and
	// host must match; the port too when the entry has one or the scheme
	// implies it), "//example.com" (any scheme), "//*.example.com" (the
	// domain itself and any subdomain). Failing requests get HTTP 403.
	// [New] refuses a malformed entry.
	AllowedOrigins []string

	// CheckOrigin, when set, replaces AllowedOrigins: it reports whether
	// the request may connect. It is called for every request, with or
	// without an Origin header.
	CheckOrigin func(r *http.Request) bool

	// HeartbeatTimeout closes a connection that has sent nothing (not even
	// a heartbeat) for this long. Default 60s, as Phoenix; the official
	// clients send a heartbeat every 30s. Negative disables.
	HeartbeatTimeout time.Duration

	// MaxMessageSize is the largest WebSocket message accepted, in bytes;
	// a larger one closes the connection with 1009. Default 64 KiB.
	// Negative disables the limit. It also bounds each frame of a
	// long-poll POST: a larger one gets HTTP 413 and closes the session.
	MaxMessageSize int64

	// MaxChannels is the number of channels one connection may join at
	// once; the next join is refused with {"reason":"too many channels
	// joined"}. Default 100, as Phoenix. Negative disables the limit.
	MaxChannels int

	// WriteTimeout bounds each write of queued frames to a client; a client
	// that does not take them in time is disconnected. Default 10s.
	// Negative: no write deadline.
	WriteTimeout time.Duration

	// MaxQueuedMessages and MaxQueuedBytes bound the frames waiting to be
	// written to one connection. A connection whose queue overflows is a
	// slow consumer: it is closed with code 1008 (the clients reconnect) and
	// the publisher never waits. Defaults 1024 messages and 1 MiB. A
	// negative value removes that bound: frames for a client that stops
	// reading then pile up until WriteTimeout or HeartbeatTimeout ends it.
	MaxQueuedMessages int
	MaxQueuedBytes    int

	// MaxChannelQueue bounds the events waiting for one channel's
	// goroutine (client messages, intercepted broadcasts, Send messages).
	// A channel that falls this far behind is stopped with
	// [ErrChannelOverloaded] and the client gets phx_error. Default 1024.
	// Negative: no bound.
	MaxChannelQueue int

	// MaxInboundRate is how many messages per second one connection may
	// send on average, in bursts of up to InboundBurst. A message over the
	// limit is refused, not closed on: the client gets the error reply
	// {"reason":"rate limited"} to it (phoenix.js runs the push's
	// receive("error") callbacks) and the channel never sees it; a join
	// over the limit is refused the same way, and the client rejoins after
	// its backoff. Heartbeats and leaves are never refused: over the limit
	// they are answered as usual, so that a busy client is not taken for
	// a dead one, but they count towards MaxRateLimited. Defaults 100 and
	// 200. A negative MaxInboundRate or InboundBurst disables the limit.
	MaxInboundRate float64
	InboundBurst   int

	// MaxRateLimited closes a connection with 1008 once more than this
	// many of its messages went over MaxInboundRate within 10 seconds:
	// a flood, or a client sending at more than twice the rate for 10
	// seconds. Default: 10 × MaxInboundRate (1000), at least InboundBurst.
	// It is that high for phoenix.js, which buffers the pushes made while
	// it is disconnected and sends them all at once when it has rejoined:
	// it drops those older than the push's timeout (10 s by default), so
	// a client within MaxInboundRate never sends more than 10 seconds'
	// worth, and is refused, never closed. Raise it if your clients use
	// longer push timeouts. Negative: never close.
	MaxRateLimited int

	// InboundLimits are finer rate limits on what clients push to
	// channels, per topic pattern and event, on top of MaxInboundRate; see
	// [InboundLimit]. NewServer panics on an invalid one.
	InboundLimits []InboundLimit

	// MaxProtocolErrors closes a connection with 1008 once it makes more
	// than this many protocol errors within 5 seconds: joins or messages
	// for unmatched topics, invalid join payloads, joins over MaxChannels,
	// messages with stale join refs. Each still gets its normal reply
	// until then. Default 20. Negative disables.
	MaxProtocolErrors int

	// JoinTimeout bounds how long the client waits for a join reply while
	// Join runs: after it, the client gets {"reason":"join timeout"} and
	// the channel is dropped; when the slow Join returns, its result is
	// discarded (an accepted join gets Terminate with [ErrJoinTimeout]).
	// Default 10s, the official clients' own join timeout. Negative
	// disables.
	JoinTimeout time.Duration

	// MaxConnectionsPerID bounds the connections one socket ID (Options.ID)
	// may hold at once, on this server: one more is refused with HTTP 429
	// (long-poll: status 403) wrapping [ErrTooManyConnections]. Zero means
	// no limit. Anonymous connections are not counted.
	MaxConnectionsPerID int

	// Refresh is called when a connection's expiry passes (Connect set
	// [ConnectInfo.ExpiresAt]): return a later time to extend it (a token
	// refreshed server-side, a session still valid), or an error or the
	// zero time to close the connection with code 4001, after which
	// phoenix.js reconnects and Connect runs again. Its channels terminate
	// with [ErrExpired]. It runs on a goroutine of the server, with a
	// context that ends after 10 s or when the connection closes. nil
	// closes every connection at its expiry.
	Refresh func(ctx context.Context, id string, assigns Assigns) (time.Time, error)

	// DrainBatchSize and DrainBatchInterval pace Shutdown: connections are
	// closed this many at a time, this long apart, so that clients do not
	// all reconnect to the remaining instances at once. Defaults 10,000
	// and 2s, as Phoenix. A negative DrainBatchSize (one batch) or
	// DrainBatchInterval (no pause) closes every connection at once.
	DrainBatchSize     int
	DrainBatchInterval time.Duration

	// LongPoll configures the long-poll transport; the zero value is
	// Phoenix's defaults.
	LongPoll LongPollOptions

	// Serializers maps the protocol versions clients ask for (the `vsn`
	// query parameter) to wire formats, like Phoenix's `serializer:` socket
	// option: a connection gets the first entry whose requirement its vsn
	// matches, and one that matches none is refused (403). nil means
	// [DefaultSerializers]: V1 JSON for ~> 1.0.0 and clients that send no
	// vsn, V2 JSON for ~> 2.0.0. [New] refuses an entry with a malformed
	// requirement or a nil Serializer.
	Serializers []VersionedSerializer

	// DisableWebSocket refuses WebSocket upgrades: <mount>/websocket
	// answers 404, so clients that set longPollFallbackMs fall back to
	// long-poll. For tests and for deployments behind proxies that break
	// WebSockets.
	DisableWebSocket bool

	// Subprotocols lists WebSocket subprotocols the server accepts besides
	// "phoenix", as Phoenix's websocket subprotocols option: a client that
	// offers subprotocols gets the first of "phoenix" and these it
	// offered (ConnectInfo.Subprotocol tells Connect which); one that
	// offers none of them is refused with 403. phoenix.js's authToken
	// element is not a subprotocol and never counts.
	Subprotocols []string

	// Compress enables permessage-deflate (RFC 7692) on WebSocket
	// connections whose client offers it, as Phoenix's compress: true:
	// browsers do, and phoenix.js needs no option. Each message is
	// compressed on its own (no context takeover), so an idle connection
	// keeps no compression state; the cost is CPU per message and per
	// connection, since a broadcast is compressed once for every
	// subscriber. MaxMessageSize applies to a client message after
	// inflating, and inflating stops there: a small frame that inflates
	// past it closes the connection with 1009.
	Compress bool
	// CompressThreshold is the smallest message, in bytes, that is
	// compressed when Compress is on; smaller ones go as they are. Zero
	// means 512; negative compresses every message.
	CompressThreshold int
}

// LongPollOptions configures the long-poll transport (<mount>/longpoll),
// grouped as net/http groups its HTTP/2 settings. The zero value is
// Phoenix's defaults.
type LongPollOptions struct {
	// Disable turns the transport off: <mount>/longpoll answers 404, as
	// Phoenix's longpoll: false.
	Disable bool

	// Secret signs the session tokens (at least 32 random bytes; [New]
	// refuses a shorter one). nil means a random secret made by
	// NewServer: sessions then do not survive a restart, and a token is
	// only valid on the Server that made it. Sessions live in memory either
	// way, so behind a load balancer long-poll clients need sticky routing.
	Secret []byte

	// Window is how long a GET is held waiting for messages before it is
	// answered with status 204, and how long a POST waits for its turn to
	// dispatch before status 408. Default 10s, as Phoenix; keep it well
	// under the client's 20s request timeout. It cannot be disabled: [New]
	// refuses a negative Window.
	Window time.Duration

	// IdleTimeout closes a session that has not been polled for this long:
	// its channels terminate with [ErrClosed] and the client's next poll
	// opens a new session (the client rejoins). Default 15s, as Phoenix. It
	// replaces Options.HeartbeatTimeout for long-poll sessions, whose
	// clients send no heartbeats. Negative: sessions are never closed for
	// idleness (only by Disconnect, Shutdown or a failure).
	IdleTimeout time.Duration

	// MaxBody is the largest POST body accepted, in bytes; a larger one
	// gets HTTP 413 and closes the session. Default 1 MiB. Negative
	// disables the limit.
	MaxBody int64
}

// Assigns is the data a connection carries from [Options.Connect] into every
// channel it joins: the user ID, permissions and the like. Each channel gets
// its own shallow copy.
type Assigns map[string]any

func (a Assigns) clone() Assigns {
	if a == nil {
		return Assigns{}
	}
	c := make(Assigns, len(a))
	for k, v := range a {
		c[k] = v
	}
	return c
}

// ConnectInfo describes a connection being established, for
// [Options.Connect].
type ConnectInfo struct {
	// Context is the HTTP request's context; it ends when Connect returns
	// and the connection is upgraded.
	Context context.Context
	// Params are the query parameters, as the client's params option sends
	// them (phoenix.js also adds vsn). Nested objects arrive in bracket form
	// (a[b]=1) as separate keys.
	Params url.Values
	// AuthToken is the token phoenix.js sends with its authToken option
	// (in the Sec-WebSocket-Protocol header; over long-poll in the
	// X-Phoenix-AuthToken header), or "" when none was sent.
	AuthToken string
	// Header holds the request headers.
	Header http.Header
	// Origin is the Origin header, "" for native clients.
	Origin string
	// RemoteAddr is the client's network address (http.Request.RemoteAddr).
	RemoteAddr string
	// Transport is "websocket", "longpoll", "memory" (phxtest) or the
	// name a custom [Transport] gives.
	Transport string
	// Request is the HTTP request. Do not keep it past Connect.
	Request *http.Request
	// ExpiresAt, when Connect sets it, is when the connection's
	// credentials expire (a token's expiry): see [Options.Refresh]. The
	// zero time means never.
	ExpiresAt time.Time
	// Subprotocol is the WebSocket subprotocol the connection will speak:
	// "phoenix", one of Options.Subprotocols, or "" when the client offered
	// none.
	Subprotocol string
}

// newConnectInfo describes an HTTP request that opens a connection.
func newConnectInfo(r *http.Request, params url.Values, authToken, transport string) *ConnectInfo {
	return &ConnectInfo{
		Context:    r.Context(),
		Params:     params,
		AuthToken:  authToken,
		Header:     r.Header,
		Origin:     r.Header.Get("Origin"),
		RemoteAddr: r.RemoteAddr,
		Transport:  transport,
		Request:    r,
	}
}

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
	subprotocols []string // "phoenix", then Options.Subprotocols
	log          *slog.Logger
	pubsub       PubSub
	routes       router

	mu       sync.Mutex
	conns    map[*conn]struct{}
	perID    map[string]int // connections per socket ID, for MaxConnectionsPerID
	draining bool
	wg       sync.WaitGroup // every conn, until fully torn down

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
		log:          o.Logger,
		pubsub:       o.PubSub,
		conns:        make(map[*conn]struct{}),
		drainStarted: make(chan struct{}),
		hurry:        make(chan struct{}),
		drained:      make(chan struct{}),
		lp:           lp,
	}, nil
}

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
// Channel panics on an invalid or duplicate pattern.
func (s *Server) Channel(pattern string, newChannel ChannelFunc) {
	s.routes.add(pattern, newChannel)
}

// PubSub returns the PubSub the server broadcasts through.
func (s *Server) PubSub() PubSub { return s.pubsub }

// Broadcast sends event with payload to every subscriber of topic on every
// node. It never waits for slow clients. payload is encoded as for
// [Socket.Push]. With a PubSub adapter (NATS, Redis) it may wait for the
// broker up to the adapter's publish timeout: use BroadcastContext to bound
// it by a request's context.
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
	return s.publish(ctx, b, nil, false)
}

// publish hands b to the PubSub (this node only when local), and sends the
// Broadcast telemetry event when a hook wants it.
func (s *Server) publish(ctx context.Context, b *Broadcast, from Subscriber, local bool) error {
	t := s.opts.Telemetry
	if t == nil || t.Broadcast == nil {
		if local {
			return s.pubsub.LocalBroadcast(b, from)
		}
		return s.pubsub.Broadcast(ctx, b, from)
	}
	start := time.Now()
	subs := -1
	if sc, ok := s.pubsub.(interface{ SubscriberCount(string) int }); ok {
		subs = sc.SubscriberCount(b.Topic)
	}
	var err error
	if local {
		err = s.pubsub.LocalBroadcast(b, from)
	} else {
		err = s.pubsub.Broadcast(ctx, b, from)
	}
	t.broadcast(s.log, BroadcastSent{Topic: b.Topic, Event: b.Event, Subscribers: subs, Local: local,
		Duration: time.Since(start), Err: err})
	return err
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
	return s.BroadcastContext(ctx, id, "disconnect", nil)
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
	s.opts.Telemetry.drain(s.log, DrainProgress{Closed: closed, Total: total, Batch: batch, Hurry: hurried})
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
			status = http.StatusForbidden
			var sc interface{ StatusCode() int }
			if errors.As(err, &sc) && sc.StatusCode() >= 400 {
				status = sc.StatusCode()
			}
			return nil, "", status, err
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
