package phx

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// HistoryPublisher is a [HistoryStore] that also carries the broadcasts it
// records to the subscribers of every node, so that recording and delivery
// are one step. A store shared by several nodes implements it to keep
// their deliveries in offset order: when two nodes record on one topic at
// once, every node still delivers offset 5 before 6, because the order in
// which the broker delivers is the order in which the store assigned the
// offsets (a Redis script doing the append and the PUBLISH together, a
// JetStream stream that is at once the history and the bus).
//
// When [Options.History] implements HistoryPublisher, a recorded broadcast
// is handed to AppendPublish instead of Append followed by the PubSub's
// Broadcast. Broadcasts that are not recorded still go through the
// PubSub.
type HistoryPublisher interface {
	HistoryStore
	// AppendPublish records b on b.Topic, as Append does with its event
	// and JSON payload, and delivers it to the topic's subscribers on
	// every node, this one included, except from (a subscriber of this
	// node; nil excludes nobody). Subscribers receive what
	// [RecordedBroadcast] builds from the recorded message, in offset order
	// on every node. Delivery may happen after AppendPublish returns. On
	// error nothing was recorded or delivered, with one exception a store
	// should document and keep rare: a call that gave up waiting for its
	// server (a timeout) cannot always know whether the server went on to
	// record it.
	AppendPublish(ctx context.Context, b *Broadcast, from Subscriber, opts HistoryOptions) (Position, error)
}

// RecordedBroadcast returns the broadcast the library delivers for a
// message recorded on topic: m.Event with m.Payload plus the phx_offset
// field, marked with m.Offset so that a channel whose join replay already
// sent that offset does not send it again. A [HistoryPublisher] delivers
// what it receives from its broker with it. m.Payload must be a JSON
// object; it is not modified.
func RecordedBroadcast(topic string, m HistoryMessage) *Broadcast {
	p := withField(m.Payload, offsetField, strconv.AppendUint(nil, m.Offset, 10))
	return &Broadcast{Topic: topic, Event: m.Event, Payload: Payload{Data: p}, offset: m.Offset}
}

// Offset returns the broadcast's offset in its topic's history, 0 when it
// was not recorded (or was received from a PubSub that does not carry
// offsets).
func (b *Broadcast) Offset() uint64 { return b.offset }

// appendPublish hands a recorded broadcast to a HistoryPublisher, with the
// Broadcast telemetry event publish would send.
func (s *Server) appendPublish(ctx context.Context, hp HistoryPublisher, b *Broadcast, from Subscriber, h *HistoryOptions) (Position, error) {
	start := time.Now()
	pos, err := hp.AppendPublish(ctx, b, from, *h)
	if err != nil {
		err = fmt.Errorf("phx: broadcast on %q not recorded, not sent: %w", b.Topic, err)
	}
	if t := s.opts.Telemetry; t != nil && t.Broadcast != nil {
		t.broadcast(s, BroadcastSent{Topic: b.Topic, Event: b.Event, Subscribers: -1,
			Duration: time.Since(start), Err: err})
	}
	return pos, err
}
