package phxtest

import (
	"bytes"
	"encoding/json"

	"github.com/phxgo/phx"
)

// watch records every broadcast published on topic from now until the test
// ends, for AwaitBroadcast: a subscriber of the test's own on the server's
// PubSub, as ChannelTest's subscribe_and_join subscribes the test process.
// Joining a topic twice watches it once.
func (s *Socket) watch(topic string) {
	s.mu.Lock()
	if s.watched == nil {
		s.watched = map[string]bool{}
	}
	if s.watched[topic] {
		s.mu.Unlock()
		return
	}
	s.watched[topic] = true
	s.mu.Unlock()
	sub := phx.NewSubscriber(s.record)
	ps := s.srv.PubSub()
	if err := ps.Subscribe(topic, sub); err != nil {
		s.t.Fatalf("phxtest: watch broadcasts on %s: %v", topic, err)
	}
	s.t.Cleanup(func() { _ = ps.Unsubscribe(topic, sub) })
}

// record queues a published broadcast for the Await methods. It runs on
// the publisher's goroutine and does not block.
func (s *Socket) record(b *phx.Broadcast) {
	m := Message{Topic: b.Topic, Event: b.Event, published: true}
	if b.Payload.Binary {
		m.Binary = append([]byte{}, b.Payload.Data...)
	} else {
		m.Payload = json.RawMessage(append([]byte{}, b.Payload.Data...))
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	s.cond.Broadcast()
	s.mu.Unlock()
}

// consumeEcho removes the client's copy of a published broadcast that
// AwaitBroadcast consumed: a broadcast the channel does not intercept also
// reaches the client as a frame, which would otherwise linger for
// RefuteMessage or AwaitBroadcast to trip on. If the frame has not arrived
// yet, the read loop drops it when it does. An intercepted event reaches
// the client, if at all, as a push, which is never dropped.
func (s *Socket) consumeEcho(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range s.msgs {
		if isEcho(c, m) {
			s.msgs = append(s.msgs[:i:i], s.msgs[i+1:]...)
			return
		}
	}
	s.echoes = append(s.echoes, m)
}

// dropEcho reports whether c is the client's copy of a consumed broadcast,
// forgetting that broadcast if so. s.mu is held.
func (s *Socket) dropEcho(c Message) bool {
	for i, m := range s.echoes {
		if isEcho(c, m) {
			s.echoes = append(s.echoes[:i:i], s.echoes[i+1:]...)
			return true
		}
	}
	return false
}

func isEcho(c, published Message) bool {
	return !c.published && c.IsBroadcast() && c.Topic == published.Topic && c.Event == published.Event &&
		bytes.Equal(c.Payload, published.Payload) && bytes.Equal(c.Binary, published.Binary)
}
