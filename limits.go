package phx

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
)

// protocolErrorWindow is the period MaxProtocolErrors counts over.
const protocolErrorWindow = 5 * time.Second

// rateLimitedWindow is the period MaxRateLimited counts over.
const rateLimitedWindow = 10 * time.Second

// InboundLimit is a rate limit on the messages clients push to channels
// whose topic matches Topic: all their events, or only Event. Set them in
// [Options.InboundLimits]. A limit applies to each joined channel on its
// own: with {Topic: "room:*", Event: "cursor", Rate: 30}, a client may send
// 30 cursor moves a second to every room it has joined. It comes on top of
// [Options.MaxInboundRate], which bounds the connection as a whole.
//
// A message over a limit is refused as one over MaxInboundRate is: the
// client gets the error reply {"reason":"rate limited"} and the channel
// never sees the message. Unlike those, refusals by an InboundLimit never
// close the connection: the messages were within MaxInboundRate, so
// refusing them costs no more than handling them would. Joins, leaves and
// heartbeats are not subject to InboundLimits. When several limits match a
// message, each one counts it, and it is handled only if all of them have
// room.
type InboundLimit struct {
	// Topic is a topic pattern, as for [Server.Channel]: an exact topic
	// ("room:lobby") or a prefix ending in '*' ("room:*"). "" and "*"
	// match every topic.
	Topic string
	// Event is the event the limit counts; "" counts every event pushed
	// to the channel.
	Event string
	// Rate is how many messages per second are allowed on average. It must
	// be positive.
	Rate float64
	// Burst is how many may arrive at once. Default: Rate rounded up, at
	// least 1.
	Burst int
}

// compileInboundLimits validates limits and returns a copy with the
// default bursts filled in. It panics on an invalid limit, as NewServer
// does on other invalid options.
func compileInboundLimits(limits []InboundLimit) ([]InboundLimit, error) {
	if len(limits) == 0 {
		return nil, nil
	}
	out := make([]InboundLimit, len(limits))
	for i, l := range limits {
		if star := strings.IndexByte(l.Topic, '*'); star >= 0 && star != len(l.Topic)-1 {
			return nil, fmt.Errorf("%w: InboundLimits[%d]: invalid topic pattern %q: '*' is only allowed at the end", ErrInvalidOptions, i, l.Topic)
		}
		if !(l.Rate > 0) || math.IsInf(l.Rate, 1) {
			return nil, fmt.Errorf("%w: InboundLimits[%d]: Rate must be positive and finite, got %v", ErrInvalidOptions, i, l.Rate)
		}
		if l.Burst < 0 {
			return nil, fmt.Errorf("%w: InboundLimits[%d]: negative Burst %d", ErrInvalidOptions, i, l.Burst)
		}
		if l.Burst == 0 {
			l.Burst = int(math.Max(1, math.Min(math.Ceil(l.Rate), 1<<30)))
		}
		out[i] = l
	}
	return out, nil
}

// topicMatches reports whether topic matches an InboundLimit's pattern.
func topicMatches(pattern, topic string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(topic, prefix)
	}
	return pattern == "" || pattern == topic
}

// limitBuckets returns a bucket for each of limits that applies to topic,
// nil when none does. A channel gets them when it is joined.
func limitBuckets(limits []InboundLimit, topic string) []limitBucket {
	var out []limitBucket
	for i := range limits {
		if topicMatches(limits[i].Topic, topic) {
			out = append(out, limitBucket{limit: &limits[i]})
		}
	}
	return out
}

// bucket is a token bucket: it holds up to burst tokens and gains rate
// tokens a second; a message takes one. It starts full.
type bucket struct {
	tokens float64
	last   time.Time
}

// refill adds the tokens earned since the last call.
func (b *bucket) refill(now time.Time, rate float64, burst int) {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens = math.Min(b.tokens+d.Seconds()*rate, float64(burst))
	}
	b.last = now
}

// limitBucket is one InboundLimit's bucket for one channel.
type limitBucket struct {
	limit *InboundLimit
	bucket
}

// windowCount counts events in fixed windows: a window opens with the
// first event after the previous one has passed.
type windowCount struct {
	n     int
	since time.Time
}

// add counts one event and returns the count in the current window.
func (w *windowCount) add(now time.Time, window time.Duration) int {
	if w.since.IsZero() || now.Sub(w.since) > window {
		w.n, w.since = 0, now
	}
	w.n++
	return w.n
}

// inboundLimits is a connection's token bucket for incoming messages, the
// count of messages it refused, its protocol-error counter, and the
// buckets of its channels' InboundLimits. Frames are handled one at a
// time, but the lock keeps it safe whatever a transport does.
type inboundLimits struct {
	mu      sync.Mutex
	conn    bucket
	limited windowCount
	errors  windowCount
}

// allow takes one token from the connection's bucket; false when it is
// empty. rate < 0 allows everything.
func (l *inboundLimits) allow(now time.Time, rate float64, burst int) bool {
	if rate < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conn.refill(now, rate, burst)
	if l.conn.tokens < 1 {
		return false
	}
	l.conn.tokens--
	return true
}

// allowEvent takes a token from every bucket of bs that counts event;
// false, taking none, when one of them is empty.
func (l *inboundLimits) allowEvent(bs []limitBucket, event string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ok := true
	for i := range bs {
		b := &bs[i]
		if b.limit.Event != "" && b.limit.Event != event {
			continue
		}
		b.refill(now, b.limit.Rate, b.limit.Burst)
		if b.tokens < 1 {
			ok = false
		}
	}
	if !ok {
		return false
	}
	for i := range bs {
		if b := &bs[i]; b.limit.Event == "" || b.limit.Event == event {
			b.tokens--
		}
	}
	return true
}

// rateLimited records a message over the connection's rate and returns
// the count in the current window.
func (l *inboundLimits) rateLimited(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limited.add(now, rateLimitedWindow)
}

// protocolError records an error and returns the count in the current
// window.
func (l *inboundLimits) protocolError(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errors.add(now, protocolErrorWindow)
}
