package phx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Position is a place in a topic's history: the offset of the last message
// a client has seen, in the history's epoch. Offsets start at 1 and grow by
// one for every recorded broadcast on the topic; 0 means "before the
// first". The epoch names one unbroken run of offsets: when a store loses
// a topic's history (an in-memory store restarted, a topic evicted), the
// topic gets a new epoch and positions in the old one cannot be recovered.
//
// In JSON (join params and join replies) a Position is
// {"epoch": "…", "offset": 42}.
type Position struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// HistoryOptions bounds a topic's history. Broadcasts recorded with it are
// kept until there are more than MaxMessages newer ones or they are older
// than MaxAge, whichever comes first.
type HistoryOptions struct {
	// MaxMessages is how many messages a topic keeps; 0 means 1000.
	MaxMessages int
	// MaxAge is how long a message is kept; 0 means one hour.
	MaxAge time.Duration
	// MaxReplay is the most messages replayed to one joining client; a
	// client that missed more gets recovered: false and nothing replayed.
	// 0 means MaxMessages.
	MaxReplay int
	// Events, when not empty, are the only events recorded (say
	// "new_msg", leaving out ephemeral ones such as "typing"); the others
	// are delivered at most once, without phx_offset.
	Events []string
}

// records reports whether broadcasts of event are recorded.
func (o *HistoryOptions) records(event string) bool {
	return len(o.Events) == 0 || slices.Contains(o.Events, event)
}

// withDefaults returns o with its zero fields set to their defaults.
func (o HistoryOptions) withDefaults() HistoryOptions {
	setDefault(&o.MaxMessages, 1000)
	setDefault(&o.MaxAge, time.Hour)
	setDefault(&o.MaxReplay, o.MaxMessages)
	return o
}

// HistoryMessage is one recorded broadcast.
type HistoryMessage struct {
	// Offset is the message's place in its topic, assigned by the store.
	Offset uint64
	// Event is the broadcast's event.
	Event string
	// Payload is the broadcast's JSON object as published, without the
	// phx_offset field the library adds when sending it. Stores keep it
	// as opaque bytes and must not modify it; the library does not modify
	// the slice either, so a store may keep it without copying.
	Payload []byte
	// Time is when the message was recorded (the store's clock).
	Time time.Time
}

// HistoryPage is what [HistoryStore.Read] returns for a topic.
type HistoryPage struct {
	// Epoch is the topic's current epoch (never empty).
	Epoch string
	// Top is the offset of the newest message ever appended in this epoch,
	// retained or not; 0 when none was.
	Top uint64
	// First is the offset of the oldest message still retained; Top+1 when
	// none is.
	First uint64
	// Messages are the retained messages with an offset above the one
	// asked for, oldest first, at most the number asked for.
	Messages []HistoryMessage
}

// HistoryStore keeps per-topic histories of broadcasts. The library calls
// Append, under a per-topic lock of this node, right before it hands the
// broadcast to the PubSub, and Read when a client joins a topic with
// history.
//
// The contract, which every implementation (in memory, or shared by many
// nodes such as one on Redis Streams or NATS JetStream) must keep:
//
//   - Offsets are per topic, start at 1 in each epoch, and grow by exactly
//     one per Append: no gaps, no reuse. Two Appends on one topic, from any
//     goroutine or node, never get the same offset.
//   - The epoch is an opaque, non-empty string of at most 64 bytes,
//     unguessable from other topics' (so a client cannot pass one topic's
//     epoch to another). It changes whenever offsets would otherwise
//     restart or messages within the retention bounds are lost: a store
//     restart without durable state, a topic evicted or deleted, a stream
//     recreated. Trimming by the bounds given to Append does not change it.
//   - Retention: after Append, the topic keeps at most opts.MaxMessages
//     messages, none older than opts.MaxAge (a store may trim lazily, but
//     Read must not return messages outside the bounds of the last
//     Append). First and Top in [HistoryPage] reflect what is retained.
//   - Read never creates gaps: its Messages are consecutive offsets
//     starting at max(after+1, First). A topic never appended to has an
//     epoch too (Read creates it, or answers a stable one), so that a
//     client joining an empty topic can later recover from offset 0.
//   - Blocking calls honour ctx: they return ctx's error (wrapped) when it
//     ends. A store that cannot answer (its server down) returns an error
//     wrapping [ErrHistoryUnavailable]; the library then fails the
//     broadcast (Append) or answers the join with recovered: false (Read).
//   - Payloads are stored and returned byte for byte.
//   - Implementations are safe for concurrent use.
//
// A shared store used by several nodes must also deliver in offset order:
// the library serializes Append and publish per topic on one node only, so
// a store shared by nodes should be paired with a PubSub whose publish is
// ordered with the append (for example a Lua script doing XADD and PUBLISH
// together, or JetStream, where the stream is the bus).
type HistoryStore interface {
	// Append records one message on topic, trims the topic to opts, and
	// returns the message's position. m.Offset and m.Time are ignored (the
	// store assigns them).
	Append(ctx context.Context, topic string, m HistoryMessage, opts HistoryOptions) (Position, error)
	// Read returns up to max retained messages of topic with an offset
	// above after, with the topic's epoch and bounds.
	Read(ctx context.Context, topic string, after uint64, max int) (HistoryPage, error)
}

// ErrHistoryUnavailable is wrapped by HistoryStore errors when the store
// cannot answer, such as when its server is unreachable.
var ErrHistoryUnavailable = errors.New("phx: history unavailable")

// MemoryHistory is the in-process [HistoryStore], the default. Its epochs
// are random per topic and process, so a restart changes them: clients
// then get recovered: false. It serves one node: with a PubSub adapter
// spanning several nodes, use a shared store.
//
// A topic whose messages have all expired and that nobody appended to for
// its MaxAge is evicted (its next use starts a new epoch), so idle topics
// do not accumulate.
type MemoryHistory struct {
	mu      sync.Mutex
	topics  map[string]*memTopic
	appends int // since the last sweep
	now     func() time.Time
}

type memTopic struct {
	epoch  string
	top    uint64
	msgs   []HistoryMessage // retained, oldest first; offsets top-len+1 .. top
	maxAge time.Duration    // of the last Append, for eviction
	last   time.Time        // of the last Append or Read
}

// NewMemoryHistory returns an empty in-process history store.
func NewMemoryHistory() *MemoryHistory {
	return &MemoryHistory{topics: make(map[string]*memTopic), now: time.Now}
}

var _ HistoryStore = (*MemoryHistory)(nil)

// topic returns topic's stream, creating it with a fresh epoch (h.mu held).
func (h *MemoryHistory) topic(topic string, now time.Time) *memTopic {
	t := h.topics[topic]
	if t == nil {
		var b [12]byte
		_, _ = rand.Read(b[:])
		t = &memTopic{epoch: hex.EncodeToString(b[:]), maxAge: time.Hour}
		h.topics[topic] = t
	}
	t.last = now
	return t
}

// trim drops t's messages past opts' bounds.
func (t *memTopic) trim(now time.Time, maxMessages int, maxAge time.Duration) {
	drop := 0
	if n := len(t.msgs); maxMessages > 0 && n > maxMessages {
		drop = n - maxMessages
	}
	if maxAge > 0 {
		cutoff := now.Add(-maxAge)
		for drop < len(t.msgs) && t.msgs[drop].Time.Before(cutoff) {
			drop++
		}
	}
	if drop > 0 {
		clear(t.msgs[:drop]) // let the payloads go
		t.msgs = t.msgs[drop:]
	}
}

// Append implements [HistoryStore].
func (h *MemoryHistory) Append(ctx context.Context, topic string, m HistoryMessage, opts HistoryOptions) (Position, error) {
	if err := ctx.Err(); err != nil {
		return Position{}, fmt.Errorf("phx: history append: %w", err)
	}
	opts = opts.withDefaults()
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topic(topic, now)
	t.top++
	m.Offset, m.Time = t.top, now
	if len(t.msgs) == cap(t.msgs) && len(t.msgs) > 0 {
		// The front was trimmed away: copy what is kept into an array with
		// room for up to MaxMessages more, so that this happens once per
		// MaxMessages appends and memory stays under twice the bound.
		grown := make([]HistoryMessage, len(t.msgs), min(max(2*len(t.msgs), 8), 2*opts.MaxMessages))
		copy(grown, t.msgs)
		t.msgs = grown
	}
	t.msgs = append(t.msgs, m)
	t.maxAge = opts.MaxAge
	t.trim(now, opts.MaxMessages, opts.MaxAge)
	if h.appends++; h.appends >= 1024 {
		h.appends = 0
		h.sweep(now)
	}
	return Position{Epoch: t.epoch, Offset: t.top}, nil
}

// sweep evicts up to 64 idle topics with nothing retained (h.mu held).
func (h *MemoryHistory) sweep(now time.Time) {
	seen := 0
	for name, t := range h.topics {
		if seen++; seen > 64 {
			return
		}
		t.trim(now, 0, t.maxAge)
		if len(t.msgs) == 0 && now.Sub(t.last) > t.maxAge {
			delete(h.topics, name)
		}
	}
}

// Read implements [HistoryStore].
func (h *MemoryHistory) Read(ctx context.Context, topic string, after uint64, max int) (HistoryPage, error) {
	if err := ctx.Err(); err != nil {
		return HistoryPage{}, fmt.Errorf("phx: history read: %w", err)
	}
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topic(topic, now)
	t.trim(now, 0, t.maxAge)
	first := t.top - uint64(len(t.msgs)) + 1
	page := HistoryPage{Epoch: t.epoch, Top: t.top, First: first}
	if max <= 0 || after >= t.top {
		return page, nil
	}
	i := 0
	if after >= first {
		i = int(after - first + 1)
	}
	j := min(len(t.msgs), i+max)
	page.Messages = append([]HistoryMessage(nil), t.msgs[i:j]...)
	return page, nil
}

// Len reports how many messages topic retains.
func (h *MemoryHistory) Len(topic string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.topics[topic]; t != nil {
		return len(t.msgs)
	}
	return 0
}
