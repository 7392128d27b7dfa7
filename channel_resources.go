package phx

import (
	"sync"
	"time"
)

// What a channel can own besides its topic: subscriptions to other topics
// and timers, both delivering to HandleInfo and both ended with the
// channel, as a Phoenix channel process's subscriptions and send_after
// timers die with it.

// resources are a channel's extra subscriptions and pending timers.
type resources struct {
	mu     sync.Mutex
	ended  bool
	subs   map[string]Subscriber
	timers map[*time.Timer]struct{}
}

// Subscribe subscribes the channel to another topic for the rest of its
// life, as Endpoint.subscribe in a Phoenix channel's join: every broadcast
// on topic reaches the channel's [InfoHandler] as a *[Broadcast] (shared:
// treat it as read-only). It does not reach the client unless HandleInfo
// pushes it. The subscription ends with the channel, or with Unsubscribe;
// subscribing to a topic already subscribed does nothing. It returns
// [ErrChannelClosed] once the channel has ended, or the PubSub's error.
func (s *Socket) Subscribe(topic string) error {
	ch := s.ch
	r := ch.resources()
	if r == nil {
		return ErrChannelClosed
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return ErrChannelClosed
	}
	if _, ok := r.subs[topic]; ok {
		return nil
	}
	sub := NewSubscriber(func(b *Broadcast) { ch.post(mailItem{kind: itemInfo, info: b}) })
	if err := ch.conn.srv.pubsub.Subscribe(topic, sub); err != nil {
		return err
	}
	if r.subs == nil {
		r.subs = make(map[string]Subscriber)
	}
	r.subs[topic] = sub
	return nil
}

// Unsubscribe ends a subscription made with Subscribe; it does nothing for
// a topic not subscribed that way (the channel's own topic included).
func (s *Socket) Unsubscribe(topic string) error {
	r := s.ch.resources()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	sub, ok := r.subs[topic]
	delete(r.subs, topic)
	r.mu.Unlock()
	if !ok {
		return nil
	}
	return s.ch.conn.srv.pubsub.Unsubscribe(topic, sub)
}

// SendAfter delivers msg to the channel's [InfoHandler] after d, as
// Process.send_after: a tick, a reminder, a timeout of the app's own. stop
// cancels it and reports whether it did so before the delivery. Pending
// timers are cancelled when the channel ends; a channel that has ended
// gets none.
func (s *Socket) SendAfter(d time.Duration, msg any) (stop func() bool) {
	ch := s.ch
	r := ch.resources()
	if r == nil {
		return func() bool { return false }
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return func() bool { return false }
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		r.mu.Lock()
		_, pending := r.timers[t]
		delete(r.timers, t)
		r.mu.Unlock()
		if pending {
			ch.post(mailItem{kind: itemInfo, info: msg})
		}
	})
	if r.timers == nil {
		r.timers = make(map[*time.Timer]struct{})
	}
	r.timers[t] = struct{}{}
	return func() bool {
		r.mu.Lock()
		_, pending := r.timers[t]
		delete(r.timers, t)
		r.mu.Unlock()
		t.Stop()
		return pending
	}
}

// resources returns the channel's resources, made on first use with a
// cleanup that releases them when the channel ends; nil if it has ended.
func (ch *channel) resources() *resources {
	ch.mu.Lock()
	r, made := ch.res, false
	if r == nil {
		r, made = &resources{}, true
		ch.res = r
	}
	ch.mu.Unlock()
	if made && !ch.onEnd(func() { r.release(ch) }) {
		r.release(ch) // the channel ended meanwhile
		return nil
	}
	return r
}

// release unsubscribes and stops everything, once.
func (r *resources) release(ch *channel) {
	r.mu.Lock()
	r.ended = true
	subs, timers := r.subs, r.timers
	r.subs, r.timers = nil, nil
	r.mu.Unlock()
	for topic, sub := range subs {
		_ = ch.conn.srv.pubsub.Unsubscribe(topic, sub)
	}
	for t := range timers {
		t.Stop()
	}
}
