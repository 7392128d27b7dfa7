package phx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// channel is the runtime of one joined topic on one connection.
type channel struct {
	conn    *conn
	topic   string
	joinRef Ref
	impl    Channel
	sock    *Socket
	log     *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	joined    atomic.Bool // Join accepted; pushes go straight out
	answered  atomic.Bool // the join reply (or the timeout reply) was sent
	ended     atomic.Bool // finished; sends fail
	intercept map[string]bool

	joinPushes []Payload // pushes made during Join, with events below
	joinEvents []string

	curRef Ref // ref of the event HandleIn is handling

	mu       sync.Mutex
	cleanups []func() // run once when the channel ends (presence untrack)
	items    []mailItem
	spare    []mailItem // the drained batch's array, reused for items
	closed   bool       // mailbox closed: nothing more accepted
	// running: a goroutine owns the channel (Join, draining the mailbox,
	// or finishing). When it is false the channel is idle and has no
	// goroutine; post and requestStop start one. It stays true once the
	// channel has ended, so that nothing starts again.
	running  bool
	stopErr  error
	stopping chan struct{} // closed on stop request
	stopOnce sync.Once
}

type itemKind uint8

const (
	itemIn itemKind = iota
	itemLeave
	itemOut
	itemInfo
)

type mailItem struct {
	kind    itemKind
	ref     Ref
	event   string
	payload Payload
	info    any
}

func newChannel(c *conn, topic string, joinRef Ref, impl Channel) *channel {
	ctx, cancel := context.WithCancel(c.ctx)
	ch := &channel{
		conn:     c,
		topic:    topic,
		joinRef:  joinRef,
		impl:     impl,
		ctx:      ctx,
		cancel:   cancel,
		log:      c.log.With("topic", topic),
		stopping: make(chan struct{}),
		running:  true, // run's goroutine, started by the connection
	}
	ch.sock = &Socket{ch: ch, Assigns: c.assigns.clone()}
	return ch
}

// post queues an item for the channel's goroutine, starting one if the
// channel is idle; false once the channel has ended. Overflow stops the
// channel.
func (ch *channel) post(it mailItem) bool {
	ch.mu.Lock()
	if ch.closed {
		ch.mu.Unlock()
		return false
	}
	if len(ch.items) >= ch.conn.srv.opts.MaxChannelQueue {
		ch.mu.Unlock()
		ch.log.Warn("phx: channel queue overflow", "max", ch.conn.srv.opts.MaxChannelQueue)
		ch.requestStop(ErrChannelOverloaded)
		return false
	}
	ch.items = append(ch.items, it)
	start := !ch.running
	ch.running = true
	ch.mu.Unlock()
	if start {
		go ch.drain()
	}
	return true
}

// requestStop asks the goroutine to finish with err (the first request
// wins), starting one if the channel is idle.
func (ch *channel) requestStop(err error) {
	ch.stopOnce.Do(func() {
		ch.mu.Lock()
		ch.stopErr = err
		close(ch.stopping)
		start := !ch.running
		ch.running = true
		ch.mu.Unlock()
		if start {
			go ch.drain()
		}
	})
}

// Deliver implements Subscriber: fastlane for plain broadcasts, the mailbox
// for intercepted ones.
func (ch *channel) Deliver(b *Broadcast) {
	if ch.intercept[b.Event] {
		ch.post(mailItem{kind: itemOut, event: b.Event, payload: b.Payload})
		return
	}
	f, err := b.frame(ch.conn.codec)
	if err != nil {
		ch.log.Debug("phx: broadcast not sent to this client", "event", b.Event, "err", err)
		return
	}
	ch.conn.enqueue(f)
}

func (ch *channel) pushPayload(event string, p Payload) error {
	if ch.ended.Load() {
		return ErrChannelClosed
	}
	if !ch.joined.Load() {
		ch.mu.Lock()
		if !ch.joined.Load() { // still joining: send after the join reply
			ch.joinEvents = append(ch.joinEvents, event)
			ch.joinPushes = append(ch.joinPushes, p)
			ch.mu.Unlock()
			return nil
		}
		ch.mu.Unlock()
	}
	return ch.conn.push(ch.joinRef, ch.topic, event, p)
}

// run is the channel's first goroutine: Join, then the mailbox until it is
// empty. The channel then has no goroutine until post or requestStop starts
// one with drain: an idle channel costs no goroutine stack, and its hooks
// still run one at a time, never on the connection's goroutine.
func (ch *channel) run(joinMsgRef Ref, payload Payload) {
	if !ch.join(joinMsgRef, payload) {
		ch.release()
		return
	}
	ch.drain()
}

// release marks the channel's end for its connection (teardown waits for
// every channel's release) and cancels its context.
func (ch *channel) release() {
	ch.cancel()
	ch.conn.chWG.Done()
}

// join runs Join and answers the client. It reports whether the channel
// joined and goes on; false means it has ended (refused, crashed, timed out
// or stopped during Join) and everything owed to the client was sent.
func (ch *channel) join(joinMsgRef Ref, payload Payload) bool {
	c := ch.conn

	if d := c.srv.opts.JoinTimeout; d > 0 {
		t := time.AfterFunc(d, func() { ch.joinTimedOut(joinMsgRef) })
		defer t.Stop()
	}
	reply, err, crashed := ch.callJoin(payload)
	if !ch.answered.CompareAndSwap(false, true) {
		// Too late: the client was told "join timeout" and may have
		// rejoined. Discard the result.
		ch.ended.Store(true)
		ch.closeMailbox()
		if err == nil && crashed == nil {
			if t, ok := ch.impl.(Terminator); ok {
				ch.safeTerminate(t, ErrJoinTimeout)
			}
		}
		return false
	}
	if err != nil || crashed != nil {
		ch.ended.Store(true)
		ch.closeMailbox()
		c.unregister(ch)
		resp := replyJoinCrashed
		var re *ReplyError
		switch {
		case crashed != nil:
			ch.log.Error("phx: Join panicked", "panic", crashed.Value, "stack", string(crashed.Stack))
		case errors.As(err, &re):
			ch.log.Debug("phx: join refused", "reply", re.Response)
			if p, perr := toPayload(re.Response); perr == nil {
				_ = c.reply(ch.joinRef, joinMsgRef, ch.topic, re.status(), p)
				return false
			} else {
				ch.log.Error("phx: invalid join error payload", "err", perr)
			}
			resp = reasonPayload("join refused")
		default:
			ch.log.Info("phx: join refused", "err", err)
			resp = reasonPayload("join refused")
		}
		_ = c.reply(ch.joinRef, joinMsgRef, ch.topic, "error", resp)
		return false
	}
	select {
	case <-ch.stopping: // replaced by a duplicate join, or the connection closed, during Join
		ch.finish(ch.stopReason())
		return false
	default:
	}
	replyPayload, perr := toPayload(reply)
	if perr != nil {
		ch.log.Error("phx: invalid Join reply payload; replying {}", "err", perr)
		replyPayload = emptyPayload
	}
	if oh, ok := ch.impl.(OutHandler); ok {
		if evs := ch.safeIntercept(oh); len(evs) > 0 {
			ch.intercept = make(map[string]bool, len(evs))
			for _, e := range evs {
				ch.intercept[e] = true
			}
		}
	}
	if err := c.srv.pubsub.Subscribe(ch.topic, ch); err != nil {
		ch.log.Error("phx: subscribe failed", "err", err)
		ch.ended.Store(true)
		ch.closeMailbox()
		c.unregister(ch)
		_ = c.reply(ch.joinRef, joinMsgRef, ch.topic, "error", replyInternalError)
		return false
	}
	_ = c.reply(ch.joinRef, joinMsgRef, ch.topic, "ok", replyPayload)
	ch.mu.Lock()
	events, pushes := ch.joinEvents, ch.joinPushes
	ch.joinEvents, ch.joinPushes = nil, nil
	ch.joined.Store(true)
	ch.mu.Unlock()
	for i := range pushes {
		_ = c.push(ch.joinRef, ch.topic, events[i], pushes[i])
	}
	ch.log.Debug("phx: joined")
	return true
}

// joinTimedOut answers a join whose Join is still running after
// JoinTimeout, and drops the channel from its connection.
func (ch *channel) joinTimedOut(joinMsgRef Ref) {
	if !ch.answered.CompareAndSwap(false, true) {
		return
	}
	c := ch.conn
	c.srv.metrics.joinsTimedOut.Add(1)
	ch.log.Warn("phx: Join still running after JoinTimeout; join refused", "timeout", c.srv.opts.JoinTimeout)
	c.unregister(ch)
	_ = c.reply(ch.joinRef, joinMsgRef, ch.topic, "error", replyJoinTimeout)
	ch.requestStop(ErrJoinTimeout)
}

// drain handles mailbox items, in order, until the mailbox is empty (the
// goroutine then ends, leaving the channel idle) or the channel must end
// (it then finishes and is released). Only one goroutine drains a channel
// at a time: running is set by whoever starts it.
func (ch *channel) drain() {
	for {
		ch.mu.Lock()
		select {
		case <-ch.stopping:
			ch.mu.Unlock()
			ch.end(ch.stopReason())
			return
		default:
		}
		if len(ch.items) == 0 {
			ch.running = false
			ch.mu.Unlock()
			return
		}
		batch := ch.items
		ch.items, ch.spare = ch.spare[:0], nil
		ch.mu.Unlock()
		for i := range batch {
			select {
			case <-ch.stopping:
				ch.end(ch.stopReason())
				return
			default:
			}
			if r := ch.handle(&batch[i]); r != nil {
				ch.end(r)
				return
			}
		}
		clear(batch)
		ch.mu.Lock()
		if cap(batch) <= maxSpareMailbox {
			ch.spare = batch[:0]
		}
		ch.mu.Unlock()
	}
}

// maxSpareMailbox bounds the mailbox array an idle channel keeps for reuse.
const maxSpareMailbox = 64

// end finishes the channel and releases it.
func (ch *channel) end(reason error) {
	ch.finish(reason)
	ch.release()
}

func (ch *channel) stopReason() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.stopErr
}

// handle runs the hook for one item; a non-nil result ends the channel.
func (ch *channel) handle(it *mailItem) (end error) {
	defer func() {
		if v := recover(); v != nil {
			pe := &PanicError{Value: v, Stack: debug.Stack()}
			ch.log.Error("phx: channel panicked", "panic", v, "stack", string(pe.Stack))
			end = pe
		}
	}()
	c := ch.conn
	switch it.kind {
	case itemLeave:
		_ = c.reply(ch.joinRef, it.ref, ch.topic, "ok", emptyPayload)
		return ErrLeft
	case itemIn:
		h, ok := ch.impl.(InHandler)
		if !ok {
			ch.log.Info("phx: channel has no HandleIn; event dropped", "event", it.event)
			_ = c.reply(ch.joinRef, it.ref, ch.topic, "error", reasonPayload("unhandled event"))
			return nil
		}
		ch.curRef = it.ref
		reply, err := h.HandleIn(ch.sock, it.event, it.payload)
		ch.curRef = nil
		ch.sendHandleInReply(it, reply, err)
	case itemOut:
		if h, ok := ch.impl.(OutHandler); ok {
			h.HandleOut(ch.sock, it.event, it.payload)
		}
	case itemInfo:
		if h, ok := ch.impl.(InfoHandler); ok {
			h.HandleInfo(ch.sock, it.info)
		} else {
			ch.log.Warn("phx: Send to a channel without HandleInfo; message dropped", "type", fmt.Sprintf("%T", it.info))
		}
	}
	return nil
}

func (ch *channel) sendHandleInReply(it *mailItem, reply any, err error) {
	c := ch.conn
	var re *ReplyError
	switch {
	case err == nil:
		p, perr := toPayload(reply)
		if perr != nil {
			ch.log.Error("phx: invalid HandleIn reply", "event", it.event, "err", perr)
			_ = c.reply(ch.joinRef, it.ref, ch.topic, "error", replyInternalError)
			return
		}
		_ = c.reply(ch.joinRef, it.ref, ch.topic, "ok", p)
	case errors.Is(err, NoReply):
	case errors.As(err, &re):
		p, perr := toPayload(re.Response)
		if perr != nil {
			ch.log.Error("phx: invalid HandleIn error reply", "event", it.event, "err", perr)
			p = replyInternalError
		}
		_ = c.reply(ch.joinRef, it.ref, ch.topic, re.status(), p)
	default:
		ch.log.Error("phx: HandleIn failed", "event", it.event, "err", err)
		_ = c.reply(ch.joinRef, it.ref, ch.topic, "error", replyInternalError)
	}
}

// finish ends the channel: tell the client, unsubscribe, run Terminate.
func (ch *channel) finish(reason error) {
	c := ch.conn
	_ = c.srv.pubsub.Unsubscribe(ch.topic, ch)
	c.unregister(ch)
	closeMsg := errors.Is(reason, ErrLeft) || errors.Is(reason, ErrStopped)
	crashed := !closeMsg && !errors.Is(reason, ErrClosed) && !errors.Is(reason, ErrServerClosed) &&
		!errors.Is(reason, ErrDuplicateJoin)
	switch {
	case closeMsg:
		_ = c.lifecycle(ch.joinRef, ch.topic, eventClose, emptyPayload)
	case crashed:
		_ = c.lifecycle(ch.joinRef, ch.topic, eventError, replyChannelCrash)
	}
	ch.ended.Store(true)
	ch.closeMailbox()
	if t, ok := ch.impl.(Terminator); ok {
		ch.safeTerminate(t, reason)
	}
	ch.log.Debug("phx: channel ended", "reason", reason)
}

// closeMailbox stops accepting items and runs the cleanups registered with
// onEnd.
func (ch *channel) closeMailbox() {
	ch.mu.Lock()
	ch.closed = true
	ch.items = nil
	cleanups := ch.cleanups
	ch.cleanups = nil
	ch.mu.Unlock()
	for _, f := range cleanups {
		f()
	}
}

// onEnd registers f to run when the channel ends, whatever the reason; it
// reports false (and does not register) if the channel has already ended.
func (ch *channel) onEnd(f func()) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		return false
	}
	ch.cleanups = append(ch.cleanups, f)
	return true
}

func (ch *channel) callJoin(payload Payload) (reply any, err error, crashed *PanicError) {
	defer func() {
		if v := recover(); v != nil {
			crashed = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	reply, err = ch.impl.Join(ch.sock, payload)
	return reply, err, nil
}

func (ch *channel) safeIntercept(oh OutHandler) (evs []string) {
	defer func() {
		if v := recover(); v != nil {
			ch.log.Error("phx: Intercept panicked", "panic", v, "stack", string(debug.Stack()))
			evs = nil
		}
	}()
	return oh.Intercept()
}

func (ch *channel) safeTerminate(t Terminator, reason error) {
	defer func() {
		if v := recover(); v != nil {
			ch.log.Error("phx: Terminate panicked", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	t.Terminate(ch.sock, reason)
}
