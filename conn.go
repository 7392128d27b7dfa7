package phx

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Close codes the server sends. None is 1000: phoenix.js before 1.8.16 and
// PhoenixSharp do not reconnect after a 1000 close.
const (
	closeGoingAway      = 1001 // Disconnect by socket ID, idle timeout
	closeInvalidData    = 1007 // malformed frame, invalid UTF-8
	closePolicy         = 1008 // slow consumer, far over the rate limit, protocol errors
	closeTooBig         = 1009 // message over MaxMessageSize (sent by coder/websocket)
	closeInternal       = 1011 // unexpected server error
	closeServiceRestart = 1012 // Shutdown
)

// Reserved topics and events of the protocol.
const (
	topicPhoenix   = "phoenix"
	eventHeartbeat = "heartbeat"
	eventJoin      = "phx_join"
	eventLeave     = "phx_leave"
	eventReply     = "phx_reply"
	eventClose     = "phx_close"
	eventError     = "phx_error"
	eventDisconn   = "disconnect"
)

var emptyPayload = Payload{Data: []byte("{}")}

// conn is one client connection, independent of its transport: it decodes
// frames, routes them to channels, and queues outgoing frames for the
// transport's writer. Frames are handled in order by one goroutine (the
// transport's reader); channels run on goroutines of their own.
type conn struct {
	srv       *Server
	codec     codec // the connection's serializer
	id        string
	assigns   assignList // what Connect returned; each channel gets a map of them
	transport string
	log       atomic.Pointer[slog.Logger] // made on first use: see logger

	// ctx ends when the connection starts closing.
	ctx    context.Context
	cancel context.CancelFunc

	out outQueue

	mu       sync.Mutex
	channels channelTable   // current channel per topic
	chWG     sync.WaitGroup // channels not yet released

	// live are the channels not yet released, current or not (a left or
	// replaced one may still be terminating). Their contexts are not
	// children of ctx, which would give every connection's context a map
	// of children; close cancels them instead. Under liveMu, a leaf lock.
	liveMu sync.Mutex
	live   []*channel

	closeOnce  sync.Once
	serving    atomic.Bool // Serve has been called (fills closeOnce's last 4 bytes)
	closeCode  int
	closeText  string
	termReason atomic.Pointer[error] // Terminate reason for channels when the conn closes

	// tr is the transport, set by attach; closing: close has run. Both
	// under transportMu, so that a close that races attach reaches the
	// transport exactly once.
	transportMu sync.Mutex
	tr          Transport

	raw *RawConn // a raw socket's (RawSocketHandler); nil: channels
	pub Conn     // the transport's handle; pub.c is this conn

	limits inboundLimits // rate limits and protocol-error budget

	lastRead    atomic.Int64 // unix nanos of the last frame received
	opened      time.Time    // when Accept made the connection
	framesIn    atomic.Int64 // frames handed to handleFrame
	framesOut   atomic.Int64 // frames queued
	expiresAt   int64        // ConnectInfo.ExpiresAt as Connect left it, in Unix nanoseconds; 0: none (an int64, 16 bytes less than a time.Time)
	expiryMu    sync.Mutex   // guards expiryTimer: it may fire before armExpiry has stored it
	expiryTimer *time.Timer  // see expiry.go
	idSub       Subscriber

	// From TransportFeatures, set by Serve before start. textOnly: binary
	// frames cannot be carried (long-poll) and are dropped at enqueue.
	// noIdleTimer: the transport judges liveness itself (long-poll: polls,
	// not frames), so HeartbeatTimeout does not apply.
	textOnly    bool
	noIdleTimer bool

	// The flags, together at the end (a bool between wider fields costs 8
	// bytes of padding). closing: under transportMu, see tr.
	closing     bool
	countFrames bool // a SocketClosed hook wants framesIn and framesOut
	idleWatched bool // the server's idle timer watches it (idle.go); under srv.mu
}

// newConn makes a connection whose context carries parent's values (a
// trace or request ID of the upgrade request), not its cancellation.
func newConn(parent context.Context, srv *Server, cd codec, id string, assigns Assigns, transport string) *conn {
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	c := &conn{
		srv:       srv,
		codec:     cd,
		id:        id,
		assigns:   listAssigns(assigns),
		transport: transport,
		ctx:       ctx,
		cancel:    cancel,
	}
	c.pub.c = c
	c.out.init(srv.opts.MaxQueuedMessages, srv.opts.MaxQueuedBytes)
	c.opened = time.Now()
	c.countFrames = srv.opts.Telemetry != nil && srv.opts.Telemetry.SocketClosed != nil
	c.lastRead.Store(c.opened.UnixNano())
	return c
}

// logger returns the connection's logger: the server's with the transport
// and the socket ID as attributes. Made on first use: most connections
// never log a line (Debug lines check the level first, see debug), and a
// logger with the socket ID costs 0.1 KiB per connection for its life.
func (c *conn) logger() *slog.Logger {
	return keepLogger(&c.log, c.onceLogger())
}

// onceLogger is logger for a line a connection logs once or not at all
// (a channel's joined and ended lines build on it): one made for it is
// not kept.
func (c *conn) onceLogger() *slog.Logger {
	if l := c.log.Load(); l != nil {
		return l
	}
	l := c.srv.transportLog(c.transport)
	if c.id != "" {
		l = withAttr(l, "socket_id", c.id)
	}
	return l
}

// debug logs a Debug line with the connection's logger, made only when
// the server's logger has Debug enabled.
func (c *conn) debug(msg string, args ...any) {
	if c.srv.log.Enabled(context.Background(), slog.LevelDebug) {
		c.logger().Debug(msg, args...)
	}
}

// transportLog returns the server's logger with transport as attribute,
// shared by the connections of a built-in transport (a custom transport's
// name is not bounded: its connections get one each).
func (s *Server) transportLog(transport string) *slog.Logger {
	if transport != "websocket" && transport != "longpoll" {
		return withAttr(s.log, "transport", transport)
	}
	if l, ok := s.transportLogs.Load(transport); ok {
		return l.(*slog.Logger)
	}
	l, _ := s.transportLogs.LoadOrStore(transport, s.log.With("transport", transport))
	return l.(*slog.Logger)
}

// start subscribes the connection to its ID topic and arms the idle timer.
func (c *conn) start() {
	if c.id != "" {
		c.idSub = &idSubscriber{c: c}
		if err := c.srv.pubsub.Subscribe(c.id, c.idSub); err != nil {
			c.logger().Warn("phx: subscribe to socket ID failed", "err", err)
		}
	}
	if c.srv.opts.HeartbeatTimeout > 0 && !c.noIdleTimer {
		c.srv.watchIdle(c)
	}
}

// idSubscriber closes its connection on a "disconnect" broadcast to the
// socket ID topic.
type idSubscriber struct{ c *conn }

func (s *idSubscriber) Deliver(b *Broadcast) {
	if b.Event == eventDisconn {
		s.c.debug("phx: disconnect by socket ID")
		s.c.close(closeGoingAway, "disconnected", ErrClosed)
	}
}

// close starts closing the connection: the transport is asked to close with
// code, and channels will terminate with reason. Safe to call many times and
// from any goroutine; only the first call counts.
func (c *conn) close(code int, text string, reason error) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeText = code, text
		c.termReason.Store(&reason)
		c.cancel()
		c.cancelChannels()
		c.out.close()
		c.transportMu.Lock()
		tr := c.tr
		c.closing = true
		c.transportMu.Unlock()
		if tr != nil {
			tr.Close(code, text)
		}
	})
}

// cancelChannels ends the contexts of the channels not yet released, as
// the connection's own context has just ended.
func (c *conn) cancelChannels() {
	c.liveMu.Lock()
	defer c.liveMu.Unlock()
	for _, ch := range c.live {
		ch.cancelContext()
	}
}

// addLive records a new channel as not yet released; its context ends at
// once if the connection's has.
func (c *conn) addLive(ch *channel) {
	c.liveMu.Lock()
	c.live = append(c.live, ch)
	c.liveMu.Unlock()
	if c.ctx.Err() != nil { // close ran before the append: its cancelChannels missed ch
		ch.cancelContext()
	}
}

// removeLive forgets a released channel.
func (c *conn) removeLive(ch *channel) {
	c.liveMu.Lock()
	defer c.liveMu.Unlock()
	c.live = removeChannel(c.live, ch)
}

// attach makes t the connection's transport: frames queued from now on
// wake it, and a close reaches it. If the connection started closing
// before, t.Close runs now with that close's code; either way it runs once.
func (c *conn) attach(t Transport) {
	c.out.setWake(t.Wake)
	c.transportMu.Lock()
	c.tr = t
	closing := c.closing
	c.transportMu.Unlock()
	if closing {
		t.Close(c.closeCode, c.closeText)
	}
}

// teardown stops every channel and releases the connection. The transport
// calls it once, after its read loop has ended; it returns when every
// channel's Terminate has run.
func (c *conn) teardown() {
	c.close(closeGoingAway, "", ErrClosed) // no-op if already closing
	c.stopExpiry()
	if c.idSub != nil {
		_ = c.srv.pubsub.Unsubscribe(c.id, c.idSub)
	}
	reason := *c.termReason.Load()
	c.mu.Lock()
	chans := c.channels.close()
	c.mu.Unlock()
	for _, ch := range chans {
		ch.requestStop(reason) // the conn is closing: no phx_close to the client
	}
	c.chWG.Wait()
	if c.raw != nil {
		c.raw.terminate(reason)
	}
	c.srv.opts.Telemetry.socketClosed(c, SocketClosed{
		Context: c.ctx, Transport: c.transport, ID: c.id, Code: c.closeCode, Reason: c.closeText,
		Lifetime: time.Since(c.opened), FramesIn: c.framesIn.Load(), FramesOut: c.framesOut.Load(),
	})
}

// enqueue queues a frame for the transport. A full queue makes the
// connection a slow consumer: it is closed, and enqueue reports false.
func (c *conn) enqueue(f Frame) bool {
	if f.Binary && c.textOnly {
		c.debug("phx: binary frame dropped: the transport carries text only", "bytes", len(f.Data))
		return true
	}
	switch c.out.push(f) {
	case pushOK:
		if c.countFrames {
			c.framesOut.Add(1)
		}
		return true
	case pushFull:
		c.logger().Warn("phx: closing slow client: outbound queue full",
			"queued_messages", c.srv.opts.MaxQueuedMessages, "queued_bytes", c.srv.opts.MaxQueuedBytes)
		c.srv.metrics.slowClosed.Add(1)
		c.close(closePolicy, "too slow", ErrClosed)
	}
	return false
}

// reply queues a phx_reply.
func (c *conn) reply(joinRef, ref Ref, topic, status string, response Payload) error {
	f, err := c.codec.ser.EncodeReply(joinRef, ref, topic, status, response)
	if err != nil {
		return err
	}
	if !c.enqueue(f) {
		return ErrClosed
	}
	return nil
}

// push queues a message to the client for one channel incarnation.
func (c *conn) push(joinRef Ref, topic, event string, payload Payload) error {
	return c.message(joinRef, nil, topic, event, payload)
}

// lifecycle queues phx_close or phx_error for ch, which carry the join_ref
// as their ref too, as Phoenix sends them: null when the client's join had
// none (V1 clients), as Phoenix's channel then has none.
func (c *conn) lifecycle(ch *channel, event string, payload Payload) error {
	ref := ch.joinRef
	if ch.joinRefNull {
		ref = nil
	}
	return c.message(ref, ref, ch.topic, event, payload)
}

func (c *conn) message(joinRef, ref Ref, topic, event string, payload Payload) error {
	f, err := c.codec.ser.EncodeMessage(joinRef, ref, topic, event, payload)
	if err != nil {
		return err
	}
	if !c.enqueue(f) {
		return ErrClosed
	}
	return nil
}

// sharedPayloadMin: a shared payload this large is queued in pieces by
// pushShared; a smaller one is copied into the frame, as any push.
const sharedPayloadMin = 4 << 10

var (
	sharedProbe = Payload{Data: []byte("{}")}
	sharedTail  = []byte("]")
)

// pushShared queues a push whose payload's bytes are shared with other
// connections and never modified, such as a presence_state every joiner
// of one flush is given. With the V2 JSON serializer, a large one is
// queued as a frame in pieces, its own head ([join_ref,null,topic,event,)
// then the payload's bytes then "]", so that joiners given the same
// state share its bytes until their writer has written them; other
// serializers get an ordinary push.
func (c *conn) pushShared(joinRef Ref, topic, event string, payload Payload) error {
	if c.codec.ser != v2JSON || payload.Binary || len(payload.Data) < sharedPayloadMin {
		return c.push(joinRef, topic, event, payload)
	}
	f, err := c.codec.ser.EncodeMessage(joinRef, nil, topic, event, sharedProbe)
	if err != nil {
		return err
	}
	head, ok := bytes.CutSuffix(f.Data, []byte("{}]"))
	if !ok { // not the frame expected: as any push
		return c.push(joinRef, topic, event, payload)
	}
	f.Data, f.rest = head, &framePieces{shared: payload.Data, tail: sharedTail}
	if !c.enqueue(f) {
		return ErrClosed
	}
	return nil
}

func reasonPayload(reason string) Payload {
	p, _ := toPayload(map[string]string{"reason": reason})
	return p
}

var (
	replyUnmatchedTopic = reasonPayload("unmatched topic")
	replyTooManyJoined  = reasonPayload("too many channels joined")
	replyInvalidJoin    = reasonPayload("invalid join payload")
	replyJoinCrashed    = reasonPayload("join crashed")
	replyJoinTimeout    = reasonPayload("join timeout")
	replyChannelCrash   = reasonPayload("channel_crash")
	replyInternalError  = reasonPayload("internal error")
	replyRateLimited    = reasonPayload("rate limited")
)

// handleFrame decodes and dispatches one frame from the client. It returns
// an error only when the frame is so broken that the connection must close.
func (c *conn) handleFrame(data []byte, binary bool) error {
	if c.ctx.Err() != nil {
		return nil // closing: late frames are ignored
	}
	now := time.Now()
	c.lastRead.Store(now.UnixNano())
	if c.countFrames {
		c.framesIn.Add(1)
	}
	if c.raw != nil {
		return c.raw.handleIn(data, binary)
	}
	msg, err := c.codec.ser.Decode(data, binary)
	if err != nil {
		return err
	}
	if !c.limits.allow(now, c.srv.opts.MaxInboundRate, c.srv.opts.InboundBurst) {
		c.overRate(msg, now)
		return nil
	}
	c.dispatch(msg, now)
	return nil
}

// overRate handles a message over MaxInboundRate. It is refused with an
// error reply, except heartbeats and leaves, which are handled as usual so
// that a busy client is never taken for a dead one nor kept in a channel it
// left. Either way it counts against MaxRateLimited, past which the
// connection is closed.
func (c *conn) overRate(msg Message, now time.Time) {
	if c.countRateLimited(now, "refusing") {
		return
	}
	switch {
	case msg.Topic == topicPhoenix && msg.Event == eventHeartbeat, msg.Event == eventLeave:
		c.dispatch(msg, now)
	case msg.Event == eventJoin:
		joinRef := msg.JoinRef
		if joinRef.IsNull() {
			joinRef = msg.Ref // as handleJoin
		}
		_ = c.reply(joinRef, msg.Ref, msg.Topic, "error", replyRateLimited)
	default:
		_ = c.reply(msg.JoinRef, msg.Ref, msg.Topic, "error", replyRateLimited)
	}
}

// countRateLimited counts one message over MaxInboundRate against
// MaxRateLimited and closes the connection past it (it then reports true);
// the first one of a window is logged, with what happens to such messages
// (verb: "refusing", "dropping").
func (c *conn) countRateLimited(now time.Time, verb string) (closed bool) {
	n := c.limits.rateLimited(now)
	if max := c.srv.opts.MaxRateLimited; max >= 0 && n > max {
		c.policyClose("phx: closing connection far over its message rate limit", "rate limit exceeded",
			"rate", c.srv.opts.MaxInboundRate, "burst", c.srv.opts.InboundBurst,
			"max_rate_limited", max, "window", rateLimitedWindow)
		return true
	}
	if n == 1 {
		c.logger().Info("phx: "+verb+" messages over the connection's rate limit",
			"rate", c.srv.opts.MaxInboundRate, "burst", c.srv.opts.InboundBurst)
	}
	return false
}

// dispatch routes one decoded message, as Phoenix's socket process does.
// now is when its frame arrived.
func (c *conn) dispatch(msg Message, now time.Time) {
	switch {
	case msg.Topic == topicPhoenix && msg.Event == eventHeartbeat:
		_ = c.reply(nil, msg.Ref, topicPhoenix, "ok", emptyPayload) // join_ref null, as Phoenix, whatever the client sent
	case msg.Event == eventJoin:
		c.handleJoin(msg)
	default:
		c.mu.Lock()
		ch := c.channels.get(msg.Topic)
		c.mu.Unlock()
		switch {
		case ch == nil && msg.Event == eventLeave:
			// Lets clients leave after a crash: acknowledge.
			_ = c.reply(msg.JoinRef, msg.Ref, msg.Topic, "ok", emptyPayload)
		case ch == nil:
			_ = c.reply(nil, msg.Ref, msg.Topic, "error", replyUnmatchedTopic)
			c.protocolError()
		case !msg.JoinRef.IsNull() && !msg.JoinRef.Equal(ch.joinRef):
			// A message for an earlier incarnation of the channel: Phoenix
			// drops it silently.
			c.debug("phx: dropping message with stale join_ref", "topic", msg.Topic, "event", msg.Event)
			c.protocolError()
		case msg.Event == eventLeave:
			ch.post(mailItem{kind: itemLeave, ref: bytes.Clone(msg.Ref)})
		case len(ch.limits) > 0 && !c.limits.allowEvent(ch.limits, msg.Event, now):
			// Over one of the channel's InboundLimits.
			c.debug("phx: refusing message over an inbound limit", "topic", msg.Topic, "event", msg.Event)
			_ = c.reply(ch.joinRef, msg.Ref, msg.Topic, "error", replyRateLimited)
		default:
			ref, payload := ownBytes(msg.Ref, msg.Payload)
			ch.post(mailItem{kind: itemIn, ref: ref, event: msg.Event, payload: payload})
		}
	}
}

// ownBytes copies ref and payload out of the frame they were decoded from,
// into one allocation: the channel handles them after Receive has returned,
// when the transport may have reused the frame's bytes.
func ownBytes(ref Ref, p Payload) (Ref, Payload) {
	buf := make([]byte, len(ref)+len(p.Data))
	n := copy(buf, ref)
	copy(buf[n:], p.Data)
	if ref != nil {
		ref = Ref(buf[:n:n])
	}
	if p.Data != nil {
		p.Data = buf[n:]
	}
	return ref, p
}

func (c *conn) handleJoin(msg Message) {
	joinRef := msg.JoinRef
	if joinRef.IsNull() {
		// V1 clients may omit join_ref: Phoenix uses the join's ref.
		joinRef = msg.Ref
	}
	rt := c.srv.routes.lookup(msg.Topic)
	newCh, route := rt.newCh, rt.pattern
	if newCh == nil {
		c.logger().Info("phx: join of unmatched topic", "topic", msg.Topic)
		_ = c.reply(nil, msg.Ref, msg.Topic, "error", replyUnmatchedTopic)
		c.protocolError()
		return
	}
	if msg.Payload.Binary || !isJSONObject(msg.Payload.Data) {
		_ = c.reply(joinRef, msg.Ref, msg.Topic, "error", replyInvalidJoin)
		c.protocolError()
		return
	}

	c.mu.Lock()
	if c.channels.closed {
		c.mu.Unlock()
		return
	}
	old := c.channels.get(msg.Topic)
	if old != nil {
		c.channels.remove(old)
	}
	if max := c.srv.opts.MaxChannels; max > 0 && c.channels.len() >= max {
		c.mu.Unlock()
		if old != nil {
			c.closeDuplicate(old)
		}
		c.logger().Info("phx: join refused: too many channels", "topic", msg.Topic, "max", max)
		_ = c.reply(joinRef, msg.Ref, msg.Topic, "error", replyTooManyJoined)
		c.protocolError()
		return
	}
	// The channel keeps its join_ref for life: copy it out of the frame,
	// which it would otherwise keep whole (a 512-byte read buffer or more).
	ch := newChannel(c, msg.Topic, bytes.Clone(joinRef), newCh())
	ch.joinRefNull = msg.JoinRef.IsNull()
	ch.route = route
	ch.history = rt.history
	ch.limits = limitBuckets(c.srv.opts.InboundLimits, msg.Topic)
	ch.prev = old
	c.channels.add(ch)
	c.chWG.Add(1)
	c.mu.Unlock()
	c.addLive(ch)

	if old != nil {
		c.closeDuplicate(old)
	}
	ref, payload := ownBytes(msg.Ref, msg.Payload)
	go ch.run(ref, payload)
}

// protocolError counts one protocol error against the connection's budget
// and closes it when the budget is spent.
func (c *conn) protocolError() {
	max := c.srv.opts.MaxProtocolErrors
	if max < 0 {
		return
	}
	if c.limits.protocolError(time.Now()) > max {
		c.policyClose("phx: closing connection after too many protocol errors", "too many protocol errors",
			"max", max, "window", protocolErrorWindow)
	}
}

// policyClose closes a misbehaving connection with 1008.
func (c *conn) policyClose(logMsg, reason string, attrs ...any) {
	if c.ctx.Err() != nil {
		return
	}
	c.logger().Warn(logMsg, attrs...)
	c.srv.metrics.policyClosed.Add(1)
	c.close(closePolicy, reason, ErrClosed)
}

// closeDuplicate ends a channel replaced by a second join of its topic.
func (c *conn) closeDuplicate(old *channel) {
	c.debug("phx: duplicate join, closing previous channel", "topic", old.topic)
	old.requestStop(ErrDuplicateJoin)
	_ = c.lifecycle(old, eventClose, emptyPayload)
}

// unregister removes ch if it is still the current channel of its topic.
func (c *conn) unregister(ch *channel) {
	c.mu.Lock()
	c.channels.remove(ch)
	c.mu.Unlock()
}

func isJSONObject(data []byte) bool {
	for _, b := range data {
		switch b {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}
