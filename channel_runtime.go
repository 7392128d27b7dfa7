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

// channel is the runtime of one joined topic on one connection. Its life is
// a small state machine (a channelState in state). At most one goroutine
// works on a channel at a time: run's, or one started by post or
// requestStop when the channel is idle.
//
//	 handleJoin: go run
//	        |
//	        v
//	+--------------+  Subscribe failed, Join refused or panicked,
//	| joining      |  reply not an object (then Terminate):              |
//	| Subscribe,   |-------- phx_reply error ----------------------------+
//	| Join,        |  JoinTimeout passed first: the timer sends          |
//	| Intercept;   |  phx_reply error "join timeout"; when Join returns, |
//	| pushes and   |-------- Terminate(ErrJoinTimeout) if it accepted ---+
//	| broadcasts   |                                                     |
//	| held         |                                                     |
//	+--------------+                                                     |
//	   |       |  stopped during Join (no join reply):                   |
//	   |       +-------- endJoined(stop reason) ----------------------+  |
//	   |                                                              |  |
//	   | Join accepted: history read, phx_reply ok, replay, held      |  |
//	   | (stopping instead if a stop came in meanwhile)               |  |
//	   v                                                              |  |
//	+--------------+  mailbox empty  +------+                         |  |
//	| draining     |---------------->| idle |  no goroutine           |  |
//	| HandleIn,    |<----------------|      |                         |  |
//	| HandleOut,   |  post           +------+                         |  |
//	| HandleInfo   |                    |                             |  |
//	+--------------+                    | requestStop                 |  |
//	   |       |  requestStop           v                             |  |
//	   |       +--------------->+----------+                          |  |
//	   |                        | stopping |                          |  |
//	   |                        +----------+                          |  |
//	   |                             |  before the next item:         |  |
//	   |                             |  endJoined(stop reason)        |  |
//	   | phx_leave (phx_reply ok),   |                                |  |
//	   | a hook panicked:            |                                |  |
//	   | endJoined(reason)           |                                |  |
//	   v                             v                                v  v
//	+---------------------------------------------------------------------+
//	| ended: the mailbox is closed (queued items dropped), pushes and     |
//	| replies fail, onEnd cleanups run. Through endJoined, the channel    |
//	| unsubscribed and told the client (below) before; Terminate after.   |
//	| Last, release: the context is cancelled; teardown stops waiting.    |
//	+---------------------------------------------------------------------+
//
// What the client gets when a joined channel ends (endJoined):
//   - [ErrLeft] (phx_leave, after its phx_reply ok), [ErrStopped]
//     (Stop(nil)): phx_close; the client does not rejoin.
//   - [ErrClosed], [ErrServerClosed]: nothing, the connection is closing;
//     [ErrDuplicateJoin]: nothing from the channel, the connection sends the
//     old channel's phx_close itself.
//   - anything else (a panic, Stop(err), [ErrChannelOverloaded]):
//     phx_error; the client rejoins.
//
// While joining, a stop request (duplicate join, connection closing,
// Socket.Stop) waits for Join to return; items posted while joining are
// handled once joined. In stopping, the items still queued are dropped.
type channel struct {
	conn    *conn
	topic   string
	joinRef Ref // the join's join_ref, or its ref when it had none
	impl    Channel
	sock    *Socket
	log     atomic.Pointer[slog.Logger] // see logger
	route   string                      // the pattern the topic matched, for telemetry
	history *HistoryOptions             // the route's, nil when broadcasts are not recorded
	prev    *channel                    // the channel of the topic this one replaces; Join waits for it
	started time.Time                   // when the join arrived

	ctx    context.Context
	cancel context.CancelFunc
	// readCancel ends the join's history read (see readContext) along
	// with ctx.
	readCancel atomic.Pointer[context.CancelFunc]

	// state is a channelState: changed under mu only, read with or without
	// it (pushes and replies check it without locking).
	state atomic.Uint32
	// joinAnswered: the join's reply (ok, error or the timeout's) was sent
	// or is being sent; Join's result and the JoinTimeout timer race for it.
	joinAnswered atomic.Bool
	// replayedTo is the history offset up to which the join's recovery
	// covered the topic: a recorded broadcast at or below it was replayed
	// (or predates the client's position) and is not sent again, even when
	// its publisher hands it to the PubSub after the channel went live.
	replayedTo atomic.Uint64
	// sendDirect: the join reply is out and the replay is running, so
	// pushes (those of HandleOut for replayed messages) go out at once
	// instead of being held.
	sendDirect atomic.Bool
	// joinRefNull: the join had no join_ref (V1 clients); phx_close and
	// phx_error then carry a null ref, as Phoenix's. Next to sendDirect,
	// where it fits in padding: the channel stays in the 384-byte class.
	joinRefNull bool
	intercept   map[string]bool

	// limits are the buckets of the InboundLimits matching the topic, set
	// by handleJoin; the connection's reader checks them, under its
	// inboundLimits' lock.
	limits []limitBucket

	// held are the pushes made and the broadcasts delivered while joining,
	// in arrival order: the channel subscribes before Join runs, so nothing
	// published meanwhile is missed, and sends them once the join reply is
	// out (dropped if the join fails). Guarded by mu.
	held []heldOut

	curRef Ref // ref of the event HandleIn is handling

	mu       sync.Mutex
	cleanups []func()   // run once when the channel ends (presence untrack)
	res      *resources // Subscribe and SendAfter's, made on first use
	curOut   *Broadcast // the broadcast HandleOut is handling (channel goroutine only)
	items    []mailItem
	spare    []mailItem // the drained batch's array, reused for items
	stopErr  error      // the first stop request's reason
}

// channelState is where a channel is in its life; see [channel].
type channelState uint32

const (
	// stateJoining: run's goroutine is in Join. Pushes are held until the
	// join reply; posted items wait.
	stateJoining channelState = iota
	// stateDraining: joined, and a goroutine is handling the mailbox.
	stateDraining
	// stateIdle: joined, the mailbox is empty and no goroutine runs; post
	// and requestStop start one.
	stateIdle
	// stateStopping: joined and asked to stop; the goroutine ends the
	// channel before handling another item.
	stateStopping
	// stateEnded: the mailbox is closed and sends fail; Terminate runs
	// (if Join accepted), then the channel is released. Final: nothing
	// starts a goroutine again.
	stateEnded
)

// loadState returns the channel's state; with mu held it is stable.
func (ch *channel) loadState() channelState { return channelState(ch.state.Load()) }

// setState moves the channel to s; mu must be held.
func (ch *channel) setState(s channelState) { ch.state.Store(uint32(s)) }

// hasEnded reports whether the channel has ended: sends fail.
func (ch *channel) hasEnded() bool { return ch.loadState() == stateEnded }

type itemKind uint8

const (
	itemIn itemKind = iota
	itemLeave
	itemOut
	itemInfo
)

// heldOut is a push (b nil) or a broadcast held while joining. shared:
// the push's payload is shared (see pushShared).
type heldOut struct {
	event   string
	payload Payload
	b       *Broadcast
	shared  bool
}

type mailItem struct {
	kind    itemKind
	ref     Ref
	event   string
	payload Payload
	info    any
}

func newChannel(c *conn, topic string, joinRef Ref, impl Channel) *channel {
	// Not a child of c.ctx: the connection cancels its live channels
	// itself (conn.cancelChannels), sparing every connection's context a
	// map of children.
	ctx, cancel := context.WithCancel(context.WithoutCancel(c.ctx))
	ch := &channel{
		conn:    c,
		topic:   topic,
		joinRef: joinRef,
		impl:    impl,
		ctx:     ctx,
		cancel:  cancel,
		started: time.Now(),
	}
	// The zero state is stateJoining: run's goroutine, started by the
	// connection, owns the channel.
	ch.sock = &Socket{ch: ch, Assigns: c.assigns.assigns()}
	return ch
}

// post queues an item for the channel's goroutine, starting one if the
// channel is idle; false once the channel has ended. Overflow stops the
// channel.
func (ch *channel) post(it mailItem) bool {
	ch.mu.Lock()
	if ch.loadState() == stateEnded {
		ch.mu.Unlock()
		return false
	}
	if max := ch.conn.srv.opts.MaxChannelQueue; max > 0 && len(ch.items) >= max {
		ch.mu.Unlock()
		ch.logger().Warn("phx: channel queue overflow", "max", ch.conn.srv.opts.MaxChannelQueue)
		ch.requestStop(ErrChannelOverloaded)
		return false
	}
	ch.items = append(ch.items, it)
	start := ch.loadState() == stateIdle
	if start {
		ch.setState(stateDraining)
	}
	ch.mu.Unlock()
	if start {
		go ch.drain()
	}
	return true
}

// requestStop asks the channel to end with err, which is not nil (the
// first request wins), starting a goroutine if the channel is idle. While
// joining, the request waits for Join to return; once ended, it does
// nothing.
func (ch *channel) requestStop(err error) {
	ch.mu.Lock()
	if ch.stopErr != nil {
		ch.mu.Unlock()
		return
	}
	ch.stopErr = err
	st := ch.loadState()
	if st == stateDraining || st == stateIdle {
		ch.setState(stateStopping)
	}
	ch.mu.Unlock()
	if st == stateIdle {
		go ch.drain()
	}
}

// Deliver implements Subscriber: fastlane for plain broadcasts, the mailbox
// for intercepted ones. While joining, broadcasts are held until the join
// reply is out.
//
// replayedTo is checked after the channel is seen joined, not before: the
// join stores it before leaving stateJoining, so a broadcast that the
// join's replay sent is seen here as replayed. Checked first, a broadcast
// could read 0 there, then find the channel joined (its replay, which
// held it, sent meanwhile) and go out a second time.
func (ch *channel) Deliver(b *Broadcast) {
	if ch.loadState() == stateJoining && ch.hold(heldOut{event: b.Event, b: b}) {
		return // flushHeld drops it if the replay sent it
	}
	if b.offset != 0 && b.offset <= ch.replayedTo.Load() {
		return
	}
	ch.deliverNow(b)
}

// hold keeps h for after the join reply and reports true, or reports
// false when the channel has joined meanwhile (the caller sends h itself).
// A broadcast reaching an ended channel is dropped (true). More than
// MaxChannelQueue held broadcasts stop the channel with
// [ErrChannelOverloaded]: the client rejoins.
func (ch *channel) hold(h heldOut) bool {
	ch.mu.Lock()
	switch ch.loadState() {
	case stateJoining:
	case stateEnded:
		ch.mu.Unlock()
		return true
	default:
		ch.mu.Unlock()
		return false
	}
	if max := ch.conn.srv.opts.MaxChannelQueue; h.b != nil && max > 0 && len(ch.held) >= max {
		ch.mu.Unlock()
		ch.logger().Warn("phx: too many broadcasts while joining", "max", max)
		ch.requestStop(ErrChannelOverloaded)
		return true
	}
	ch.held = append(ch.held, h)
	ch.mu.Unlock()
	return true
}

// deliverNow sends b to the client: encoded once for every client, or
// through HandleOut when intercepted.
func (ch *channel) deliverNow(b *Broadcast) {
	if ch.intercept[b.Event] {
		ch.post(mailItem{kind: itemOut, event: b.Event, payload: b.Payload, info: b})
		return
	}
	f, err := b.frame(ch.conn.codec)
	if err != nil {
		ch.logger().Debug("phx: broadcast not sent to this client", "event", b.Event, "err", err)
		return
	}
	ch.conn.enqueue(f)
}

// pushPayload sends a push to the client; while joining it is held until
// the join reply.
func (ch *channel) pushPayload(event string, p Payload) error {
	return ch.pushOut(event, p, false)
}

// pushSharedPayload is pushPayload for a payload whose bytes are shared
// with other connections and never modified (see conn.pushShared).
func (ch *channel) pushSharedPayload(event string, p Payload) error {
	return ch.pushOut(event, p, true)
}

func (ch *channel) pushOut(event string, p Payload, shared bool) error {
	switch ch.loadState() {
	case stateEnded:
		return ErrChannelClosed
	case stateJoining:
		if !ch.sendDirect.Load() && ch.hold(heldOut{event: event, payload: p, shared: shared}) {
			if ch.hasEnded() {
				return ErrChannelClosed
			}
			return nil
		}
	}
	if shared {
		return ch.conn.pushShared(ch.joinRef, ch.topic, event, p)
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

// logger returns the channel's logger: the connection's with the topic as
// attribute. Made on first use: most channels never log a line (the
// frequent Debug lines check the level first), and a logger costs 0.1 KiB
// per channel for its life.
func (ch *channel) logger() *slog.Logger {
	return keepLogger(&ch.log, ch.onceLogger())
}

// onceLogger is logger for a line every channel logs once (joined, ended,
// at the levels JoinLogLevel and Debug): one made for it is not kept.
func (ch *channel) onceLogger() *slog.Logger {
	if l := ch.log.Load(); l != nil {
		return l
	}
	return withAttr(ch.conn.onceLogger(), "topic", ch.topic)
}

// cancelContext ends the channel's context, and the join's history read
// if one is under way.
func (ch *channel) cancelContext() {
	ch.cancel()
	if f := ch.readCancel.Load(); f != nil {
		(*f)()
	}
}

// readContext returns a context for the join's history read: it ends
// after d or with the channel's context. It is not derived from ch.ctx:
// a child would leave the channel's context with a map of children and a
// Done channel for the rest of its life, for one read; cancelContext
// ends it instead. Only the channel's goroutine calls it, during the join.
func (ch *channel) readContext(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ch.ctx), d)
	ch.readCancel.Store(&cancel)
	if ch.ctx.Err() != nil { // cancelContext ran before the Store
		cancel()
	}
	return ctx, func() {
		ch.readCancel.Store(nil)
		cancel()
	}
}

// release marks the channel's end for its connection (teardown waits for
// every channel's release) and cancels its context. It is the last thing
// the channel's last goroutine does.
func (ch *channel) release() {
	ch.conn.removeLive(ch)
	ch.cancelContext()
	ch.conn.chWG.Done()
}

// replyJoin answers the join (its ref joinMsgRef). The reply's join_ref is
// the one the client sent, null when it sent none, as Phoenix's socket
// answers (its channel then uses the join's ref for everything else).
func (ch *channel) replyJoin(joinMsgRef Ref, status string, response Payload) error {
	joinRef := ch.joinRef
	if ch.joinRefNull {
		joinRef = nil
	}
	return ch.conn.reply(joinRef, joinMsgRef, ch.topic, status, response)
}

// duplicateJoinWait is how long a join that replaces a channel of its topic
// waits for the old channel's Terminate, as Phoenix waits for the old
// channel process to exit before killing it.
const duplicateJoinWait = 5 * time.Second

// awaitPrevious waits until prev, the channel this one replaces, has
// terminated (its context ends when it is released, after Terminate), so
// that what prev releases in Terminate is free when this Join runs; after
// duplicateJoinWait it joins anyway.
func (ch *channel) awaitPrevious(prev *channel) {
	select {
	case <-prev.ctx.Done():
		return
	default:
	}
	t := time.NewTimer(duplicateJoinWait)
	defer t.Stop()
	select {
	case <-prev.ctx.Done():
	case <-t.C:
		ch.logger().Warn("phx: duplicate join: the previous channel is still terminating; joining anyway", "waited", duplicateJoinWait)
	}
}

// join runs Join and answers the client. It reports whether the channel
// joined (it is then draining or stopping) and goes on; false means it has
// ended (refused, crashed, timed out or stopped during Join) and everything
// owed to the client was sent.
func (ch *channel) join(joinMsgRef Ref, payload Payload) bool {
	c := ch.conn
	if prev := ch.prev; prev != nil {
		ch.prev = nil
		ch.awaitPrevious(prev)
	}

	// Subscribe before Join runs: whatever Join does (track presence, push
	// state, broadcast), the diffs and broadcasts it causes reach this
	// client, held until the join reply is out.
	if err := c.srv.pubsub.Subscribe(ch.topic, ch); err != nil {
		ch.logger().Error("phx: subscribe failed", "err", err)
		ch.joinAnswered.Store(true)
		ch.markEnded()
		c.unregister(ch)
		_ = ch.replyJoin(joinMsgRef, "error", replyInternalError)
		ch.joined("error")
		return false
	}

	if d := c.srv.opts.JoinTimeout; d > 0 {
		t := time.AfterFunc(d, func() { ch.joinTimedOut(joinMsgRef) })
		defer t.Stop()
	}
	reply, err, crashed := ch.callJoin(payload)
	if !ch.joinAnswered.CompareAndSwap(false, true) {
		// Too late: the client was told "join timeout" (joinTimedOut sent
		// the telemetry event) and may have rejoined. Discard the result.
		ch.unsubscribe()
		ch.markEnded()
		if err == nil && crashed == nil {
			if t, ok := ch.impl.(Terminator); ok {
				ch.safeTerminate(t, ErrJoinTimeout)
			}
		}
		return false
	}
	if err != nil || crashed != nil {
		ch.unsubscribe()
		ch.markEnded()
		c.unregister(ch)
		if crashed != nil {
			ch.joined("crash")
		} else {
			ch.joined("error")
		}
		resp := replyJoinCrashed
		var re *ReplyError
		switch {
		case crashed != nil:
			ch.logger().Error("phx: Join panicked", "panic", crashed.Value, "stack", string(crashed.Stack))
		case errors.As(err, &re):
			ch.logger().Debug("phx: join refused", "reply", re.Response)
			if p, perr := toPayload(re.Response); perr == nil {
				_ = ch.replyJoin(joinMsgRef, re.status(), p)
				return false
			} else {
				ch.logger().Error("phx: Join refused with a response that is not a JSON object; replying join refused",
					"event", eventJoin, "type", fmt.Sprintf("%T", re.Response), "err", perr)
			}
			resp = reasonPayload("join refused")
		default:
			ch.logger().Info("phx: join refused", "err", err)
			resp = reasonPayload("join refused")
		}
		_ = ch.replyJoin(joinMsgRef, "error", resp)
		return false
	}
	replyPayload, perr := toPayload(reply)
	if perr != nil {
		// A bug in Join: the client gets an error, as for a failed
		// HandleIn, and the channel is not joined. Join accepted, so
		// Terminate runs, with the error.
		ch.logger().Error("phx: Join returned a reply that is not a JSON object; the join fails with internal error",
			"event", eventJoin, "type", fmt.Sprintf("%T", reply), "err", perr)
		ch.unsubscribe()
		ch.markEnded()
		c.unregister(ch)
		_ = ch.replyJoin(joinMsgRef, "error", replyInternalError)
		ch.joined("error")
		if t, ok := ch.impl.(Terminator); ok {
			ch.safeTerminate(t, fmt.Errorf("phx: Join reply: %w", perr))
		}
		return false
	}
	// Replaced by a duplicate join, or the connection closed, during Join.
	if reason := ch.stopReason(); reason != nil {
		ch.endJoined(reason)
		return false
	}
	if oh, ok := ch.impl.(OutHandler); ok {
		if evs := ch.safeIntercept(oh); len(evs) > 0 {
			ch.intercept = make(map[string]bool, len(evs))
			for _, e := range evs {
				ch.intercept[e] = true
			}
		}
	}
	rec := ch.recoverHistory(payload)
	if rec.fields != nil {
		replyPayload = mergeFields(replyPayload, rec.fields)
	}
	ch.replayedTo.Store(rec.last)
	_ = ch.replyJoin(joinMsgRef, "ok", replyPayload)
	ch.joined("ok")
	ch.replay(rec)
	ch.flushHeld(rec.last)
	return true
}

// flushHeld sends what was held while joining, in order, then moves the
// channel to draining (stopping if a stop came in meanwhile). Broadcasts
// recorded in the topic's history at or below skip were replayed already.
// Broadcasts keep arriving in held until the last batch is sent, so live
// delivery starts exactly after it.
func (ch *channel) flushHeld(skip uint64) {
	c := ch.conn
	for {
		ch.mu.Lock()
		held := ch.held
		ch.held = nil
		if len(held) == 0 {
			if ch.stopErr != nil { // drain ends it
				ch.setState(stateStopping)
			} else {
				ch.setState(stateDraining)
			}
			ch.mu.Unlock()
			return
		}
		ch.mu.Unlock()
		for _, h := range held {
			switch {
			case h.b == nil && h.shared:
				_ = c.pushShared(ch.joinRef, ch.topic, h.event, h.payload)
			case h.b == nil:
				_ = c.push(ch.joinRef, ch.topic, h.event, h.payload)
			case h.b.offset != 0 && h.b.offset <= skip:
				// replayed from history already
			default:
				ch.deliverNow(h.b)
			}
		}
	}
}

// unsubscribe removes the channel from its topic's subscribers.
func (ch *channel) unsubscribe() {
	if err := ch.conn.srv.pubsub.Unsubscribe(ch.topic, ch); err != nil {
		ch.logger().Debug("phx: unsubscribe failed", "err", err)
	}
}

// joined logs an answered join and sends its telemetry event.
func (ch *channel) joined(status string) {
	c := ch.conn
	d := time.Since(ch.started)
	if level := c.srv.opts.JoinLogLevel; status == "ok" && c.srv.log.Enabled(ch.ctx, level) {
		ch.onceLogger().Log(ch.ctx, level, "phx: joined", "route", ch.route, "duration", d)
	}
	c.srv.opts.Telemetry.channelJoined(c, ChannelJoined{
		Context: ch.ctx, Route: ch.route, Topic: ch.topic, Transport: c.transport, Duration: d, Status: status,
	})
}

// joinTimedOut answers a join whose Join is still running after
// JoinTimeout, and drops the channel from its connection.
func (ch *channel) joinTimedOut(joinMsgRef Ref) {
	if !ch.joinAnswered.CompareAndSwap(false, true) {
		return
	}
	c := ch.conn
	c.srv.metrics.joinsTimedOut.Add(1)
	ch.logger().Warn("phx: Join still running after JoinTimeout; join refused", "timeout", c.srv.opts.JoinTimeout)
	c.unregister(ch)
	_ = ch.replyJoin(joinMsgRef, "error", replyJoinTimeout)
	ch.joined("timeout")
	ch.requestStop(ErrJoinTimeout)
}

// drain handles mailbox items, in order, while the channel is draining. It
// returns when the mailbox is empty (the channel is then idle and the
// goroutine ends) or once the channel has ended and been released
// (stopping, phx_leave, or a hook panicked). Only one goroutine drains a
// channel at a time: whoever moves it out of idle starts it.
func (ch *channel) drain() {
	for {
		ch.mu.Lock()
		if ch.loadState() == stateStopping {
			reason := ch.stopErr
			ch.mu.Unlock()
			ch.exit(reason)
			return
		}
		if len(ch.items) == 0 {
			ch.setState(stateIdle)
			ch.mu.Unlock()
			return
		}
		batch := ch.items
		ch.items, ch.spare = ch.spare[:0], nil
		ch.mu.Unlock()
		for i := range batch {
			if ch.loadState() == stateStopping {
				ch.exit(ch.stopReason())
				return
			}
			if r := ch.handle(&batch[i]); r != nil {
				ch.exit(r)
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

// exit is the draining goroutine's last act: it ends the joined channel
// with reason and releases it.
func (ch *channel) exit(reason error) {
	ch.endJoined(reason)
	ch.release()
}

// stopReason returns the first stop request's reason, nil if none.
func (ch *channel) stopReason() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.stopErr
}

// handle runs the hook for one item; a non-nil result ends the channel.
func (ch *channel) handle(it *mailItem) (end error) {
	var inStart time.Time // while HandleIn runs
	defer func() {
		if v := recover(); v != nil {
			pe := &PanicError{Value: v, Stack: debug.Stack()}
			ch.logger().Error("phx: channel panicked", "panic", v, "stack", string(pe.Stack))
			end = pe
			if !inStart.IsZero() {
				ch.handledIn(it.event, inStart, "crash")
			}
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
			ch.logger().Info("phx: channel has no HandleIn; event dropped", "event", it.event)
			_ = c.reply(ch.joinRef, it.ref, ch.topic, "error", reasonPayload("unhandled event"))
			return nil
		}
		ch.curRef = it.ref
		inStart = time.Now()
		reply, err := h.HandleIn(ch.sock, it.event, it.payload)
		ch.curRef = nil
		status := ch.sendHandleInReply(it, reply, err)
		ch.handledIn(it.event, inStart, status)
	case itemOut:
		if h, ok := ch.impl.(OutHandler); ok {
			ch.curOut, _ = it.info.(*Broadcast)
			defer func() { ch.curOut = nil }()
			t := c.srv.opts.Telemetry
			if t == nil || t.ChannelHandledOut == nil {
				h.HandleOut(ch.sock, it.event, it.payload)
				break
			}
			start := time.Now()
			h.HandleOut(ch.sock, it.event, it.payload)
			t.channelHandledOut(ch.conn, ChannelHandledOut{
				Context: ch.ctx, Route: ch.route, Topic: ch.topic, Event: it.event, Duration: time.Since(start),
			})
		}
	case itemInfo:
		if h, ok := ch.impl.(InfoHandler); ok {
			h.HandleInfo(ch.sock, it.info)
		} else {
			ch.logger().Warn("phx: Send to a channel without HandleInfo; message dropped", "type", fmt.Sprintf("%T", it.info))
		}
	}
	return nil
}

// sendHandleInReply answers a HandleIn and returns the reply's status, ""
// for none.
func (ch *channel) sendHandleInReply(it *mailItem, reply any, err error) string {
	c := ch.conn
	var re *ReplyError
	switch {
	case err == nil:
		p, perr := toPayload(reply)
		if perr != nil {
			ch.logger().Error("phx: HandleIn returned a reply that is not a JSON object; replying internal error",
				"event", it.event, "type", fmt.Sprintf("%T", reply), "err", perr)
			_ = c.reply(ch.joinRef, it.ref, ch.topic, "error", replyInternalError)
			return "error"
		}
		_ = c.reply(ch.joinRef, it.ref, ch.topic, "ok", p)
		return "ok"
	case errors.Is(err, NoReply):
		return ""
	case errors.As(err, &re):
		p, perr := toPayload(re.Response)
		if perr != nil {
			ch.logger().Error("phx: HandleIn returned a ReplyError whose response is not a JSON object; replying internal error",
				"event", it.event, "type", fmt.Sprintf("%T", re.Response), "err", perr)
			_ = c.reply(ch.joinRef, it.ref, ch.topic, "error", replyInternalError)
			return "error"
		}
		_ = c.reply(ch.joinRef, it.ref, ch.topic, re.status(), p)
		return re.status()
	default:
		ch.logger().Error("phx: HandleIn failed", "event", it.event, "err", err)
		_ = c.reply(ch.joinRef, it.ref, ch.topic, "error", replyInternalError)
		return "error"
	}
}

// handledIn sends a HandleIn's telemetry event.
func (ch *channel) handledIn(event string, start time.Time, status string) {
	if t := ch.conn.srv.opts.Telemetry; t != nil && t.ChannelHandledIn != nil {
		t.channelHandledIn(ch.conn, ChannelHandledIn{
			Context: ch.ctx, Route: ch.route, Topic: ch.topic, Event: event, Duration: time.Since(start), Status: status,
		})
	}
}

// endJoined ends a channel whose Join accepted, for reason: unsubscribe,
// tell the client (phx_close, phx_error or nothing; see [channel]), mark it
// ended, run Terminate.
func (ch *channel) endJoined(reason error) {
	c := ch.conn
	ch.unsubscribe()
	c.unregister(ch)
	closeMsg := errors.Is(reason, ErrLeft) || errors.Is(reason, ErrStopped)
	crashed := !closeMsg && !errors.Is(reason, ErrClosed) && !errors.Is(reason, ErrServerClosed) &&
		!errors.Is(reason, ErrExpired) && !errors.Is(reason, ErrDuplicateJoin)
	t, _ := ch.impl.(Terminator)
	if closeMsg || crashed {
		// The client is still there and not told yet: as in Phoenix,
		// Terminate may push a last message, which arrives before the
		// phx_close or phx_error.
		if t != nil {
			ch.safeTerminate(t, reason)
		}
		if closeMsg {
			_ = c.lifecycle(ch, eventClose, emptyPayload)
		} else {
			_ = c.lifecycle(ch, eventError, replyChannelCrash)
		}
		ch.markEnded()
	} else {
		// The connection is closing, or the client was told already (a
		// duplicate join): Terminate's pushes fail with ErrChannelClosed.
		ch.markEnded()
		if t != nil {
			ch.safeTerminate(t, reason)
		}
	}
	if c.srv.log.Enabled(ch.ctx, slog.LevelDebug) {
		ch.onceLogger().Debug("phx: channel ended", "reason", reason)
	}
	c.srv.opts.Telemetry.channelTerminated(c, ChannelTerminated{
		Context: ch.ctx, Route: ch.route, Topic: ch.topic, Reason: reason, Lifetime: time.Since(ch.started),
	})
}

// markEnded moves the channel to ended: the mailbox is closed (queued items
// are dropped, post fails), sends fail, and the cleanups registered with
// onEnd run.
func (ch *channel) markEnded() {
	ch.mu.Lock()
	ch.setState(stateEnded)
	ch.items = nil
	ch.held = nil
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
	if ch.loadState() == stateEnded {
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
			ch.logger().Error("phx: Intercept panicked", "panic", v, "stack", string(debug.Stack()))
			evs = nil
		}
	}()
	return oh.Intercept()
}

func (ch *channel) safeTerminate(t Terminator, reason error) {
	defer func() {
		if v := recover(); v != nil {
			ch.logger().Error("phx: Terminate panicked", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	t.Terminate(ch.sock, reason)
}
