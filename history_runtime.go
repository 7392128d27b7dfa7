package phx

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"time"
)

// The names the library uses in payloads for history and recovery.
const (
	// offsetField is added to every recorded broadcast's payload object.
	offsetField = "phx_offset"
	// positionField is read from join params and added to join replies.
	positionField = "phx_position"
)

// RouteOption configures a route registered with [Server.Channel].
type RouteOption func(*route)

// WithHistory records the broadcasts on the route's topics made with
// [Server.Broadcast], [Server.BroadcastContext], [Socket.Broadcast] and
// [Socket.BroadcastFrom] in the server's [HistoryStore], bounded by o, and
// lets joining clients recover what they missed. See the package
// documentation's "History and recovery" section for what the client sees.
func WithHistory(o HistoryOptions) RouteOption {
	o = o.withDefaults()
	return func(r *route) { r.history = &o }
}

// BroadcastOptions tunes one [Server.BroadcastWith] call.
type BroadcastOptions struct {
	// History, when set, records the broadcast with these bounds, whether
	// or not the topic's route has history.
	History *HistoryOptions
	// NoHistory skips recording on a route with history: the message is
	// delivered at most once and carries no phx_offset.
	NoHistory bool
}

// BroadcastWith is [Server.BroadcastContext] with per-call options. It
// returns the message's position when it was recorded, the zero Position
// otherwise. A recorded broadcast is appended to the [HistoryStore] before
// it is published; when the store fails, nothing is published and the
// error (wrapping the store's) is returned, so that every message clients
// receive on a topic with history has its offset. Binary payloads are
// never recorded.
func (s *Server) BroadcastWith(ctx context.Context, topic, event string, payload any, o BroadcastOptions) (Position, error) {
	b, err := NewBroadcast(topic, event, payload)
	if err != nil {
		return Position{}, err
	}
	h := o.History
	if h == nil && !o.NoHistory {
		h = s.routes.lookup(topic).history
	} else if h != nil {
		d := h.withDefaults()
		h = &d
	}
	return s.publishRecorded(ctx, b, nil, h)
}

// History returns the server's history store ([Options.History]).
func (s *Server) History() HistoryStore { return s.history }

// topicLock returns the lock serializing topic's recorded publishes on
// this node, so that offsets reach subscribers in order.
func (s *Server) topicLock(topic string) *sync.Mutex {
	return &s.topicLocks[maphash.String(s.lockSeed, topic)%uint64(len(s.topicLocks))]
}

// publishRecorded appends b to the history (when h is set and b is JSON)
// and publishes it, both under the topic's lock.
func (s *Server) publishRecorded(ctx context.Context, b *Broadcast, from Subscriber, h *HistoryOptions) (Position, error) {
	if h == nil || b.Payload.Binary || !h.records(b.Event) {
		return Position{}, s.publish(ctx, b, from, false)
	}
	mu := s.topicLock(b.Topic)
	mu.Lock()
	defer mu.Unlock()
	if hp, ok := s.history.(HistoryPublisher); ok { // a shared store delivers itself (history_shared.go)
		return s.appendPublish(ctx, hp, b, from, h)
	}
	pos, err := s.history.Append(ctx, b.Topic, HistoryMessage{Event: b.Event, Payload: bytes.Clone(b.Payload.Data)}, *h)
	if err != nil {
		return Position{}, fmt.Errorf("phx: broadcast on %q not recorded, not sent: %w", b.Topic, err)
	}
	b.offset = pos.Offset
	b.Payload = Payload{Data: withField(b.Payload.Data, offsetField, strconv.AppendUint(nil, pos.Offset, 10))}
	return pos, s.publish(ctx, b, from, false)
}

// withField returns a copy of the JSON object obj with "name":value added
// last (so it wins over a field of the same name in JavaScript).
func withField(obj []byte, name string, value []byte) []byte {
	obj = bytes.TrimRight(obj, " \t\r\n")
	if len(obj) == 0 {
		obj = []byte("{}")
	}
	body := bytes.TrimSpace(obj[1 : len(obj)-1])
	out := make([]byte, 0, len(obj)+len(name)+len(value)+4)
	out = append(out, obj[:len(obj)-1]...)
	if len(body) > 0 {
		out = append(out, ',')
	}
	out = append(out, '"')
	out = append(out, name...)
	out = append(out, '"', ':')
	out = append(out, value...)
	return append(out, '}')
}

// recovery is what a join on a topic with history adds to the join reply
// and sends after it.
type recovery struct {
	fields []byte           // "k":v,… added to the join reply; nil for none
	msgs   []HistoryMessage // to replay, in order
	last   uint64           // the topic's top when read: held broadcasts at or below were replayed or predate the client
}

// parsePosition reads phx_position from join params: given reports the
// key was there (and not null), ok that it holds a valid position.
func parsePosition(join Payload) (pos Position, given, ok bool) {
	var params struct {
		P json.RawMessage `json:"phx_position"`
	}
	if join.Binary || json.Unmarshal(join.Data, &params) != nil {
		return Position{}, false, false
	}
	if len(params.P) == 0 || string(params.P) == "null" {
		return Position{}, false, false
	}
	var raw struct {
		Epoch  json.RawMessage `json:"epoch"`
		Offset json.RawMessage `json:"offset"`
	}
	if json.Unmarshal(params.P, &raw) != nil {
		return Position{}, true, false
	}
	if len(raw.Epoch) > 0 && string(raw.Epoch) != "null" {
		if json.Unmarshal(raw.Epoch, &pos.Epoch) != nil || len(pos.Epoch) > 64 {
			return Position{}, true, false
		}
	}
	// A JSON integer only: no sign, fraction, exponent or string.
	off, err := strconv.ParseUint(string(raw.Offset), 10, 64)
	if err != nil {
		return Position{}, true, false
	}
	pos.Offset = off
	if pos.Epoch == "" && off != 0 {
		return Position{}, true, false
	}
	return pos, true, true
}

// recoverHistory reads the topic's history for a joining client: what to
// replay and what to add to the join reply. A client without phx_position
// gets the current position only; one with the empty epoch and offset 0
// (a first join) gets the newest retained messages, up to MaxReplay.
func (ch *channel) recoverHistory(join Payload) recovery {
	o := ch.history
	if o == nil {
		return recovery{}
	}
	srv := ch.conn.srv
	want, given, valid := parsePosition(join)
	ctx, cancel := ch.readContext(srv.opts.JoinTimeout)
	defer cancel()
	page, err := srv.history.Read(ctx, ch.topic, 0, 0)
	if err != nil {
		ch.logger().Warn("phx: history read failed; join answered recovered: false", "err", err)
		if given {
			return recovery{fields: []byte(`"recovered":false,"replayed":0`)}
		}
		return recovery{}
	}
	rec := recovery{last: page.Top}
	recovered := false
	switch {
	case !given || !valid:
	case want.Epoch == "": // a first join: the newest retained messages
		after := page.First - 1
		if page.Top-after > uint64(o.MaxReplay) {
			after = page.Top - uint64(o.MaxReplay)
		}
		rec.msgs, recovered = ch.readRange(ctx, after, page.Top)
		recovered = recovered && after == 0
	case want.Epoch != page.Epoch, want.Offset > page.Top, want.Offset+1 < page.First,
		page.Top-want.Offset > uint64(o.MaxReplay):
	default:
		rec.msgs, recovered = ch.readRange(ctx, want.Offset, page.Top)
	}
	if !recovered && want.Epoch != "" {
		rec.msgs = nil // an incomplete replay would leave a silent gap
	}
	pos, _ := json.Marshal(Position{Epoch: page.Epoch, Offset: page.Top})
	var f []byte
	if given {
		f = fmt.Appendf(f, `"recovered":%t,"replayed":%d,`, recovered, len(rec.msgs))
	}
	rec.fields = fmt.Appendf(f, `%q:%s`, positionField, pos)
	return rec
}

// readRange reads the messages after `after` up to top and reports whether
// they are all there, consecutive.
func (ch *channel) readRange(ctx context.Context, after, top uint64) ([]HistoryMessage, bool) {
	if after >= top {
		return nil, true
	}
	n := int(top - after)
	page, err := ch.conn.srv.history.Read(ctx, ch.topic, after, n)
	if err != nil {
		ch.logger().Warn("phx: history read failed; join answered recovered: false", "err", err)
		return nil, false
	}
	msgs := page.Messages
	if len(msgs) > n {
		msgs = msgs[:n]
	}
	for i := range msgs {
		if msgs[i].Offset != after+uint64(i)+1 {
			return msgs[:i], false
		}
	}
	return msgs, len(msgs) == n
}

// mergeFields adds the JSON members in fields ("k":v,…) to the reply
// object p; a binary reply is returned as is.
func mergeFields(p Payload, fields []byte) Payload {
	if p.Binary {
		return p
	}
	obj := bytes.TrimRight(p.Data, " \t\r\n")
	if len(obj) == 0 {
		obj = []byte("{}")
	}
	body := bytes.TrimSpace(obj[1 : len(obj)-1])
	out := make([]byte, 0, len(obj)+len(fields)+1)
	out = append(out, obj[:len(obj)-1]...)
	if len(body) > 0 {
		out = append(out, ',')
	}
	out = append(out, fields...)
	return Payload{Data: append(out, '}')}
}

// replay sends the recovered messages after the join reply, in order, as
// they were broadcast: intercepted events go through HandleOut right here
// (this is the channel's goroutine), its pushes sent at once. It paces
// itself so the connection's outbound queue stays under half full. A
// HandleOut panic stops the channel once joined.
func (ch *channel) replay(rec recovery) {
	c := ch.conn
	for _, m := range rec.msgs {
		if !ch.waitQueue() {
			return
		}
		p := Payload{Data: withField(m.Payload, offsetField, strconv.AppendUint(nil, m.Offset, 10))}
		if ch.intercept[m.Event] {
			b := &Broadcast{Topic: ch.topic, Event: m.Event, Payload: p, offset: m.Offset}
			ch.sendDirect.Store(true)
			err := ch.handle(&mailItem{kind: itemOut, event: m.Event, payload: p, info: b})
			ch.sendDirect.Store(false)
			if err != nil {
				ch.requestStop(err)
				return
			}
			continue
		}
		if c.push(ch.joinRef, ch.topic, m.Event, p) != nil {
			return
		}
	}
}

// waitQueue waits until the connection's outbound queue is at most half
// full; false when the channel's context ends first.
func (ch *channel) waitQueue() bool {
	q := &ch.conn.out
	for {
		n, b := q.load()
		if (q.maxMessages <= 0 || n <= q.maxMessages/2) && (q.maxBytes <= 0 || b <= q.maxBytes/2) {
			return true
		}
		select {
		case <-ch.ctx.Done():
			return false
		case <-time.After(time.Millisecond):
		}
	}
}
