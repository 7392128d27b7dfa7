package phx

// This file holds what configures a Server (Options, LongPollOptions) and
// what a connection brings to it (ConnectInfo, Assigns).

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
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

	// History stores the broadcasts of routes registered [WithHistory]
	// (and of [Server.BroadcastWith] calls that ask for it). nil means a
	// fresh [NewMemoryHistory], which serves one node.
	History HistoryStore

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
	// none; a present but empty Origin, or two of them, is refused, as
	// Phoenix refuses it). Entries are "https://example.com" (scheme and
	// host must match; the port too when the entry has one or the scheme
	// implies it), "//example.com" (any scheme), "//*.example.com" (the
	// domain itself and any subdomain). Empty means the Origin's host must
	// be one of Hosts or, without Hosts, the request's own Host header
	// (scheme and port ignored). Failing requests get HTTP 403. [New]
	// refuses a malformed entry.
	//
	// What each mode protects against: any of them stops a page on another
	// site from opening a socket with the user's cookies (cross-site
	// WebSocket hijacking). Only Hosts or an explicit list stops DNS
	// rebinding, where a hostile name resolves to this server: then the
	// page's Origin and the request's Host both name the hostile site, so
	// the request-Host default lets it in.
	AllowedOrigins []string

	// Hosts lists the host names this server is reached under, as
	// Phoenix's endpoint url: [host: ...] that check_origin: true compares
	// against: "example.com", "*.example.com" (the domain and its
	// subdomains), "127.0.0.1", "[::1]"; no scheme or port. When set, a
	// request whose Host header names another host gets HTTP 403 on every
	// transport, Origin or not (a DNS-rebinding page's requests name its
	// own host), and with AllowedOrigins empty an Origin must name one of
	// these hosts. Empty: any Host. [New] refuses a malformed entry.
	Hosts []string

	// LoadSession, when set, reads the HTTP session of each connection
	// attempt (usually from its session cookie), as Phoenix's
	// connect_info: [session: ...]. Its value reaches Connect as
	// [ConnectInfo.Session] only when the connect params carry the
	// session's CSRF token as [CSRFParam]: browsers send cookies with a
	// WebSocket upgrade from any page that can reach the server, so a
	// cookie alone proves nothing. A nil *Session means no session; an
	// error or a panic is logged and means no session too. It runs before
	// Connect, on every transport that has an HTTP request.
	LoadSession func(r *http.Request) (*Session, error)

	// CheckOrigin, when set, replaces AllowedOrigins: it reports whether
	// the request may connect. It is called for every request, with or
	// without an Origin header. Hosts still applies.
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
	// context that ends after 10 s or when the connection closes; assigns
	// is a copy of the connection's (changing it changes nothing). nil
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
	// refuses a shorter one). Give every node behind a load balancer the
	// same Secret: a session lives in the memory of the node that opened
	// it, and a request for it that lands on another node is relayed to
	// that one over Options.PubSub (see ForwardTimeout), so no sticky
	// routing is needed. nil means a random secret made by New: a token is
	// then only valid on the Server that made it, nothing is relayed, and
	// long-poll clients need sticky routing.
	Secret []byte

	// ForwardTimeout bounds how long a node waits for the owner of a
	// session to take a request relayed to it over Options.PubSub, as
	// Phoenix's pubsub_timeout_ms: past it the owner counts as gone, a GET
	// opens a new session where it landed (answered 410, so phoenix.js
	// reconnects and rejoins) and a POST gets 410. An owner that has taken
	// a request answers within LongPoll.Window plus ForwardTimeout, or the
	// poll gets 410. Default 2s. Relaying needs a shared Secret and a
	// PubSub that reaches every node (NATS, Redis; a MemoryPubSub reaches
	// the Servers of one process); each relayed request costs one PubSub
	// round trip (request and answer; a request the owner holds for more
	// than a quarter of ForwardTimeout, such as a waiting poll, also an
	// acknowledgement). Negative: nothing is relayed, and another node's
	// token opens a new session at once.
	ForwardTimeout time.Duration

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

// assignList holds a connection's assigns for its life, as a list: a map
// of one or two entries costs about 0.3 KiB, and every channel, and
// Refresh, gets a map of its own anyway.
type assignList []assignEntry

type assignEntry struct {
	key   string
	value any
}

func listAssigns(a Assigns) assignList {
	l := make(assignList, 0, len(a))
	for k, v := range a {
		l = append(l, assignEntry{k, v})
	}
	return l
}

// assigns returns a new map of the list's entries.
func (l assignList) assigns() Assigns {
	a := make(Assigns, len(l))
	for _, e := range l {
		a[e.key] = e.value
	}
	return a
}

// ConnectInfo describes a connection being established, for
// [Options.Connect].
type ConnectInfo struct {
	// Context is the HTTP request's context; it ends when Connect returns
	// and the connection is upgraded. The connection's context, and every
	// channel's ([Socket.Context]), carries the values of Context as
	// Connect leaves it, not its cancellation. Connect may replace it: a
	// connection keeps the request's context chain for its life (about 0.3
	// KiB with net/http's own), so a Connect whose channels need nothing
	// from the request can set context.Background(), or a context holding
	// only what they need (a trace span, a request ID). Telemetry events
	// after Connect carry the replacement too.
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
	// Session is the value of the [Session] that [Options.LoadSession]
	// read from the request, when the connect params carried its CSRF
	// token ([CSRFParam]); nil otherwise: no LoadSession, no session, or
	// a missing or wrong token. A Connect that authenticates by cookie
	// refuses when it is nil.
	Session any
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
