package natspubsub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/phxgo/phx"
	"github.com/phxgo/phx/pubsub/internal/pending"
)

// HistoryConfig configures a [History]. The zero value is usable.
type HistoryConfig struct {
	// Stream is the JetStream stream holding every topic's history,
	// created (or updated) by [NewHistory]. Default "PHX_HISTORY".
	Stream string
	// Prefix starts the stream's subjects: "<Prefix>.<escaped topic>",
	// escaped as the PubSub's subjects. It must differ from the PubSub's
	// Prefix. Default "phxh".
	Prefix string
	// MaxAge is the stream's MaxAge: no route keeps messages longer, and
	// a topic nobody recorded on for that long is forgotten (its next use
	// starts a new epoch). Default 24h.
	MaxAge time.Duration
	// MaxMessagesPerTopic is the stream's MaxMsgsPerSubject: no route
	// keeps more, whatever its MaxMessages. Default 10000.
	MaxMessagesPerTopic int64
	// Replicas and Storage are the stream's; defaults 1 and file storage.
	Replicas int
	Storage  jetstream.StorageType
}

// History is a [phx.HistoryStore] on NATS JetStream, shared by every node
// using the same stream, and a [phx.HistoryPublisher]: the stream is at
// once the history and the bus, so every node delivers a topic's recorded
// broadcasts in offset order. Create it with [NewHistory] over a [PubSub]
// and pass both to the server:
//
//	ps, _ := natspubsub.Dial(url, nil)
//	h, _ := natspubsub.NewHistory(ps, nil)
//	srv := phx.NewServer(&phx.Options{PubSub: ps, History: h})
//
// Each topic is one subject of one stream. A message's offset and epoch
// travel in its headers; a node appends offset n+1 with JetStream's
// expected-last-subject-sequence set to the stream sequence of offset n,
// so of two nodes appending at once one wins and the other retries with
// the next offset: offsets per topic are consecutive, and the stream's
// order is their order. Each node reads the stream from its creation on
// with one ordered consumer (every recorded broadcast of every topic
// reaches every node) and delivers to its subscribers, its own included;
// after a disconnection the consumer resumes where it stopped, so the
// recorded broadcasts of the gap still arrive, late.
//
// The epoch of a topic is 12 random bytes, drawn by the node that starts
// its history (a Read of an empty topic records a marker carrying it).
// It changes when the topic's messages are all gone: the stream deleted
// or purged, or the topic idle for the stream's MaxAge.
//
// Deleting the stream while nodes run changes every topic's epoch (the
// next Read or append recreates it), but the nodes' consumers do not
// follow the new stream's sequence numbers: restart the nodes after
// deleting it.
//
// Route bounds (phx.HistoryOptions) below the stream's are applied on
// Read; space beyond MaxMessages is reclaimed by purging the topic's
// subject every 16 appends. Read costs a binary search of direct gets
// (about log2 of the stream's length) and one get per message returned.
type History struct {
	ps     *PubSub
	js     jetstream.JetStream
	stream jetstream.Stream
	cfg    HistoryConfig
	cons   jetstream.ConsumeContext

	mu   sync.Mutex
	last map[string]lastMsg // topic -> its newest message as this node last saw it

	seq     atomic.Uint64
	pending pending.Froms // origin token -> excluded subscriber
}

type lastMsg struct {
	seq    uint64
	epoch  string
	offset uint64
}

var (
	_ phx.HistoryStore     = (*History)(nil)
	_ phx.HistoryPublisher = (*History)(nil)
)

// Headers of the recorded messages.
const (
	hdrTopic  = "Phx-Topic"
	hdrEvent  = "Phx-Event"
	hdrEpoch  = "Phx-Epoch"
	hdrOffset = "Phx-Offset" // 0 for the marker starting an epoch
	hdrMax    = "Phx-Max"    // the route's MaxMessages at this append
	hdrAge    = "Phx-Age"    // the route's MaxAge at this append, ms
	hdrOrigin = "Phx-Origin" // "<node>/<token>" of AppendPublish
)

// NewHistory creates or updates the stream and starts this node's
// consumer of it. cfg may be nil.
func NewHistory(ps *PubSub, cfg *HistoryConfig) (*History, error) {
	var c HistoryConfig
	if cfg != nil {
		c = *cfg
	}
	if c.Stream == "" {
		c.Stream = "PHX_HISTORY"
	}
	if c.Prefix == "" {
		c.Prefix = "phxh"
	}
	if c.Prefix == ps.prefix {
		return nil, errors.New("natspubsub: the history's Prefix must differ from the PubSub's")
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 24 * time.Hour
	}
	if c.MaxMessagesPerTopic <= 0 {
		c.MaxMessagesPerTopic = 10000
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	js, err := jetstream.New(ps.nc)
	if err != nil {
		return nil, fmt.Errorf("natspubsub: history: %w", err)
	}
	h := &History{ps: ps, js: js, cfg: c, last: make(map[string]lastMsg)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.ensureStream(ctx); err != nil {
		return nil, err
	}
	cons, err := js.OrderedConsumer(ctx, c.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{c.Prefix + ".>"},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("natspubsub: history consumer: %w", err)
	}
	if h.cons, err = cons.Consume(h.deliver); err != nil {
		return nil, fmt.Errorf("natspubsub: history consumer: %w", err)
	}
	return h, nil
}

func (h *History) ensureStream(ctx context.Context) error {
	s, err := h.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              h.cfg.Stream,
		Subjects:          []string{h.cfg.Prefix + ".>"},
		MaxAge:            h.cfg.MaxAge,
		MaxMsgsPerSubject: h.cfg.MaxMessagesPerTopic + 1, // the epoch's marker
		Replicas:          h.cfg.Replicas,
		Storage:           h.cfg.Storage,
		AllowDirect:       true,
	})
	if err != nil {
		return fail(ctx, "stream", err)
	}
	if h.stream == nil { // NewHistory; a recreated stream keeps its name, so the handle stays valid
		h.stream = s
	}
	return nil
}

// Close stops this node's consumer. It does not close the PubSub.
func (h *History) Close() error {
	h.cons.Stop()
	return nil
}

// Subject returns the stream subject carrying topic.
func (h *History) Subject(topic string) string { return subject(h.cfg.Prefix, topic) }

func newEpoch() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// fail wraps a NATS error: ctx's error when ctx ended, else
// phx.ErrHistoryUnavailable.
func fail(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("natspubsub: history %s: %w", op, ctx.Err())
	}
	return fmt.Errorf("natspubsub: history %s: %w: %w", op, phx.ErrHistoryUnavailable, err)
}

// streamGone reports an error meaning the stream does not exist (direct
// gets of a deleted stream have no responders) while connected.
func (h *History) streamGone(err error) bool {
	return h.ps.nc.IsConnected() && (errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders))
}

func wrongLast(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// newest returns topic's newest message: seq 0 and a fresh epoch when the
// subject has none.
func (h *History) newest(ctx context.Context, topic string) (lastMsg, *jetstream.RawStreamMsg, error) {
	m, err := h.stream.GetLastMsgForSubject(ctx, h.Subject(topic))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return lastMsg{epoch: newEpoch()}, nil, nil
	}
	if err != nil {
		return lastMsg{}, nil, err
	}
	off, _ := strconv.ParseUint(m.Header.Get(hdrOffset), 10, 64)
	return lastMsg{seq: m.Sequence, epoch: m.Header.Get(hdrEpoch), offset: off}, m, nil
}

// Append implements [phx.HistoryStore]: it records m. Since the stream is
// the bus, every node's consumer delivers it to the topic's subscribers,
// as AppendPublish with no excluded subscriber.
func (h *History) Append(ctx context.Context, topic string, m phx.HistoryMessage, opts phx.HistoryOptions) (phx.Position, error) {
	return h.append(ctx, topic, m.Event, m.Payload, opts, "")
}

// AppendPublish implements [phx.HistoryPublisher].
func (h *History) AppendPublish(ctx context.Context, b *phx.Broadcast, from phx.Subscriber, opts phx.HistoryOptions) (phx.Position, error) {
	token := strconv.FormatUint(h.seq.Add(1), 36)
	if from != nil {
		h.pending.Expect(token, from)
	}
	pos, err := h.append(ctx, b.Topic, b.Event, b.Payload.Data, opts, h.ps.node+"/"+token)
	if err != nil && from != nil {
		h.pending.Take(token)
	}
	return pos, err
}

func defaults(o phx.HistoryOptions) phx.HistoryOptions {
	if o.MaxMessages <= 0 {
		o.MaxMessages = 1000
	}
	if o.MaxAge <= 0 {
		o.MaxAge = time.Hour
	}
	return o
}

// append publishes offset top+1 expecting top's stream sequence, and
// retries with a fresh view of the topic when another node was first.
func (h *History) append(ctx context.Context, topic, event string, payload []byte, opts phx.HistoryOptions, origin string) (phx.Position, error) {
	if err := ctx.Err(); err != nil {
		return phx.Position{}, fmt.Errorf("natspubsub: history append: %w", err)
	}
	opts = defaults(opts)
	subj := h.Subject(topic)
	for attempt := 0; ; attempt++ {
		h.mu.Lock()
		cur, ok := h.last[topic]
		h.mu.Unlock()
		if !ok {
			var err error
			if cur, _, err = h.newest(ctx, topic); err != nil {
				return phx.Position{}, fail(ctx, "append", err)
			}
		}
		msg := nats.NewMsg(subj)
		msg.Header.Set(hdrTopic, topic)
		msg.Header.Set(hdrEvent, event)
		msg.Header.Set(hdrEpoch, cur.epoch)
		msg.Header.Set(hdrOffset, strconv.FormatUint(cur.offset+1, 10))
		msg.Header.Set(hdrMax, strconv.Itoa(opts.MaxMessages))
		msg.Header.Set(hdrAge, strconv.FormatInt(opts.MaxAge.Milliseconds(), 10))
		if origin != "" {
			msg.Header.Set(hdrOrigin, origin)
		}
		msg.Data = payload
		ack, err := h.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(h.cfg.Stream),
			jetstream.WithExpectLastSequencePerSubject(cur.seq))
		if err == nil {
			next := lastMsg{seq: ack.Sequence, epoch: cur.epoch, offset: cur.offset + 1}
			h.remember(topic, next)
			if next.offset > uint64(opts.MaxMessages) && next.offset%16 == 0 {
				// Reclaim what the route's bound no longer keeps.
				_ = h.stream.Purge(ctx, jetstream.WithPurgeSubject(subj), jetstream.WithPurgeKeep(uint64(opts.MaxMessages)))
			}
			return phx.Position{Epoch: next.epoch, Offset: next.offset}, nil
		}
		h.forget(topic)
		switch {
		case wrongLast(err) && attempt < 100:
			continue
		case h.streamGone(err) && attempt < 2 && ctx.Err() == nil:
			// The stream is gone: recreate it; the topic starts a new epoch.
			if err := h.ensureStream(ctx); err != nil {
				return phx.Position{}, err
			}
			continue
		}
		return phx.Position{}, fail(ctx, "append", err)
	}
}

func (h *History) remember(topic string, m lastMsg) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.last) >= 65536 {
		clear(h.last) // a cache: appends re-read what they need
	}
	h.last[topic] = m
}

func (h *History) forget(topic string) {
	h.mu.Lock()
	delete(h.last, topic)
	h.mu.Unlock()
}

// Read implements [phx.HistoryStore].
func (h *History) Read(ctx context.Context, topic string, after uint64, max int) (phx.HistoryPage, error) {
	if err := ctx.Err(); err != nil {
		return phx.HistoryPage{}, fmt.Errorf("natspubsub: history read: %w", err)
	}
	subj := h.Subject(topic)
	cur, last, err := h.newest(ctx, topic)
	if h.streamGone(err) { // deleted: recreate it, empty
		if err = h.ensureStream(ctx); err == nil {
			cur, last, err = h.newest(ctx, topic)
		}
	}
	for attempt := 0; err == nil && last == nil; attempt++ {
		// An empty topic: record the epoch's marker, so that the epoch
		// answered now is the one its first messages get.
		msg := nats.NewMsg(subj)
		msg.Header.Set(hdrTopic, topic)
		msg.Header.Set(hdrEpoch, cur.epoch)
		msg.Header.Set(hdrOffset, "0")
		_, perr := h.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(h.cfg.Stream), jetstream.WithExpectLastSequencePerSubject(0))
		if perr != nil && (!wrongLast(perr) || attempt >= 10) {
			err = perr
			break
		}
		cur, last, err = h.newest(ctx, topic)
	}
	if err != nil {
		return phx.HistoryPage{}, fail(ctx, "read", err)
	}
	page := phx.HistoryPage{Epoch: cur.epoch, Top: cur.offset, First: cur.offset + 1}
	if cur.offset == 0 {
		return page, nil
	}
	maxMsgs, _ := strconv.ParseUint(last.Header.Get(hdrMax), 10, 64)
	ageMs, _ := strconv.ParseInt(last.Header.Get(hdrAge), 10, 64)
	lowest := uint64(1)
	if maxMsgs > 0 && cur.offset > maxMsgs {
		lowest = cur.offset - maxMsgs + 1
	}
	cutoff := time.Now().Add(-time.Duration(ageMs) * time.Millisecond)
	keep := func(m *jetstream.RawStreamMsg) bool {
		off, _ := strconv.ParseUint(m.Header.Get(hdrOffset), 10, 64)
		return off >= lowest && !m.Time.Before(cutoff)
	}
	if !keep(last) {
		return page, nil
	}
	// The first retained message, then the first one after `after`.
	seq, first, err := h.search(ctx, subj, 1, last.Sequence, keep)
	if err != nil {
		return phx.HistoryPage{}, fail(ctx, "read", err)
	}
	page.First = offsetOf(first)
	if max <= 0 || after >= cur.offset {
		return page, nil
	}
	m := first
	if after >= page.First {
		if seq, m, err = h.search(ctx, subj, seq, last.Sequence, func(m *jetstream.RawStreamMsg) bool {
			return offsetOf(m) > after
		}); err != nil {
			return phx.HistoryPage{}, fail(ctx, "read", err)
		}
	}
	for {
		page.Messages = append(page.Messages, phx.HistoryMessage{Offset: offsetOf(m), Event: m.Header.Get(hdrEvent),
			Payload: m.Data, Time: m.Time})
		if len(page.Messages) >= max || seq >= last.Sequence {
			return page, nil
		}
		if m, err = h.stream.GetMsg(ctx, seq+1, jetstream.WithGetMsgSubject(subj)); err != nil {
			return phx.HistoryPage{}, fail(ctx, "read", err)
		}
		seq = m.Sequence
	}
}

func offsetOf(m *jetstream.RawStreamMsg) uint64 {
	off, _ := strconv.ParseUint(m.Header.Get(hdrOffset), 10, 64)
	return off
}

// search returns the first message of subj at or after stream sequence lo
// (up to hi, whose message on subj satisfies ok) for which ok holds; ok
// must be false then true along the subject's messages.
func (h *History) search(ctx context.Context, subj string, lo, hi uint64, ok func(*jetstream.RawStreamMsg) bool) (uint64, *jetstream.RawStreamMsg, error) {
	var found *jetstream.RawStreamMsg
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := h.stream.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(subj))
		if err != nil {
			return 0, nil, err
		}
		if ok(m) {
			hi, found = m.Sequence, m
		} else {
			lo = m.Sequence + 1
		}
	}
	if found == nil || found.Sequence != hi {
		m, err := h.stream.GetMsg(ctx, hi, jetstream.WithGetMsgSubject(subj))
		if err != nil {
			return 0, nil, err
		}
		found = m
	}
	return found.Sequence, found, nil
}

// deliver hands one message of the stream to this node's subscribers but
// the one its origin excluded; markers are skipped.
func (h *History) deliver(m jetstream.Msg) {
	hd := m.Headers()
	off, err := strconv.ParseUint(hd.Get(hdrOffset), 10, 64)
	if err != nil || off == 0 {
		return
	}
	topic := hd.Get(hdrTopic)
	var from phx.Subscriber
	if origin := hd.Get(hdrOrigin); origin != "" {
		for i := len(origin) - 1; i >= 0; i-- {
			if origin[i] == '/' {
				if origin[:i] == h.ps.node {
					from = h.pending.Take(origin[i+1:])
				}
				break
			}
		}
	}
	if md, err := m.Metadata(); err == nil {
		h.mu.Lock()
		if cur, ok := h.last[topic]; ok && cur.seq < md.Sequence.Stream {
			h.last[topic] = lastMsg{seq: md.Sequence.Stream, epoch: hd.Get(hdrEpoch), offset: off}
		}
		h.mu.Unlock()
	}
	b := phx.RecordedBroadcast(topic, phx.HistoryMessage{Offset: off, Event: hd.Get(hdrEvent), Payload: m.Data()})
	_ = h.ps.LocalBroadcast(b, from)
}
