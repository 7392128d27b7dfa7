package phx

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// ReplicateOptions configures [Presence.Replicate]. The zero value is
// usable; the defaults are Phoenix.Tracker's.
type ReplicateOptions struct {
	// Topic is the PubSub topic the replicas of one Presence talk on.
	// Every node of a cluster uses the same; Presence instances that share
	// a PubSub but must not mix use distinct topics. Never route it to a
	// channel: its messages carry every replica's entries. Default
	// "phx_presence:presence".
	Topic string

	// HeartbeatPeriod is how often this node tells the others it is alive
	// and how far its changes have gone. Default 1.5s.
	HeartbeatPeriod time.Duration

	// DownPeriod is how long a replica may go unheard before it is
	// considered gone and its entries are removed here (its users leave for
	// this node's clients). It is raised to 2 × HeartbeatPeriod if
	// shorter. Default 30s.
	DownPeriod time.Duration

	// Logger receives replica up/down events at Info and Warn, lost
	// messages at Debug. nil means the server's logger.
	Logger *slog.Logger
}

// Events on the replication topic. Payloads are JSON objects.
const (
	replEventDelta     = "delta"        // a presenceDelta; a snapshot answers a transfer request
	replEventHeartbeat = "heartbeat"    // replHeartbeat
	replEventTransfer  = "transfer_req" // replTransfer: send your snapshot
	replEventPermdown  = "permdown"     // replReplica: this replica stops; drop its entries
)

type replHeartbeat struct {
	Replica string `json:"replica"`
	Clock   uint64 `json:"clock"` // the clock of the last delta this replica sent
}

type replTransfer struct {
	Replica string `json:"replica"` // who asks
	To      string `json:"to"`      // who must answer; "" for every replica
}

type replReplica struct {
	Replica string `json:"replica"`
}

// ErrAlreadyReplicating is returned by [Presence.Replicate] for a Presence
// that is already replicating.
var ErrAlreadyReplicating = errors.New("phx: presence is already replicating")

// replicating holds the Presence values with a running replicator.
var replicating sync.Map // *Presence -> struct{}

// Replicate makes this Presence converge with the Presences of other nodes
// (same Topic) over ps, a PubSub that reaches every node, such as the NATS
// and Redis adapters; nil means the server's PubSub. Every node lists
// every node's entries, and each node's clients get presence_diff for
// changes made anywhere. It returns once subscribed; replication runs until
// ctx ends or stop is called.
//
// The protocol follows Phoenix.Tracker's, over PubSub broadcasts on Topic:
//
//   - Local changes go out as deltas ([Presence.takeDelta]) as soon as they
//     happen; other nodes merge them.
//   - Every HeartbeatPeriod each node broadcasts a heartbeat with its
//     clock. A node that receives a delta out of order ([errPresenceGap]),
//     or a heartbeat from a replica it has no state for or whose clock is
//     ahead of what it merged (lost messages, a broker outage), sends a
//     transfer request; that replica answers with its snapshot,
//     which replaces what the others knew of it.
//   - A node that starts announces its snapshot and asks every replica
//     for theirs.
//   - A replica not heard from for DownPeriod is down: its entries are
//     removed ([Presence.replicaDown]) and this node's clients see its
//     users leave. If it comes back (a partition healed), its next
//     heartbeat brings its entries back through a transfer.
//   - stop (or the end of ctx) sends the pending changes and a permdown,
//     so the other nodes drop this node's entries at once.
//
// Bound: the entries of a node that stops without a permdown (killed,
// partitioned away) disappear from the other nodes within DownPeriod +
// HeartbeatPeriod of its last message, plus broker latency and the
// presence BatchInterval before clients see the diff.
//
// A broker outage longer than DownPeriod makes every node drop the others'
// entries; they come back within a heartbeat or two of the recovery.
// Delivery of the messages is best effort, as the PubSub's; the clocks and
// transfers repair what is lost.
func (p *Presence) Replicate(ctx context.Context, ps PubSub, opts *ReplicateOptions) (stop func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var o ReplicateOptions
	if opts != nil {
		o = *opts
	}
	if o.Topic == "" {
		o.Topic = "phx_presence:presence"
	}
	if o.HeartbeatPeriod <= 0 {
		o.HeartbeatPeriod = 1500 * time.Millisecond
	}
	if o.DownPeriod <= 0 {
		o.DownPeriod = 30 * time.Second
	}
	if o.DownPeriod < 2*o.HeartbeatPeriod {
		o.DownPeriod = 2 * o.HeartbeatPeriod
	}
	if o.Logger == nil {
		o.Logger = p.srv.log
	}
	if ps == nil {
		ps = p.srv.PubSub()
	}
	if _, loaded := replicating.LoadOrStore(p, struct{}{}); loaded {
		return nil, ErrAlreadyReplicating
	}
	r := &presenceReplicator{
		p:       p,
		ps:      ps,
		o:       o,
		log:     o.Logger.With("presence_replica", p.replica),
		me:      p.replica,
		changed: make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		peers:   make(map[string]*replPeer),
	}
	if err := ps.Subscribe(o.Topic, r); err != nil {
		replicating.Delete(p)
		return nil, err
	}
	p.setReplicator(func() {
		select {
		case r.changed <- struct{}{}:
		default:
		}
	})
	// Everything logged so far is in the snapshot.
	p.takeDelta()
	snap := p.snapshot()
	r.lastSent = snap.Clock
	go r.run(ctx, snap)
	var once sync.Once
	return func() {
		once.Do(func() { close(r.quit) })
		<-r.done
	}, nil
}

// presenceReplicator runs one Presence's replication. Deliver queues
// incoming messages; everything else happens on the run goroutine.
type presenceReplicator struct {
	p       *Presence
	ps      PubSub
	o       ReplicateOptions
	log     *slog.Logger
	me      string
	changed chan struct{} // a local delta is ready
	wake    chan struct{} // the inbox has messages
	quit    chan struct{}
	done    chan struct{}

	mu       sync.Mutex
	inbox    []*Broadcast
	overflow bool // the inbox overflowed: messages were lost

	// Owned by run.
	peers    map[string]*replPeer
	lastSent uint64 // clock of the last delta or snapshot sent
	snapshot bool   // a transfer request is waiting for our snapshot
}

type replPeer struct {
	lastSeen time.Time
	clock    uint64 // merged up to here
	synced   bool   // we have merged a snapshot or a contiguous delta stream
	asked    time.Time
}

const replInboxMax = 8192

// Deliver implements [Subscriber]: it queues b for the run goroutine.
func (r *presenceReplicator) Deliver(b *Broadcast) {
	r.mu.Lock()
	if len(r.inbox) >= replInboxMax {
		r.overflow = true
	} else {
		r.inbox = append(r.inbox, b)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *presenceReplicator) run(ctx context.Context, snap presenceDelta) {
	defer close(r.done)
	r.publish(ctx, replEventDelta, snap)
	r.publish(ctx, replEventTransfer, replTransfer{Replica: r.me})
	r.heartbeat(ctx)
	t := time.NewTicker(r.o.HeartbeatPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.shutdown(ctx)
			return
		case <-r.quit:
			r.shutdown(ctx)
			return
		case <-r.changed:
			r.sendDelta(ctx)
		case <-r.wake:
			r.drain(ctx)
		case <-t.C:
			r.sendDelta(ctx)
			r.heartbeat(ctx)
			r.checkDown()
		}
		if r.snapshot {
			r.snapshot = false
			// Send pending changes first, so the snapshot's clock is where the
			// delta stream continues from.
			r.sendDelta(ctx)
			s := r.p.snapshot()
			r.lastSent = s.Clock
			r.publish(ctx, replEventDelta, s)
		}
	}
}

func (r *presenceReplicator) shutdown(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	r.p.setReplicator(nil)
	r.sendDelta(ctx)
	r.publish(ctx, replEventPermdown, replReplica{Replica: r.me})
	_ = r.ps.Unsubscribe(r.o.Topic, r)
	replicating.Delete(r.p)
}

func (r *presenceReplicator) publish(ctx context.Context, event string, payload any) {
	b, err := NewBroadcast(r.o.Topic, event, payload)
	if err != nil {
		r.log.Error("phx: presence replication message not encoded", "event", event, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.o.HeartbeatPeriod)
	defer cancel()
	if err := r.ps.Broadcast(ctx, b, r); err != nil {
		r.log.Debug("phx: presence replication message not sent", "event", event, "err", err)
	}
}

func (r *presenceReplicator) sendDelta(ctx context.Context) {
	d, ok := r.p.takeDelta()
	if !ok {
		return
	}
	// Even if publishing fails, the heartbeat's clock tells the others they
	// missed something, and they ask for a snapshot.
	r.lastSent = d.Clock
	r.publish(ctx, replEventDelta, d)
}

func (r *presenceReplicator) heartbeat(ctx context.Context) {
	r.publish(ctx, replEventHeartbeat, replHeartbeat{Replica: r.me, Clock: r.lastSent})
}

// checkDown removes the entries of replicas unheard for DownPeriod.
func (r *presenceReplicator) checkDown() {
	now := time.Now()
	for name, peer := range r.peers {
		if now.Sub(peer.lastSeen) > r.o.DownPeriod {
			r.log.Warn("phx: presence replica down; removing its entries", "replica", name,
				"unheard_for", now.Sub(peer.lastSeen).Round(time.Millisecond))
			delete(r.peers, name)
			r.p.replicaDown(name)
		}
	}
}

func (r *presenceReplicator) drain(ctx context.Context) {
	r.mu.Lock()
	msgs := r.inbox
	r.inbox = nil
	overflow := r.overflow
	r.overflow = false
	r.mu.Unlock()
	for _, b := range msgs {
		r.handle(ctx, b)
	}
	if overflow {
		r.log.Warn("phx: presence replication inbox overflowed; asking every replica for its state")
		r.publish(ctx, replEventTransfer, replTransfer{Replica: r.me})
		for _, peer := range r.peers {
			peer.asked = time.Now()
		}
	}
}

// peer returns the state of a replica that was just heard from.
func (r *presenceReplicator) peer(name string) *replPeer {
	peer := r.peers[name]
	if peer == nil {
		peer = &replPeer{}
		r.peers[name] = peer
		r.log.Info("phx: presence replica up", "replica", name)
	}
	peer.lastSeen = time.Now()
	return peer
}

// ask sends a transfer request to a replica, at most once per heartbeat
// period while its answer is awaited.
func (r *presenceReplicator) ask(ctx context.Context, name string, peer *replPeer) {
	if time.Since(peer.asked) < r.o.HeartbeatPeriod {
		return
	}
	peer.asked = time.Now()
	r.publish(ctx, replEventTransfer, replTransfer{Replica: r.me, To: name})
}

func (r *presenceReplicator) handle(ctx context.Context, b *Broadcast) {
	switch b.Event {
	case replEventDelta:
		var d presenceDelta
		if err := b.Payload.Decode(&d); err != nil || d.Replica == "" {
			r.log.Debug("phx: bad presence delta", "err", err)
			return
		}
		if d.Replica == r.me {
			return
		}
		peer := r.peer(d.Replica)
		err := r.p.merge(d)
		if errors.Is(err, errPresenceGap) {
			r.log.Debug("phx: presence delta out of order; asking for a snapshot", "replica", d.Replica, "err", err)
			r.ask(ctx, d.Replica, peer)
			return
		}
		if d.Snapshot || !peer.synced || d.Clock > peer.clock {
			peer.clock = d.Clock
		}
		peer.synced = true
		if d.Snapshot {
			peer.asked = time.Time{}
		}
	case replEventHeartbeat:
		var h replHeartbeat
		if err := b.Payload.Decode(&h); err != nil || h.Replica == "" || h.Replica == r.me {
			return
		}
		peer := r.peer(h.Replica)
		if !peer.synced || h.Clock > peer.clock {
			r.ask(ctx, h.Replica, peer)
		}
	case replEventTransfer:
		var t replTransfer
		if err := b.Payload.Decode(&t); err != nil || t.Replica == r.me {
			return
		}
		if t.To == "" || t.To == r.me {
			r.snapshot = true
		}
	case replEventPermdown:
		var x replReplica
		if err := b.Payload.Decode(&x); err != nil || x.Replica == "" || x.Replica == r.me {
			return
		}
		if _, ok := r.peers[x.Replica]; ok {
			r.log.Info("phx: presence replica left; removing its entries", "replica", x.Replica)
			delete(r.peers, x.Replica)
		}
		r.p.replicaDown(x.Replica)
	}
}
