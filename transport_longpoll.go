package phx

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/phxgo/phx/internal/wire"
	"github.com/phxgo/phx/token"
)

// The long-poll transport (docs/protocol.md §6) serves <mount>/longpoll for
// clients that cannot keep a WebSocket open. A session stands in for the
// WebSocket connection: it is a conn like any other (same channels, same
// bounded outbound queue, same Connect, ID, Disconnect and Shutdown), reached
// over plain HTTP requests through a signed session token.
//
//	GET  without a live session: run Connect, open a session, answer
//	     {"status":410,"token":T,"messages":[]}
//	GET  with a session: answer its queued frames at once
//	     ({"status":200,...}), or hold up to LongPoll.Window for some, then
//	     {"status":204,...}
//	POST with a session: dispatch the client's frames (ndjson, one per
//	     line, base64 for binary frames; at most 100 lines, as Phoenix),
//	     answer {"status":200}
//
// A GET or POST whose token names another node's session is relayed to
// that node over the PubSub and answered as it answers
// (longpoll_forward.go).
//
// Every answer is HTTP 200 with the logical status in the JSON body, as the
// official client expects; it handles no other values than 200, 204, 410,
// 403 and 500 (and any non-200 on a POST as a failure).

const (
	// lpTokenHeader carries the session token (phoenix.js main); released
	// clients send it as the last "token" query parameter instead.
	lpTokenHeader = "X-Phoenix-Longpoll-Token"
	// lpAuthHeader carries phoenix.js's authToken option on GETs.
	lpAuthHeader = "X-Phoenix-AuthToken"
	// lpTokenSalt separates session tokens from every other use of the
	// secret.
	lpTokenSalt = "phx long-poll session"
	// lpTokenMaxAge is the session token's lifetime, Phoenix's default. A
	// token is only honoured while its session lives, which ends after
	// LongPoll.IdleTimeout without a poll.
	lpTokenMaxAge = 14 * 24 * time.Hour
)

// longPoll is a server's long-poll state: the token signer, the live
// sessions and the forwarding of other instances' sessions
// (longpoll_forward.go).
type longPoll struct {
	signer   *token.Signer
	instance string // this Server's random ID, written into its tokens
	topicKey []byte // names forwarding topics; nil with a random secret

	mu       sync.Mutex
	sessions map[string]*lpSession // by session ID

	fwdOnce sync.Once
	fwd     *lpForwarder // nil when forwarding is off
}

// lpTokenData is what a session token holds.
type lpTokenData struct {
	Server  string `json:"n"` // the instance that owns the session
	Session string `json:"s"`
	Raw     bool   `json:"r,omitempty"` // a raw socket's (RawSocketHandler) session
}

// newLongPoll makes the long-poll state; a nil secret means a random one.
// A secret too short is an error wrapping ErrInvalidOptions and
// token.ErrSecretTooShort.
func newLongPoll(secret []byte) (*longPoll, error) {
	var topicKey []byte
	if len(secret) > 0 {
		topicKey = lpTopicKey(secret)
	}
	if len(secret) == 0 {
		secret = make([]byte, token.MinSecretLen)
		rand.Read(secret) // never fails (crypto/rand panics instead)
	}
	signer, err := token.NewSigner(secret, lpTokenSalt, &token.Options{MaxAge: lpTokenMaxAge})
	if err != nil {
		return nil, fmt.Errorf("%w: LongPoll.Secret: %w", ErrInvalidOptions, err)
	}
	var id [8]byte
	rand.Read(id[:])
	return &longPoll{
		signer:   signer,
		instance: hex.EncodeToString(id[:]),
		topicKey: topicKey,
		sessions: make(map[string]*lpSession),
	}, nil
}

// lookup returns the live session token names. authentic reports whether
// the token was made by a server sharing this one's secret, even when its
// session is gone: such a token is not the application's own "token"
// parameter. owner is the instance that made an authentic token when it is
// not this one: the session, if it lives, is there.
//
// raw says which kind of session the request's path serves: a token of
// the other kind (a raw socket's on the channel socket's path, or the
// reverse) names no session there, as a gone one.
func (lp *longPoll) lookup(token string, raw bool) (sess *lpSession, authentic bool, owner string) {
	if token == "" {
		return nil, false, ""
	}
	var td lpTokenData
	if err := lp.signer.Verify(token, &td); err != nil {
		return nil, false, ""
	}
	if td.Raw != raw {
		return nil, true, ""
	}
	if td.Server != lp.instance {
		return nil, true, td.Server // another instance's session
	}
	lp.mu.Lock()
	sess = lp.sessions[td.Session]
	lp.mu.Unlock()
	if sess == nil || sess.c.ctx.Err() != nil {
		return nil, true, "" // expired, closed or closing
	}
	return sess, true, ""
}

// rawToken reports whether token is a raw socket's session token.
func (lp *longPoll) rawToken(token string) bool {
	var td lpTokenData
	return lp.signer.Verify(token, &td) == nil && td.Raw
}

func (lp *longPoll) remove(sess *lpSession) {
	lp.mu.Lock()
	if lp.sessions[sess.id] == sess {
		delete(lp.sessions, sess.id)
	}
	lp.mu.Unlock()
}

// lpSession is one long-poll client: its conn, and the bookkeeping of the
// requests that reach it.
type lpSession struct {
	id        string
	token     string
	c         *conn
	lp        *longPoll
	idleAfter time.Duration // LongPoll.IdleTimeout

	started chan struct{} // closed when Serve has made the session reachable
	served  bool          // Serve was called (read once Serve returned)
	wake    chan struct{} // signalled (capacity 1) by Wake when frames arrive

	// dispatch is held (capacity 1) while a POST hands frames to the conn,
	// so frames are handled one at a time and in order, as on a WebSocket;
	// once the session closes, its teardown holds it for good.
	dispatch chan struct{}

	mu         sync.Mutex
	polls      int           // GETs being served
	lastPoll   time.Time     // start or end of the latest GET
	pollGen    uint64        // the most recent GET; older ones give way to it
	superseded chan struct{} // closed when a GET newer than pollGen arrives
	idle       *time.Timer
}

// serveLongPoll serves one long-poll request.
func (s *Server) serveLongPoll(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "application/json; charset=utf-8")
	switch r.Method {
	case http.MethodGet, http.MethodPost, http.MethodOptions:
	default:
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if err := s.CheckRequest(r); err != nil {
		s.log.Info("phx: long-poll request refused", "err", err, "origin", r.Header.Get("Origin"), "host", r.Host, "remote", r.RemoteAddr)
		lpWriteStatus(w, 403)
		return
	}
	switch r.Method {
	case http.MethodOptions:
		// CORS preflight, sent by browsers for the ndjson content type and
		// the custom headers. Origins were checked above.
		h.Set("Access-Control-Allow-Headers", r.Header.Get("Access-Control-Request-Headers"))
		h.Set("Access-Control-Allow-Methods", "get, post, options")
		h.Set("Access-Control-Max-Age", "3600")
		w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		s.longPollGet(w, r)
	case http.MethodPost:
		s.longPollPost(w, r)
	}
}

// lpSessionToken returns the session token of r: the header if present,
// else the last "token" query value (apps often pass a "token" parameter of
// their own, which comes first).
func lpSessionToken(r *http.Request, q url.Values) (token string, fromQuery bool) {
	if t := r.Header.Get(lpTokenHeader); t != "" {
		return t, false
	}
	if vs := q["token"]; len(vs) > 0 {
		return vs[len(vs)-1], true
	}
	return "", false
}

func (s *Server) longPollGet(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	token, fromQuery := lpSessionToken(r, q)
	sess, authentic, owner := s.lp.lookup(token, isRawRequest(r))
	if sess != nil {
		s.longPollDeadlines(w)
		s.longPollPoll(r.Context(), w, sess)
		return
	}
	if owner != "" && s.lpRelayPoll(w, r, token, owner) {
		return
	}
	if token != "" {
		s.log.Debug("phx: long-poll session unknown or gone; opening a new one", "authentic_token", authentic, "remote", r.RemoteAddr)
	}
	if authentic && fromQuery {
		// Our stale session token is not one of the client's params.
		vs := q["token"]
		if len(vs) == 1 {
			delete(q, "token")
		} else {
			q["token"] = vs[:len(vs)-1]
		}
	}
	s.longPollOpen(w, r, q)
}

// longPollOpen runs Connect and opens a session, as a WebSocket upgrade
// does.
func (s *Server) longPollOpen(w http.ResponseWriter, r *http.Request, q url.Values) {
	conn, err := s.Accept(newConnectInfo(r, q, r.Header.Get(lpAuthHeader), "longpoll"))
	if err != nil {
		var refused *RefusedError
		switch {
		case errors.As(err, &refused) && refused.Status < 500:
			s.log.Info("phx: long-poll connection refused", "err", err, "remote", r.RemoteAddr)
			lpWriteStatus(w, 403) // the client knows no other refusal
		default:
			// Shutdown has begun, or Connect failed: 500 makes the client
			// retry with backoff.
			s.log.Info("phx: long-poll connection refused", "err", err, "remote", r.RemoteAddr)
			lpWriteStatus(w, 500)
		}
		return
	}
	if f := s.lpForwarder(); f != nil {
		// Other nodes relay this session's requests to this one's topic.
		if err := f.subscribe(); err != nil {
			s.log.Warn("phx: long-poll forwarding unavailable; this session is reachable only through this node", "err", err)
		}
	}
	sess, err := s.newLongPollSession(conn)
	if err != nil {
		s.log.Error("phx: cannot open long-poll session", "err", err)
		lpWriteStatus(w, 500)
		return
	}
	// The session lives on a goroutine of its own, across requests; this
	// one answers once it is registered and subscribed to its socket ID.
	failed := make(chan error, 1)
	go func() {
		if err := conn.Serve(sess, TransportFeatures{TextOnly: true, OwnLiveness: true}); err == ErrServerClosed && !sess.served {
			failed <- err // never served: Shutdown began after Accept
			return
		}
		conn.c.debug("phx: disconnected", "reason", conn.c.closeText)
	}()
	select {
	case <-sess.started:
	case <-failed:
		lpWriteStatus(w, 500)
		return
	}
	conn.c.debug("phx: connected", "remote", r.RemoteAddr, "vsn", q.Get("vsn"))
	lpWriteMessages(w, 410, sess.token, nil)
}

// newLongPollSession makes the session that carries conn.
func (s *Server) newLongPollSession(conn *Conn) (*lpSession, error) {
	var sid [16]byte
	rand.Read(sid[:])
	sessID := base64.RawURLEncoding.EncodeToString(sid[:])
	token, err := s.lp.signer.Sign(lpTokenData{Server: s.lp.instance, Session: sessID, Raw: conn.c.raw != nil})
	if err != nil {
		return nil, err
	}
	return &lpSession{
		id:         sessID,
		token:      token,
		c:          conn.c,
		lp:         s.lp,
		idleAfter:  s.opts.LongPoll.IdleTimeout,
		started:    make(chan struct{}),
		wake:       make(chan struct{}, 1),
		dispatch:   make(chan struct{}, 1),
		lastPoll:   time.Now(),
		superseded: make(chan struct{}),
	}, nil
}

// Serve implements [Transport]. It makes the session reachable by its
// token, waits for it to close (idle timeout, Disconnect, Shutdown, a slow
// or misbehaving client), then makes it unreachable. Requests do the
// reading and writing.
func (sess *lpSession) Serve(conn *Conn) error {
	sess.served = true
	sess.lp.mu.Lock()
	sess.lp.sessions[sess.id] = sess
	sess.lp.mu.Unlock()
	if sess.idleAfter > 0 { // a negative IdleTimeout: never closed for idleness
		sess.mu.Lock()
		sess.idle = time.AfterFunc(sess.idleAfter, sess.checkIdle)
		sess.mu.Unlock()
	}
	close(sess.started)

	<-conn.Done()
	sess.mu.Lock()
	if sess.idle != nil {
		sess.idle.Stop()
	}
	sess.mu.Unlock()
	sess.lp.remove(sess)
	sess.dispatch <- struct{}{} // wait out a POST being dispatched; never released
	return nil
}

// Wake implements [Transport]: it signals the poll waiting, if any.
func (sess *lpSession) Wake() { lpSignal(sess) }

// Close implements [Transport]. Nothing to do: a poll being held sees the
// connection's Done and answers 410, and so does every later request.
func (sess *lpSession) Close(code int, reason string) {}

// checkIdle closes the session if it has not been polled for its idle
// timeout.
func (sess *lpSession) checkIdle() {
	timeout := sess.idleAfter
	sess.mu.Lock()
	next := timeout
	idle := time.Since(sess.lastPoll)
	switch {
	case sess.polls > 0: // being polled: alive
	case idle >= timeout:
		sess.mu.Unlock()
		sess.c.logger().Info("phx: closing idle long-poll session", "idle", idle.Round(time.Millisecond))
		sess.c.close(closeGoingAway, "idle timeout", ErrClosed)
		return
	default:
		next = timeout - idle
	}
	if sess.c.ctx.Err() == nil {
		sess.idle.Reset(next)
	}
	sess.mu.Unlock()
}

// beginPoll registers a GET as the session's current poll and makes the
// previous one give way.
func (sess *lpSession) beginPoll() (gen uint64, superseded <-chan struct{}) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	close(sess.superseded)
	sess.superseded = make(chan struct{})
	sess.pollGen++
	sess.polls++
	sess.lastPoll = time.Now()
	return sess.pollGen, sess.superseded
}

func (sess *lpSession) endPoll() {
	sess.mu.Lock()
	sess.polls--
	sess.lastPoll = time.Now()
	sess.mu.Unlock()
}

// take takes the queued frames if gen is still the current poll; more is
// false when there are none.
func (sess *lpSession) take(gen uint64) (frames []Frame, current, more bool) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if gen != sess.pollGen {
		return nil, false, false
	}
	frames, more = sess.c.pub.TakeFrames(nil)
	return frames, true, more
}

// longPollPoll answers a GET for a live session: its queued frames now, or
// as soon as some arrive within the window, or 204 when none did. A newer
// GET of the same session makes this one answer 204 at once, and a session
// that closes answers 410 (the client then reconnects and rejoins). Once
// Shutdown has begun, the poll closes its session and answers 410 at once,
// so that it does not hold up http.Server.Shutdown for a window. When ctx
// ends (the client went away, or the node that relayed the poll cancelled
// it) nothing is taken and nothing is written.
func (s *Server) longPollPoll(ctx context.Context, w http.ResponseWriter, sess *lpSession) {
	c := sess.c
	gen, superseded := sess.beginPoll()
	defer sess.endPoll()
	window := s.opts.LongPoll.Window
	timer := time.NewTimer(window)
	defer timer.Stop()
	for {
		if c.ctx.Err() != nil || s.lpCloseDraining(c) {
			lpWriteMessages(w, 410, sess.token, nil)
			return
		}
		frames, current, more := sess.take(gen)
		if !current {
			// A newer poll is being served. The wake signal this poll may
			// have consumed belongs to it.
			lpSignal(sess)
			lpWriteMessages(w, 204, sess.token, nil)
			return
		}
		if more {
			lpWriteMessages(w, 200, sess.token, frames)
			return
		}
		select {
		case <-sess.wake:
		case <-c.ctx.Done():
		case <-s.drainStarted: // answered 410 at the top of the loop
		case <-superseded:
		case <-timer.C:
			if frames, current, more = sess.take(gen); current && more {
				lpWriteMessages(w, 200, sess.token, frames)
			} else {
				if !current {
					lpSignal(sess)
				}
				lpWriteMessages(w, 204, sess.token, nil)
			}
			return
		case <-ctx.Done():
			return // the client went away; nothing was taken
		}
	}
}

// lpCloseDraining closes a long-poll session once Shutdown has begun,
// rather than in its batch: its requests are what http.Server.Shutdown
// waits for. It reports whether the server is draining.
func (s *Server) lpCloseDraining(c *conn) bool {
	select {
	case <-s.drainStarted:
		c.close(closeServiceRestart, "server shutting down", ErrServerClosed)
		return true
	default:
		return false
	}
}

// longPollDeadlines sets the connection deadlines of a poll or POST: reads
// end LongPoll.Window + WriteTimeout from now (20s by default, when
// phoenix.js gives up on a request), writes WriteTimeout later. A poll is
// answered only after the window, and an http.Server ReadTimeout or
// WriteTimeout shorter than that would otherwise cut it off (a read
// deadline that passes while the handler runs cancels the request's
// context). The read deadline also bounds a slow POST body, which is then
// still answered (400). With a negative WriteTimeout there is no write
// deadline, and reads get the default 10s past the window.
func (s *Server) longPollDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	grace := s.opts.WriteTimeout
	if grace < 0 {
		grace = 10 * time.Second
	}
	read := time.Now().Add(s.opts.LongPoll.Window + grace)
	var write time.Time // none for a negative WriteTimeout
	if s.opts.WriteTimeout > 0 {
		write = read.Add(s.opts.WriteTimeout)
	}
	// Where unsupported, the server's own deadlines stay.
	_ = rc.SetReadDeadline(read)
	_ = rc.SetWriteDeadline(write)
}

// lpSignal signals the session's wake channel: frames arrived, or a poll
// that gave way to a newer one passes on the signal it may have consumed.
func lpSignal(sess *lpSession) {
	select {
	case sess.wake <- struct{}{}:
	default:
	}
}

// longPollPost dispatches the frames of a POST to the session.
func (s *Server) longPollPost(w http.ResponseWriter, r *http.Request) {
	token, _ := lpSessionToken(r, r.URL.Query())
	sess, _, owner := s.lp.lookup(token, isRawRequest(r))
	if sess == nil && owner != "" && s.lpForwarder() != nil {
		s.lpRelayPost(w, r, token, owner)
		return
	}
	if sess == nil || s.lpCloseDraining(sess.c) {
		lpWriteStatus(w, 410) // a POST never opens a session
		return
	}
	s.longPollDeadlines(w)
	data, tooBig, err := s.lpReadBody(w, r)
	if err != nil {
		// A client too slow to send its body (or gone): the session
		// survives, the client retries on a new request.
		sess.c.debug("phx: long-poll body read failed", "err", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.longPollPublish(r.Context(), w, sess, data, lpIsNDJSON(r), tooBig)
}

// lpReadBody reads a POST body up to LongPoll.MaxBody; tooBig reports a
// larger one. err is a failure to read it (a slow or vanished client).
func (s *Server) lpReadBody(w http.ResponseWriter, r *http.Request) (data []byte, tooBig bool, err error) {
	body := r.Body
	if limit := s.opts.LongPoll.MaxBody; limit > 0 {
		body = http.MaxBytesReader(w, r.Body, limit)
	}
	data, err = io.ReadAll(body)
	if err != nil {
		var tb *http.MaxBytesError
		if errors.As(err, &tb) {
			return nil, true, nil
		}
		return nil, false, err
	}
	return data, false, nil
}

// lpIsNDJSON reports whether a POST carries ndjson lines (the media type
// compared without its parameters, case ignored).
func lpIsNDJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/x-ndjson"
}

// longPollPublish dispatches a POST body read for sess (tooBig: it was
// over LongPoll.MaxBody, which closes the session). When ctx ends before
// the POST gets its turn, nothing is dispatched and nothing written.
func (s *Server) longPollPublish(ctx context.Context, w http.ResponseWriter, sess *lpSession, data []byte, ndjson, tooBig bool) {
	c := sess.c
	if tooBig {
		c.logger().Info("phx: long-poll body too large; closing session", "max", s.opts.LongPoll.MaxBody)
		c.close(closeTooBig, "message too big", ErrClosed)
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}

	// One POST at a time hands frames to the conn, as a WebSocket's single
	// reader does; a POST that cannot get its turn within the window gives
	// up with 408.
	timer := time.NewTimer(s.opts.LongPoll.Window)
	defer timer.Stop()
	select {
	case sess.dispatch <- struct{}{}:
	case <-c.ctx.Done():
		lpWriteStatus(w, 410)
		return
	case <-s.drainStarted:
		s.lpCloseDraining(c)
		lpWriteStatus(w, 410)
		return
	case <-timer.C:
		c.logger().Info("phx: long-poll POST timed out waiting for dispatch")
		lpWriteStatus(w, 408)
		return
	case <-ctx.Done():
		return
	}
	defer func() { <-sess.dispatch }()

	if !ndjson {
		// Legacy clients: the body is one text frame.
		if st := longPollDispatch(c, data, false); st != 0 {
			lpWriteFailure(w, st)
			return
		}
		lpWriteStatus(w, 200)
		return
	}
	for n := 0; n < wire.MaxPostLines && len(data) > 0; {
		var line []byte
		line, data = wire.NextPostLine(data)
		if len(line) == 0 {
			continue
		}
		n++
		frame, binary, err := wire.DecodePostLine(line)
		if err != nil {
			c.malformed(fmt.Errorf("line %d: %w", n, err))
			lpWriteStatus(w, 410)
			return
		}
		if st := longPollDispatch(c, frame, binary); st != 0 {
			lpWriteFailure(w, st)
			return
		}
	}
	lpWriteStatus(w, 200)
}

// longPollDispatch hands one frame to the conn. It returns 0, or the
// answer to give when the session is closing: 413 for a frame larger than
// MaxMessageSize (a WebSocket is closed with 1009 for that), 410 when the
// frame was malformed or something else closed the session.
func longPollDispatch(c *conn, data []byte, binary bool) int {
	if c.ctx.Err() != nil {
		return 410
	}
	if err := c.pub.Receive(Frame{Data: data, Binary: binary}); errors.Is(err, ErrMessageTooBig) {
		return http.StatusRequestEntityTooLarge
	}
	if c.ctx.Err() != nil {
		return 410 // malformed, or something else closed the session
	}
	return 0
}

// lpWriteFailure answers a POST whose dispatch closed the session.
func lpWriteFailure(w http.ResponseWriter, status int) {
	if status == http.StatusRequestEntityTooLarge {
		w.WriteHeader(status)
		return
	}
	lpWriteStatus(w, status)
}

// lpWriteStatus writes {"status":N}.
func lpWriteStatus(w http.ResponseWriter, status int) {
	lpWrite(w, wire.AppendPollStatus(nil, status))
}

// lpWriteMessages writes {"status":N,"token":T,"messages":[...]}, each
// frame as a JSON string. Binary frames cannot be represented and are
// skipped (conn.enqueue already drops them for long-poll sessions).
func lpWriteMessages(w http.ResponseWriter, status int, token string, frames []Frame) {
	n := 64 + len(token)
	for _, f := range frames {
		n += len(f.Data) + len(f.Data)/8 + 3
	}
	buf := wire.AppendPollHead(make([]byte, 0, n), status, token)
	i := 0
	for j, f := range frames {
		if !f.Binary {
			buf = wire.AppendPollMessage(buf, i, f.Data)
			i++
		}
		frames[j] = Frame{} // release the frame's memory with the response
	}
	lpWrite(w, wire.AppendPollTail(buf))
}

// lpWrite writes an answer body with status 200, the only HTTP status the
// official client reads a body from.
func lpWrite(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
