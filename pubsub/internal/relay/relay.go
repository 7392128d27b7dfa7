// Package relay is the broker-independent half of the PubSub adapters in
// pubsub/natspubsub and pubsub/redispubsub: local delivery through a
// phx.MemoryPubSub, broker subscriptions that follow the local subscriber
// count of each topic, the wire envelope, dropping this node's own messages,
// connection-gap bookkeeping, and counters.
//
// An adapter supplies a Broker (subscribe, unsubscribe, publish raw bytes
// for one topic), feeds every message it receives to Relay.Receive, and
// reports its connection state with Disconnected and Reconnected.
package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phxgo/phx"
)

// ErrDisconnected is returned by Broadcast while the broker connection is
// down: local subscribers got the broadcast, other nodes did not.
var ErrDisconnected = errors.New("phx pubsub: broker disconnected; broadcast delivered on this node only")

// Broker is the broker-specific half of an adapter.
type Broker interface {
	// Subscribe starts receiving the messages published for topic; it is
	// called when the topic gets its first local subscriber. While the
	// connection is down it must record the subscription, restore it on
	// reconnection and return nil: an error means the subscription can
	// never happen (the adapter is closed, the topic cannot be mapped).
	Subscribe(topic string) error
	// Unsubscribe stops receiving topic; called when its last local
	// subscriber leaves.
	Unsubscribe(topic string) error
	// Publish sends one encoded envelope for topic. It may keep msg only
	// until it returns.
	Publish(ctx context.Context, topic string, msg []byte) error
}

// Config configures a Relay.
type Config struct {
	NodeID         string                     // required
	Adapter        string                     // "nats" or "redis", for logs
	Logger         *slog.Logger               // nil means slog.Default()
	OnGap          func(start, end time.Time) // called after a reconnection
	PublishTimeout time.Duration              // bounds each Publish; 0 means none
}

// Relay implements phx.PubSub on top of a Broker.
type Relay struct {
	cfg    Config
	node   []byte
	log    atomic.Pointer[slog.Logger]
	ownLog bool // the adapter was given a logger: UseLogger keeps it
	tel    atomic.Pointer[phx.Telemetry]
	local  *phx.MemoryPubSub
	broker Broker

	mu     sync.Mutex
	topics map[string]*topicState

	closed    atomic.Bool
	connected atomic.Bool

	gapMu    sync.Mutex
	gapStart time.Time
	lastGap  time.Duration

	published     atomic.Int64
	publishErrors atomic.Int64
	received      atomic.Int64
	droppedOwn    atomic.Int64
	decodeErrors  atomic.Int64
	disconnects   atomic.Int64
	reconnects    atomic.Int64
	remoteTopics  atomic.Int64

	lastDecodeLog atomic.Int64 // unix nanos; decode errors are logged at most once a second
}

// topicState serializes the broker calls of one topic. remote is true while
// the relay holds a broker subscription for the topic, which is exactly
// while the topic has local subscribers.
type topicState struct {
	mu     sync.Mutex
	refs   int // goroutines using the state (guarded by Relay.mu)
	remote bool
}

// New returns a Relay, initially connected.
func New(cfg Config, b Broker) *Relay {
	ownLog := cfg.Logger != nil
	if !ownLog {
		cfg.Logger = slog.Default()
	}
	r := &Relay{
		cfg:    cfg,
		node:   []byte(cfg.NodeID),
		ownLog: ownLog,
		local:  phx.NewMemoryPubSub(),
		broker: b,
		topics: make(map[string]*topicState),
	}
	r.log.Store(cfg.Logger.With("pubsub", cfg.Adapter, "node", cfg.NodeID))
	r.connected.Store(true)
	return r
}

// UseTelemetry makes t receive the relay's PubSub events. phx.NewServer
// calls it with Options.Telemetry.
func (r *Relay) UseTelemetry(t *phx.Telemetry) { r.tel.Store(t) }

// event sends a PubSub event to the Telemetry hook, if any, containing
// its panics.
func (r *Relay) event(e phx.PubSubEvent) {
	t := r.tel.Load()
	if t == nil || t.PubSub == nil {
		return
	}
	e.Adapter, e.Node = r.cfg.Adapter, r.cfg.NodeID
	defer func() {
		if v := recover(); v != nil {
			r.Logger().Error("phx pubsub: Telemetry PubSub hook panicked", "panic", v)
		}
	}()
	t.PubSub(e)
}

// UseLogger makes l the relay's logger, unless the adapter was configured
// with one of its own. phx.NewServer calls it with the server's logger.
func (r *Relay) UseLogger(l *slog.Logger) {
	if r.ownLog || l == nil {
		return
	}
	r.log.Store(l.With("pubsub", r.cfg.Adapter, "node", r.cfg.NodeID))
}

// RandomID returns a random node ID: 16 random bytes, base64url (22 bytes).
func RandomID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Logger returns the relay's logger (with the adapter and node attributes).
func (r *Relay) Logger() *slog.Logger { return r.log.Load() }

func (r *Relay) acquire(topic string) *topicState {
	r.mu.Lock()
	t := r.topics[topic]
	if t == nil {
		t = &topicState{}
		r.topics[topic] = t
	}
	t.refs++
	r.mu.Unlock()
	t.mu.Lock()
	return t
}

func (r *Relay) release(topic string, t *topicState) {
	t.mu.Unlock()
	r.mu.Lock()
	t.refs--
	if t.refs == 0 && !t.remote {
		delete(r.topics, topic)
	}
	r.mu.Unlock()
}

// Subscribe implements phx.PubSub. The first local subscriber of a topic
// subscribes the node at the broker before Subscribe returns (see the
// adapters for how long that may wait).
func (r *Relay) Subscribe(topic string, s phx.Subscriber) error {
	if r.closed.Load() {
		return phx.ErrPubSubClosed
	}
	t := r.acquire(topic)
	defer r.release(topic, t)
	if err := r.local.Subscribe(topic, s); err != nil {
		return err
	}
	if t.remote {
		return nil
	}
	if err := r.broker.Subscribe(topic); err != nil {
		// !t.remote means s is the topic's only local subscriber.
		_ = r.local.Unsubscribe(topic, s)
		return err
	}
	t.remote = true
	r.remoteTopics.Add(1)
	return nil
}

// Unsubscribe implements phx.PubSub. The last local subscriber of a topic
// unsubscribes the node at the broker.
func (r *Relay) Unsubscribe(topic string, s phx.Subscriber) error {
	t := r.acquire(topic)
	defer r.release(topic, t)
	_ = r.local.Unsubscribe(topic, s)
	if !t.remote || r.local.SubscriberCount(topic) > 0 {
		return nil
	}
	t.remote = false
	r.remoteTopics.Add(-1)
	if r.closed.Load() {
		return nil
	}
	if err := r.broker.Unsubscribe(topic); err != nil {
		r.Logger().Debug("phx pubsub: broker unsubscribe failed", "topic", topic, "err", err)
	}
	return nil
}

// LocalBroadcast implements phx.PubSub.
func (r *Relay) LocalBroadcast(b *phx.Broadcast, from phx.Subscriber) error {
	return r.local.LocalBroadcast(b, from)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Broadcast implements phx.PubSub: local subscribers (but from) get b at
// once, on the caller's goroutine; then b goes to the broker for the other
// nodes. A broker failure is returned (and counted) after local delivery.
func (r *Relay) Broadcast(ctx context.Context, b *phx.Broadcast, from phx.Subscriber) error {
	if r.closed.Load() {
		return phx.ErrPubSubClosed
	}
	_ = r.local.LocalBroadcast(b, from)
	if !r.connected.Load() {
		r.publishErrors.Add(1)
		return ErrDisconnected
	}
	if r.cfg.PublishTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.cfg.PublishTimeout)
		defer cancel()
	}
	bp := bufPool.Get().(*[]byte)
	msg := AppendEnvelope((*bp)[:0], r.cfg.NodeID, b)
	err := r.broker.Publish(ctx, b.Topic, msg)
	if cap(msg) <= 64<<10 {
		*bp = msg[:0]
		bufPool.Put(bp)
	}
	if err != nil {
		r.publishErrors.Add(1)
		if r.closed.Load() {
			return phx.ErrPubSubClosed
		}
		r.event(phx.PubSubEvent{Kind: "publish_failed", Topic: b.Topic, Err: err})
		return err
	}
	r.published.Add(1)
	return nil
}

// Receive handles one message from the broker: it decodes the envelope,
// drops this node's own broadcasts and delivers the others locally, as one
// *phx.Broadcast shared by all local subscribers. msg must not be modified
// afterwards (the broadcast's payload aliases it).
func (r *Relay) Receive(msg []byte) {
	e, err := DecodeEnvelope(msg)
	if err != nil {
		r.decodeErrors.Add(1)
		r.event(phx.PubSubEvent{Kind: "decode_failed", Err: err})
		now := time.Now().UnixNano()
		if last := r.lastDecodeLog.Load(); now-last >= int64(time.Second) && r.lastDecodeLog.CompareAndSwap(last, now) {
			r.Logger().Warn("phx pubsub: dropped an undecodable message (logged at most once a second; see Stats().DecodeErrors)",
				"err", err, "bytes", len(msg), "decode_errors", r.decodeErrors.Load())
		}
		return
	}
	if bytes.Equal(e.Node, r.node) {
		r.droppedOwn.Add(1)
		return
	}
	r.received.Add(1)
	// A panicking subscriber must not stop this node's delivery of other
	// nodes' broadcasts: the receive goroutine goes on.
	defer func() {
		if v := recover(); v != nil {
			r.Logger().Error("phx pubsub: subscriber panicked on a broadcast from another node", "topic", e.Topic,
				"event", e.Event, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	_ = r.local.LocalBroadcast(&phx.Broadcast{Topic: e.Topic, Event: e.Event, Payload: e.Payload}, nil)
}

// Disconnected records that the broker connection went down (idempotent).
func (r *Relay) Disconnected(err error) {
	if r.closed.Load() || !r.connected.CompareAndSwap(true, false) {
		return
	}
	r.gapMu.Lock()
	r.gapStart = time.Now()
	r.gapMu.Unlock()
	r.disconnects.Add(1)
	r.Logger().Warn("phx pubsub: broker connection lost; broadcasts reach this node only until it returns", "err", err)
	r.event(phx.PubSubEvent{Kind: "disconnected", Err: err})
}

// Reconnected records that the broker connection is back, with every
// subscription restored (idempotent); it logs the gap and calls OnGap.
func (r *Relay) Reconnected() {
	if r.closed.Load() || !r.connected.CompareAndSwap(false, true) {
		return
	}
	end := time.Now()
	r.gapMu.Lock()
	start := r.gapStart
	r.lastGap = end.Sub(start)
	r.gapMu.Unlock()
	r.reconnects.Add(1)
	r.event(phx.PubSubEvent{Kind: "reconnected", Gap: end.Sub(start)})
	r.Logger().Warn("phx pubsub: broker connection restored; broadcasts of other nodes during the gap were lost",
		"gap", end.Sub(start).Round(time.Millisecond), "gap_start", start, "topics", r.remoteTopics.Load())
	if r.cfg.OnGap != nil {
		r.cfg.OnGap(start, end)
	}
}

// Connected reports whether the broker connection is up.
func (r *Relay) Connected() bool { return r.connected.Load() }

// Close makes Subscribe and Broadcast fail with phx.ErrPubSubClosed from
// now on; it reports whether this call closed the relay.
func (r *Relay) Close() bool { return r.closed.CompareAndSwap(false, true) }

// Closed reports whether Close was called.
func (r *Relay) Closed() bool { return r.closed.Load() }

// Counters is a snapshot of a relay's counters.
type Counters struct {
	Published, PublishErrors, Received, DroppedOwn, DecodeErrors int64
	Disconnects, Reconnects                                      int64
	Connected                                                    bool
	Topics                                                       int
	LastGap                                                      time.Duration
}

// Counters returns the current counters.
func (r *Relay) Counters() Counters {
	r.gapMu.Lock()
	lastGap := r.lastGap
	r.gapMu.Unlock()
	return Counters{
		Published:     r.published.Load(),
		PublishErrors: r.publishErrors.Load(),
		Received:      r.received.Load(),
		DroppedOwn:    r.droppedOwn.Load(),
		DecodeErrors:  r.decodeErrors.Load(),
		Disconnects:   r.disconnects.Load(),
		Reconnects:    r.reconnects.Load(),
		Connected:     r.connected.Load(),
		Topics:        int(r.remoteTopics.Load()),
		LastGap:       lastGap,
	}
}
