package natspubsub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/phxgo/phx"
	"github.com/phxgo/phx/pubsub/internal/downgate"
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
	// Timeout bounds each Append, AppendPublish and Read, all its round
	// trips and retries included (the caller's ctx still applies when it
	// ends sooner). A Read returning many messages may take longer while
	// they keep coming: each must arrive within Timeout of the previous
	// one. Default 500 ms.
	//
	// A call that fails because NATS did not answer (Timeout ran out, no
	// responders, the connection lost) marks the History down: from then
	// on every call fails at once, with no network round trip, with an
	// error wrapping [phx.ErrHistoryUnavailable], until a background
	// probe (a JetStream account info request every 100ms, itself bounded
	// by Timeout) is answered. Calls also fail at once while the NATS
	// connection is disconnected or reconnecting. Since the library
	// records a topic's broadcasts one at a time under a lock, a frozen
	// server costs one sender Timeout, not every sender queued behind it.
	//
	// A call that timed out may still take effect once the server answers
	// (a frozen server processes what it had received when it resumes):
	// its message is then recorded and delivered, with the next offset,
	// although the call reported an error. Offsets stay consecutive.
	Timeout time.Duration
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
// with one consumer of its own (every recorded broadcast of every topic
// reaches every node), checks that it gets every message in order, and
// delivers to its subscribers, its own included; after a disconnection,
// a missed heartbeat or a gap it starts a new consumer where it stopped,
// so the recorded broadcasts of the gap still arrive, late.
//
// The epoch of a topic is 12 random bytes, drawn by the node that starts
// its history (a Read of an empty topic records a marker carrying it).
// It changes when the topic's messages are all gone: the stream deleted
// or purged, or the topic idle for the stream's MaxAge.
//
// Deleting the stream while nodes run changes every topic's epoch. Each
// node notices (its consumer is deleted with the stream, or its next
// Read or append finds the stream gone), recreates the stream, and reads
// the new one from its first message: delivery resumes without a
// restart. A purge keeps the stream's sequence numbers, so consumers go
// on; the purged topics start new epochs.
//
// Calls are bounded by [HistoryConfig.Timeout]; a History that found
// NATS not answering fails every call at once until it answers again.
//
// Route bounds (phx.HistoryOptions) below the stream's are applied on
// Read; space beyond MaxMessages is reclaimed by purging the topic's
// subject every 16 appends. Read of n messages takes a few round trips
// whatever n: the topic's newest message, its first one within the age
// bound (a direct get by time), a search for the first one asked for
// (direct gets guessing its stream sequence by interpolation, halving the
// range every other step: one get when the topic's messages are evenly
// spread over the stream, about 2*log2 of their spread at worst), and one
// batched direct get for the messages (one more per 8 MiB). Against an
// embedded server, reading 1,000 messages of 100 bytes took about 80ms
// with one direct get per message and a binary search, and takes about
// 19ms; reading the last 10 of them, 2.4ms then, 0.75ms now
// (BenchmarkHistoryRead).
type History struct {
	ps     *PubSub
	js     jetstream.JetStream
	stream jetstream.Stream
	cfg    HistoryConfig

	mu   sync.Mutex
	last map[string]lastMsg // topic -> its newest message as this node last saw it

	seq     atomic.Uint64
	pending pending.Froms // origin token -> excluded subscriber

	down *downgate.Gate // NATS did not answer: calls fail at once until the probe gets an answer

	inbox    string             // of the answers to batched direct gets
	inboxSub *nats.Subscription // to inbox + ".*"
	batchSeq atomic.Uint64
	batches  sync.Map // token -> *batchWait

	life   sync.Mutex
	closed bool
	iter   jetstream.MessagesContext // the consumer's, stopped by Close
	stop   chan struct{}             // closed by Close
	ctx    context.Context           // canceled by Close: the background requests'
	cancel context.CancelFunc
	wg     sync.WaitGroup // the consumer's goroutine
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

// Why calls fail at once.
var (
	errDown         = errors.New("NATS did not answer; waiting for it to")
	errDisconnected = errors.New("not connected to NATS")
)

// noRetry turns off jetstream's retries of a publish that found no
// stream: a deleted stream is recreated at once, and Timeout bounds the
// call.
var noRetry = jetstream.WithRetryAttempts(0)

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
	if c.Timeout <= 0 {
		c.Timeout = 500 * time.Millisecond
	}
	js, err := jetstream.New(ps.nc)
	if err != nil {
		return nil, fmt.Errorf("natspubsub: history: %w", err)
	}
	h := &History{ps: ps, js: js, cfg: c, last: make(map[string]lastMsg), stop: make(chan struct{}), inbox: ps.nc.NewInbox()}
	h.down = downgate.New(h.probe, c.Timeout, nil)
	h.ctx, h.cancel = context.WithCancel(context.Background())
	if h.inboxSub, err = ps.nc.Subscribe(h.inbox+".*", h.batchReply); err != nil {
		return nil, fmt.Errorf("natspubsub: history: %w", err)
	}
	// batchReply only files the answers, which their Reads hold anyway:
	// dropping some past a limit would only fail those Reads.
	_ = h.inboxSub.SetPendingLimits(-1, -1)
	ok := false
	defer func() {
		if !ok {
			h.cancel()
			_ = h.inboxSub.Unsubscribe()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := h.ensureStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("natspubsub: history stream: %w", err)
	}
	cons, err := h.openConsumer(ctx, info.State.LastSeq+1)
	if err != nil {
		return nil, fmt.Errorf("natspubsub: history consumer: %w", err)
	}
	h.wg.Add(1)
	go h.consume(cons, info.Created, info.State.LastSeq+1)
	ok = true
	return h, nil
}

// ensureStream creates the stream, or updates it, and returns its info.
func (h *History) ensureStream(ctx context.Context) (*jetstream.StreamInfo, error) {
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
		return nil, err
	}
	if h.stream == nil { // NewHistory; a recreated stream keeps its name, so the handle stays valid
		h.stream = s
	} else {
		h.forgetAll() // a recreated stream has new sequence numbers and epochs
	}
	return s.CachedInfo(), nil
}

// recreate recreates the stream after a call found it gone (or makes sure
// it is there).
func (h *History) recreate(ctx context.Context) error {
	_, err := h.ensureStream(ctx)
	return err
}

// openConsumer creates an ephemeral consumer of every topic from stream
// sequence next on.
func (h *History) openConsumer(ctx context.Context, next uint64) (jetstream.Consumer, error) {
	return h.js.CreateConsumer(ctx, h.cfg.Stream, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       max(next, 1),
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubject:     h.cfg.Prefix + ".>",
		InactiveThreshold: 5 * time.Minute,
		MemoryStorage:     true,
		Replicas:          1,
	})
}

// consume is this node's reader of the stream. It delivers cons's
// messages while they come in order (consumer sequence n+1 after n); on
// an error or a gap it drops the consumer, looks at the stream (creating
// it if it is gone) and opens a new consumer: where it stopped when the
// stream is the one it read (same creation time, sequence not reset),
// from the first message of a new stream otherwise.
func (h *History) consume(cons jetstream.Consumer, created time.Time, next uint64) {
	defer h.wg.Done()
	delay := time.Duration(0)
	for {
		if cons != nil {
			start := time.Now()
			var delivered bool
			next, delivered = h.read(cons, next)
			h.dropConsumer(cons)
			cons = nil
			if delivered || time.Since(start) > time.Second {
				delay = 0 // it worked: try again at once
			}
		}
		select {
		case <-h.stop:
			return
		case <-time.After(delay):
		}
		delay = min(max(2*delay, 20*time.Millisecond), time.Second)
		if h.down.Down() || !h.ps.nc.IsConnected() {
			continue
		}
		ctx, cancel := context.WithTimeout(h.ctx, max(h.cfg.Timeout, time.Second))
		info, err := h.streamInfo(ctx)
		switch {
		case err != nil:
		case !info.Created.Equal(created):
			// Another stream (deleted and recreated): read it from its
			// start; its topics have new epochs.
			created, next = info.Created, 1
			h.forgetAll()
		case info.State.LastSeq+1 < next:
			// The stream lost its last messages (a server restarted
			// without them): go on with what comes next.
			next = info.State.LastSeq + 1
			h.forgetAll()
		}
		if err == nil {
			cons, err = h.openConsumer(ctx, next)
		}
		if err == nil {
			// The consumer is on the stream seen above unless that one
			// was replaced meanwhile.
			if info, err = h.streamInfo(ctx); err == nil && !info.Created.Equal(created) {
				err = errors.New("stream replaced")
			}
			if err != nil {
				h.dropConsumer(cons)
				cons = nil
			}
		}
		cancel()
		if err != nil && h.unanswered(err) {
			h.down.MarkDown()
		}
	}
}

// streamInfo returns the stream's info, creating the stream if it is gone.
func (h *History) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	s, err := h.js.Stream(ctx, h.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return h.ensureStream(ctx)
	}
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}

// read delivers cons's messages in order until an error or a gap, and
// returns the stream sequence to resume from and whether it delivered.
func (h *History) read(cons jetstream.Consumer, next uint64) (uint64, bool) {
	it, err := cons.Messages(jetstream.PullExpiry(10*time.Second), jetstream.PullHeartbeat(2*time.Second),
		jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		return next, false
	}
	h.life.Lock()
	if h.closed {
		h.life.Unlock()
		it.Stop()
		return next, false
	}
	h.iter = it
	h.life.Unlock()
	// After a reconnection, start again where it stopped: what the server
	// sent meanwhile is lost, and a restarted server may have lost the
	// consumer.
	reconnected, done := h.ps.nc.StatusChanged(nats.CONNECTED), make(chan struct{})
	go func() {
		select {
		case <-reconnected:
			it.Stop()
		case <-done:
		}
	}()
	defer func() {
		close(done)
		h.ps.nc.RemoveStatusListener(reconnected)
		it.Stop()
		h.life.Lock()
		h.iter = nil
		h.life.Unlock()
	}()
	var dseq uint64
	for {
		m, err := it.Next()
		if err != nil {
			return next, dseq > 0
		}
		md, err := m.Metadata()
		if err != nil || md.Sequence.Consumer != dseq+1 {
			return next, dseq > 0
		}
		dseq = md.Sequence.Consumer
		next = md.Sequence.Stream + 1
		h.deliver(m, md)
	}
}

// dropConsumer deletes a consumer this node no longer reads (the server
// would after its InactiveThreshold).
func (h *History) dropConsumer(cons jetstream.Consumer) {
	if h.down.Down() || !h.ps.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.Timeout)
	defer cancel()
	_ = h.js.DeleteConsumer(ctx, h.cfg.Stream, cons.CachedInfo().Name)
}

// probe is one check, while the History is down, that NATS answers again:
// a JetStream account info request.
func (h *History) probe(ctx context.Context) error {
	if !h.ps.nc.IsConnected() {
		return errDisconnected
	}
	_, err := h.js.AccountInfo(ctx)
	return err
}

// begin starts a call: it fails at once when ctx has ended, when the
// History is down or NATS disconnected; else it returns ctx bounded by
// Timeout.
func (h *History) begin(ctx context.Context, op string) (context.Context, context.CancelFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("natspubsub: history %s: %w", op, err)
	}
	if h.down.Down() {
		return nil, nil, fmt.Errorf("natspubsub: history %s: %w: %w", op, phx.ErrHistoryUnavailable, errDown)
	}
	if !h.ps.nc.IsConnected() {
		return nil, nil, fmt.Errorf("natspubsub: history %s: %w: %w", op, phx.ErrHistoryUnavailable, errDisconnected)
	}
	cctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	return cctx, cancel, nil
}

// unanswered reports whether err means that NATS did not answer.
func (h *History) unanswered(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrReconnectBufExceeded) || !h.ps.nc.IsConnected()
}

// fail wraps the error of a call made with ctx: ctx's error when ctx
// ended, else phx.ErrHistoryUnavailable, and marks the History down when
// NATS did not answer.
func (h *History) fail(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("natspubsub: history %s: %w", op, ctx.Err())
	}
	if h.unanswered(err) {
		h.down.MarkDown()
	}
	return fmt.Errorf("natspubsub: history %s: %w: %w", op, phx.ErrHistoryUnavailable, err)
}

// Close stops this node's consumer and probe. It does not close the
// PubSub.
func (h *History) Close() error {
	h.life.Lock()
	if h.closed {
		h.life.Unlock()
		return nil
	}
	h.closed = true
	close(h.stop)
	h.cancel()
	if h.iter != nil {
		h.iter.Stop()
	}
	h.life.Unlock()
	h.down.Close()
	h.wg.Wait()
	_ = h.inboxSub.Unsubscribe()
	return nil
}

// Subject returns the stream subject carrying topic.
func (h *History) Subject(topic string) string { return subject(h.cfg.Prefix, topic) }

func newEpoch() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
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
	cctx, cancel, err := h.begin(ctx, "append")
	if err != nil {
		return phx.Position{}, err
	}
	defer cancel()
	opts = defaults(opts)
	subj := h.Subject(topic)
	for attempt := 0; ; attempt++ {
		h.mu.Lock()
		cur, ok := h.last[topic]
		h.mu.Unlock()
		if !ok {
			var err error
			if cur, _, err = h.newest(cctx, topic); err != nil {
				if h.streamGone(err) && attempt < 2 {
					if err = h.recreate(cctx); err == nil {
						continue
					}
				}
				return phx.Position{}, h.fail(ctx, "append", err)
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
		ack, err := h.js.PublishMsg(cctx, msg, jetstream.WithExpectStream(h.cfg.Stream),
			jetstream.WithExpectLastSequencePerSubject(cur.seq), noRetry)
		if err == nil {
			next := lastMsg{seq: ack.Sequence, epoch: cur.epoch, offset: cur.offset + 1}
			h.remember(topic, next)
			if next.offset > uint64(opts.MaxMessages) && next.offset%16 == 0 {
				// Reclaim what the route's bound no longer keeps.
				if err := h.stream.Purge(cctx, jetstream.WithPurgeSubject(subj), jetstream.WithPurgeKeep(uint64(opts.MaxMessages))); err != nil && ctx.Err() == nil && h.unanswered(err) {
					h.down.MarkDown()
				}
			}
			return phx.Position{Epoch: next.epoch, Offset: next.offset}, nil
		}
		h.forget(topic)
		switch {
		case wrongLast(err) && attempt < 100:
			continue
		case h.streamGone(err) && attempt < 2 && cctx.Err() == nil:
			// The stream is gone: recreate it; the topic starts a new epoch.
			if err = h.recreate(cctx); err == nil {
				continue
			}
		}
		return phx.Position{}, h.fail(ctx, "append", err)
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

func (h *History) forgetAll() {
	h.mu.Lock()
	clear(h.last)
	h.mu.Unlock()
}

// Read implements [phx.HistoryStore].
func (h *History) Read(ctx context.Context, topic string, after uint64, max int) (phx.HistoryPage, error) {
	cctx, cancel, err := h.begin(ctx, "read")
	if err != nil {
		return phx.HistoryPage{}, err
	}
	defer cancel()
	page, err := h.read1(cctx, ctx, topic, after, max)
	if err != nil {
		return phx.HistoryPage{}, h.fail(ctx, "read", err)
	}
	return page, nil
}

// read1 is Read: ctx is the caller's bounded by Timeout, batches use
// the caller's own and wait up to Timeout for each message.
func (h *History) read1(ctx, batchCtx context.Context, topic string, after uint64, max int) (phx.HistoryPage, error) {
	subj := h.Subject(topic)
	cur, last, err := h.newest(ctx, topic)
	if h.streamGone(err) { // deleted: recreate it, empty
		if err = h.recreate(ctx); err == nil {
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
		_, perr := h.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(h.cfg.Stream), jetstream.WithExpectLastSequencePerSubject(0), noRetry)
		if perr != nil && (!wrongLast(perr) || attempt >= 10) {
			err = perr
			break
		}
		cur, last, err = h.newest(ctx, topic)
	}
	if err != nil {
		return phx.HistoryPage{}, err
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
	// The first retained message: the first one stored since the cutoff,
	// or the one at offset lowest when that is later.
	first, err := h.firstSince(ctx, subj, cutoff)
	if err != nil {
		return phx.HistoryPage{}, err
	}
	if first == nil || first.Sequence > last.Sequence || offsetOf(first) > cur.offset {
		first = last // appended since newest; last is retained
	}
	if offsetOf(first) < lowest {
		if first, err = h.find(ctx, subj, lowest, first, last); err != nil {
			return phx.HistoryPage{}, err
		}
	}
	page.First = offsetOf(first)
	if max <= 0 || after >= cur.offset {
		return page, nil
	}
	m := first
	if after >= page.First {
		if m, err = h.find(ctx, subj, after+1, first, last); err != nil {
			return phx.HistoryPage{}, err
		}
	}
	seq := m.Sequence
	want := min(uint64(max), cur.offset-offsetOf(m)+1)
	page.Messages = make([]phx.HistoryMessage, 0, want)
	page.Messages = append(page.Messages, message(m))
	for uint64(len(page.Messages)) < want && seq < last.Sequence {
		batch, err := h.getBatch(batchCtx, subj, seq+1, int(want)-len(page.Messages))
		if err != nil {
			return phx.HistoryPage{}, err
		}
		for _, m := range batch {
			if m.Sequence > last.Sequence || m.Header.Get(hdrEpoch) != cur.epoch ||
				offsetOf(m) != page.Messages[len(page.Messages)-1].Offset+1 {
				return page, nil // the topic changed under the read: this much is consecutive
			}
			page.Messages = append(page.Messages, message(m))
			seq = m.Sequence
		}
		if len(batch) == 0 {
			break
		}
	}
	return page, nil
}

func message(m *jetstream.RawStreamMsg) phx.HistoryMessage {
	return phx.HistoryMessage{Offset: offsetOf(m), Event: m.Header.Get(hdrEvent), Payload: m.Data, Time: m.Time}
}

func offsetOf(m *jetstream.RawStreamMsg) uint64 {
	off, _ := strconv.ParseUint(m.Header.Get(hdrOffset), 10, 64)
	return off
}

// find returns the message of subj with offset target, or the first one
// above it, given lo and hi, messages of subj with offsets
// lo < target <= hi. Offsets being consecutive along the subject's
// messages, it guesses the stream sequence of target by interpolation
// between lo and hi (exact when the topic's messages are evenly spread
// over the stream), every other step halving the range instead, so that
// it takes at most about 2*log2(hi-lo) direct gets.
func (h *History) find(ctx context.Context, subj string, target uint64, lo, hi *jetstream.RawStreamMsg) (*jetstream.RawStreamMsg, error) {
	// The answer is the first message of subj in [from, to] with an
	// offset of at least target, hi when there is none.
	from, to := lo.Sequence+1, hi.Sequence-1
	for step := 0; from <= to && offsetOf(hi) != target; step++ {
		var g uint64
		if step%2 == 0 {
			span, offs := float64(hi.Sequence-lo.Sequence), float64(offsetOf(hi)-offsetOf(lo))
			g = lo.Sequence + uint64(float64(target-offsetOf(lo))*span/offs)
		} else {
			g = from + (to-from)/2
		}
		g = min(max(g, from), to)
		m, err := h.stream.GetMsg(ctx, g, jetstream.WithGetMsgSubject(subj))
		if err != nil {
			return nil, err
		}
		switch {
		case m.Sequence > to: // none in [g, to]
			to = g - 1
		case offsetOf(m) >= target: // none in [g, m)
			hi, to = m, g-1
		default:
			lo, from = m, m.Sequence+1
		}
	}
	return hi, nil
}

// firstSince returns the first message of subj stored at or after t, nil
// when there is none.
func (h *History) firstSince(ctx context.Context, subj string, t time.Time) (*jetstream.RawStreamMsg, error) {
	msgs, err := h.direct(ctx, directGetRequest{StartTime: &t, NextFor: subj, Batch: 1})
	if err != nil || len(msgs) == 0 {
		return nil, err
	}
	return msgs[0], nil
}

// directGetRequest is a batched direct get: up to Batch messages of
// NextFor from stream sequence Seq on, at most MaxBytes of them (the
// server stops after the message that reaches it), answered by as many
// messages and an end-of-batch status (204), all in one round trip.
type directGetRequest struct {
	Seq       uint64     `json:"seq,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"` // instead of Seq
	NextFor   string     `json:"next_by_subj"`
	Batch     int        `json:"batch"`
	MaxBytes  int        `json:"max_bytes,omitempty"`
}

// batchBytes bounds the bytes of one batched direct get, well below the
// pending limits of the subscription receiving it (64 MiB by default).
const batchBytes = 8 << 20

// getBatch returns up to n messages of subj from stream sequence seq on,
// oldest first, in one batched direct get (fewer past batchBytes). Each
// message must come within Timeout of the previous one, and within ctx.
func (h *History) getBatch(ctx context.Context, subj string, seq uint64, n int) ([]*jetstream.RawStreamMsg, error) {
	return h.direct(ctx, directGetRequest{Seq: seq, NextFor: subj, Batch: n, MaxBytes: batchBytes})
}

// direct makes a batched direct get. The answers come on the History's
// subscription to its inbox (batchReplies), on a token of their own.
func (h *History) direct(ctx context.Context, r directGetRequest) ([]*jetstream.RawStreamMsg, error) {
	req, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	w := &batchWait{ready: make(chan struct{}, 1)}
	token := strconv.FormatUint(h.batchSeq.Add(1), 36)
	h.batches.Store(token, w)
	defer h.batches.Delete(token)
	if err := h.ps.nc.PublishRequest("$JS.API.DIRECT.GET."+h.cfg.Stream, h.inbox+"."+token, req); err != nil {
		return nil, err
	}
	var timer *time.Timer
	msgs := make([]*jetstream.RawStreamMsg, 0, r.Batch)
	for {
		w.mu.Lock()
		got := w.msgs
		w.msgs = nil
		w.mu.Unlock()
		for _, m := range got {
			if len(m.Data) == 0 && m.Header.Get("Status") != "" {
				switch m.Header.Get("Status") {
				case "204", "404": // end of batch; nothing at or after seq
					return msgs, nil
				case "503":
					return nil, nats.ErrNoResponders
				default:
					return nil, fmt.Errorf("direct get: %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
				}
			}
			s, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("direct get: sequence %q: %w", m.Header.Get(jetstream.SequenceHeader), err)
			}
			t, err := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
			if err != nil {
				return nil, fmt.Errorf("direct get: time stamp: %w", err)
			}
			msgs = append(msgs, &jetstream.RawStreamMsg{Subject: m.Header.Get(jetstream.SubjectHeader), Sequence: s,
				Header: m.Header, Data: m.Data, Time: t})
		}
		if len(got) > 0 || timer == nil {
			// Each message within Timeout of the previous one.
			wait := h.cfg.Timeout
			if d, ok := ctx.Deadline(); ok {
				wait = min(wait, time.Until(d))
			}
			if timer == nil {
				timer = time.NewTimer(wait)
				defer timer.Stop()
			} else {
				timer.Reset(wait)
			}
		}
		select {
		case <-w.ready:
		case <-timer.C:
			return nil, fmt.Errorf("direct get: %w", context.DeadlineExceeded)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// batchWait collects the answers to one batched direct get.
type batchWait struct {
	mu    sync.Mutex
	msgs  []*nats.Msg
	ready chan struct{} // cap 1: msgs grew
}

// batchReply hands an answer to its batched direct get.
func (h *History) batchReply(m *nats.Msg) {
	v, ok := h.batches.Load(m.Subject[len(h.inbox)+1:])
	if !ok {
		return // late: the Read gave up
	}
	w := v.(*batchWait)
	w.mu.Lock()
	w.msgs = append(w.msgs, m)
	w.mu.Unlock()
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

// deliver hands one message of the stream to this node's subscribers but
// the one its origin excluded; markers are skipped.
func (h *History) deliver(m jetstream.Msg, md *jetstream.MsgMetadata) {
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
	h.mu.Lock()
	if cur, ok := h.last[topic]; ok && cur.seq < md.Sequence.Stream {
		h.last[topic] = lastMsg{seq: md.Sequence.Stream, epoch: hd.Get(hdrEpoch), offset: off}
	}
	h.mu.Unlock()
	b := phx.RecordedBroadcast(topic, phx.HistoryMessage{Offset: off, Event: hd.Get(hdrEvent), Payload: m.Data()})
	_ = h.ps.LocalBroadcast(b, from)
}
