package phx

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync"
)

// Socket is a channel's handle on its client, as the socket in Phoenix's
// channel callbacks: the topic, the connection's ID and assigns, and the
// ways to push, reply and broadcast. The methods that send (Push,
// Broadcast*, Send, Stop and ReplyRef.Reply) are safe to call from any
// goroutine; Assigns belongs to the channel's hooks (one at a time).
type Socket struct {
	ch *channel
	// Assigns starts as a copy of the connection's assigns; the channel may
	// change it freely.
	Assigns Assigns
}

// Topic returns the channel's topic, e.g. "room:42".
func (s *Socket) Topic() string { return s.ch.topic }

// JoinRef returns the ref of the join that created this channel.
func (s *Socket) JoinRef() string { return s.ch.joinRef.String() }

// ID returns the connection's socket ID ("" when anonymous).
func (s *Socket) ID() string { return s.ch.conn.id }

// Transport returns "websocket" or "longpoll".
func (s *Socket) Transport() string { return s.ch.conn.transport }

// Server returns the server the channel runs on.
func (s *Socket) Server() *Server { return s.ch.conn.srv }

// Context returns a context that ends when the channel ends.
func (s *Socket) Context() context.Context { return s.ch.ctx }

// Logger returns the server's logger with the channel's attributes.
func (s *Socket) Logger() *slog.Logger { return s.ch.logger() }

// Push sends event with payload to this client only. payload is a value
// that encodes to a JSON object (a map, a struct, json.RawMessage), nil for
// {}, or [Binary] for a binary frame (V2 WebSocket clients only).
func (s *Socket) Push(event string, payload any) error {
	p, err := toPayload(payload)
	if err != nil {
		return err
	}
	return s.ch.pushPayload(event, p)
}

// Broadcast sends event to every subscriber of the channel's topic on every
// node, this client included.
func (s *Socket) Broadcast(event string, payload any) error {
	return s.broadcast(event, payload, false, false)
}

// BroadcastFrom is Broadcast except to this channel's own client.
func (s *Socket) BroadcastFrom(event string, payload any) error {
	return s.broadcast(event, payload, true, false)
}

// LocalBroadcast is Broadcast restricted to subscribers on this node.
func (s *Socket) LocalBroadcast(event string, payload any) error {
	return s.broadcast(event, payload, false, true)
}

// LocalBroadcastFrom is LocalBroadcast except to this channel's own client.
func (s *Socket) LocalBroadcastFrom(event string, payload any) error {
	return s.broadcast(event, payload, true, true)
}

func (s *Socket) broadcast(event string, payload any, excludeSelf, local bool) error {
	b, err := NewBroadcast(s.ch.topic, event, payload)
	if err != nil {
		return err
	}
	var from Subscriber
	if excludeSelf {
		from = s.ch
	}
	if local {
		return s.ch.conn.srv.publish(s.ch.ctx, b, from, true)
	}
	_, err = s.ch.conn.srv.publishRecorded(s.ch.ctx, b, from, s.ch.history)
	return err
}

// Send queues msg for the channel's [InfoHandler], after the events already
// queued. It returns [ErrChannelClosed] once the channel has ended.
func (s *Socket) Send(msg any) error {
	if !s.ch.post(mailItem{kind: itemInfo, info: msg}) {
		return ErrChannelClosed
	}
	return nil
}

// Stop ends the channel once the current hook returns. With a nil err the
// client gets phx_close and does not rejoin (Terminate's reason is
// [ErrStopped]); with an error it gets phx_error and rejoins (the reason is
// err). A reply returned by the current HandleIn is sent first.
func (s *Socket) Stop(err error) {
	if err == nil {
		err = ErrStopped
	}
	s.ch.requestStop(err)
}

// ReplyRef returns a handle for replying later to the event HandleIn is
// handling; return [NoReply] from HandleIn and call [ReplyRef.Reply] from
// any goroutine. Outside HandleIn it returns a zero ReplyRef, whose Reply
// fails.
func (s *Socket) ReplyRef() ReplyRef {
	return ReplyRef{ch: s.ch, ref: s.ch.curRef}
}

// ReplyRef identifies a client push awaiting a reply, as Phoenix's
// socket_ref. It is a small value, safe to copy and to use from any
// goroutine.
type ReplyRef struct {
	ch  *channel
	ref Ref
}

// Reply sends a reply with status ("ok", "error" or any other string) and
// response (as for Socket.Push) to the push. It may be called more than once.
func (r ReplyRef) Reply(status string, response any) error {
	if r.ch == nil || r.ref.IsNull() {
		return errors.New("phx: ReplyRef used outside HandleIn")
	}
	p, err := toPayload(response)
	if err != nil {
		return err
	}
	if r.ch.hasEnded() {
		return ErrChannelClosed
	}
	return r.ch.conn.reply(r.ch.joinRef, r.ref, r.ch.topic, status, p)
}

// decodedPayload is one OutPayload decoding of a broadcast.
type decodedPayload struct {
	once sync.Once
	v    any
	err  error
}

// OutPayload returns the payload of the intercepted broadcast HandleOut is
// handling as a T, as Phoenix's handle_out gets the original term: a
// broadcast made on this node with a T returns that very value, and one
// that arrived as JSON (from another node, or of another type) is decoded
// once per broadcast and type, for every subscriber of this node. The value
// is shared by those subscribers: treat it as read-only. Called outside
// HandleOut it returns an error.
func OutPayload[T any](s *Socket) (T, error) {
	var zero T
	b := s.ch.curOut
	if b == nil {
		return zero, errors.New("phx: OutPayload called outside HandleOut")
	}
	if v, ok := b.value.(T); ok {
		return v, nil
	}
	key := reflect.TypeFor[T]()
	b.mu.Lock()
	if b.decoded == nil {
		b.decoded = make(map[reflect.Type]*decodedPayload, 1)
	}
	d := b.decoded[key]
	if d == nil {
		d = &decodedPayload{}
		b.decoded[key] = d
	}
	b.mu.Unlock()
	// The first subscriber decodes; the others wait for it.
	d.once.Do(func() {
		var v T
		d.err = b.Payload.Decode(&v)
		d.v = v
	})
	if d.err != nil {
		return zero, d.err
	}
	return d.v.(T), nil
}
