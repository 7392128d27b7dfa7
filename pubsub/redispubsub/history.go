package redispubsub

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/pubsub/internal/downgate"
	"github.com/phxgo/phx/pubsub/internal/pending"
	"github.com/redis/go-redis/v9"
)

// HistoryConfig configures a [History]. The zero value is usable.
type HistoryConfig struct {
	// Prefix starts the keys and the Pub/Sub channels of the history:
	// "<Prefix>:{<topic>}:m" (a hash: epoch, top offset, bounds),
	// "<Prefix>:{<topic>}:s" (the stream of retained messages) and the
	// channel "<Prefix>:<topic>". Nodes of one cluster must use the same,
	// and it must differ from the PubSub's Prefix. Default "phxh".
	Prefix string
	// Timeout bounds each Append, AppendPublish and Read (the caller's
	// context still applies when it ends sooner). Default 500 ms; a
	// healthy Redis answers in well under a millisecond.
	//
	// A call that fails because Redis does not answer (the timeout, a
	// lost connection; not an error Redis replies with) marks the history
	// down: from then on every call fails at once, without touching the
	// network, with an error wrapping [phx.ErrHistoryUnavailable], until a
	// PING sent every 100 ms by one background goroutine is answered; so
	// do calls while the PubSub knows its connection is lost. The
	// library records a topic's broadcasts one at a time, so with Redis
	// frozen one sender waits up to Timeout and the others are told at
	// once that their broadcast was not sent. An append that reaches Redis
	// more than Timeout + 1 s after it was sent (by Redis's clock: keep
	// the nodes' clocks in sync) changes nothing, so a broadcast reported
	// as failed because Redis was frozen is not recorded or delivered when
	// Redis resumes. What remains is the rare reply lost after Redis ran
	// the append (the connection cut at that instant): the caller gets an
	// error for a broadcast that was recorded.
	Timeout time.Duration
}

// History is a [phx.HistoryStore] on Redis, shared by every node using
// the same Redis and Prefix, and a [phx.HistoryPublisher]: it delivers
// the broadcasts it records itself, so that every node sees a topic's
// recorded broadcasts in offset order. Create it with [NewHistory] over a
// [PubSub] and pass both to the server:
//
//	ps, _ := redispubsub.Dial(url, nil)
//	h, _ := redispubsub.NewHistory(ps, nil)
//	srv := phx.NewServer(&phx.Options{PubSub: ps, History: h})
//
// One Lua script, run atomically by Redis, takes the topic's next offset,
// XADDs the message to the topic's stream with the offset as its ID,
// trims the stream to the route's bounds and PUBLISHes the message; each
// node receives the published messages on a connection of its own
// (PSUBSCRIBE "<Prefix>:*") and delivers them to its subscribers, its
// own included. Redis runs scripts one at a time and delivers published
// messages in the order they were published, so every node delivers a
// topic's offsets in order, whichever nodes recorded them.
//
// The epoch is 12 random bytes drawn when the topic's hash is created.
// It changes when the history is lost: the keys deleted, expired (both
// expire MaxAge after the last append, when nothing is retained anyway)
// or flushed, or Redis restarted without persistence. With persistence
// (AOF) a restart keeps epochs and offsets.
//
// Redis does not keep what it publishes while a subscriber's connection
// is down, so a node reads back from the streams what its subscription
// missed: when a topic's next message skips offsets, and, for every topic
// with local subscribers, when go-redis has re-subscribed after a lost
// connection. Its subscribers then get the missed messages first, in
// order, each once (at most 1000 per topic at a time; clients that missed
// more recover when they rejoin). A message read back this way also
// reaches the subscriber a BroadcastFrom excluded.
//
// Limits: every node receives every recorded broadcast, whether or not it
// has subscribers for the topic. Redis Cluster works for the keys (the
// topic is their hash tag) and PUBLISH reaches every node of the cluster.
type History struct {
	ps     *PubSub
	client redis.UniversalClient
	prefix string
	sub    *redis.PubSub
	node   string

	seq     atomic.Uint64
	pending pending.Froms // origin token -> excluded subscriber

	timeout time.Duration
	down    *downgate.Gate // Redis did not answer: calls fail at once until a PING is answered

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

var (
	_ phx.HistoryStore     = (*History)(nil)
	_ phx.HistoryPublisher = (*History)(nil)
)

// NewHistory returns a History that runs its commands with ps's client and
// delivers to ps's local subscribers. It subscribes now and fails if
// Redis does not confirm within ps's SubscribeTimeout. cfg may be nil.
func NewHistory(ps *PubSub, cfg *HistoryConfig) (*History, error) {
	var c HistoryConfig
	if cfg != nil {
		c = *cfg
	}
	if c.Prefix == "" {
		c.Prefix = "phxh"
	}
	if c.Timeout <= 0 {
		c.Timeout = 500 * time.Millisecond
	}
	if c.Prefix == ps.o.Prefix {
		return nil, errors.New("redispubsub: the history's Prefix must differ from the PubSub's")
	}
	h := &History{ps: ps, client: ps.client, prefix: c.Prefix, node: ps.o.NodeID,
		timeout: c.Timeout, done: make(chan struct{})}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.down = downgate.New(func(ctx context.Context) error { return h.client.Ping(ctx).Err() }, c.Timeout,
		func() { ps.r.Logger().Info("phx pubsub: history store answering again") })
	ctx, cancel := context.WithTimeout(h.ctx, ps.o.SubscribeTimeout)
	defer cancel()
	h.sub = h.client.PSubscribe(h.ctx, h.prefix+":*")
	if _, err := h.sub.Receive(ctx); err != nil { // the subscription's confirmation
		h.sub.Close()
		h.cancel()
		return nil, fmt.Errorf("redispubsub: history subscription: %w", err)
	}
	go h.receive()
	return h, nil
}

// Close stops the history's subscription. It does not close the PubSub.
func (h *History) Close() error {
	h.cancel()
	err := h.sub.Close()
	<-h.done
	h.down.Close()
	return err
}

func (h *History) metaKey(topic string) string   { return h.prefix + ":{" + topic + "}:m" }
func (h *History) streamKey(topic string) string { return h.prefix + ":{" + topic + "}:s" }
func (h *History) channel(topic string) string   { return h.prefix + ":" + topic }

// Keys returns the Redis keys holding topic's history (the hash, then the
// stream), for operators and tests.
func (h *History) Keys(topic string) [2]string {
	return [2]string{h.metaKey(topic), h.streamKey(topic)}
}

// luaCommon loads the topic's hash (creating it, or starting a new epoch
// when the stream is gone while offsets were given out), and defines the
// age trim. KEYS[1] is the hash, KEYS[2] the stream, ARGV[1] a fresh epoch.
const luaCommon = luaNow + luaLoad

// luaNow sets now, Redis's clock in milliseconds.
const luaNow = `
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
`

// luaLoad is luaCommon after the clock.
const luaLoad = `
local m = redis.call('HMGET', KEYS[1], 'e', 't', 'a')
local epoch, top, age = m[1], tonumber(m[2]), tonumber(m[3])
local function reset()
  epoch, top = ARGV[1], 0
  if not age then age = 3600000 end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 't', 0, 'a', age)
  redis.call('PEXPIRE', KEYS[1], age + 1000)
end
if not epoch or not top then reset()
elseif top > 0 and redis.call('EXISTS', KEYS[2]) == 0 then reset() end
local function etime(e) return tonumber(e[2][6]) end
local function eoff(e) return tonumber(string.match(e[1], '^(%d+)')) end
-- drops the entries older than maxAge (offsets are consecutive, so a
-- binary search over XRANGE id id finds the first one to keep)
local function trimAge(maxAge)
  local cutoff = now - maxAge
  local f = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if #f == 0 or etime(f[1]) >= cutoff then return end
  local lo, hi = eoff(f[1]) + 1, top + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local e = redis.call('XRANGE', KEYS[2], mid .. '-0', mid .. '-0')
    if #e > 0 and etime(e[1]) >= cutoff then hi = mid else lo = mid + 1 end
  end
  redis.call('XTRIM', KEYS[2], 'MINID', lo .. '-0')
end
`

// appendScript: ARGV[2] event, [3] payload, [4] max messages, [5] max age
// in ms, [6] channel or "" not to publish, [7] the published message's
// head, [8] the call's deadline in Unix ms (plus the clock slack). Returns
// {epoch, offset}, or the error PHXLATE, having changed nothing, when it
// runs after the deadline: a call that gave up on a frozen Redis must not
// be recorded when Redis resumes.
var appendScript = redis.NewScript(luaNow + `
if now > tonumber(ARGV[8]) then return redis.error_reply('PHXLATE') end
` + luaLoad + `
top = top + 1
age = tonumber(ARGV[5])
redis.call('XADD', KEYS[2], 'MAXLEN', '=', ARGV[4], top .. '-0', 'e', ARGV[2], 'p', ARGV[3], 't', now)
redis.call('HSET', KEYS[1], 't', top, 'a', age)
trimAge(age)
redis.call('PEXPIRE', KEYS[1], age + 1000)
redis.call('PEXPIRE', KEYS[2], age + 1000)
if ARGV[6] ~= '' then
  redis.call('PUBLISH', ARGV[6], ARGV[7] .. epoch .. '\n' .. top .. '\n' .. ARGV[3])
end
return {epoch, top}
`)

// readScript: ARGV[2] after, [3] max. Returns {epoch, top, first, entries}.
var readScript = redis.NewScript(luaCommon + `
trimAge(age)
local f = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first = top + 1
if #f > 0 then first = eoff(f[1]) end
local after, max = tonumber(ARGV[2]), tonumber(ARGV[3])
local msgs = {}
if max > 0 and after < top then
  local from = math.max(after + 1, first)
  msgs = redis.call('XRANGE', KEYS[2], from .. '-0', '+', 'COUNT', max)
end
return {epoch, top, first, msgs}
`)

func newEpoch() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// fail wraps a Redis error: ctx's error when ctx ended, else
// phx.ErrHistoryUnavailable.
func fail(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("redispubsub: history %s: %w", op, ctx.Err())
	}
	return fmt.Errorf("redispubsub: history %s: %w: %w", op, phx.ErrHistoryUnavailable, err)
}

// errHistoryDown is the cause given while the history is marked down or
// the PubSub knows its connection is lost.
var errHistoryDown = errors.New("no answer from Redis recently; waiting for it to answer a PING")

// run runs script within the history's Timeout, failing at once while
// the history is down, and marks it down when Redis does not answer.
func (h *History) run(ctx context.Context, op string, script *redis.Script, keys []string, args ...any) ([]any, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redispubsub: history %s: %w", op, err)
	}
	if h.down.Down() || !h.ps.r.Connected() {
		return nil, fmt.Errorf("redispubsub: history %s: %w: %w", op, phx.ErrHistoryUnavailable, errHistoryDown)
	}
	cctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	res, err := script.Run(cctx, h.client, keys, args...).Slice()
	if err == nil {
		return res, nil
	}
	var replied redis.Error
	if ctx.Err() == nil && !errors.As(err, &replied) {
		h.markDown(err)
	}
	return nil, fail(ctx, op, err)
}

// markDown makes calls fail at once until Redis answers a PING.
func (h *History) markDown(cause error) {
	if h.down.MarkDown() {
		h.ps.r.Logger().Warn("phx pubsub: history store not answering; recorded broadcasts fail until it does", "err", cause)
	}
}

// Append implements [phx.HistoryStore]: it records m without delivering it.
func (h *History) Append(ctx context.Context, topic string, m phx.HistoryMessage, opts phx.HistoryOptions) (phx.Position, error) {
	return h.append(ctx, topic, m, opts, "", "")
}

// AppendPublish implements [phx.HistoryPublisher]: one script records b
// and PUBLISHes it on the history's channel for topic.
func (h *History) AppendPublish(ctx context.Context, b *phx.Broadcast, from phx.Subscriber, opts phx.HistoryOptions) (phx.Position, error) {
	token := strconv.FormatUint(h.seq.Add(1), 36)
	if from != nil {
		h.pending.Expect(token, from)
	}
	origin := h.node + "/" + token
	head := make([]byte, 0, 16+len(b.Topic)+len(b.Event)+len(origin))
	head = append(head, envelopeVersion)
	for _, f := range []string{b.Topic, b.Event, origin} {
		head = binary.AppendUvarint(head, uint64(len(f)))
		head = append(head, f...)
	}
	pos, err := h.append(ctx, b.Topic, phx.HistoryMessage{Event: b.Event, Payload: b.Payload.Data}, opts, h.channel(b.Topic), string(head))
	if err != nil && from != nil {
		h.pending.Take(token)
	}
	return pos, err
}

// envelopeVersion starts the messages History publishes: version, then
// uvarint-prefixed topic, event and origin ("<node>/<token>"), then the
// epoch, "\n", the offset in decimal, "\n", and the JSON payload.
const envelopeVersion = 1

func (h *History) append(ctx context.Context, topic string, m phx.HistoryMessage, opts phx.HistoryOptions, channel, head string) (phx.Position, error) {
	opts = defaults(opts)
	deadline := time.Now().Add(h.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	res, err := h.run(ctx, "append", appendScript, []string{h.metaKey(topic), h.streamKey(topic)},
		newEpoch(), m.Event, m.Payload, opts.MaxMessages, opts.MaxAge.Milliseconds(), channel, head,
		deadline.Add(clockSlack).UnixMilli())
	if err != nil {
		if strings.Contains(err.Error(), "PHXLATE") && ctx.Err() == nil {
			// Answered in time, yet late by Redis's clock: the clocks disagree.
			h.ps.r.Logger().Error("phx pubsub: Redis's clock is ahead of this node's by more than the history's Timeout + 1 s; recorded broadcasts fail until the clocks agree")
			err = fmt.Errorf("%w (Redis's clock is ahead of this node's)", err)
		}
		return phx.Position{}, err
	}
	if len(res) != 2 {
		return phx.Position{}, fail(ctx, "append", fmt.Errorf("unexpected script answer %v", res))
	}
	epoch, _ := res[0].(string)
	off, _ := res[1].(int64)
	return phx.Position{Epoch: epoch, Offset: uint64(off)}, nil
}

// clockSlack is how far Redis's clock may be ahead of a node's before
// appends are refused as late (see appendScript).
const clockSlack = time.Second

// defaults fills opts' zero bounds as phx does.
func defaults(o phx.HistoryOptions) phx.HistoryOptions {
	if o.MaxMessages <= 0 {
		o.MaxMessages = 1000
	}
	if o.MaxAge <= 0 {
		o.MaxAge = time.Hour
	}
	if o.MaxAge < time.Millisecond {
		o.MaxAge = time.Millisecond
	}
	return o
}

// Read implements [phx.HistoryStore].
func (h *History) Read(ctx context.Context, topic string, after uint64, max int) (phx.HistoryPage, error) {
	res, err := h.run(ctx, "read", readScript, []string{h.metaKey(topic), h.streamKey(topic)},
		newEpoch(), after, max)
	if err != nil {
		return phx.HistoryPage{}, err
	}
	if len(res) != 4 {
		return phx.HistoryPage{}, fail(ctx, "read", fmt.Errorf("unexpected script answer %v", res))
	}
	epoch, _ := res[0].(string)
	top, _ := res[1].(int64)
	first, _ := res[2].(int64)
	page := phx.HistoryPage{Epoch: epoch, Top: uint64(top), First: uint64(first)}
	entries, _ := res[3].([]any)
	for _, e := range entries {
		m, err := parseEntry(e)
		if err != nil {
			return phx.HistoryPage{}, fail(ctx, "read", err)
		}
		page.Messages = append(page.Messages, m)
	}
	return page, nil
}

// parseEntry decodes one XRANGE entry: {"<offset>-0", {"e", event, "p",
// payload, "t", ms}}.
func parseEntry(e any) (phx.HistoryMessage, error) {
	var m phx.HistoryMessage
	pair, _ := e.([]any)
	if len(pair) != 2 {
		return m, fmt.Errorf("malformed stream entry %v", e)
	}
	id, _ := pair[0].(string)
	fields, _ := pair[1].([]any)
	if len(fields) != 6 {
		return m, fmt.Errorf("malformed stream entry %q", id)
	}
	var off string
	for i := 0; i < len(id) && id[i] != '-'; i++ {
		off = id[:i+1]
	}
	o, err := strconv.ParseUint(off, 10, 64)
	if err != nil {
		return m, fmt.Errorf("malformed stream entry ID %q: %w", id, err)
	}
	ev, _ := fields[1].(string)
	p, _ := fields[3].(string)
	ms, _ := strconv.ParseInt(fmt.Sprint(fields[5]), 10, 64)
	return phx.HistoryMessage{Offset: o, Event: ev, Payload: []byte(p), Time: time.UnixMilli(ms)}, nil
}

// receive delivers the recorded broadcasts Redis sends to this node's
// subscribers, in the order Redis sends them. Redis does not keep what it
// publishes while a subscriber's connection is down, so the receiver
// reads what it missed from the streams: when a topic's next offset skips
// some, and for every topic with local subscribers when go-redis has
// re-subscribed after a lost connection.
func (h *History) receive() {
	defer close(h.done)
	r := &receiver{h: h, topics: make(map[string]*received), pending: make(map[string]time.Time)}
	msgs := h.sub.ChannelWithSubscriptions(redis.WithChannelSize(1024))
	var retry <-chan time.Time
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *redis.Message:
				r.deliver([]byte(m.Payload))
			case *redis.Subscription:
				if m.Kind == "psubscribe" { // re-subscribed: the connection was lost
					r.resubscribed()
				}
			}
		case <-retry:
			retry = nil
			r.retryPending()
		}
		if retry == nil && len(r.pending) > 0 {
			retry = time.After(100 * time.Millisecond)
		}
	}
}

// receiver is the state of History.receive's goroutine: where each topic's
// delivery on this node stands.
type receiver struct {
	h       *History
	topics  map[string]*received
	added   int                  // topics added since the last prune
	pending map[string]time.Time // topics whose read-back after a re-subscription failed, since when
}

// catchUpPatience is how long a node retries reading back what a lost
// subscription missed (the store may come back after the subscription:
// the PubSub's own connection is re-established separately).
const catchUpPatience = 30 * time.Second

// received is the last recorded broadcast of a topic delivered on this
// node.
type received struct {
	epoch  string
	offset uint64
}

// maxCatchUp bounds how many missed messages of one topic a node reads
// back and delivers at once; clients that missed more recover when they
// rejoin.
const maxCatchUp = 1000

// deliver decodes one published message and hands it to the local
// subscribers but the one its origin excluded, after the messages of its
// topic this node missed.
func (r *receiver) deliver(msg []byte) {
	h := r.h
	topic, event, origin, epoch, off, payload, ok := decodeRecorded(msg)
	if !ok {
		h.ps.r.Logger().Warn("phx pubsub: malformed history message dropped")
		return
	}
	var from phx.Subscriber
	if node, token, ok := cut(origin); ok && node == h.node {
		from = h.pending.Take(token)
	}
	pos := r.topics[topic]
	switch {
	case pos == nil:
		pos = &received{}
		r.topics[topic] = pos
		if r.added++; r.added > 4096 {
			r.prune()
		}
	case pos.epoch != epoch:
		// A new epoch: the history was lost; what came before is gone.
	case off <= pos.offset:
		return // delivered already, by a catch-up
	case off > pos.offset+1:
		r.catchUp(topic, pos, off-1)
	}
	pos.epoch, pos.offset = epoch, off
	_ = h.ps.LocalBroadcast(phx.RecordedBroadcast(topic, phx.HistoryMessage{Offset: off, Event: event, Payload: payload}), from)
}

// catchUp delivers topic's recorded broadcasts after pos up to upto (all
// of the newest, for upto 0) that this node did not receive, when the
// topic has local subscribers. It reports false when the store could not
// be read.
func (r *receiver) catchUp(topic string, pos *received, upto uint64) bool {
	h := r.h
	if h.ps.r.SubscriberCount(topic) == 0 {
		return true
	}
	want := maxCatchUp
	if upto > 0 && upto-pos.offset < uint64(want) {
		want = int(upto - pos.offset)
	}
	ctx, cancel := context.WithTimeout(h.ctx, 5*h.timeout)
	page, err := h.Read(ctx, topic, pos.offset, want)
	cancel()
	switch {
	case err != nil:
		if upto > 0 {
			h.ps.r.Logger().Warn("phx pubsub: recorded broadcasts missed on this node and not read back; its clients get them when they rejoin",
				"topic", topic, "after", pos.offset, "err", err)
		}
		return false
	case page.Epoch != pos.epoch:
		return true // the history was lost meanwhile: nothing to read back
	}
	n := 0
	for _, m := range page.Messages {
		if m.Offset <= pos.offset || upto > 0 && m.Offset > upto {
			continue
		}
		if m.Offset != pos.offset+1 {
			break // trimmed meanwhile: a gap the clients close by rejoining
		}
		_ = h.ps.LocalBroadcast(phx.RecordedBroadcast(topic, m), nil)
		pos.offset = m.Offset
		n++
	}
	if n > 0 {
		h.ps.r.Logger().Info("phx pubsub: recorded broadcasts missed on this node read back and delivered", "topic", topic, "count", n)
	}
	return true
}

// resubscribed reads back, for every topic with local subscribers, what
// was recorded while the subscription was down; topics whose read fails
// are retried (retryPending).
func (r *receiver) resubscribed() {
	r.prune()
	now := time.Now()
	for topic, pos := range r.topics {
		if !r.catchUp(topic, pos, 0) {
			if _, ok := r.pending[topic]; !ok {
				r.pending[topic] = now
			}
		}
	}
}

// retryPending retries the read-backs that failed after a re-subscription,
// for up to catchUpPatience.
func (r *receiver) retryPending() {
	for topic, since := range r.pending {
		pos := r.topics[topic]
		if pos == nil || r.catchUp(topic, pos, 0) {
			delete(r.pending, topic)
			continue
		}
		if time.Since(since) > catchUpPatience {
			r.h.ps.r.Logger().Warn("phx pubsub: recorded broadcasts missed on this node could not be read back; its clients get them when they rejoin",
				"topic", topic, "after", pos.offset)
			delete(r.pending, topic)
		}
	}
}

// prune forgets the topics without local subscribers.
func (r *receiver) prune() {
	r.added = 0
	for topic := range r.topics {
		if r.h.ps.r.SubscriberCount(topic) == 0 {
			delete(r.topics, topic)
			delete(r.pending, topic)
		}
	}
}

// decodeRecorded splits a message History published (see envelopeVersion).
func decodeRecorded(msg []byte) (topic, event, origin, epoch string, off uint64, payload []byte, ok bool) {
	if len(msg) == 0 || msg[0] != envelopeVersion {
		return
	}
	rest := msg[1:]
	var f [3]string
	for i := range f {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return
		}
		f[i] = string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
	}
	line := func() (string, bool) {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return "", false
		}
		l := string(rest[:i])
		rest = rest[i+1:]
		return l, true
	}
	e, ok1 := line()
	o, ok2 := line()
	n, err := strconv.ParseUint(o, 10, 64)
	if !ok1 || !ok2 || err != nil {
		return
	}
	return f[0], f[1], f[2], e, n, rest, true
}

// cut splits "<node>/<token>" at its last slash.
func cut(origin string) (node, token string, ok bool) {
	for i := len(origin) - 1; i >= 0; i-- {
		if origin[i] == '/' {
			return origin[:i], origin[i+1:], true
		}
	}
	return "", "", false
}
