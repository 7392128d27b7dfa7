package phx

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Long-poll session forwarding (docs/protocol.md §6.8). A session lives in
// the memory of the Server that opened it (its owner, named in the token).
// A GET or POST for it that lands on another node sharing LongPoll.Secret
// is relayed to the owner over the configured PubSub and served there by
// the same code as a local request; the answer (HTTP status and body)
// comes back the same way and is written as is.
//
// Every node with forwarding on subscribes, once, to a topic of its own,
// named from its instance ID and a key derived from the secret, so that a
// client cannot compute it (and join it through a catch-all channel
// route). The topic carries the requests relayed to this node and the
// answers to the requests this node relayed.
//
//	relay → owner  req    a GET or POST: its token and body
//	owner → relay  ack    the owner has the request and is holding it
//	               (sent when it has not answered within ForwardTimeout/4)
//	owner → relay  ans    the answer: HTTP status and body
//	owner → relay  gone   the owner has no such session
//	relay → owner  cancel the relay's client went away, or the relay is
//	               shutting down: end the held poll (a poll that had taken
//	               frames still answers with them)
//
// A relay that hears nothing within ForwardTimeout takes the owner for gone.

const (
	// lpFwdDefaultTimeout is LongPoll.ForwardTimeout's default, Phoenix's
	// pubsub_timeout_ms.
	lpFwdDefaultTimeout = 2 * time.Second
	// lpFwdEvent is the event of every forwarding broadcast.
	lpFwdEvent = "lp"
	// lpFwdVersion is the layout version of a forwarding message.
	lpFwdVersion = 1
)

// Kinds of forwarding message.
const (
	lpFwdGet    byte = 'G'
	lpFwdPost   byte = 'P'
	lpFwdAck    byte = 'A'
	lpFwdAnswer byte = 'R'
	lpFwdGone   byte = 'X'
	lpFwdCancel byte = 'C'
)

// Flags of a relayed POST.
const (
	lpFwdNDJSON byte = 1 << iota // the body is ndjson lines
	lpFwdTooBig                  // the body was over LongPoll.MaxBody
)

// Why a relayed request got no answer.
var (
	// errLPOwnerGone: the owner did not take the request within
	// ForwardTimeout (or it could not be sent).
	errLPOwnerGone = errors.New("phx: long-poll session owner unreachable")
	// errLPSessionGone: the owner answered that it has no such session.
	errLPSessionGone = errors.New("phx: long-poll session gone on its owner")
	// errLPNoAnswer: the owner took the request but did not answer in time.
	errLPNoAnswer = errors.New("phx: long-poll session owner did not answer in time")
	// errLPMalformed: a forwarding message could not be decoded.
	errLPMalformed = errors.New("phx: malformed long-poll forwarding message")
)

// lpTopicKey derives the key that names forwarding topics from the secret.
func lpTopicKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("phx long-poll forwarding topic"))
	return m.Sum(nil)
}

// lpFwdTopic is the forwarding topic of instance.
func lpFwdTopic(key []byte, instance string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(instance))
	return "phx_lp:" + hex.EncodeToString(m.Sum(nil)[:16])
}

// lpFwdMsg is one forwarding message.
type lpFwdMsg struct {
	Kind   byte
	Flags  byte
	Status int    // ans: the HTTP status (0: the request was cancelled, nothing written)
	ID     string // the request, made unique by the relay
	From   string // req: the relay's instance, whose topic gets the answer
	Token  string // req: the session token
	Body   []byte // req: the POST body; ans: the answer body
}

// encode lays m out as: version, kind, flags, uvarint status, then ID,
// From, Token and Body, each a uvarint length and the bytes.
func (m *lpFwdMsg) encode() []byte {
	n := 16 + len(m.ID) + len(m.From) + len(m.Token) + len(m.Body)
	b := append(make([]byte, 0, n), lpFwdVersion, m.Kind, m.Flags)
	b = binary.AppendUvarint(b, uint64(m.Status))
	for _, f := range [...]string{m.ID, m.From, m.Token} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Body)))
	return append(b, m.Body...)
}

// decodeLPFwdMsg decodes data; the message does not alias it.
func decodeLPFwdMsg(data []byte) (lpFwdMsg, error) {
	var m lpFwdMsg
	if len(data) < 3 || data[0] != lpFwdVersion {
		return m, errLPMalformed
	}
	m.Kind, m.Flags = data[1], data[2]
	rest := data[3:]
	st, k := binary.Uvarint(rest)
	if k <= 0 || st > 999 {
		return m, errLPMalformed
	}
	m.Status = int(st)
	rest = rest[k:]
	var fields [4][]byte
	for i := range fields {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return m, errLPMalformed
		}
		fields[i] = rest[k : k+int(n)]
		rest = rest[k+int(n):]
	}
	m.ID, m.From, m.Token = string(fields[0]), string(fields[1]), string(fields[2])
	m.Body = bytes.Clone(fields[3])
	return m, nil
}

// lpForwarder relays this node's requests for other instances' sessions and
// serves the requests other nodes relay to it. It is the Subscriber of the
// node's forwarding topic.
type lpForwarder struct {
	s       *Server
	ps      PubSub
	key     []byte
	self    string // this instance
	topic   string // this instance's forwarding topic
	timeout time.Duration

	subMu      sync.Mutex
	subscribed bool
	closed     bool // the Server has drained: never subscribe again

	seq     atomic.Uint64
	mu      sync.Mutex
	idle    *sync.Cond                    // on mu: signalled when a relayed request ends
	pending map[string]chan lpFwdMsg      // requests relayed from here, by ID
	serving map[string]context.CancelFunc // requests served here for others, by ID
}

// lpForwarder returns the server's forwarder, or nil when forwarding is
// off (no shared secret, or a negative ForwardTimeout).
func (s *Server) lpForwarder() *lpForwarder {
	lp := s.lp
	lp.fwdOnce.Do(func() {
		timeout := s.opts.LongPoll.ForwardTimeout
		if lp.topicKey == nil || timeout < 0 {
			return
		}
		if timeout == 0 {
			timeout = lpFwdDefaultTimeout
		}
		f := &lpForwarder{
			s:       s,
			ps:      s.pubsub,
			key:     lp.topicKey,
			self:    lp.instance,
			topic:   lpFwdTopic(lp.topicKey, lp.instance),
			timeout: timeout,
			pending: make(map[string]chan lpFwdMsg),
			serving: make(map[string]context.CancelFunc),
		}
		f.idle = sync.NewCond(&f.mu)
		lp.fwd = f
	})
	return lp.fwd
}

// subscribe subscribes the node to its forwarding topic, once (a failure
// is retried on the next call), until the Server has drained.
func (f *lpForwarder) subscribe() error {
	f.subMu.Lock()
	defer f.subMu.Unlock()
	return f.subscribeLocked()
}

func (f *lpForwarder) subscribeLocked() error {
	if f.subscribed {
		return nil
	}
	if f.closed {
		return ErrServerClosed
	}
	if err := f.ps.Subscribe(f.topic, f); err != nil {
		return fmt.Errorf("phx: long-poll forwarding: subscribe: %w", err)
	}
	f.subscribed = true
	go f.unsubscribeWhenDrained()
	return nil
}

// unsubscribeWhenDrained leaves the forwarding topic once the Server has
// drained and the requests it relays have their answers.
func (f *lpForwarder) unsubscribeWhenDrained() {
	<-f.s.drained
	f.subMu.Lock()
	f.closed = true // no more relays start
	f.subMu.Unlock()
	f.mu.Lock()
	for len(f.pending) > 0 {
		f.idle.Wait()
	}
	f.mu.Unlock()
	f.subMu.Lock()
	f.subscribed = false
	_ = f.ps.Unsubscribe(f.topic, f)
	f.subMu.Unlock()
}

// send publishes m on topic, waiting at most ForwardTimeout for the
// broker.
func (f *lpForwarder) send(topic string, m *lpFwdMsg) error {
	b, err := NewBroadcast(topic, lpFwdEvent, Binary(m.encode()))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	return f.ps.Broadcast(ctx, b, nil)
}

// Deliver implements [Subscriber]: requests are served on goroutines of
// their own, answers handed to the request waiting for them.
func (f *lpForwarder) Deliver(b *Broadcast) {
	if b.Event != lpFwdEvent || !b.Payload.Binary {
		return
	}
	m, err := decodeLPFwdMsg(b.Payload.Data)
	if err != nil {
		f.s.log.Debug("phx: long-poll forwarding message dropped", "err", err)
		return
	}
	switch m.Kind {
	case lpFwdGet, lpFwdPost:
		f.mu.Lock()
		_, dup := f.serving[m.ID]
		ctx, cancel := context.WithCancel(context.Background())
		if !dup {
			f.serving[m.ID] = cancel
		}
		f.mu.Unlock()
		if dup {
			cancel()
			return
		}
		go f.serve(ctx, cancel, m)
	case lpFwdCancel:
		f.mu.Lock()
		cancel := f.serving[m.ID]
		f.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	case lpFwdAck, lpFwdAnswer, lpFwdGone:
		f.mu.Lock()
		ch := f.pending[m.ID]
		f.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default: // a duplicate; the request has what it needs
			}
		}
	}
}

// serve serves a request relayed by another node, as if it had landed
// here, and sends the answer back.
func (f *lpForwarder) serve(ctx context.Context, cancel context.CancelFunc, m lpFwdMsg) {
	defer func() {
		f.mu.Lock()
		delete(f.serving, m.ID)
		f.mu.Unlock()
		cancel()
	}()
	s := f.s
	replyTo := lpFwdTopic(f.key, m.From)
	sess, _, _ := s.lp.lookup(m.Token, s.lp.rawToken(m.Token)) // the relaying node checked the kind against its path
	if sess == nil {
		if err := f.send(replyTo, &lpFwdMsg{Kind: lpFwdGone, ID: m.ID}); err != nil {
			s.log.Debug("phx: long-poll forwarding: answer not sent", "err", err)
		}
		return
	}
	ack := time.AfterFunc(f.timeout/4, func() {
		if err := f.send(replyTo, &lpFwdMsg{Kind: lpFwdAck, ID: m.ID}); err != nil {
			s.log.Debug("phx: long-poll forwarding: acknowledgement not sent", "err", err)
		}
	})
	rec := &lpRecorder{}
	switch m.Kind {
	case lpFwdGet:
		s.longPollPoll(ctx, rec, sess)
	case lpFwdPost:
		if s.lpCloseDraining(sess.c) {
			lpWriteStatus(rec, 410)
		} else {
			s.longPollPublish(ctx, rec, sess, m.Body, m.Flags&lpFwdNDJSON != 0, m.Flags&lpFwdTooBig != 0)
		}
	}
	ack.Stop()
	if err := f.send(replyTo, &lpFwdMsg{Kind: lpFwdAnswer, ID: m.ID, Status: rec.status, Body: rec.body.Bytes()}); err != nil {
		// A poll's frames are lost with it, as with a client that goes
		// away after they were taken.
		sess.c.logger().Info("phx: long-poll forwarding: answer not sent", "err", err, "status", rec.status)
	}
}

// relay sends the request m to owner and waits for its answer: for the
// owner to take it within ForwardTimeout, then for the answer within hold
// plus ForwardTimeout of sending. When stop is closed, the owner is asked
// to end the request, and its last answer is awaited ForwardTimeout more.
// When ctx ends, the owner is asked to end the request and relay returns
// ctx's error.
func (f *lpForwarder) relay(ctx context.Context, owner string, m *lpFwdMsg, hold time.Duration, stop <-chan struct{}) (lpFwdMsg, error) {
	topic := lpFwdTopic(f.key, owner)
	if mem, ok := f.ps.(*MemoryPubSub); ok && mem.SubscriberCount(topic) == 0 {
		return lpFwdMsg{}, errLPOwnerGone // not a Server of this process (any more)
	}
	m.ID = f.self + "." + strconv.FormatUint(f.seq.Add(1), 36)
	m.From = f.self
	answers := make(chan lpFwdMsg, 2) // an acknowledgement, then the answer
	// Registered while subscribed, so that the subscription outlasts it.
	f.subMu.Lock()
	err := f.subscribeLocked()
	if err == nil {
		f.mu.Lock()
		f.pending[m.ID] = answers
		f.mu.Unlock()
	}
	f.subMu.Unlock()
	if err != nil {
		return lpFwdMsg{}, fmt.Errorf("%w: %w", errLPOwnerGone, err)
	}
	defer func() {
		f.mu.Lock()
		delete(f.pending, m.ID)
		f.idle.Broadcast()
		f.mu.Unlock()
	}()
	cancelOwner := func() {
		if err := f.send(topic, &lpFwdMsg{Kind: lpFwdCancel, ID: m.ID, From: f.self}); err != nil {
			f.s.log.Debug("phx: long-poll forwarding: cancel not sent", "err", err)
		}
	}

	if err := f.send(topic, m); err != nil {
		return lpFwdMsg{}, fmt.Errorf("%w: %w", errLPOwnerGone, err)
	}
	taken := time.NewTimer(f.timeout)
	defer taken.Stop()
	deadline := time.NewTimer(hold + f.timeout)
	defer deadline.Stop()
	for {
		select {
		case a := <-answers:
			switch a.Kind {
			case lpFwdAck:
				taken.Stop()
				continue
			case lpFwdGone:
				return a, errLPSessionGone
			}
			return a, nil
		case <-taken.C:
			cancelOwner() // in case it takes the request after all
			return lpFwdMsg{}, errLPOwnerGone
		case <-deadline.C:
			cancelOwner()
			return lpFwdMsg{}, errLPNoAnswer
		case <-stop:
			stop = nil
			cancelOwner()
			deadline.Reset(f.timeout)
		case <-ctx.Done():
			cancelOwner()
			return lpFwdMsg{}, ctx.Err()
		}
	}
}

// lpRelayPoll relays a GET for owner's session. It returns false, having
// written nothing, when the session cannot be reached (its owner answers
// that it has none, or does not answer): the caller then opens a new
// session, as for any stale token.
func (s *Server) lpRelayPoll(w http.ResponseWriter, r *http.Request, token, owner string) bool {
	f := s.lpForwarder()
	if f == nil {
		return false
	}
	s.longPollDeadlines(w)
	a, err := f.relay(r.Context(), owner, &lpFwdMsg{Kind: lpFwdGet, Token: token}, s.opts.LongPoll.Window, s.drainStarted)
	switch {
	case err == nil && a.Status == 0:
		// Cancelled before it took anything (this node is shutting down,
		// or the client went away): poll again.
		lpWriteMessages(w, 204, token, nil)
	case err == nil:
		lpWriteAnswer(w, a)
	case errors.Is(err, errLPSessionGone), errors.Is(err, errLPOwnerGone):
		s.log.Debug("phx: long-poll session unreachable; opening a new one", "err", err, "remote", r.RemoteAddr)
		return false
	case errors.Is(err, errLPNoAnswer):
		s.log.Info("phx: long-poll poll relayed to its owner got no answer; the session counts as gone", "remote", r.RemoteAddr)
		lpWriteMessages(w, 410, token, nil)
	default: // the client went away
	}
	return true
}

// lpRelayPost relays a POST for owner's session: 410 when the session
// cannot be reached.
func (s *Server) lpRelayPost(w http.ResponseWriter, r *http.Request, token, owner string) {
	f := s.lpForwarder()
	s.longPollDeadlines(w)
	data, tooBig, err := s.lpReadBody(w, r)
	if err != nil {
		s.log.Debug("phx: long-poll body read failed", "err", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	m := &lpFwdMsg{Kind: lpFwdPost, Token: token, Body: data}
	if lpIsNDJSON(r) {
		m.Flags |= lpFwdNDJSON
	}
	if tooBig {
		m.Flags |= lpFwdTooBig
	}
	a, err := f.relay(r.Context(), owner, m, s.opts.LongPoll.Window, nil)
	switch {
	case err == nil && a.Status == 0: // the client went away
	case err == nil:
		lpWriteAnswer(w, a)
	case r.Context().Err() != nil:
	default:
		s.log.Debug("phx: long-poll POST for an unreachable session", "err", err, "remote", r.RemoteAddr)
		lpWriteStatus(w, 410)
	}
}

// lpWriteAnswer writes the answer an owner gave to a relayed request.
func lpWriteAnswer(w http.ResponseWriter, a lpFwdMsg) {
	if a.Status == http.StatusOK {
		lpWrite(w, a.Body)
		return
	}
	w.WriteHeader(a.Status)
	_, _ = w.Write(a.Body)
}

// lpRecorder is the http.ResponseWriter a relayed request is served into.
type lpRecorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (r *lpRecorder) Header() http.Header {
	if r.h == nil {
		r.h = make(http.Header)
	}
	return r.h
}

func (r *lpRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *lpRecorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}
