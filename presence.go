package phx

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phxgo/phx/internal/wire"
)

// Presence tracks who is online on each topic, as Phoenix.Presence does, and
// tells clients in the format the official JavaScript Presence class reads:
// after joining, a channel pushes "presence_state" (the [Presence.List] of
// its topic), and every change reaches the topic's subscribers as a
// "presence_diff" broadcast {"joins":{...},"leaves":{...}}.
//
// Entries belong to the channel that tracked them: when it ends, for any
// reason (leave, crash, lost connection, shutdown), its entries leave.
// One key (typically a user ID) may have several metas, one per tracking
// channel: a user online in two tabs is listed once, with two metas.
//
// The state is a replicated set in the style of Phoenix.Tracker: every
// entry is tagged with the replica (node) that owns it and a per-replica
// clock, so deltas can be shipped to other nodes and merged there. Within
// one process no replication is needed; see [Presence.Replicate].
//
// All methods are safe for concurrent use.
type Presence struct {
	srv      *Server
	fetch    func(topic string, entries map[string]*PresenceEntry)
	onMetas  func(topic string, joins, leaves map[string]*PresenceEntry)
	batch    time.Duration
	replica  string
	refCount atomic.Uint32

	flushMu  sync.Mutex // serializes flushes
	mu       sync.Mutex
	clock    uint64                              // this replica's clock
	topics   map[string]*presenceTopic           // by topic
	byOwner  map[*channel][]*presenceItem        // local entries by tracking channel
	remote   map[string]map[uint64]*presenceItem // remote replica -> clock -> entry
	pending  map[string]*presenceDiff            // unsent diffs by topic
	waiting  map[string][]*Socket                // joiners whose presence_state goes out with the next flush
	flushing bool                                // a flush is scheduled
	deltaLog []presenceDelta                     // local changes not yet taken by takeDelta
	onDelta  func()                              // replication seam: local change happened
	notify   bool                                // a change was logged: unlock calls onDelta
	ctxClock map[string]uint64                   // highest clock merged per remote replica
}

// PresenceOptions configures a [Presence].
type PresenceOptions struct {
	// Fetch, when set, enriches entries before they are sent or listed, as
	// Phoenix's fetch/2: for example, load the user profiles of all keys in
	// one query and set entries[key].Extra["user"]. It receives the entries
	// of one List or one diff side (joins or leaves) at a time, and must
	// not keep them.
	Fetch func(topic string, entries map[string]*PresenceEntry)
	// BatchInterval coalesces the changes of one topic made within this
	// interval into one presence_diff, so a burst of joins costs one
	// broadcast. Default 20ms; negative sends every change at once.
	BatchInterval time.Duration
	// Replica names this node in the replicated state. Default: a random
	// ID, fresh at every start (a restarted node is a new replica).
	Replica string
	// HandleMetas, when set, is called with every diff of a topic once it
	// has been broadcast, joins and leaves as clients get them (after
	// Fetch), including changes merged from other nodes, as Phoenix's
	// handle_metas/4: react on the server when someone comes or goes. It
	// runs on the presence's flush goroutine, one diff at a time in order,
	// with no lock held; a panic is logged and contained.
	HandleMetas func(topic string, joins, leaves map[string]*PresenceEntry)
}

// Meta is the metadata of one presence: the app's fields plus "phx_ref"
// (unique per track or update) and, after an update, "phx_ref_prev", as
// decoded from its JSON by encoding/json: numbers are float64, nested
// objects map[string]any. Each call returning metas returns new maps.
type Meta map[string]any

// PresenceEntry is everything known about one key on a topic: its metas,
// plus fields a Fetch hook adds. It encodes as {"metas":[...], <Extra>...}.
type PresenceEntry struct {
	Metas []Meta
	Extra map[string]any
}

// MarshalJSON implements json.Marshaler.
func (e *PresenceEntry) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(e.Extra)+1)
	for k, v := range e.Extra {
		m[k] = v
	}
	metas := e.Metas
	if metas == nil {
		metas = []Meta{}
	}
	m["metas"] = metas
	return json.Marshal(m)
}

type presenceItem struct {
	topic   string
	key     string
	owner   *channel // nil for entries of other replicas
	replica string
	clock   uint64 // the entry's tag: (replica, clock) is unique
	// enc is the meta's JSON object, encoded once, the only form an entry
	// keeps: it goes out as it is in presence_state and presence_diff,
	// and List, Get and HandleMetas decode it (a Meta map of two fields
	// costs about 0.4 KiB, its JSON 60 bytes).
	enc []byte
	seq uint64 // insertion order, for stable listing
}

type presenceTopic struct {
	items map[string][]*presenceItem // by key, in insertion order
	// state is the topic's presence_state payload, encoded once and shared
	// by every joiner until the next change (nil: not encoded, or stale).
	state []byte
}

// presenceDiff is the unsent changes of one topic: the items that joined
// and left, by key, in order.
type presenceDiff struct {
	joins  map[string][]*presenceItem
	leaves map[string][]*presenceItem
}

// NewPresence returns a Presence that broadcasts diffs through srv's PubSub.
func NewPresence(srv *Server, opts *PresenceOptions) *Presence {
	var o PresenceOptions
	if opts != nil {
		o = *opts
	}
	if o.BatchInterval == 0 {
		o.BatchInterval = 20 * time.Millisecond
	}
	if o.Replica == "" {
		var b [8]byte
		rand.Read(b[:])
		o.Replica = base64.RawURLEncoding.EncodeToString(b[:])
	}
	return &Presence{
		srv:      srv,
		fetch:    o.Fetch,
		onMetas:  o.HandleMetas,
		batch:    o.BatchInterval,
		replica:  o.Replica,
		topics:   make(map[string]*presenceTopic),
		byOwner:  make(map[*channel][]*presenceItem),
		remote:   make(map[string]map[uint64]*presenceItem),
		pending:  make(map[string]*presenceDiff),
		waiting:  make(map[string][]*Socket),
		ctxClock: make(map[string]uint64),
	}
}

// Track adds the socket's channel as present on its topic under key, with
// meta: nil for none, a map[string]any, or any value that encodes to a
// JSON object, such as a struct with json tags. The entry keeps only the
// meta's JSON, which clients get; List, Get and HandleMetas return it
// decoded into a new Meta map (numbers as float64), on this node as on
// every other. A meta that is
// not an object is [ErrInvalidPayload], and one that does not encode to JSON
// (a map holding a channel, say) an error. The entry leaves when the channel ends.
// Tracking the same key twice from one channel is [ErrAlreadyTracked].
func (p *Presence) Track(s *Socket, key string, meta any) error {
	return p.TrackTopic(s, s.Topic(), key, meta)
}

// TrackTopic is Track on another topic than the channel's own, e.g. a
// global "online_users" topic.
func (p *Presence) TrackTopic(s *Socket, topic, key string, meta any) error {
	ch := s.ch
	m, err := copyMeta(meta)
	if err != nil {
		return err
	}
	m["phx_ref"] = p.newRef()
	enc, err := encodeMeta(m)
	if err != nil {
		return err
	}
	p.mu.Lock()
	for _, it := range p.byOwner[ch] {
		if it.topic == topic && it.key == key {
			p.mu.Unlock()
			return ErrAlreadyTracked
		}
	}
	first := len(p.byOwner[ch]) == 0
	it := p.newLocalItem(ch, topic, key, enc)
	p.add(it)
	p.byOwner[ch] = append(p.byOwner[ch], it)
	p.record(presenceDelta{Replica: p.replica, Clock: it.clock, Joins: []presenceRecord{it.record()}})
	p.unlock()

	if first && !ch.onEnd(func() { p.untrackOwner(ch) }) {
		p.untrackOwner(ch) // the channel ended meanwhile
		return ErrChannelClosed
	}
	return nil
}

// Update replaces the meta of a key the socket's channel tracks on its
// topic. Clients see the new meta join (with phx_ref_prev) and the old one
// leave, in one diff. meta is as for Track.
func (p *Presence) Update(s *Socket, key string, meta any) error {
	return p.UpdateTopic(s, s.Topic(), key, meta)
}

// UpdateTopic is Update on another topic than the channel's own.
func (p *Presence) UpdateTopic(s *Socket, topic, key string, meta any) error {
	ch := s.ch
	m, err := copyMeta(meta)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.unlock()
	items := p.byOwner[ch]
	for i, old := range items {
		if old.topic != topic || old.key != key {
			continue
		}
		m["phx_ref_prev"] = old.meta()["phx_ref"]
		m["phx_ref"] = p.newRef()
		enc, err := encodeMeta(m)
		if err != nil {
			return err
		}
		it := p.newLocalItem(ch, topic, key, enc)
		p.remove(old)
		p.add(it)
		items[i] = it
		p.record(presenceDelta{Replica: p.replica, Clock: it.clock,
			Joins: []presenceRecord{it.record()}, Leaves: []presenceTag{old.tag()}})
		return nil
	}
	return ErrNotTracked
}

// Untrack removes the key the socket's channel tracks on its topic.
func (p *Presence) Untrack(s *Socket, key string) error {
	return p.UntrackTopic(s, s.Topic(), key)
}

// UntrackTopic is Untrack on another topic than the channel's own.
func (p *Presence) UntrackTopic(s *Socket, topic, key string) error {
	ch := s.ch
	p.mu.Lock()
	defer p.unlock()
	items := p.byOwner[ch]
	for i, it := range items {
		if it.topic == topic && it.key == key {
			p.remove(it)
			p.byOwner[ch] = append(items[:i:i], items[i+1:]...)
			p.clock++
			p.record(presenceDelta{Replica: p.replica, Clock: p.clock, Leaves: []presenceTag{it.tag()}})
			return nil
		}
	}
	return ErrNotTracked
}

// untrackOwner removes every entry of a channel that ended.
func (p *Presence) untrackOwner(ch *channel) {
	p.mu.Lock()
	defer p.unlock()
	items := p.byOwner[ch]
	if len(items) == 0 {
		delete(p.byOwner, ch)
		return
	}
	delete(p.byOwner, ch)
	p.clock++
	d := presenceDelta{Replica: p.replica, Clock: p.clock}
	for _, it := range items {
		p.remove(it)
		d.Leaves = append(d.Leaves, it.tag())
	}
	p.record(d)
}

// List returns the presences of topic: key -> entry, its metas in the order
// they were tracked, passed through Fetch.
func (p *Presence) List(topic string) map[string]*PresenceEntry {
	p.mu.Lock()
	out := make(map[string]*PresenceEntry)
	if t := p.topics[topic]; t != nil {
		for key, items := range t.items {
			e := &PresenceEntry{Metas: make([]Meta, len(items))}
			for i, it := range items {
				e.Metas[i] = it.meta()
			}
			out[key] = e
		}
	}
	p.mu.Unlock()
	if p.fetch != nil && len(out) > 0 {
		p.callFetch(topic, out)
	}
	return out
}

// Get returns the presence of key on topic (all its metas, passed through
// Fetch), as Phoenix's get_by_key; false when key is not present.
func (p *Presence) Get(topic, key string) (*PresenceEntry, bool) {
	p.mu.Lock()
	var e *PresenceEntry
	if t := p.topics[topic]; t != nil {
		if items := t.items[key]; len(items) > 0 {
			e = &PresenceEntry{Metas: make([]Meta, len(items))}
			for i, it := range items {
				e.Metas[i] = it.meta()
			}
		}
	}
	p.mu.Unlock()
	if e == nil {
		return nil, false
	}
	if p.fetch != nil {
		entries := map[string]*PresenceEntry{key: e}
		p.callFetch(topic, entries)
		e = entries[key]
	}
	return e, e != nil
}

// callFetch runs the Fetch hook, containing a panic: the entries go out
// as they were.
func (p *Presence) callFetch(topic string, entries map[string]*PresenceEntry) {
	defer func() {
		if v := recover(); v != nil {
			p.srv.log.Error("phx: presence Fetch panicked", "topic", topic, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	p.fetch(topic, entries)
}

// PushState pushes "presence_state" with the topic's List to the socket's
// client, as channels do right after joining (the JS Presence class waits
// for it before applying diffs).
//
// While the topic has changes not yet broadcast (as right after the
// joiner's own Track), the state goes out with the next presence_diff
// flush, just before the diff, within BatchInterval: it is encoded once
// per flush and the same bytes reach every joiner of that flush, so a burst
// of joins to a big room encodes the room once, not once per joiner. A
// joiner may thus get presence_state after diffs it already holds, or with
// entries the following diff repeats; the JS Presence class applies both
// the same way (diffs are keyed by phx_ref). It returns
// [ErrChannelClosed] if the channel has ended.
func (p *Presence) PushState(s *Socket) error {
	topic := s.Topic()
	p.mu.Lock()
	if p.pending[topic] != nil {
		if s.ch.hasEnded() {
			p.mu.Unlock()
			return ErrChannelClosed
		}
		p.waiting[topic] = append(p.waiting[topic], s)
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	return s.ch.pushSharedPayload("presence_state", Payload{Data: p.state(topic)})
}

// state returns the presence_state payload of topic: with a Fetch hook,
// List encoded; otherwise the entries' encoded metas put together, cached
// on the topic until its next change.
func (p *Presence) state(topic string) []byte {
	if p.fetch != nil {
		data, err := json.Marshal(p.List(topic))
		if err != nil || len(data) == 0 || data[0] != '{' {
			p.srv.log.Error("phx: presence_state not encoded", "topic", topic, "err", err)
			return wire.EmptyObject()
		}
		return data
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.topics[topic]
	if t == nil {
		return wire.EmptyObject()
	}
	if t.state == nil {
		t.state = appendEntries(nil, t.items)
	}
	return t.state
}

// appendEntries appends the JSON object {key: {"metas": [meta, ...]}, ...}
// of items, keys sorted as encoding/json sorts map keys.
func appendEntries(dst []byte, items map[string][]*presenceItem) []byte {
	keys := make([]string, 0, len(items))
	size := 2
	for k, its := range items {
		keys = append(keys, k)
		size += len(k) + 16
		for _, it := range its {
			size += len(it.enc) + 1
		}
	}
	sort.Strings(keys)
	if dst == nil {
		dst = make([]byte, 0, size)
	}
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = wire.AppendJSONString(dst, k)
		dst = append(dst, `:{"metas":[`...)
		for j, it := range items[k] {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, it.metaJSON()...)
		}
		dst = append(dst, "]}"...)
	}
	return append(dst, '}')
}

// metaJSON returns the item's meta as JSON.
func (it *presenceItem) metaJSON() []byte { return it.enc }

// meta returns the item's meta decoded from its JSON: a new map, which the
// caller may keep and change. Numbers are float64, as json.Unmarshal
// makes them, on every node alike.
func (it *presenceItem) meta() Meta { return decodeMeta(it.enc) }

// encodeMeta returns the JSON of a meta, encoded once for every
// presence_state and presence_diff it goes out in.
func encodeMeta(m Meta) ([]byte, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("phx: presence meta: %w", err)
	}
	return data, nil
}

// newLocalItem makes an entry of this replica (p.mu held); enc is its
// meta's JSON, phx_ref included.
func (p *Presence) newLocalItem(ch *channel, topic, key string, enc []byte) *presenceItem {
	p.clock++
	return &presenceItem{topic: topic, key: key, owner: ch, replica: p.replica, clock: p.clock, enc: enc}
}

// newRef returns a unique phx_ref: 12 bytes (time and a counter) in
// URL-safe base64, 16 characters, like Phoenix's.
func (p *Presence) newRef() string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint32(b[8:], p.refCount.Add(1))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

var itemSeq atomic.Uint64

// add inserts it into the topic index and queues a join (p.mu held).
func (p *Presence) add(it *presenceItem) {
	it.seq = itemSeq.Add(1)
	t := p.topics[it.topic]
	if t == nil {
		t = &presenceTopic{items: make(map[string][]*presenceItem)}
		p.topics[it.topic] = t
	}
	t.items[it.key] = append(t.items[it.key], it)
	t.state = nil
	if it.owner == nil {
		m := p.remote[it.replica]
		if m == nil {
			m = make(map[uint64]*presenceItem)
			p.remote[it.replica] = m
		}
		m[it.clock] = it
	}
	d := p.diff(it.topic)
	d.joins[it.key] = append(d.joins[it.key], it)
	p.scheduleFlush()
}

// remove deletes it from the topic index and queues a leave (p.mu held).
func (p *Presence) remove(it *presenceItem) {
	if t := p.topics[it.topic]; t != nil {
		items := t.items[it.key]
		for i, x := range items {
			if x == it {
				items = append(items[:i:i], items[i+1:]...)
				break
			}
		}
		t.state = nil
		if len(items) == 0 {
			delete(t.items, it.key)
			if len(t.items) == 0 {
				delete(p.topics, it.topic)
			}
		} else {
			t.items[it.key] = items
		}
	}
	if it.owner == nil {
		delete(p.remote[it.replica], it.clock)
	}
	d := p.diff(it.topic)
	d.leaves[it.key] = append(d.leaves[it.key], it)
	p.scheduleFlush()
}

func (p *Presence) diff(topic string) *presenceDiff {
	d := p.pending[topic]
	if d == nil {
		d = &presenceDiff{joins: map[string][]*presenceItem{}, leaves: map[string][]*presenceItem{}}
		p.pending[topic] = d
	}
	return d
}

// scheduleFlush arranges for pending diffs to be broadcast (p.mu held).
func (p *Presence) scheduleFlush() {
	if p.flushing {
		return
	}
	p.flushing = true
	if p.batch < 0 {
		go p.flush()
		return
	}
	time.AfterFunc(p.batch, p.flush)
}

// flush broadcasts the pending diffs, one presence_diff per topic, to this
// node's subscribers (every node computes its own diffs), each preceded by
// the presence_state its waiting joiners asked for.
func (p *Presence) flush() {
	// One flush at a time, from taking the pending diffs to broadcasting
	// them, so diffs reach subscribers in the order the changes happened.
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	p.mu.Lock()
	pending := p.pending
	waiting := p.waiting
	p.pending = make(map[string]*presenceDiff)
	p.waiting = make(map[string][]*Socket)
	p.flushing = false
	p.mu.Unlock()

	topics := make([]string, 0, len(pending))
	for t := range pending {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, topic := range topics {
		if ws := waiting[topic]; len(ws) > 0 {
			// Taken after the diffs were: every change it misses is in a
			// diff still to come.
			state := Payload{Data: p.state(topic)}
			for _, s := range ws {
				_ = s.ch.pushSharedPayload("presence_state", state) // fails only if the channel ended
			}
		}
		d := pending[topic]
		var joins, leaves map[string]*PresenceEntry
		var payload any
		if p.fetch != nil || p.onMetas != nil {
			joins, leaves = p.entries(topic, d.joins), p.entries(topic, d.leaves)
		}
		if p.fetch != nil {
			payload = map[string]map[string]*PresenceEntry{"joins": joins, "leaves": leaves}
		} else {
			payload = Payload{Data: d.appendJSON(nil)}
		}
		if err := p.srv.LocalBroadcast(topic, "presence_diff", payload); err != nil {
			p.srv.log.Error("phx: presence_diff broadcast failed", "topic", topic, "err", err)
		}
		p.srv.opts.Telemetry.presenceDiff(p.srv, PresenceDiffSent{
			Topic: topic, Joins: len(d.joins), Leaves: len(d.leaves),
		})
		if p.onMetas != nil {
			p.callHandleMetas(topic, joins, leaves)
		}
	}
}

// appendJSON appends the diff's presence_diff payload,
// {"joins":{...},"leaves":{...}}.
func (d *presenceDiff) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"joins":`...)
	dst = appendEntries(dst, d.joins)
	dst = append(dst, `,"leaves":`...)
	dst = appendEntries(dst, d.leaves)
	return append(dst, '}')
}

// callHandleMetas runs the HandleMetas hook, containing a panic.
func (p *Presence) callHandleMetas(topic string, joins, leaves map[string]*PresenceEntry) {
	defer func() {
		if v := recover(); v != nil {
			p.srv.log.Error("phx: presence HandleMetas panicked", "topic", topic, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	p.onMetas(topic, joins, leaves)
}

func (p *Presence) entries(topic string, items map[string][]*presenceItem) map[string]*PresenceEntry {
	out := make(map[string]*PresenceEntry, len(items))
	for k, its := range items {
		e := &PresenceEntry{Metas: make([]Meta, len(its))}
		for i, it := range its {
			e.Metas[i] = it.meta()
		}
		out[k] = e
	}
	if p.fetch != nil && len(out) > 0 {
		p.callFetch(topic, out)
	}
	return out
}

// copyMeta makes the Meta of a Track or Update: a copy of a map, or the
// JSON object a value encodes to, with room for phx_ref.
func copyMeta(meta any) (Meta, error) {
	var m map[string]any
	switch v := meta.(type) {
	case nil:
	case map[string]any:
		m = v
	case Meta:
		m = v
	default:
		data, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("phx: presence meta: %w", err)
		}
		if err := wire.CheckObject(data); err != nil {
			return nil, fmt.Errorf("phx: presence meta %T: %w", v, err)
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("phx: presence meta: %w", err)
		}
	}
	c := make(Meta, len(m)+2)
	for k, v := range m {
		c[k] = v
	}
	return c, nil
}

func (it *presenceItem) tag() presenceTag { return presenceTag{Replica: it.replica, Clock: it.clock} }

func (it *presenceItem) record() presenceRecord {
	return presenceRecord{Tag: it.tag(), Topic: it.topic, Key: it.key, Meta: it.enc}
}

// Replication.
//
// Every local change is one presenceDelta carrying the replica's clock
// after the change. Deltas of one replica apply in clock order; a receiver
// that sees a gap asks the owner for its whole state (Snapshot) instead.
// This is the seam a distributed PubSub adapter uses to make presence
// converge across nodes: it ships takeDelta's output and heartbeats, calls
// merge on receipt, and replicaDown when a node stops heartbeating.

// presenceTag identifies one entry: the replica that owns it and that
// replica's clock when the entry was added.
type presenceTag struct {
	Replica string `json:"r"`
	Clock   uint64 `json:"c"`
}

// presenceRecord is one entry in a delta or snapshot.
type presenceRecord struct {
	Tag   presenceTag     `json:"t"`
	Topic string          `json:"topic"`
	Key   string          `json:"key"`
	Meta  json.RawMessage `json:"meta"` // a JSON object
}

// presenceDelta is a batch of changes of one replica, ending at Clock.
// A snapshot is a delta with Snapshot set: it replaces everything known of
// the replica.
type presenceDelta struct {
	Replica  string           `json:"replica"`
	Clock    uint64           `json:"clock"`
	From     uint64           `json:"from"` // the clock the delta starts after
	Joins    []presenceRecord `json:"joins,omitempty"`
	Leaves   []presenceTag    `json:"leaves,omitempty"`
	Snapshot bool             `json:"snapshot,omitempty"`
}

// errPresenceGap is returned by merge when a delta does not follow the
// last one merged from its replica: ask that replica for a Snapshot.
var errPresenceGap = errors.New("phx: presence delta out of order")

// record appends a local change to the delta log (p.mu held). The
// replicator hears of it when the caller releases p.mu with unlock.
func (p *Presence) record(d presenceDelta) {
	if p.onDelta == nil {
		return // nobody replicates: keep no log
	}
	p.deltaLog = append(p.deltaLog, d)
	p.notify = true
}

// unlock releases p.mu and then, if changes were recorded meanwhile, calls
// the replicator's callback: it never runs with p.mu held, so it may call
// back into the Presence (takeDelta, List). Order is kept by the log, not
// by the calls: each change is logged in clock order under p.mu before
// its callback runs, and takeDelta takes the whole log, so a callback finds
// its change either in the delta it takes or in one taken before.
func (p *Presence) unlock() {
	f := p.onDelta
	notify := p.notify && f != nil
	p.notify = false
	p.mu.Unlock()
	if notify {
		f()
	}
}

// takeDelta returns the local changes since the last call, folded into one
// delta (ok is false when there are none).
func (p *Presence) takeDelta() (d presenceDelta, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.deltaLog) == 0 {
		return presenceDelta{}, false
	}
	// Every local change advances the clock by one, so the log is contiguous.
	d = presenceDelta{Replica: p.replica, From: p.deltaLog[0].Clock - 1, Clock: p.clock}
	for _, x := range p.deltaLog {
		d.Joins = append(d.Joins, x.Joins...)
		d.Leaves = append(d.Leaves, x.Leaves...)
	}
	p.deltaLog = p.deltaLog[:0]
	return d, true
}

// snapshot returns this replica's own entries as a snapshot delta.
func (p *Presence) snapshot() presenceDelta {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := presenceDelta{Replica: p.replica, Clock: p.clock, Snapshot: true}
	for _, items := range p.byOwner {
		for _, it := range items {
			d.Joins = append(d.Joins, it.record())
		}
	}
	sort.Slice(d.Joins, func(i, j int) bool { return d.Joins[i].Tag.Clock < d.Joins[j].Tag.Clock })
	return d
}

// setReplicator registers f to be called after every local change, so a
// replicator knows a delta is ready to take with takeDelta. f runs on the
// goroutine that made the change, before its Track, Update, Untrack (or
// the channel's end) returns, and after the Presence is unlocked: it may
// call back into the Presence, but it should be quick (e.g. a non-blocking
// channel send). Changes on several goroutines may call f concurrently, and
// a change under way when f is replaced may still call the old f once.
// Until f is set, no delta log is kept; with nil, logging stops.
func (p *Presence) setReplicator(f func()) {
	p.mu.Lock()
	p.onDelta = f
	p.mu.Unlock()
}

// replicaName returns this node's replica name.
func (p *Presence) replicaName() string { return p.replica }

// merge applies a delta or snapshot received from another replica; local
// clients see the resulting joins and leaves as presence_diff.
func (p *Presence) merge(d presenceDelta) error {
	if d.Replica == p.replica {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := p.ctxClock[d.Replica]
	if d.Snapshot {
		keep := make(map[presenceTag]bool, len(d.Joins))
		for _, r := range d.Joins {
			keep[r.Tag] = true
		}
		for _, it := range p.remote[d.Replica] {
			if !keep[it.tag()] {
				p.remove(it)
			}
		}
		for _, r := range d.Joins {
			if p.remote[d.Replica][r.Tag.Clock] == nil {
				p.add(remoteItem(r))
			}
		}
		p.ctxClock[d.Replica] = d.Clock
		return nil
	}
	if d.Clock <= seen {
		return nil // already merged
	}
	if d.From != seen {
		return fmt.Errorf("%w: replica %s at %d, delta from %d", errPresenceGap, d.Replica, seen, d.From)
	}
	for _, r := range d.Joins {
		if p.remote[d.Replica][r.Tag.Clock] == nil {
			p.add(remoteItem(r))
		}
	}
	for _, tag := range d.Leaves {
		if it := p.remote[tag.Replica][tag.Clock]; it != nil {
			p.remove(it)
		}
	}
	p.ctxClock[d.Replica] = d.Clock
	return nil
}

// replicaDown removes every entry of a replica (a node that stopped), so
// local clients see its users leave.
func (p *Presence) replicaDown(replica string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, it := range p.remote[replica] {
		p.remove(it)
	}
	delete(p.remote, replica)
	delete(p.ctxClock, replica)
}

func remoteItem(r presenceRecord) *presenceItem {
	enc := []byte(r.Meta)
	if wire.CheckObject(enc) != nil { // from a node that sent no object: none
		enc = wire.EmptyObject()
	}
	return &presenceItem{topic: r.Topic, key: r.Key, replica: r.Tag.Replica, clock: r.Tag.Clock, enc: enc}
}
