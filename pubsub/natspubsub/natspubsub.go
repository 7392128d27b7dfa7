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
// the caller's goroutine, exactly as without NATS, then published once to
// NATS. Each other node with subscribers on the topic receives it once,
// decodes it into one *phx.Broadcast and hands that to its local
// subscribers, which encode it once per wire format (fastlane). When the
// message comes back to its origin node it is recognized by the node ID in
// the envelope and dropped (Stats.DroppedOwn), so nobody gets it twice.
// BroadcastFrom's excluded subscriber lives on the origin node and is
// skipped there; other nodes have no subscriber to exclude.
//
// Delivery is at most once, as Phoenix.PubSub: NATS core does not store
// messages. Messages from one node on one topic arrive in order.
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
// The message body is a compact binary envelope, version 1:
//
//	byte 0     version (1)
//	byte 1     flags: bit 0 = binary payload (phx.Payload.Binary); others reserved
//	uvarint n  len(node ID), then the node ID
//	uvarint n  len(topic), then the topic
//	uvarint n  len(event), then the event
//	rest       the payload: JSON text, or raw bytes with bit 0
//
// Lengths are unsigned varints (encoding/binary.Uvarint). A message with
// another version (a newer node during a rolling upgrade, or a foreign
// publisher) or a malformed one is dropped, counted in Stats.DecodeErrors
// and logged at most once a second. A future version 2 must be rolled out
// by first deploying nodes that read it.
//
// # Connection loss
//
// The connection made by [Dial] reconnects forever (nats.MaxReconnects(-1),
// every 2 s by default: nats.ReconnectWait) and nats.go re-sends every
// subscription on reconnection. While it is down, local delivery goes on,
// Broadcast returns [ErrDisconnected] at once after delivering locally
// (nothing is buffered: the adapter sets nats.ReconnectBufSize(-1), so
// other nodes never get a stale burst after the gap), and such broadcasts
// are counted in Stats.PublishErrors. Broadcasts other nodes make during the
// gap are lost for this node. Each gap is logged with its length, counted
// (Stats.Disconnects, Stats.Reconnects, Stats.LastGap) and passed to
// Options.OnGap. Pass nats.ReconnectBufSize(n) in Options.NATSOptions to
// have nats.go buffer up to n bytes of broadcasts instead; Broadcast then
// succeeds during the gap until the buffer is full.
//
// Messages are queued between NATS's reader and the adapter's delivery
// goroutine (Options.ReceiveBuffer); if that queue overflows, nats.go drops
// messages and they are counted in Stats.SlowConsumerDrops.
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

// ErrDisconnected is returned by Broadcast while the connection to NATS is
// down: the broadcast reached this node's subscribers only.
var ErrDisconnected = relay.ErrDisconnected

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

	// ReceiveBuffer is how many received messages may wait for the
	// delivery goroutine; beyond, nats.go drops them
	// (Stats.SlowConsumerDrops). Default 65536.
	ReceiveBuffer int

	// Logger receives connection events and decode errors. nil means the
	// logger of the phx.Server using the adapter (slog.Default() before
	// there is one).
	Logger *slog.Logger

	// OnGap, when set, is called after the connection returns from an
	// outage that started at start and ended at end; broadcasts other nodes
	// made in between were not delivered here. It runs on nats.go's
	// callback goroutine: return quickly.
	OnGap func(start, end time.Time)

	// NATSOptions are applied after the adapter's defaults
	// (nats.MaxReconnects(-1), nats.ReconnectBufSize(-1), a connection
	// name), so they may override them: credentials, TLS,
	// nats.ReconnectWait, and so on. Connection handlers set here are
	// still called, after the adapter's own.
	NATSOptions []nats.Option
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
	ps.r = relay.New(relay.Config{
		NodeID:  o.NodeID,
		Adapter: "nats",
		Logger:  o.Logger,
		OnGap:   o.OnGap,
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
	ps.nc = nc
	go ps.deliver()
	return ps, nil
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
// once; then b is published to NATS for the other nodes. Publishing only
// writes to the connection's buffer (nats.go flushes it in the background),
// so ctx is not consulted. While disconnected it returns [ErrDisconnected]
// after local delivery.
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

// Close unsubscribes and closes the NATS connection; later Subscribe and
// Broadcast calls return [phx.ErrPubSubClosed]. Local subscribers are not
// told. Close is idempotent.
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
	// Published counts broadcasts handed to NATS.
	Published int64
	// PublishErrors counts broadcasts that reached this node only:
	// made while disconnected, or refused by nats.go (e.g. over the
	// server's max_payload).
	PublishErrors int64
	// Received counts broadcasts of other nodes delivered here.
	Received int64
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
// restored, failed publishes, undecodable messages) as phx.PubSubEvent.
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
		Received:          c.Received,
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

func (b *broker) Publish(_ context.Context, topic string, msg []byte) error {
	ps := (*PubSub)(b)
	err := ps.nc.Publish(subject(ps.prefix, topic), msg)
	if errors.Is(err, nats.ErrReconnectBufExceeded) {
		return ErrDisconnected
	}
	return err
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
