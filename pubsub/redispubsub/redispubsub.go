// Package redispubsub is a [phx.PubSub] that connects the nodes of a
// cluster through Redis Pub/Sub (PUBLISH/SUBSCRIBE, nothing stored), so a
// broadcast made on any node reaches the subscribers of its topic on every
// node. It is a module of its own, so that only programs using it depend on
// go-redis:
//
//	go get github.com/phxgo/phx/pubsub/redispubsub
//
//	ps, err := redispubsub.Dial("redis://127.0.0.1:6379", nil)
//	if err != nil { ... }
//	defer ps.Close()
//	srv := phx.NewServer(&phx.Options{PubSub: ps})
//
// # Delivery
//
// Every node keeps its subscribers in a [phx.MemoryPubSub]. A broadcast is
// delivered to the local subscribers of the node that makes it at once, on
// the caller's goroutine, exactly as without Redis; then it joins the
// node's outbound queue and Broadcast returns. Broadcast never waits for
// Redis, whether it is up, slow, frozen or gone: local delivery does not
// depend on the broker. One sender goroutine per node PUBLISHes the queue
// in order, in pipelines of up to 256 messages, each attempt bounded by
// PublishTimeout. Each other node with subscribers on the topic receives a
// broadcast once, decodes it into one *phx.Broadcast and hands that to its
// local subscribers, which encode it once per wire format (fastlane). When
// the message comes back to its origin node it is recognized by the node
// ID in the envelope and dropped (Stats.DroppedOwn). BroadcastFrom's
// excluded subscriber lives on the origin node and is skipped there.
//
// Every node numbers its broadcasts, and every node delivers each other
// node's broadcasts at most once and in the order they were made there
// (the order of the Broadcast calls on that node, over all topics); a copy
// that arrives again (a publish retried after a timeout, a resend) is
// dropped and counted in Stats.Duplicates.
//
// # Outages
//
// A broker outage (Redis killed and restarted, frozen, or the connection
// lost) loses no broadcast and duplicates none, within these bounds:
//
//   - While a node is disconnected its broadcasts wait in its queue, at
//     most MaxQueued of them (default 10,000), MaxQueuedBytes in all
//     (default 16 MiB) and MaxQueueAge old (default 10s). When the
//     connection returns (every topic re-subscribed and confirmed), the
//     node sends them in order before anything newer.
//   - A node also keeps its recent published broadcasts, within the same
//     bounds. A node that re-subscribes asks every other node for what it
//     missed (what they published while it was not subscribed, which Redis
//     Pub/Sub does not store), telling each the last of its broadcasts it
//     delivered; each sends its stream again from there. The others drop
//     the copies. Until a node has answered (at most ReplayWait, default
//     3s), the re-subscribed node drops that node's broadcasts, which come
//     again with the answer, so order is kept.
//   - Past the bounds, broadcasts are dropped and counted: the origin
//     counts its own in Stats.Dropped and Gap.Dropped, with a
//     "publish_dropped" telemetry event for each (Err: [ErrQueueFull] when
//     Broadcast refused it, [ErrQueueExpired] when it waited too long);
//     a node asking for what it missed counts what the other no longer
//     kept in Stats.Missed and Gap.Missed (an upper bound: some of those
//     may have been for topics it has no subscribers for).
//   - The queue lives in the node's memory: a node that crashes or is
//     closed with broadcasts queued loses them (Close waits up to
//     PublishTimeout for the queue to drain). A node that starts gets
//     nothing from before it started. Clients are still served at most
//     once: a client that is disconnected misses what was broadcast
//     meanwhile, as in Phoenix.
//
// The adapter watches its subscription connection: a read error, or no
// answer to a PING sent after PingInterval of silence within another
// PingInterval, means the connection is lost. It then reconnects with a
// backoff (50 ms doubling up to MaxReconnectWait) and re-subscribes every
// topic that has local subscribers. While it is down the sender does not
// try Redis (a publish in flight counts as failed and is sent again), so
// nothing waits on a connection known to be dead. Each gap is logged with
// its length, counted (Stats.Disconnects, Stats.Reconnects,
// Stats.LastGap), reported as "disconnected" and "reconnected" telemetry
// events, and, once this node's queue was replayed and the other nodes
// answered, passed to Options.OnGap and a "replayed" event with the
// counts. Redis closes a subscriber whose output buffer overflows
// (client-output-buffer-limit pubsub); that shows up here as a gap.
//
// The client made by [Dial] honours context deadlines
// (ContextTimeoutEnabled) and does not retry commands itself; give [New]
// a client with ContextTimeoutEnabled too, or go-redis's own socket
// timeouts (3s by default) bound a publish to a frozen server instead of
// PublishTimeout. Either way Broadcast does not wait.
//
// # Channels
//
// Each topic has its own Redis channel, Prefix + ":" + topic
// ("phx:room:lobby"; channel names are binary-safe, nothing is escaped).
// A node SUBSCRIBEs to a topic's channel on one dedicated connection when
// the topic gets its first local subscriber (waiting, up to
// SubscribeTimeout, for Redis to confirm it, so a broadcast made elsewhere
// right after a join is not missed) and UNSUBSCRIBEs when the last one
// leaves. Redis then sends a node only the topics it has subscribers for.
// The alternative, one PSUBSCRIBE "phx:*" per node, saves the subscribe
// round trips but sends every message to every node, and Redis matches
// every published message against every pattern. Pub/Sub channels ignore
// the database number: apps sharing a Redis need distinct prefixes. The
// nodes' own messages (announcements after a reconnection, the answers,
// a tick a second from each node that publishes) go on the channel
// Prefix + ":\x00phx-relay".
//
// # Envelope
//
// The message is a compact binary envelope, version 2:
//
//	byte 0     version (2)
//	byte 1     flags: bit 0 = binary payload (phx.Payload.Binary),
//	           bit 1 = the nodes' own message; others reserved
//	uvarint n  len(node ID), then the node ID
//	uvarint    incarnation: random, fresh each time the node starts
//	uvarint    sequence number: 1, 2, 3… per incarnation
//	uvarint n  len(topic), then the topic
//	uvarint n  len(event), then the event
//	rest       the payload: JSON text, or raw bytes with bit 0
//
// Lengths are unsigned varints (encoding/binary.Uvarint). Version 1 (the
// same without incarnation and sequence number, written by v0.1.0) is
// still read, without duplicate detection; v0.1.0 nodes do not read
// version 2, so during a rolling upgrade from v0.1.0 the old and the new
// nodes do not hear each other. A message with another version or a
// malformed one is dropped, counted in Stats.DecodeErrors and logged at
// most once a second.
//
// # History
//
// [History] is a shared [phx.HistoryStore] on Redis Streams for routes
// with phx.WithHistory: a client that reconnects to another node recovers
// what it missed. One Lua script assigns the topic's next offset, appends,
// trims and PUBLISHes, so every node delivers a topic's recorded
// broadcasts in offset order. See its documentation for keys, epochs and
// limits.
package redispubsub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/pubsub/internal/relay"
	"github.com/redis/go-redis/v9"
)

// Errors of Broadcast. Either way the broadcast reached this node's
// subscribers.
var (
	// ErrDisconnected is returned by Broadcast while the connection to
	// Redis is down and queueing is off (Options.MaxQueued < 0).
	ErrDisconnected = relay.ErrDisconnected
	// ErrQueueFull is returned by Broadcast when the outbound queue is at
	// Options.MaxQueued or Options.MaxQueuedBytes: other nodes will not
	// get the broadcast.
	ErrQueueFull = relay.ErrQueueFull
	// ErrQueueExpired is the Err of the "publish_dropped" telemetry event
	// of a queued broadcast that waited longer than Options.MaxQueueAge.
	ErrQueueExpired = relay.ErrQueueExpired
)

// Options configures a [PubSub]. The zero value is usable.
type Options struct {
	// NodeID identifies this node in the envelope of its broadcasts, so
	// it can drop them when Redis sends them back. It must be unique in
	// the cluster. Default: 16 random bytes, base64url, fresh at each start.
	NodeID string

	// Prefix starts every channel name: "<Prefix>:<topic>". Nodes of one
	// cluster must use the same. Default "phx".
	Prefix string

	// PublishTimeout bounds each attempt to hand queued broadcasts to
	// Redis (one pipeline of PUBLISH commands, waiting for the answers).
	// Broadcast itself never waits for Redis. Default 2s.
	PublishTimeout time.Duration

	// MaxQueued, MaxQueuedBytes and MaxQueueAge bound the outbound queue
	// that holds broadcasts until Redis has them, over an outage in
	// particular, and the recent broadcasts kept to send again to a node
	// that re-subscribes: at most MaxQueued broadcasts (default 10,000) of at most
	// MaxQueuedBytes in all (default 16 MiB, counting each envelope plus
	// 64 bytes), none older than MaxQueueAge (default 10s). Broadcast
	// refuses a broadcast over the count or byte bound with
	// [ErrQueueFull]; one that waited too long is dropped when it comes
	// up. Either way it is counted in Stats.Dropped, reported in
	// Gap.Dropped and as a "publish_dropped" telemetry event. A negative
	// MaxQueued turns queueing over outages off: while disconnected,
	// Broadcast returns [ErrDisconnected] at once.
	MaxQueued      int
	MaxQueuedBytes int
	MaxQueueAge    time.Duration

	// ReplayWait bounds how long, after a reconnection, the adapter
	// waits for another node to answer its request for what it missed;
	// until then it drops that node's broadcasts, which come again with
	// the answer. A node that does not answer is forgotten. Default 3s.
	ReplayWait time.Duration

	// SubscribeTimeout bounds how long the first Subscribe of a topic
	// waits for Redis to confirm the subscription. While disconnected it
	// does not wait: the subscription is made when the connection
	// returns. Default 2s.
	SubscribeTimeout time.Duration

	// PingInterval is how long the subscription connection may stay
	// silent before the adapter sends a PING, and how long it then waits
	// for any answer before declaring the connection lost. Default 5s.
	PingInterval time.Duration

	// MaxReconnectWait caps the backoff between reconnection attempts.
	// Default 1s.
	MaxReconnectWait time.Duration

	// Logger receives connection events and decode errors. nil means the
	// logger of the phx.Server using the adapter (slog.Default() before
	// there is one).
	Logger *slog.Logger

	// OnGap, when set, is called after each outage of the connection,
	// once the broadcasts this node queued during it were replayed (or
	// dropped). It runs on the adapter's sender goroutine: return quickly.
	OnGap func(Gap)
}

// Gap describes one outage of the connection to Redis.
type Gap struct {
	// Start and End are when the connection was lost and restored.
	Start, End time.Time
	// Replayed counts this node's broadcasts queued during the outage and
	// published after it.
	Replayed int
	// Dropped counts this node's broadcasts that will never reach other
	// nodes, from the start of the outage to the end of the replay: the
	// queue was full, or they waited longer than MaxQueueAge.
	Dropped int64
	// Missed counts other nodes' broadcasts this node asked for again
	// after the outage and that they no longer kept (an upper bound: some
	// may have been for topics this node has no subscribers for).
	Missed int64
}

// PubSub is a [phx.PubSub] over Redis Pub/Sub. Create it with [Dial] or
// [New]; it is safe for concurrent use.
type PubSub struct {
	r      *relay.Relay
	o      Options
	client redis.UniversalClient
	owns   bool // Close closes client

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	ps       *redis.PubSub // replaced when a dead connection must be dropped
	closed   bool
	state    connState                  // of ps's connection
	channels map[string]struct{}        // channels this node must be subscribed to
	waiters  map[string][]chan struct{} // Subscribe calls waiting for confirmation

	lastActivity atomic.Int64 // unix nanos of the last thing read from ps
	pingSent     atomic.Int64 // unix nanos of an unanswered watchdog PING, 0 if none
}

var _ phx.PubSub = (*PubSub)(nil)

// connState is the state of the subscription connection.
type connState int

const (
	stateDown       connState = iota // lost; receive is reconnecting
	stateConfirming                  // re-subscribed, waiting for the PONG that follows
	stateUp
)

// Dial connects to the Redis server at url, in the form
// redis://[[user]:password@]host[:port][/db] or rediss:// for TLS (see
// redis.ParseURL), and returns a PubSub that owns its client. It fails if
// Redis does not answer a PING now. opts may be nil.
//
// The client honours context deadlines (ContextTimeoutEnabled), so
// Options.PublishTimeout and SubscribeTimeout bound every command, and
// does not retry commands itself (MaxRetries -1): the adapter retries,
// knowing whether the connection is up.
func Dial(url string, opts *Options) (*PubSub, error) {
	ro, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redispubsub: %w", err)
	}
	ro.ContextTimeoutEnabled = true
	ro.MaxRetries = -1
	client := redis.NewClient(ro)
	ps, err := New(client, opts)
	if err != nil {
		client.Close()
		return nil, err
	}
	ps.owns = true
	return ps, nil
}

// New returns a PubSub that publishes with client and subscribes on a
// connection of its own. Close does not close client. It fails if Redis
// does not answer a PING now. opts may be nil.
//
// Create client with ContextTimeoutEnabled: without it go-redis applies
// its own socket timeouts (ReadTimeout, 3s by default) instead of the
// adapter's, so a publish to a frozen server holds the sender past
// Options.PublishTimeout (Broadcast still returns at once).
func New(client redis.UniversalClient, opts *Options) (*PubSub, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.NodeID == "" {
		o.NodeID = relay.RandomID()
	}
	if o.Prefix == "" {
		o.Prefix = "phx"
	}
	if o.SubscribeTimeout <= 0 {
		o.SubscribeTimeout = 2 * time.Second
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 5 * time.Second
	}
	if o.MaxReconnectWait <= 0 {
		o.MaxReconnectWait = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.SubscribeTimeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redispubsub: %w", err)
	}
	a := &PubSub{
		state:    stateUp,
		o:        o,
		client:   client,
		channels: make(map[string]struct{}),
		waiters:  make(map[string][]chan struct{}),
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	var onGap func(relay.Gap)
	if o.OnGap != nil {
		onGap = func(g relay.Gap) { o.OnGap(Gap(g)) }
	}
	a.r = relay.New(relay.Config{
		NodeID:         o.NodeID,
		Adapter:        "redis",
		Logger:         o.Logger,
		OnGap:          onGap,
		PublishTimeout: o.PublishTimeout,
		MaxQueued:      o.MaxQueued,
		MaxQueuedBytes: o.MaxQueuedBytes,
		MaxQueueAge:    o.MaxQueueAge,
		ReplayWait:     o.ReplayWait,
	}, (*broker)(a))
	a.ps = client.Subscribe(a.ctx)
	// Connect the subscription connection now, so the first Subscribe
	// does not pay for it.
	if err := a.ps.Ping(ctx); err != nil {
		a.ps.Close()
		a.cancel()
		return nil, fmt.Errorf("redispubsub: %w", err)
	}
	a.touch()
	a.wg.Add(2)
	go a.receive()
	go a.watchdog()
	if err := a.r.Start(); err != nil {
		a.Close()
		return nil, fmt.Errorf("redispubsub: %w", err)
	}
	return a, nil
}

// Subscribe implements [phx.PubSub]. The first local subscriber of a
// topic subscribes this node to the topic's channel and waits (up to
// Options.SubscribeTimeout) for Redis to confirm it.
func (a *PubSub) Subscribe(topic string, s phx.Subscriber) error { return a.r.Subscribe(topic, s) }

// Unsubscribe implements [phx.PubSub]. The last local subscriber of a topic
// unsubscribes this node from the topic's channel.
func (a *PubSub) Unsubscribe(topic string, s phx.Subscriber) error {
	return a.r.Unsubscribe(topic, s)
}

// Broadcast implements [phx.PubSub]: local subscribers but from get b at
// once, on the caller's goroutine; then b joins the outbound queue, which
// the adapter's sender goroutine PUBLISHes in order, and Broadcast
// returns. It never waits for Redis, connected or not, so ctx has nothing
// to bound. It returns [ErrQueueFull] when the queue is at its bound,
// [ErrDisconnected] while disconnected with queueing off, and
// [phx.ErrPubSubClosed] after Close.
func (a *PubSub) Broadcast(ctx context.Context, b *phx.Broadcast, from phx.Subscriber) error {
	return a.r.Broadcast(ctx, b, from)
}

// LocalBroadcast implements [phx.PubSub]: this node's subscribers only.
func (a *PubSub) LocalBroadcast(b *phx.Broadcast, from phx.Subscriber) error {
	return a.r.LocalBroadcast(b, from)
}

// NodeID returns this node's ID.
func (a *PubSub) NodeID() string { return a.o.NodeID }

// Channel returns the Redis channel that carries topic.
func (a *PubSub) Channel(topic string) string { return a.o.Prefix + ":" + topic }

// Close stops taking broadcasts (later Subscribe and Broadcast calls
// return [phx.ErrPubSubClosed]), waits up to Options.PublishTimeout for
// the outbound queue to drain while connected (what is left is dropped;
// with a publish in flight Close may take twice PublishTimeout in all),
// tells the other nodes this one is gone, closes the subscription
// connection (and the client, if [Dial] made it) and stops the adapter's
// goroutines. Local subscribers are not told. Close is idempotent.
func (a *PubSub) Close() error {
	if !a.r.Close() {
		return nil
	}
	a.mu.Lock()
	a.closed = true
	ps := a.ps
	a.mu.Unlock()
	a.cancel()
	ps.Close()
	a.wg.Wait()
	if a.owns {
		return a.client.Close()
	}
	return nil
}

// Stats is a snapshot of a PubSub's counters.
type Stats struct {
	// Published counts broadcasts PUBLISHed to Redis (and answered).
	Published int64
	// PublishErrors counts failed attempts to publish (each retried), and
	// broadcasts refused while disconnected with queueing off.
	PublishErrors int64
	// Queued is the number of broadcasts waiting in the outbound queue.
	Queued int
	// Replayed counts broadcasts queued during an outage and published
	// after it.
	Replayed int64
	// Dropped counts this node's broadcasts that will never reach other
	// nodes: refused with ErrQueueFull, expired (MaxQueueAge), or still
	// queued at Close.
	Dropped int64
	// Received counts broadcasts of other nodes delivered here.
	Received int64
	// Duplicates counts copies of other nodes' broadcasts that were
	// already delivered here (a publish retried after a timeout, or sent
	// again for a node that re-subscribed), dropped.
	Duplicates int64
	// Resent counts this node's broadcasts sent again because another
	// node asked for them after re-subscribing.
	Resent int64
	// Missed counts other nodes' broadcasts asked for again after an
	// outage that they no longer kept (an upper bound).
	Missed int64
	// DroppedOwn counts this node's broadcasts that Redis sent back, dropped.
	DroppedOwn int64
	// DecodeErrors counts messages dropped for an unknown envelope version
	// or a malformed envelope.
	DecodeErrors int64
	// Disconnects and Reconnects count connection losses and recoveries.
	Disconnects, Reconnects int64
	// Connected reports whether the subscription connection is up now.
	Connected bool
	// Topics is the number of topics this node is subscribed to at Redis.
	Topics int
	// LastGap is the length of the last outage, 0 if none.
	LastGap time.Duration
}

// UseLogger makes l the adapter's logger unless Options.Logger was set.
// phx.NewServer calls it with the server's logger, so the adapter logs
// where the server does.
func (a *PubSub) UseLogger(l *slog.Logger) { a.r.UseLogger(l) }

// UseTelemetry makes t receive the adapter's events (connection lost and
// restored, queue replayed, failed publishes, dropped broadcasts,
// undecodable messages) as phx.PubSubEvent.
// phx.NewServer calls it with Options.Telemetry.
func (a *PubSub) UseTelemetry(t *phx.Telemetry) { a.r.UseTelemetry(t) }

// Stats returns the current counters.
func (a *PubSub) Stats() Stats {
	c := a.r.Counters()
	return Stats{
		Published:     c.Published,
		PublishErrors: c.PublishErrors,
		Queued:        c.Queued,
		Replayed:      c.Replayed,
		Dropped:       c.Dropped,
		Received:      c.Received,
		Duplicates:    c.Duplicates,
		Resent:        c.Resent,
		Missed:        c.Missed,
		DroppedOwn:    c.DroppedOwn,
		DecodeErrors:  c.DecodeErrors,
		Disconnects:   c.Disconnects,
		Reconnects:    c.Reconnects,
		Connected:     c.Connected,
		Topics:        c.Topics,
		LastGap:       c.LastGap,
	}
}

func (a *PubSub) touch() {
	a.lastActivity.Store(time.Now().UnixNano())
	a.pingSent.Store(0)
}

// current returns the live redis.PubSub, nil once closed.
func (a *PubSub) current() *redis.PubSub {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	return a.ps
}

// receive reads the subscription connection, delivers messages, and
// reconnects after a loss.
func (a *PubSub) receive() {
	defer a.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		ps := a.current()
		if ps == nil {
			return
		}
		if a.getState() == stateDown {
			if err := a.reconnect(ps); err != nil {
				if a.current() == nil {
					return
				}
				a.r.Logger().Debug("phx pubsub: reconnection attempt failed", "err", err, "retry_in", backoff)
				select {
				case <-a.ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, a.o.MaxReconnectWait)
				continue
			}
			backoff = 50 * time.Millisecond
		}
		msg, err := ps.Receive(a.ctx)
		if err != nil {
			if a.current() == nil {
				return
			}
			a.setState(ps, stateDown)
			a.r.Disconnected(err)
			continue
		}
		a.touch()
		switch m := msg.(type) {
		case *redis.Pong:
			// The PONG that follows the re-subscription: Redis has processed
			// every SUBSCRIBE sent before it.
			if a.setState(ps, stateUp) == stateConfirming {
				a.r.Reconnected()
			}
		case *redis.Message:
			a.r.Receive([]byte(m.Payload))
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				a.confirm(m.Channel)
			}
		}
	}
}

// reconnect makes ps connect (go-redis dials on demand and re-subscribes
// the channels it knows), re-subscribes every channel this node needs, and
// sends a PING: its PONG completes the reconnection (see receive).
// Subscribe calls from now on go to the connection directly.
func (a *PubSub) reconnect(ps *redis.PubSub) error {
	ctx, cancel := context.WithTimeout(a.ctx, a.o.SubscribeTimeout)
	defer cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ps != ps {
		return errors.New("connection replaced")
	}
	chans := make([]string, 0, len(a.channels))
	for c := range a.channels {
		chans = append(chans, c)
	}
	for len(chans) > 0 {
		n := min(len(chans), 1000)
		if err := ps.Subscribe(ctx, chans[:n]...); err != nil {
			return err
		}
		chans = chans[n:]
	}
	a.pingSent.Store(time.Now().UnixNano()) // the watchdog replaces a connection that does not answer
	if err := ps.Ping(ctx); err != nil {
		a.pingSent.Store(0)
		return err
	}
	a.state = stateConfirming
	return nil
}

func (a *PubSub) getState() connState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// setState sets the state of ps's connection, if ps is still the current
// one, and returns the previous state.
func (a *PubSub) setState(ps *redis.PubSub, st connState) connState {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.state
	if a.ps == ps {
		a.state = st
	}
	return old
}

// watchdog PINGs a silent connection and replaces one that does not answer
// (a half-open TCP connection never reports an error by itself).
func (a *PubSub) watchdog() {
	defer a.wg.Done()
	t := time.NewTicker(a.o.PingInterval / 2)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
		if a.getState() == stateDown {
			continue // receive is reconnecting
		}
		now := time.Now().UnixNano()
		if sent := a.pingSent.Load(); sent != 0 {
			if now-sent >= int64(a.o.PingInterval) {
				a.replace(errors.New("no answer to PING within " + a.o.PingInterval.String()))
			}
			continue
		}
		if now-a.lastActivity.Load() < int64(a.o.PingInterval) {
			continue
		}
		ps := a.current()
		if ps == nil {
			return
		}
		a.pingSent.Store(now)
		ctx, cancel := context.WithTimeout(a.ctx, a.o.PingInterval)
		err := ps.Ping(ctx)
		cancel()
		if err != nil {
			a.replace(err)
		}
	}
}

// replace drops the current subscription connection for a fresh one; the
// blocked Receive fails and receive reconnects.
func (a *PubSub) replace(reason error) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	old := a.ps
	a.ps = a.client.Subscribe(a.ctx)
	a.state = stateDown
	a.mu.Unlock()
	a.pingSent.Store(0)
	a.r.Disconnected(reason)
	old.Close()
}

func (a *PubSub) confirm(channel string) {
	a.mu.Lock()
	ws := a.waiters[channel]
	delete(a.waiters, channel)
	a.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}

// broker is the relay.Broker side of a PubSub.
type broker PubSub

func (b *broker) Subscribe(topic string) error {
	a := (*PubSub)(b)
	ch := a.Channel(topic)
	w := make(chan struct{})
	ctx, cancel := context.WithTimeout(a.ctx, a.o.SubscribeTimeout)
	defer cancel()
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return phx.ErrPubSubClosed
	}
	a.channels[ch] = struct{}{}
	if a.state == stateDown {
		a.mu.Unlock()
		return nil // receive subscribes it on reconnection
	}
	a.waiters[ch] = append(a.waiters[ch], w)
	err := a.ps.Subscribe(ctx, ch) // on failure, reconnection restores it
	a.mu.Unlock()
	if err == nil {
		select {
		case <-w:
			return nil
		case <-ctx.Done():
		}
	}
	a.r.Logger().Debug("phx pubsub: subscription not confirmed in time; it is restored on reconnection", "topic", topic, "err", err)
	a.mu.Lock()
	ws := a.waiters[ch]
	for i, x := range ws {
		if x == w {
			a.waiters[ch] = append(ws[:i:i], ws[i+1:]...)
			break
		}
	}
	if len(a.waiters[ch]) == 0 {
		delete(a.waiters, ch)
	}
	a.mu.Unlock()
	return nil
}

func (b *broker) Unsubscribe(topic string) error {
	a := (*PubSub)(b)
	ch := a.Channel(topic)
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.channels, ch)
	if a.closed || a.state == stateDown {
		return nil
	}
	ctx, cancel := context.WithTimeout(a.ctx, a.o.SubscribeTimeout)
	defer cancel()
	return a.ps.Unsubscribe(ctx, ch)
}

// Publish sends msgs as one pipeline of PUBLISH commands (one connection,
// so in order) and waits for every answer. A pooled connection that died
// with the server fails at its first use after a restart: the pipeline is
// then sent again at once on a fresh one, a few times, within ctx.
func (b *broker) Publish(ctx context.Context, msgs []relay.Message) error {
	var err error
	for range 4 {
		if err = b.publish(ctx, msgs); err == nil || ctx.Err() != nil || !staleConn(err) {
			return err
		}
	}
	return err
}

// staleConn reports whether err says the connection was dead already
// (closed or reset by the peer), rather than slow.
func staleConn(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

func (b *broker) publish(ctx context.Context, msgs []relay.Message) error {
	a := (*PubSub)(b)
	if len(msgs) == 1 {
		if err := a.client.Publish(ctx, a.Channel(msgs[0].Topic), msgs[0].Data).Err(); err != nil {
			return fmt.Errorf("redispubsub: publish: %w", err)
		}
		return nil
	}
	_, err := a.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range msgs {
			p.Publish(ctx, a.Channel(m.Topic), m.Data)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redispubsub: publish %d messages: %w", len(msgs), err)
	}
	return nil
}
