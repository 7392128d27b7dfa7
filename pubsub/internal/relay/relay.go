// Package relay is the broker-independent half of the PubSub adapters in
// pubsub/natspubsub and pubsub/redispubsub: local delivery through a
// phx.MemoryPubSub, broker subscriptions that follow the local subscriber
// count of each topic, the wire envelope, dropping this node's own messages
// and duplicates, the bounded outbound log that carries broadcasts over a
// broker outage and keeps recent ones to send again, the control messages
// by which a node that re-subscribed asks the others for what it missed
// (control.go), connection-gap bookkeeping, and counters.
//
// An adapter supplies a Broker (subscribe, unsubscribe, publish a batch of
// raw messages), calls Start once its connection is up, feeds every message
// it receives to Relay.Receive, and reports its connection state with
// Disconnected and Reconnected.
package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phxgo/phx"
)

// Errors of Broadcast and of dropped broadcasts.
var (
	// ErrDisconnected is returned by Broadcast while the broker connection
	// is down and queueing is off: local subscribers got the broadcast,
	// other nodes did not.
	ErrDisconnected = errors.New("phx pubsub: broker disconnected; broadcast delivered on this node only")
	// ErrQueueFull is returned by Broadcast when the outbound queue is at
	// its message or byte limit: local subscribers got the broadcast, other
	// nodes will not.
	ErrQueueFull = errors.New("phx pubsub: outbound queue full; broadcast delivered on this node only")
	// ErrQueueExpired is the error of the telemetry event of a queued
	// broadcast dropped because it waited longer than the queue's age limit.
	ErrQueueExpired = errors.New("phx pubsub: broadcast waited in the outbound queue past its age limit; dropped")
	// ErrTooLarge is returned by Broadcast for a message over the broker's
	// size limit: local subscribers got it, other nodes will not.
	ErrTooLarge = errors.New("phx pubsub: broadcast larger than the broker accepts; delivered on this node only")
)

// Message is one encoded envelope for a topic.
type Message struct {
	Topic string
	Data  []byte
}

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
	// Publish sends msgs in order and returns nil once the broker has
	// accepted every one of them; it must return by ctx's deadline. On an
	// error the relay sends the whole batch again later (receivers drop
	// the copies they already have). It may keep msgs only until it
	// returns. It is called from one goroutine at a time.
	Publish(ctx context.Context, msgs []Message) error
}

// Defaults of the outbound queue.
const (
	DefaultMaxQueued      = 10000
	DefaultMaxQueuedBytes = 16 << 20
	DefaultMaxQueueAge    = 10 * time.Second
	DefaultReplayWait     = 3 * time.Second
	DefaultPublishTimeout = 2 * time.Second
)

// Config configures a Relay. Zero durations and limits mean the defaults.
type Config struct {
	NodeID  string       // required
	Adapter string       // "nats" or "redis", for logs
	Logger  *slog.Logger // nil means slog.Default()
	// OnGap is called once an outage's queued broadcasts have been
	// replayed (or dropped) and the other nodes answered (or ReplayWait
	// passed), on the relay's sender goroutine.
	OnGap func(Gap)
	// PublishTimeout bounds each Broker.Publish call.
	PublishTimeout time.Duration
	// MaxQueued, MaxQueuedBytes and MaxQueueAge bound the outbound queue;
	// MaxQueued < 0 turns queueing off (Broadcast fails fast with
	// ErrDisconnected while disconnected).
	MaxQueued      int
	MaxQueuedBytes int
	MaxQueueAge    time.Duration
	// ReplayWait bounds how long, after a reconnection, the relay waits
	// for another node's answer to its "up" (dropping that node's
	// broadcasts meanwhile, as they come again with the answer).
	ReplayWait time.Duration
	// MaxMessage, if > 0, is the largest message the broker accepts.
	MaxMessage func() int
}

// Gap describes one outage of the broker connection, reported after the
// broadcasts queued during it were replayed.
type Gap struct {
	Start, End time.Time // connection lost, connection restored
	Replayed   int       // this node's broadcasts queued during the outage and sent after it
	Dropped    int64     // this node's broadcasts dropped from the start of the outage to the end of the replay
	Missed     int64     // other nodes' broadcasts this node will never get: they no longer had them
}

// controlTopic carries the relay's own messages (up, here, bye). The NUL
// byte keeps it apart from every topic a phx channel can have.
const controlTopic = "\x00phx-relay"

// Relay implements phx.PubSub on top of a Broker.
type Relay struct {
	cfg    Config
	node   []byte
	inc    uint64 // this incarnation
	log    atomic.Pointer[slog.Logger]
	ownLog bool // the adapter was given a logger: UseLogger keeps it
	tel    atomic.Pointer[phx.Telemetry]
	local  *phx.MemoryPubSub
	broker Broker

	mu     sync.Mutex
	topics map[string]*topicState

	closed    atomic.Bool
	connected atomic.Bool
	started   atomic.Bool
	done      chan struct{} // closed when the sender must stop
	wake      chan struct{} // cap 1: the sender has something to look at
	wg        sync.WaitGroup

	// The outbound log and the sender's state, guarded by qmu. out holds
	// this node's recent broadcasts in order: out[:sent] were published
	// (kept to send again to a node that re-subscribes), out[sent:] wait,
	// out[sent:sent+inflight] are being published.
	qmu            sync.Mutex
	out            []*entry
	qbytes         int
	sent           int
	inflight       int
	seq            uint64 // of the last broadcast queued
	up             bool   // connected, as the sender sees it
	linkCtx        context.Context
	linkCancel     context.CancelFunc
	upDue          bool          // announce "up"
	heres          []hereRequest // "up"s of other nodes to answer
	retryAt        time.Time     // after a failed publish
	backoff        time.Duration // before the next retry
	failing        bool          // the last publish failed
	gap            *Gap          // being replayed
	gapLastSeq     uint64        // the last broadcast queued before the reconnection
	gapSentThrough uint64        // the last of those sent after the reconnection
	gapDropped     int64         // drops since the gap started
	gapMissed      int64         // other nodes' broadcasts lost for good since the gap started
	reportBy       time.Time     // the gap is reported by then, synced or not
	tickedAt       time.Time     // of the last "tick"
	tickedSeq      uint64        // the next number the last "tick" announced

	seenMu sync.Mutex
	seen   map[string]*origin // per other node: the last number delivered

	gapMu    sync.Mutex
	gapStart time.Time
	lastGap  time.Duration

	published     atomic.Int64
	publishErrors atomic.Int64
	received      atomic.Int64
	droppedOwn    atomic.Int64
	duplicates    atomic.Int64
	decodeErrors  atomic.Int64
	dropped       atomic.Int64
	replayed      atomic.Int64
	resent        atomic.Int64
	missed        atomic.Int64
	disconnects   atomic.Int64
	reconnects    atomic.Int64
	remoteTopics  atomic.Int64

	lastDecodeLog atomic.Int64 // unix nanos; decode errors are logged at most once a second
	lastDropLog   atomic.Int64 // unix nanos; drops are logged at most once a second
}

// entry is one broadcast of this node in the outbound log.
type entry struct {
	msg Message
	seq uint64
	at  time.Time
}

func (e *entry) size() int { return len(e.msg.Data) + len(e.msg.Topic) + 64 }

// hereRequest is another node's "up" to answer: it has delivered our
// broadcasts up to last (when inc is ours).
type hereRequest struct {
	to   string
	inc  uint64
	last uint64
}

// origin is what this node knows of another node's stream.
type origin struct {
	inc     uint64
	last    uint64    // the last number delivered
	syncing time.Time // since when we wait for its "here" (zero: not waiting)
}

// topicState serializes the broker calls of one topic. remote is true while
// the relay holds a broker subscription for the topic, which is exactly
// while the topic has local subscribers.
type topicState struct {
	mu     sync.Mutex
	refs   int // goroutines using the state (guarded by Relay.mu)
	remote bool
}

// New returns a Relay, initially connected. Call Start once the broker
// connection is up.
func New(cfg Config, b Broker) *Relay {
	ownLog := cfg.Logger != nil
	if !ownLog {
		cfg.Logger = slog.Default()
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.MaxQueued == 0 {
		cfg.MaxQueued = DefaultMaxQueued
	}
	if cfg.MaxQueuedBytes <= 0 {
		cfg.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if cfg.MaxQueueAge <= 0 {
		cfg.MaxQueueAge = DefaultMaxQueueAge
	}
	if cfg.ReplayWait <= 0 {
		cfg.ReplayWait = DefaultReplayWait
	}
	var ib [8]byte
	rand.Read(ib[:])
	r := &Relay{
		cfg:    cfg,
		node:   []byte(cfg.NodeID),
		inc:    binary.LittleEndian.Uint64(ib[:]) >> 1,
		ownLog: ownLog,
		local:  phx.NewMemoryPubSub(),
		broker: b,
		topics: make(map[string]*topicState),
		done:   make(chan struct{}),
		wake:   make(chan struct{}, 1),
		up:     true,
		seen:   make(map[string]*origin),
	}
	r.linkCtx, r.linkCancel = context.WithCancel(context.Background())
	r.log.Store(cfg.Logger.With("pubsub", cfg.Adapter, "node", cfg.NodeID))
	r.connected.Store(true)
	return r
}

// Start subscribes the relay's control topic, announces this node to the
// others and starts the sender goroutine. Call it once, when the broker
// connection is up.
func (r *Relay) Start() error {
	if !r.started.CompareAndSwap(false, true) {
		return nil
	}
	if err := r.broker.Subscribe(controlTopic); err != nil {
		return err
	}
	r.qmu.Lock()
	r.upDue = true
	r.qmu.Unlock()
	r.wg.Add(1)
	go r.run()
	return nil
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

// Broadcast implements phx.PubSub: local subscribers (but from) get b at
// once, on the caller's goroutine; then b is queued for the other nodes
// and Broadcast returns, without waiting for the broker: ctx has nothing
// to bound. The sender goroutine publishes the queue in order. A
// broadcast that cannot be queued (queue full, too large, queueing off
// while disconnected) is returned as an error after local delivery.
func (r *Relay) Broadcast(_ context.Context, b *phx.Broadcast, from phx.Subscriber) error {
	if r.closed.Load() {
		return phx.ErrPubSubClosed
	}
	_ = r.local.LocalBroadcast(b, from)
	if r.cfg.MaxQueued < 0 && !r.connected.Load() {
		r.publishErrors.Add(1)
		return ErrDisconnected
	}
	var flags byte
	if b.Payload.Binary {
		flags |= flagBinary
	}
	r.qmu.Lock()
	if r.closed.Load() {
		r.qmu.Unlock()
		return phx.ErrPubSubClosed
	}
	seq := r.seq + 1
	data := appendEnvelope(nil, flags, r.cfg.NodeID, r.inc, seq, b.Topic, b.Event, b.Payload.Data)
	if r.cfg.MaxMessage != nil {
		if limit := r.cfg.MaxMessage(); limit > 0 && len(data) > limit {
			r.qmu.Unlock()
			r.publishErrors.Add(1)
			err := fmt.Errorf("%w (%d bytes, limit %d)", ErrTooLarge, len(data), limit)
			r.event(phx.PubSubEvent{Kind: "publish_failed", Topic: b.Topic, Err: err})
			return err
		}
	}
	e := &entry{msg: Message{Topic: b.Topic, Data: data}, seq: seq, at: time.Now()}
	drops := r.expireLocked(e.at)
	limit := r.cfg.MaxQueued
	if limit < 0 {
		limit = DefaultMaxQueued
	}
	// Make room by forgetting published broadcasts, oldest first.
	for r.sent > 0 && (len(r.out) >= limit || r.qbytes+e.size() > r.cfg.MaxQueuedBytes) {
		r.forgetLocked(1)
	}
	if len(r.out) >= limit || r.qbytes+e.size() > r.cfg.MaxQueuedBytes && len(r.out) > 0 {
		r.countDropLocked()
		r.qmu.Unlock()
		r.reportDrops(drops)
		r.reportDrops([]*entry{e}, ErrQueueFull)
		return ErrQueueFull
	}
	r.seq = seq
	r.out = append(r.out, e)
	r.qbytes += e.size()
	r.qmu.Unlock()
	r.reportDrops(drops)
	r.poke()
	return nil
}

// poke wakes the sender.
func (r *Relay) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// countDropLocked counts one dropped broadcast.
func (r *Relay) countDropLocked() {
	r.dropped.Add(1)
	if r.gap != nil || !r.up {
		r.gapDropped++
	}
}

// forgetLocked removes the n oldest entries of the log.
func (r *Relay) forgetLocked(n int) {
	for _, e := range r.out[:n] {
		r.qbytes -= e.size()
	}
	clear(r.out[:n])
	r.out = r.out[n:]
	r.sent = max(r.sent-n, 0)
	if len(r.out) == 0 {
		r.out = nil
	}
}

// expireLocked forgets the published broadcasts older than MaxQueueAge,
// drops the waiting ones that old (unless being published) and returns
// the dropped ones.
func (r *Relay) expireLocked(now time.Time) []*entry {
	cut := 0
	for cut < len(r.out) && now.Sub(r.out[cut].at) > r.cfg.MaxQueueAge {
		if cut >= r.sent && r.inflight > 0 {
			break
		}
		cut++
	}
	if cut == 0 {
		return nil
	}
	var dropped []*entry
	if cut > r.sent {
		dropped = append(dropped, r.out[r.sent:cut]...)
		for range dropped {
			r.countDropLocked()
		}
	}
	r.forgetLocked(cut)
	return dropped
}

// nextSeqLocked is the number of the next broadcast the sender will send.
func (r *Relay) nextSeqLocked() uint64 {
	if r.sent < len(r.out) {
		return r.out[r.sent].seq
	}
	return r.seq + 1
}

// reportDrops logs (at most once a second) and reports dropped broadcasts.
func (r *Relay) reportDrops(es []*entry, reason ...error) {
	if len(es) == 0 {
		return
	}
	err := ErrQueueExpired
	if len(reason) > 0 {
		err = reason[0]
	}
	now := time.Now().UnixNano()
	if last := r.lastDropLog.Load(); now-last >= int64(time.Second) && r.lastDropLog.CompareAndSwap(last, now) {
		r.Logger().Warn("phx pubsub: dropped broadcasts for other nodes (logged at most once a second; see Stats().Dropped)",
			"reason", err, "topic", es[0].msg.Topic, "dropped", r.dropped.Load())
	}
	for _, e := range es {
		r.event(phx.PubSubEvent{Kind: "publish_dropped", Topic: e.msg.Topic, Err: err})
	}
}

// action is what the sender does next.
type action struct {
	kind  int // actStop, actControl, actData, actGap
	event string
	here  hereRequest
	batch []Message
	gap   Gap
}

const (
	actStop = iota
	actControl
	actData
	actGap
)

const (
	maxBatch      = 256
	maxBatchBytes = 1 << 20
	tickEvery     = time.Second
)

// next waits for the sender's next action.
func (r *Relay) next() action {
	for {
		r.qmu.Lock()
		select {
		case <-r.done:
			r.qmu.Unlock()
			return action{kind: actStop}
		default:
		}
		now := time.Now()
		drops := r.expireLocked(now)
		wait := time.Duration(-1)
		shorten := func(d time.Duration) {
			if wait < 0 || d < wait {
				wait = max(d, time.Millisecond)
			}
		}
		var act *action
		switch {
		case !r.up:
		case now.Before(r.retryAt):
			shorten(r.retryAt.Sub(now))
		case r.upDue:
			act = &action{kind: actControl, event: "up"}
		case len(r.heres) > 0:
			act = &action{kind: actControl, event: "here", here: r.heres[0]}
		case now.Sub(r.tickedAt) >= tickEvery && r.nextSeqLocked() != r.tickedSeq:
			act = &action{kind: actControl, event: "tick"}
		case r.sent < len(r.out):
			n, size := 0, 0
			for r.sent+n < len(r.out) && n < maxBatch && (n == 0 || size+len(r.out[r.sent+n].msg.Data) <= maxBatchBytes) {
				size += len(r.out[r.sent+n].msg.Data)
				n++
			}
			batch := make([]Message, n)
			for i := range batch {
				batch[i] = r.out[r.sent+i].msg
			}
			r.inflight = n
			act = &action{kind: actData, batch: batch}
		case r.gap != nil:
			if syncing := r.syncing(); syncing > 0 && now.Before(r.reportBy) {
				shorten(r.reportBy.Sub(now))
				break
			}
			g := *r.gap
			g.Dropped, g.Missed = r.gapDropped, r.gapMissed
			r.gap, r.gapDropped, r.gapMissed = nil, 0, 0
			act = &action{kind: actGap, gap: g}
		}
		if act == nil && len(r.out) > 0 {
			shorten(r.out[0].at.Add(r.cfg.MaxQueueAge).Sub(now) + time.Millisecond)
		}
		r.qmu.Unlock()
		r.reportDrops(drops)
		if act != nil {
			return *act
		}
		var timer *time.Timer
		var fire <-chan time.Time
		if wait >= 0 {
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-r.done:
		case <-r.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// syncing returns how many other nodes this one still waits a "here"
// from, forgetting the waits older than ReplayWait.
func (r *Relay) syncing() int {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	n := 0
	for node, o := range r.seen {
		if !o.syncing.IsZero() {
			if time.Since(o.syncing) > r.cfg.ReplayWait {
				// Gone (or its answer was lost): start afresh with its
				// next broadcast.
				delete(r.seen, node)
				continue
			}
			n++
		}
	}
	return n
}

// run is the sender goroutine: it announces the node, answers others'
// announcements and publishes the queue in order.
func (r *Relay) run() {
	defer r.wg.Done()
	for {
		act := r.next()
		switch act.kind {
		case actStop:
			return
		case actGap:
			r.event(phx.PubSubEvent{Kind: "replayed", Gap: act.gap.End.Sub(act.gap.Start),
				Replayed: act.gap.Replayed, Dropped: act.gap.Dropped})
			if act.gap.Missed > 0 {
				r.Logger().Warn("phx pubsub: broadcasts of other nodes were lost during the outage (they no longer had them)",
					"missed", act.gap.Missed)
			}
			if r.cfg.OnGap != nil {
				r.cfg.OnGap(act.gap)
			}
		case actControl:
			r.sendControl(act)
		case actData:
			err := r.publish(act.batch)
			r.qmu.Lock()
			n := min(r.inflight, len(r.out)-r.sent) // Close may have emptied the log
			r.inflight = 0
			if err != nil {
				r.publishErrors.Add(1)
				first := r.failedLocked()
				r.qmu.Unlock()
				if first && !r.closed.Load() {
					r.event(phx.PubSubEvent{Kind: "publish_failed", Topic: act.batch[0].Topic, Err: err})
					r.Logger().Debug("phx pubsub: publish failed; retrying", "err", err, "batch", len(act.batch))
				}
				continue
			}
			r.backoff, r.failing = 0, false
			var replayed int64
			for _, e := range r.out[r.sent : r.sent+n] {
				if r.gap != nil && e.seq <= r.gapLastSeq && e.seq > r.gapSentThrough {
					r.gap.Replayed++
					replayed++
					r.gapSentThrough = e.seq
				}
			}
			r.sent += n
			r.qmu.Unlock()
			r.replayed.Add(replayed)
			r.published.Add(int64(n))
		}
	}
}

// sendControl publishes an "up" or answers an "up" with a "here",
// rewinding the log so that the stream goes on, for everyone, from the
// first broadcast the other node has not delivered that is still kept.
func (r *Relay) sendControl(act action) {
	var payload []byte
	r.qmu.Lock()
	next := r.nextSeqLocked()
	if act.event == "here" {
		from := next
		if h := act.here; h.inc == r.inc && h.last+1 < next {
			from = h.last + 1
			if len(r.out) > 0 && from < r.out[0].seq {
				from = r.out[0].seq // older ones are forgotten: the other node counts them missed
			}
			if len(r.out) == 0 || from > r.out[len(r.out)-1].seq {
				from = next
			}
		}
		if from < next {
			r.resent.Add(int64(next - from))
			r.sent = int(from - r.out[0].seq)
		}
		payload = appendHere(nil, act.here.to, from)
	}
	r.qmu.Unlock()
	switch act.event {
	case "up":
		payload = appendUp(nil, next, r.marks())
	case "tick":
		payload = binary.AppendUvarint(nil, next)
	}
	err := r.publish([]Message{{Topic: controlTopic, Data: appendControl(nil, r.cfg.NodeID, r.inc, act.event, payload)}})
	r.qmu.Lock()
	defer r.qmu.Unlock()
	if err != nil {
		r.failedLocked()
		return
	}
	r.backoff, r.failing = 0, false
	switch act.event {
	case "up":
		r.upDue = false
	case "here":
		if len(r.heres) > 0 && r.heres[0] == act.here {
			r.heres = r.heres[1:]
		}
	case "tick":
		r.tickedAt, r.tickedSeq = time.Now(), next
	}
}

// marks lists the last number delivered from every other node.
func (r *Relay) marks() []mark {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	ms := make([]mark, 0, len(r.seen))
	for n, o := range r.seen {
		ms = append(ms, mark{node: n, inc: o.inc, last: o.last})
	}
	return ms
}

// failedLocked schedules a retry after a failed publish, with a backoff
// of 50 ms doubling up to 1 s, and reports whether it is the first
// failure in a row.
func (r *Relay) failedLocked() bool {
	r.backoff = min(max(2*r.backoff, 50*time.Millisecond), time.Second)
	r.retryAt = time.Now().Add(r.backoff)
	first := !r.failing
	r.failing = true
	return first
}

// publish runs one Broker.Publish, bounded by PublishTimeout and cut short
// when the connection is lost or the relay closes. A publish during which
// the connection was lost counts as failed even if the broker took it:
// other nodes may not have been subscribed.
func (r *Relay) publish(msgs []Message) error {
	r.qmu.Lock()
	link := r.linkCtx
	r.qmu.Unlock()
	ctx, cancel := context.WithTimeout(link, r.cfg.PublishTimeout)
	defer cancel()
	err := r.broker.Publish(ctx, msgs)
	if err == nil && link.Err() != nil {
		err = ErrDisconnected
	}
	return err
}

// Receive handles one message from the broker: it decodes the envelope,
// drops this node's own broadcasts and copies of broadcasts already
// delivered, and delivers the others locally, as one *phx.Broadcast shared
// by all local subscribers. msg must not be modified afterwards (the
// broadcast's payload aliases it).
func (r *Relay) Receive(msg []byte) {
	e, err := DecodeEnvelope(msg)
	if err != nil {
		r.decodeFailed(err, len(msg))
		return
	}
	if bytes.Equal(e.Node, r.node) {
		if !e.Control {
			r.droppedOwn.Add(1)
		}
		return
	}
	if e.Control {
		if err := r.control(string(e.Node), e); err != nil {
			r.decodeFailed(err, len(msg))
		}
		return
	}
	if e.Seq != 0 {
		r.seenMu.Lock()
		o := r.seen[string(e.Node)]
		switch {
		case o == nil:
			r.seen[string(e.Node)] = &origin{inc: e.Incarnation, last: e.Seq}
		case o.inc != e.Incarnation:
			o.inc, o.last, o.syncing = e.Incarnation, e.Seq, time.Time{}
		case !o.syncing.IsZero() && time.Since(o.syncing) <= r.cfg.ReplayWait:
			// Until its "here", the node's stream comes again from
			// where we are: drop this copy.
			r.seenMu.Unlock()
			r.duplicates.Add(1)
			return
		case e.Seq <= o.last:
			r.seenMu.Unlock()
			r.duplicates.Add(1)
			return
		default:
			o.last, o.syncing = e.Seq, time.Time{}
		}
		r.seenMu.Unlock()
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

func (r *Relay) decodeFailed(err error, n int) {
	r.decodeErrors.Add(1)
	r.event(phx.PubSubEvent{Kind: "decode_failed", Err: err})
	now := time.Now().UnixNano()
	if last := r.lastDecodeLog.Load(); now-last >= int64(time.Second) && r.lastDecodeLog.CompareAndSwap(last, now) {
		r.Logger().Warn("phx pubsub: dropped an undecodable message (logged at most once a second; see Stats().DecodeErrors)",
			"err", err, "bytes", n, "decode_errors", r.decodeErrors.Load())
	}
}

// control handles another node's control message (see control.go).
func (r *Relay) control(node string, e Envelope) error {
	switch e.Event {
	case "up":
		next, marks, err := decodeUp(e.Payload.Data)
		if err != nil {
			return err
		}
		req := hereRequest{to: node}
		for _, m := range marks {
			if m.node == r.cfg.NodeID {
				req.inc, req.last = m.inc, m.last
			}
		}
		r.seenMu.Lock()
		o := r.seen[node]
		again := false
		switch {
		case o == nil:
			r.seen[node] = &origin{inc: e.Incarnation, last: next - 1}
		case o.inc != e.Incarnation: // it restarted
			o.inc, o.last, o.syncing = e.Incarnation, next-1, time.Time{}
		case !o.syncing.IsZero():
			again = true // it may have missed our "up": say it again
		}
		r.seenMu.Unlock()
		r.qmu.Lock()
		// One answer per node: a newer "up" replaces one not answered yet.
		r.heres = slices.DeleteFunc(r.heres, func(h hereRequest) bool { return h.to == node })
		r.heres = append(r.heres, req)
		if again {
			r.upDue = true
		}
		r.qmu.Unlock()
		r.poke()
	case "here":
		to, from, err := decodeHere(e.Payload.Data)
		if err != nil {
			return err
		}
		if to != r.cfg.NodeID {
			return nil
		}
		var missed uint64
		r.seenMu.Lock()
		o := r.seen[node]
		switch {
		case o == nil || o.inc != e.Incarnation:
			r.seen[node] = &origin{inc: e.Incarnation, last: from - 1}
		default:
			if from-1 > o.last {
				missed = from - 1 - o.last
			}
			o.last = max(o.last, from-1)
			o.syncing = time.Time{}
		}
		r.seenMu.Unlock()
		if missed > 0 {
			r.missed.Add(int64(missed))
			r.qmu.Lock()
			r.gapMissed += int64(missed)
			r.qmu.Unlock()
		}
		r.poke()
	case "tick":
		// Every broadcast of node numbered below next has been published
		// before the tick, so those for our topics have reached us.
		rd := &reader{b: e.Payload.Data}
		next := rd.num()
		if rd.err != nil {
			return rd.err
		}
		r.seenMu.Lock()
		o := r.seen[node]
		switch {
		case o == nil || o.inc != e.Incarnation:
			r.seen[node] = &origin{inc: e.Incarnation, last: next - 1}
		case o.syncing.IsZero():
			o.last = max(o.last, next-1)
		}
		r.seenMu.Unlock()
	case "bye":
		r.seenMu.Lock()
		delete(r.seen, node)
		r.seenMu.Unlock()
	}
	return nil
}

// Disconnected records that the broker connection went down (idempotent):
// the sender stops publishing (a publish in flight is cut short) and
// broadcasts are queued.
func (r *Relay) Disconnected(err error) {
	if r.closed.Load() || !r.connected.CompareAndSwap(true, false) {
		return
	}
	now := time.Now()
	r.gapMu.Lock()
	r.gapStart = now
	r.gapMu.Unlock()
	r.qmu.Lock()
	r.up = false
	r.linkCancel()
	var report *Gap
	if r.gap != nil { // the previous gap's replay had not finished
		g := *r.gap
		g.Dropped, g.Missed = r.gapDropped, r.gapMissed
		report = &g
		r.gap, r.gapDropped, r.gapMissed = nil, 0, 0
	}
	queued := len(r.out) - r.sent
	r.qmu.Unlock()
	r.disconnects.Add(1)
	r.Logger().Warn("phx pubsub: broker connection lost; broadcasts reach this node's subscribers now and are queued for the others",
		"err", err, "queued", queued, "max_queued", r.cfg.MaxQueued, "max_queue_age", r.cfg.MaxQueueAge)
	r.event(phx.PubSubEvent{Kind: "disconnected", Err: err})
	if report != nil && r.cfg.OnGap != nil {
		r.cfg.OnGap(*report)
	}
}

// Reconnected records that the broker connection is back, with every
// subscription restored (idempotent). The sender then announces the node
// ("up", so that the other nodes send again what it missed) and replays
// its queue; OnGap is called once both are done.
func (r *Relay) Reconnected() {
	if r.closed.Load() || !r.connected.CompareAndSwap(false, true) {
		return
	}
	end := time.Now()
	r.gapMu.Lock()
	start := r.gapStart
	r.lastGap = end.Sub(start)
	r.gapMu.Unlock()
	r.seenMu.Lock()
	for _, o := range r.seen {
		o.syncing = end
	}
	peers := len(r.seen)
	r.seenMu.Unlock()
	r.qmu.Lock()
	r.up = true
	r.linkCtx, r.linkCancel = context.WithCancel(context.Background())
	r.upDue = true
	r.retryAt = time.Time{}
	r.backoff = 0
	r.gap = &Gap{Start: start, End: end}
	r.gapLastSeq = r.seq
	r.gapSentThrough = r.nextSeqLocked() - 1
	r.reportBy = end.Add(r.cfg.ReplayWait)
	queued := len(r.out) - r.sent
	r.qmu.Unlock()
	r.poke()
	r.reconnects.Add(1)
	r.event(phx.PubSubEvent{Kind: "reconnected", Gap: end.Sub(start)})
	r.Logger().Warn("phx pubsub: broker connection restored; replaying queued broadcasts and asking the other nodes for what was missed",
		"gap", end.Sub(start).Round(time.Millisecond), "gap_start", start, "topics", r.remoteTopics.Load(),
		"queued", queued, "peers", peers)
}

// Connected reports whether the broker connection is up.
func (r *Relay) Connected() bool { return r.connected.Load() }

// Close makes Subscribe and Broadcast fail with phx.ErrPubSubClosed from
// now on; it reports whether this call closed the relay. While connected
// it first waits (up to PublishTimeout) for the queue to drain, then stops
// the sender (waiting up to another PublishTimeout for a publish in
// flight) and tells the other nodes this one is gone. The adapter closes
// its connection after Close.
func (r *Relay) Close() bool {
	if !r.closed.CompareAndSwap(false, true) {
		return false
	}
	if r.started.Load() {
		deadline := time.Now().Add(r.cfg.PublishTimeout)
		for r.connected.Load() && time.Now().Before(deadline) {
			r.qmu.Lock()
			n := len(r.out) - r.sent
			r.qmu.Unlock()
			if n == 0 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	r.qmu.Lock()
	close(r.done)
	r.linkCancel()
	left := len(r.out) - r.sent
	r.dropped.Add(int64(left))
	r.out, r.qbytes, r.sent, r.inflight = nil, 0, 0, 0
	r.qmu.Unlock()
	r.wg.Wait()
	if left > 0 {
		r.Logger().Warn("phx pubsub: closed with broadcasts still queued for other nodes; dropped", "dropped", left)
	}
	if r.started.Load() && r.connected.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), min(r.cfg.PublishTimeout, 500*time.Millisecond))
		_ = r.broker.Publish(ctx, []Message{{Topic: controlTopic, Data: appendControl(nil, r.cfg.NodeID, r.inc, "bye", nil)}})
		cancel()
	}
	return true
}

// Closed reports whether Close was called.
func (r *Relay) Closed() bool { return r.closed.Load() }

// Counters is a snapshot of a relay's counters.
type Counters struct {
	Published, PublishErrors, Received, DroppedOwn, DecodeErrors int64
	Duplicates, Dropped, Replayed, Resent, Missed                int64
	Queued                                                       int
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
	r.qmu.Lock()
	queued := len(r.out) - r.sent
	r.qmu.Unlock()
	return Counters{
		Published:     r.published.Load(),
		PublishErrors: r.publishErrors.Load(),
		Received:      r.received.Load(),
		DroppedOwn:    r.droppedOwn.Load(),
		DecodeErrors:  r.decodeErrors.Load(),
		Duplicates:    r.duplicates.Load(),
		Dropped:       r.dropped.Load(),
		Replayed:      r.replayed.Load(),
		Resent:        r.resent.Load(),
		Missed:        r.missed.Load(),
		Queued:        queued,
		Disconnects:   r.disconnects.Load(),
		Reconnects:    r.reconnects.Load(),
		Connected:     r.connected.Load(),
		Topics:        int(r.remoteTopics.Load()),
		LastGap:       lastGap,
	}
}

// SubscriberCount returns how many subscribers topic has on this node.
func (r *Relay) SubscriberCount(topic string) int { return r.local.SubscriberCount(topic) }
