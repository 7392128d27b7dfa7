// Package natspubsub is a [phx.PubSub] that connects the nodes of a cluster
// through a NATS server (core NATS, no JetStream), so a broadcast made on any
// node reaches the subscribers of its topic on every node. It is a module of
// its own, so that only programs using it depend on NATS:
//
//	go get github.com/phxgo/phx/pubsub/natspubsub
//
//	ps, err := natspubsub.Dial("nats://127.0.0.1:4222", nil)
//	if err != nil { ... }
//	defer ps.Close()
//	srv := phx.NewServer(&phx.Options{PubSub: ps})
//
// # Delivery
//
// Every node keeps its subscribers in a [phx.MemoryPubSub]. A broadcast is
// delivered to the local subscribers of the node that makes it at once, on
// the caller's goroutine, exactly as without NATS; then it joins the
// node's outbound queue and Broadcast returns. Broadcast never waits for
// NATS, whether it is up, slow, frozen or gone: local delivery does not
// depend on the broker. One sender goroutine per node publishes the queue
// in order, in batches of up to 256 messages confirmed by a PING/PONG
// round trip, each attempt bounded by PublishTimeout. Each other node
// with subscribers on the topic receives a broadcast once, decodes it into
// one *phx.Broadcast and hands that to its local subscribers, which encode
// it once per wire format (fastlane). When the message comes back to its
// origin node it is recognized by the node ID in the envelope and dropped
// (Stats.DroppedOwn). BroadcastFrom's excluded subscriber lives on the
// origin node and is skipped there; other nodes have no subscriber to
// exclude.
//
// Every node numbers its broadcasts, and every node delivers each other
// node's broadcasts at most once and in the order they were made there
// (the order of the Broadcast calls on that node, over all topics); a copy
// that arrives again (a batch sent again after a timeout, a resend) is
// dropped and counted in Stats.Duplicates.
//
// # Outages
//
// A broker outage (the server killed and restarted, frozen, or the
// connection lost) loses no broadcast and duplicates none, within these
// bounds:
//
//   - While a node is disconnected its broadcasts wait in its queue, at
//     most MaxQueued of them (default 10,000), MaxQueuedBytes in all
//     (default 16 MiB) and MaxQueueAge old (default 10s). When the
//     connection returns (nats.go has re-sent every subscription and a
//     round trip confirmed them), the node sends them in order before
//     anything newer.
//   - A node also keeps its recent published broadcasts, within the same
//     bounds. A node that re-subscribes asks every other node for what it
//     missed (what they published while it was not subscribed, which core
//     NATS does not store), telling each the last of its broadcasts it
//     delivered; each sends its stream again from there. The others drop
//     the copies. Until a node has answered (at most ReplayWait, default
//     3s), the re-subscribed node drops that node's broadcasts, which come
//     again with the answer, so order is kept.
//   - Past the bounds, broadcasts are dropped and counted: the origin
//     counts its own in Stats.Dropped and Gap.Dropped, with a
//     "publish_dropped" telemetry event for each (Err: [ErrQueueFull] when
//     Broadcast refused it, [ErrQueueExpired] when it waited too long); a
//     node asking for what it missed counts what the other no longer kept
//     in Stats.Missed and Gap.Missed (an upper bound: some of those may
//     have been for topics it has no subscribers for).
//   - The queue lives in the node's memory: a node that crashes or is
//     closed with broadcasts queued loses them (Close waits up to
//     PublishTimeout for the queue to drain). A node that starts gets
//     nothing from before it started. Clients are still served at most
//     once: a client that is disconnected misses what was broadcast
//     meanwhile, as in Phoenix.
//
// The connection made by [Dial] reconnects forever (nats.MaxReconnects(-1),
// every 2 s by default: nats.ReconnectWait) and nats.go re-sends every
// subscription on reconnection. nats.go buffers nothing while reconnecting
// (the adapter sets nats.ReconnectBufSize(-1): its own queue does that,
// in order and bounded). A frozen server is noticed by nats.go only
// through its own PINGs (nats.PingInterval, 2 minutes by default); until
// then the sender's attempts time out and are retried on the same
// connection, and the broadcasts arrive once the server resumes. Each gap
// is logged with its length, counted (Stats.Disconnects, Stats.Reconnects,
// Stats.LastGap), reported as "disconnected" and "reconnected" telemetry
// events, and, once this node's queue was replayed and the other nodes
// answered, passed to Options.OnGap and a "replayed" event with the
// counts.
//
// Messages are queued between NATS's reader and the adapter's delivery
// goroutine (Options.ReceiveBuffer); if that queue overflows, nats.go drops
// messages and they are counted in Stats.SlowConsumerDrops (not resent).
//
// # Subjects
//
// Each topic has its own subject, Prefix + "." + the escaped topic
// ("phx.room:lobby"). A node subscribes to a topic's subject when the topic
// gets its first local subscriber and unsubscribes when the last one leaves,
// so NATS only sends a node the topics it has subscribers for: a cluster of
// N nodes where each room lives on a few of them carries each message to
// those few, not to N. The cost is one NATS subscription per topic per node
// and a subscribe round trip for the first subscriber of a topic on a node
// (Subscribe waits for NATS to confirm it, up to SubscribeTimeout, so a
// broadcast made elsewhere right after a join is not missed). The
// alternative, one wildcard subscription ("phx.>") per node, saves the
// round trips but sends every message to every node; with many sparse
// topics that multiplies the traffic by the number of nodes.
//
// Topic bytes other than ASCII letters, digits, '-', '_' and ':' are
// written %XX (uppercase hex), since '.', '*', '>' and white space are
// special in NATS subjects; the empty topic is "%". Topics are limited by
// the server's max_control_line (4 KiB by default).
//
// # Envelope
//
// The message body is a compact binary envelope, version 2:
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
// most once a second. The nodes' own messages (announcements after a
// reconnection, the answers, a tick a second from each node that
// publishes) go on the subject Prefix + ".%00phx-relay".
//
// # History
//
// [History] is a shared [phx.HistoryStore] on NATS JetStream for routes
// with phx.WithHistory: a client that reconnects to another node recovers
// what it missed. One stream is both the history and the bus for recorded
// broadcasts, so every node delivers them in offset order. It needs a
// server with JetStream enabled; the PubSub itself does not.
package natspubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/phxgo/phx"
	"github.com/phxgo/phx/pubsub/internal/relay"
)

// Errors of Broadcast. Either way the broadcast reached this node's
// subscribers.
var (
	// ErrDisconnected is returned by Broadcast while the connection to
	// NATS is down and queueing is off (Options.MaxQueued < 0).
	ErrDisconnected = relay.ErrDisconnected
	// ErrQueueFull is returned by Broadcast when the outbound queue is at
	// Options.MaxQueued or Options.MaxQueuedBytes: other nodes will not
	// get the broadcast.
	ErrQueueFull = relay.ErrQueueFull
	// ErrQueueExpired is the Err of the "publish_dropped" telemetry event
	// of a queued broadcast that waited longer than Options.MaxQueueAge.
	ErrQueueExpired = relay.ErrQueueExpired
	// ErrTooLarge is returned by Broadcast for a broadcast over the
	// server's max_payload: other nodes will not get it.
	ErrTooLarge = relay.ErrTooLarge
)

// Options configures a [PubSub]. The zero value is usable.
type Options struct {
	// NodeID identifies this node in the envelope of its broadcasts, so
	// it can drop them when NATS sends them back. It must be unique in
	// the cluster. Default: 16 random bytes, base64url, fresh at each start.
	NodeID string

	// Prefix is the first token(s) of every subject: "<Prefix>.<topic>".
	// Nodes of one cluster must use the same; distinct apps sharing a NATS
	// server use distinct prefixes. Default "phx".
	Prefix string

	// SubscribeTimeout bounds how long the first Subscribe of a topic
	// waits for NATS to confirm the subscription (a round trip). While
	// disconnected it does not wait: the subscription is made when the
	// connection returns. Default 2s.
	SubscribeTimeout time.Duration

	// PublishTimeout bounds each attempt to hand queued broadcasts to
	// NATS (the publishes and the PING/PONG round trip that confirms
	// them). Broadcast itself never waits for NATS. Default 2s.
	PublishTimeout time.Duration

	// MaxQueued, MaxQueuedBytes and MaxQueueAge bound the outbound queue
	// that holds broadcasts until NATS has them, over an outage in
	// particular, and the recent broadcasts kept to send again to a node
	// that re-subscribes: at most MaxQueued broadcasts (default 10,000)
	// of at most MaxQueuedBytes in all (default 16 MiB, counting each
	// envelope plus 64 bytes), none older than MaxQueueAge (default 10s).
	// Broadcast refuses a broadcast over the count or byte bound with
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

	// ReceiveBuffer is how many received messages may wait for the
	// delivery goroutine; beyond, nats.go drops them
	// (Stats.SlowConsumerDrops). Default 65536.
	ReceiveBuffer int

	// Logger receives connection events and decode errors. nil means the
	// logger of the phx.Server using the adapter (slog.Default() before
	// there is one).
	Logger *slog.Logger

	// OnGap, when set, is called after each outage of the connection,
	// once the broadcasts this node queued during it were replayed (or
	// dropped) and the other nodes sent again what it missed. It runs on
	// the adapter's sender goroutine: return quickly.
	OnGap func(Gap)

	// NATSOptions are applied after the adapter's defaults
	// (nats.MaxReconnects(-1), nats.ReconnectBufSize(-1), a connection
	// name), so they may override them: credentials, TLS,
	// nats.ReconnectWait, and so on. Connection handlers set here are
	// still called, after the adapter's own.
	NATSOptions []nats.Option
}

// Gap describes one outage of the connection to NATS.
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

// PubSub is a [phx.PubSub] over NATS. Create it with [Dial]; it is safe for
// concurrent use.
type PubSub struct {
	r       *relay.Relay
	node    string
	nc      *nats.Conn
	prefix  string
	subTime time.Duration
	msgs    chan *nats.Msg
	done    chan struct{}
	stopped chan struct{}

	mu          sync.Mutex
	subs        map[string]*nats.Subscription
	droppedGone int64 // slow-consumer drops of subscriptions since removed
}

var _ phx.PubSub = (*PubSub)(nil)

// Dial connects to the NATS server(s) at url (comma-separated URLs of one
// cluster, e.g. "nats://127.0.0.1:4222") and returns a PubSub that owns
// the connection. It fails if no server can be reached now; once
// connected, it reconnects forever. opts may be nil.
func Dial(url string, opts *Options) (*PubSub, error) {
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
	if o.ReceiveBuffer <= 0 {
		o.ReceiveBuffer = 65536
	}
	ps := &PubSub{
		node:    o.NodeID,
		prefix:  o.Prefix,
		subTime: o.SubscribeTimeout,
		msgs:    make(chan *nats.Msg, o.ReceiveBuffer),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
		subs:    make(map[string]*nats.Subscription),
	}
	var onGap func(relay.Gap)
	if o.OnGap != nil {
		onGap = func(g relay.Gap) { o.OnGap(Gap(g)) }
	}
	ps.r = relay.New(relay.Config{
		NodeID:         o.NodeID,
		Adapter:        "nats",
		Logger:         o.Logger,
		OnGap:          onGap,
		PublishTimeout: o.PublishTimeout,
		MaxQueued:      o.MaxQueued,
		MaxQueuedBytes: o.MaxQueuedBytes,
		MaxQueueAge:    o.MaxQueueAge,
		ReplayWait:     o.ReplayWait,
		MaxMessage: func() int {
			if nc := ps.conn(); nc != nil {
				return int(nc.MaxPayload())
			}
			return 0
		},
	}, (*broker)(ps))

	no := nats.GetDefaultOptions()
	no.Url = url
	no.Name = "phx node " + o.NodeID
	no.MaxReconnect = -1
	no.ReconnectBufSize = -1
	for _, opt := range o.NATSOptions {
		if err := opt(&no); err != nil {
			return nil, fmt.Errorf("natspubsub: %w", err)
		}
	}
	userDisc, userRec, userErr, userClosed := no.DisconnectedErrCB, no.ReconnectedCB, no.AsyncErrorCB, no.ClosedCB
	no.ClosedCB = func(nc *nats.Conn) {
		if !ps.r.Closed() {
			// Only with a finite nats.MaxReconnects in NATSOptions, or
			// when the server refuses the client for good.
			ps.r.Logger().Error("phx pubsub: NATS connection closed for good; broadcasts reach this node only", "err", nc.LastError())
		}
		if userClosed != nil {
			userClosed(nc)
		}
	}
	no.DisconnectedErrCB = func(nc *nats.Conn, err error) {
		if err == nil {
			err = errors.New("connection closed")
		}
		ps.r.Disconnected(err)
		if userDisc != nil {
			userDisc(nc, err)
		}
	}
	no.ReconnectedCB = func(nc *nats.Conn) {
		// nats.go has re-sent every subscription; a round trip makes sure
		// the server has them before the node counts as connected.
		if err := nc.FlushTimeout(ps.subTime); err != nil {
			ps.r.Logger().Debug("phx pubsub: restored subscriptions not confirmed in time", "err", err)
		}
		ps.r.Reconnected()
		if userRec != nil {
			userRec(nc)
		}
	}
	no.AsyncErrorCB = func(nc *nats.Conn, sub *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrSlowConsumer) {
			ps.r.Logger().Warn("phx pubsub: receive queue full; NATS drops messages for this node (see Stats().SlowConsumerDrops)")
		} else {
			ps.r.Logger().Warn("phx pubsub: NATS error", "err", err)
		}
		if userErr != nil {
			userErr(nc, sub, err)
		}
	}
	nc, err := no.Connect()
	if err != nil {
		return nil, fmt.Errorf("natspubsub: connect to %s: %w", url, err)
	}
	ps.mu.Lock()
	ps.nc = nc
	ps.mu.Unlock()
	go ps.deliver()
	if err := ps.r.Start(); err != nil {
		ps.Close()
		return nil, fmt.Errorf("natspubsub: %w", err)
	}
	return ps, nil
}

func (ps *PubSub) conn() *nats.Conn {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.nc
}

// deliver hands received messages to the relay, in arrival order.
func (ps *PubSub) deliver() {
	defer close(ps.stopped)
	for {
		select {
		case m := <-ps.msgs:
			ps.r.Receive(m.Data)
		case <-ps.done:
			return
		}
	}
}

// Subscribe implements [phx.PubSub]. The first local subscriber of a
// topic subscribes this node to the topic's subject and waits (up to
// Options.SubscribeTimeout) for NATS to confirm it.
func (ps *PubSub) Subscribe(topic string, s phx.Subscriber) error { return ps.r.Subscribe(topic, s) }

// Unsubscribe implements [phx.PubSub]. The last local subscriber of a topic
// unsubscribes this node from the topic's subject.
func (ps *PubSub) Unsubscribe(topic string, s phx.Subscriber) error {
	return ps.r.Unsubscribe(topic, s)
}

// Broadcast implements [phx.PubSub]: local subscribers but from get b at
// once, on the caller's goroutine; then b joins the outbound queue, which
// the adapter's sender goroutine publishes in order, and Broadcast
// returns. It never waits for NATS, connected or not, so ctx has nothing
// to bound. It returns [ErrQueueFull] when the queue is at its bound,
// [ErrTooLarge] over the server's max_payload, [ErrDisconnected] while
// disconnected with queueing off, and [phx.ErrPubSubClosed] after Close.
func (ps *PubSub) Broadcast(ctx context.Context, b *phx.Broadcast, from phx.Subscriber) error {
	return ps.r.Broadcast(ctx, b, from)
}

// LocalBroadcast implements [phx.PubSub]: this node's subscribers only.
func (ps *PubSub) LocalBroadcast(b *phx.Broadcast, from phx.Subscriber) error {
	return ps.r.LocalBroadcast(b, from)
}

// NodeID returns this node's ID.
func (ps *PubSub) NodeID() string { return ps.node }

// Subject returns the NATS subject that carries topic.
func (ps *PubSub) Subject(topic string) string { return subject(ps.prefix, topic) }

// Close stops taking broadcasts (later Subscribe and Broadcast calls
// return [phx.ErrPubSubClosed]), waits up to Options.PublishTimeout for
// the outbound queue to drain while connected (what is left is dropped;
// with a publish in flight Close may take twice PublishTimeout in all),
// tells the other nodes this one is gone and closes the NATS connection.
// Local subscribers are not told. Close is idempotent.
func (ps *PubSub) Close() error {
	if !ps.r.Close() {
		return nil
	}
	ps.nc.Close()
	close(ps.done)
	<-ps.stopped
	return nil
}

// Stats is a snapshot of a PubSub's counters.
type Stats struct {
	// Published counts broadcasts handed to NATS and confirmed by a
	// round trip.
	Published int64
	// PublishErrors counts failed attempts to publish (each retried),
	// broadcasts over the server's max_payload, and broadcasts refused
	// while disconnected with queueing off.
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
	// DroppedOwn counts this node's broadcasts that NATS sent back, dropped.
	DroppedOwn int64
	// DecodeErrors counts messages dropped for an unknown envelope version
	// or a malformed envelope.
	DecodeErrors int64
	// SlowConsumerDrops counts messages nats.go dropped because the
	// receive queue was full.
	SlowConsumerDrops int64
	// Disconnects and Reconnects count connection losses and recoveries.
	Disconnects, Reconnects int64
	// Connected reports whether the connection is up now.
	Connected bool
	// Topics is the number of topics this node is subscribed to at NATS.
	Topics int
	// LastGap is the length of the last outage, 0 if none.
	LastGap time.Duration
}

// UseLogger makes l the adapter's logger unless Options.Logger was set.
// phx.NewServer calls it with the server's logger, so the adapter logs
// where the server does.
func (ps *PubSub) UseLogger(l *slog.Logger) { ps.r.UseLogger(l) }

// UseTelemetry makes t receive the adapter's events (connection lost and
// restored, queue replayed, failed publishes, dropped broadcasts,
// undecodable messages) as phx.PubSubEvent.
// phx.NewServer calls it with Options.Telemetry.
func (ps *PubSub) UseTelemetry(t *phx.Telemetry) { ps.r.UseTelemetry(t) }

// Stats returns the current counters.
func (ps *PubSub) Stats() Stats {
	c := ps.r.Counters()
	ps.mu.Lock()
	dropped := ps.droppedGone
	for _, s := range ps.subs {
		if n, err := s.Dropped(); err == nil {
			dropped += int64(n)
		}
	}
	ps.mu.Unlock()
	return Stats{
		Published:         c.Published,
		PublishErrors:     c.PublishErrors,
		Queued:            c.Queued,
		Replayed:          c.Replayed,
		Dropped:           c.Dropped,
		Received:          c.Received,
		Duplicates:        c.Duplicates,
		Resent:            c.Resent,
		Missed:            c.Missed,
		DroppedOwn:        c.DroppedOwn,
		DecodeErrors:      c.DecodeErrors,
		SlowConsumerDrops: dropped,
		Disconnects:       c.Disconnects,
		Reconnects:        c.Reconnects,
		Connected:         c.Connected,
		Topics:            c.Topics,
		LastGap:           c.LastGap,
	}
}

// broker is the relay.Broker side of a PubSub.
type broker PubSub

func (b *broker) Subscribe(topic string) error {
	ps := (*PubSub)(b)
	sub, err := ps.nc.ChanSubscribe(subject(ps.prefix, topic), ps.msgs)
	if err != nil {
		if ps.r.Closed() || errors.Is(err, nats.ErrConnectionClosed) {
			return phx.ErrPubSubClosed
		}
		return fmt.Errorf("natspubsub: subscribe %q: %w", topic, err)
	}
	ps.mu.Lock()
	ps.subs[topic] = sub
	ps.mu.Unlock()
	// A round trip makes the subscription effective at the server before
	// the caller's join completes. While reconnecting, nats.go re-sends it
	// on reconnection instead.
	if ps.nc.IsConnected() {
		if err := ps.nc.FlushTimeout(ps.subTime); err != nil {
			ps.r.Logger().Debug("phx pubsub: subscription not confirmed in time", "topic", topic, "err", err)
		}
	}
	return nil
}

func (b *broker) Unsubscribe(topic string) error {
	ps := (*PubSub)(b)
	ps.mu.Lock()
	sub := ps.subs[topic]
	delete(ps.subs, topic)
	if sub != nil {
		if n, err := sub.Dropped(); err == nil {
			ps.droppedGone += int64(n)
		}
	}
	ps.mu.Unlock()
	if sub == nil {
		return nil
	}
	return sub.Unsubscribe()
}

// Publish writes msgs to the connection, in order, and waits for the
// server's PONG to a PING sent after them: the server then has them all.
func (b *broker) Publish(ctx context.Context, msgs []relay.Message) error {
	ps := (*PubSub)(b)
	for _, m := range msgs {
		if err := ps.nc.Publish(subject(ps.prefix, m.Topic), m.Data); err != nil {
			return fmt.Errorf("natspubsub: publish: %w", err)
		}
	}
	if err := ps.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("natspubsub: confirm %d publishes: %w", len(msgs), err)
	}
	return nil
}

// subject maps a topic to its subject: prefix "." escaped topic.
func subject(prefix, topic string) string {
	if topic == "" {
		return prefix + ".%"
	}
	clean := true
	for i := 0; i < len(topic); i++ {
		if !plain(topic[i]) {
			clean = false
			break
		}
	}
	if clean {
		return prefix + "." + topic
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(prefix)+1+len(topic)*3)
	b = append(b, prefix...)
	b = append(b, '.')
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if plain(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}

func plain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == ':'
}
