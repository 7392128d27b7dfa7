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
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a [Server]. The zero value is usable: every field
// documents its default, applied once by [NewServer].
type Options struct {
	// Connect authenticates a new transport connection, before the
	// WebSocket upgrade. It returns the assigns every channel joined on the
	// connection starts with, or an error to refuse the connection: the
	// client then gets HTTP 403 (or the status of an error implementing
	// interface{ StatusCode() int }, such as a 429 for rate limiting).
	// The error text is never sent to the client.
	//
	// Connect runs on the request's goroutine; info.Context is the
	// request's context. nil accepts every connection with no assigns.
	Connect func(info *ConnectInfo) (Assigns, error)

	// ID names the connection from its assigns, e.g. "users_socket:42".
	// Connections that share an ID can be closed together with
	// [Server.Disconnect]. An empty ID (or a nil ID func) makes the
	// connection anonymous.
	ID func(assigns Assigns) string

	// PubSub carries broadcasts. nil means a fresh [NewMemoryPubSub].
	PubSub PubSub

	// Logger receives the server's logs: connection and channel lifecycle
	// at Debug, bad client input at Info or Warn, crashes at Error.
	// nil means slog.Default().
	Logger *slog.Logger

	// AllowedOrigins lists the browser origins allowed to connect, checked
	// only when a request carries an Origin header (native clients send
	// none). Empty means same host: the Origin's host must equal the
	// request's Host (scheme and port ignored), as Phoenix's
	// check_origin: true. Entries are "https://example.com" (scheme and
	// host must match; the port too when the entry has one or the scheme
	// implies it), "//example.com" (any scheme), "//*.example.com" (the
	// domain itself and any subdomain). Failing requests get HTTP 403.
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
	WriteTimeout time.Duration

	// MaxQueuedMessages and MaxQueuedBytes bound the frames waiting to be
	// written to one connection. A connection whose queue overflows is a
	// slow consumer: it is closed with code 1008 (the clients reconnect) and
	// the publisher never waits. Defaults 1024 messages and 1 MiB.
	MaxQueuedMessages int
	MaxQueuedBytes    int

	// MaxChannelQueue bounds the events waiting for one channel's
	// goroutine (client messages, intercepted broadcasts, Send messages).
	// A channel that falls this far behind is stopped with
	// [ErrChannelOverloaded] and the client gets phx_error. Default 1024.
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
	// 200. A negative MaxInboundRate disables the limit.
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

	// DrainBatchSize and DrainBatchInterval pace Shutdown: connections are
	// closed this many at a time, this long apart, so that clients do not
	// all reconnect to the remaining instances at once. Defaults 10,000
	// and 2s, as Phoenix.
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
	// vsn, V2 JSON for ~> 2.0.0. NewServer panics on an entry with a
	// malformed requirement or a nil Serializer.
	Serializers []VersionedSerializer

	// DisableWebSocket refuses WebSocket upgrades: <mount>/websocket
	// answers 404, so clients that set longPollFallbackMs fall back to
	// long-poll. For tests and for deployments behind proxies that break
	// WebSockets.
	DisableWebSocket bool
}

// LongPollOptions configures the long-poll transport (<mount>/longpoll),
// grouped as net/http groups its HTTP/2 settings. The zero value is
// Phoenix's defaults.
type LongPollOptions struct {
	// Disable turns the transport off: <mount>/longpoll answers 404, as
	// Phoenix's longpoll: false.
	Disable bool

	// Secret signs the session tokens (at least 32 random bytes; NewServer
	// panics on a shorter one). nil means a random secret made by
	// NewServer: sessions then do not survive a restart, and a token is
	// only valid on the Server that made it. Sessions live in memory either
	// way, so behind a load balancer long-poll clients need sticky routing.
	Secret []byte

	// Window is how long a GET is held waiting for messages before it is
	// answered with status 204, and how long a POST waits for its turn to
	// dispatch before status 408. Default 10s, as Phoenix; keep it well
	// under the client's 20s request timeout.
	Window time.Duration

	// IdleTimeout closes a session that has not been polled for this long:
	// its channels terminate with [ErrClosed] and the client's next poll
	// opens a new session (the client rejoins). Default 15s, as Phoenix. It
	// replaces Options.HeartbeatTimeout for long-poll sessions, whose
	// clients send no heartbeats.
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
	opts        Options
	serializers []versionedCodec
	origins     []originPattern
	log         *slog.Logger
	pubsub      PubSub
	routes      router

	mu       sync.Mutex
	conns    map[*conn]struct{}
	draining bool
	wg       sync.WaitGroup // every conn, until fully torn down

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

// NewServer returns a Server configured by opts (nil for all defaults). It
// panics if an AllowedOrigins entry is malformed, LongPoll.Secret is
// shorter than 32 bytes, or a Serializers entry is invalid.
func NewServer(opts *Options) *Server {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PubSub == nil {
		o.PubSub = NewMemoryPubSub()
	}
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = 60 * time.Second
	}
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = 64 << 10
	}
	if o.MaxChannels == 0 {
		o.MaxChannels = 100
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.MaxQueuedMessages <= 0 {
		o.MaxQueuedMessages = 1024
	}
	if o.MaxQueuedBytes <= 0 {
		o.MaxQueuedBytes = 1 << 20
	}
	if o.MaxChannelQueue <= 0 {
		o.MaxChannelQueue = 1024
	}
	if o.MaxInboundRate == 0 {
		o.MaxInboundRate = 100
	}
	if o.InboundBurst <= 0 {
		o.InboundBurst = 200
	}
	if o.MaxRateLimited == 0 {
		o.MaxRateLimited = max(o.InboundBurst, int(math.Min(math.Ceil(10*o.MaxInboundRate), 1<<30)))
	}
	o.InboundLimits = compileInboundLimits(o.InboundLimits)
	if o.MaxProtocolErrors == 0 {
		o.MaxProtocolErrors = 20
	}
	if o.DrainBatchSize <= 0 {
		o.DrainBatchSize = 10000
	}
	if o.DrainBatchInterval <= 0 {
		o.DrainBatchInterval = 2 * time.Second
	}
	if o.JoinTimeout == 0 {
		o.JoinTimeout = 10 * time.Second
	}
	if o.LongPoll.Window <= 0 {
		o.LongPoll.Window = 10 * time.Second
	}
	if o.LongPoll.IdleTimeout <= 0 {
		o.LongPoll.IdleTimeout = 15 * time.Second
	}
	if o.LongPoll.MaxBody == 0 {
		o.LongPoll.MaxBody = 1 << 20
	}
	lp := newLongPoll(o.LongPoll.Secret)
	o.LongPoll.Secret = nil // kept only as the signer's derived keys
	o.AllowedOrigins = append([]string(nil), o.AllowedOrigins...)
	origins := make([]originPattern, len(o.AllowedOrigins))
	for i, p := range o.AllowedOrigins {
		op, err := parseOriginPattern(p)
		if err != nil {
			panic(err)
		}
		origins[i] = op
	}
	serializers, err := compileSerializers(o.Serializers)
	if err != nil {
		panic(err)
	}
	return &Server{
		opts:        o,
		serializers: serializers,
		origins:     origins,
		log:         o.Logger,
		pubsub:      o.PubSub,
		conns:       make(map[*conn]struct{}),
		lp:          lp,
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
// [Socket.Push].
func (s *Server) Broadcast(topic, event string, payload any) error {
	b, err := NewBroadcast(topic, event, payload)
	if err != nil {
		return err
	}
	return s.pubsub.Broadcast(context.Background(), b, nil)
}

// LocalBroadcast is [Server.Broadcast] restricted to this node's subscribers.
func (s *Server) LocalBroadcast(topic, event string, payload any) error {
	b, err := NewBroadcast(topic, event, payload)
	if err != nil {
		return err
	}
	return s.pubsub.LocalBroadcast(b, nil)
}

// Disconnect closes every connection whose [Options.ID] is id, on every
// node, with close code 1001, so the clients reconnect and authenticate
// again ("log out everywhere"). Their channels terminate with [ErrClosed].
// Anonymous connections are never affected. A WebSocket connection is
// reachable from the moment its client has the upgrade response (it is
// subscribed to its ID just before); a long-poll session from its first
// poll.
func (s *Server) Disconnect(id string) error {
	if id == "" {
		return errors.New("phx: Disconnect needs a socket ID")
	}
	return s.Broadcast(id, "disconnect", nil)
}

// ServeHTTP serves the transports under the mount prefix: a request whose
// path ends in /websocket is a WebSocket connection, one whose path ends in
// /longpoll a long-poll request (see [Options.DisableWebSocket] and
// [Options.LongPoll.Disable]). Anything else gets 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasSuffix(r.URL.Path, "/websocket") && !s.opts.DisableWebSocket:
		s.serveWebSocket(w, r)
	case strings.HasSuffix(r.URL.Path, "/longpoll") && !s.opts.LongPoll.Disable:
		s.serveLongPoll(w, r)
	default:
		http.NotFound(w, r)
	}
}

// Shutdown drains the server: new connections are refused with 503 (new
// long-poll sessions with status 500); open connections are closed with
// code 1012, DrainBatchSize at a time, DrainBatchInterval apart (the
// clients reconnect, to another instance if there is one); long-poll
// sessions are closed (a pending poll answers status 410); every channel's
// Terminate runs with [ErrServerClosed]. Shutdown returns once all of that is
// done, or with ctx's error when ctx ends first (the remaining connections
// are then closed at once). http.Server.Shutdown does not close WebSocket
// connections: call both.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for i, c := range conns {
		if i > 0 && i%s.opts.DrainBatchSize == 0 {
			select {
			case <-time.After(s.opts.DrainBatchInterval):
			case <-ctx.Done():
				for _, c := range conns[i:] { // out of time: close the rest now
					c.close(closeServiceRestart, "server shutting down", ErrServerClosed)
				}
				return ctx.Err()
			}
		}
		c.close(closeServiceRestart, "server shutting down", ErrServerClosed)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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
