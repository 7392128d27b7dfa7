package phx

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx/internal/wire"
)

// serveWebSocket upgrades r to a WebSocket connection and serves it until
// it closes.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "phx: WebSocket endpoint takes GET with an Upgrade", http.StatusBadRequest)
		return
	}
	if s.isDraining() {
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	if err := s.CheckRequest(r); err != nil {
		s.log.Info("phx: connection refused", "err", err, "origin", r.Header.Get("Origin"), "host", r.Host, "remote", r.RemoteAddr)
		http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
		return
	}
	offered := headerList(r.Header, "Sec-WebSocket-Protocol")
	authToken, rest, err := wire.ExtractAuthToken(offered)
	subprotocol := ""
	if err == nil && len(rest) > 0 {
		subprotocol = s.pickSubprotocol(rest)
	}
	if err == nil && len(offered) > 0 && subprotocol == "" {
		err = errNoPhoenixSubprotocol
	}
	if err != nil {
		s.log.Info("phx: connection refused: bad Sec-WebSocket-Protocol", "err", err, "offered", offered, "remote", r.RemoteAddr)
		http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
		return
	}
	info := newConnectInfo(r, r.URL.Query(), authToken, "websocket")
	info.Subprotocol = subprotocol
	conn, err := s.Accept(info)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	t := &wsTransport{handshake: make(chan *websocket.Conn)}
	// The connection outlives this request: Serve runs on a goroutine of
	// its own, so that net/http's connection goroutine, its request and
	// response state are freed once the upgrade is done (the connection is
	// hijacked, net/http is done with it). The upgrade itself is done here,
	// while w is valid, when Serve asks for it: by then the connection is
	// subscribed to its ID, so a Disconnect made once the client has its
	// 101 reaches it.
	go t.run(conn)
	if _, ok := <-t.handshake; !ok {
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	t.handshake <- s.upgrade(w, r, t)
}

// pickSubprotocol returns the first of the server's subprotocols ("phoenix",
// then Options.Subprotocols) that the client offered, "" for none, as
// coder/websocket will pick it.
func (s *Server) pickSubprotocol(offered []string) string {
	for _, p := range s.subprotocols {
		if slices.Contains(offered, p) {
			return p
		}
	}
	return ""
}

// refuse answers a request whose connection Accept refused.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusServiceUnavailable
	var refused *RefusedError
	if errors.As(err, &refused) {
		status = refused.Status
	}
	s.log.Info("phx: connection refused", "err", err, "remote", r.RemoteAddr)
	if h := s.opts.ConnectErrorHandler; h != nil && refused != nil {
		h(w, r, refused)
		return
	}
	http.Error(w, http.StatusText(status), status)
}

// upgrade completes the WebSocket handshake: nil when it failed (the
// response is written either way).
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, t *wsTransport) *websocket.Conn {
	if !isUpgrade(r) {
		// coder/websocket answers 426 Upgrade Required; Phoenix answers a
		// plain GET on the WebSocket path with 400.
		s.log.Debug("phx: WebSocket upgrade failed: not an upgrade request", "remote", r.RemoteAddr)
		http.Error(w, "phx: not a WebSocket upgrade request", http.StatusBadRequest)
		return nil
	}
	uw := &upgradeWriter{ResponseWriter: w, writeTimeout: s.opts.WriteTimeout}
	accept := &websocket.AcceptOptions{
		Subprotocols:       s.subprotocols,
		InsecureSkipVerify: true, // origin already checked by our own policy
	}
	if raw := t.conn.c.raw; raw != nil {
		accept.OnPingReceived = func(_ context.Context, p []byte) bool {
			raw.handleControl(ControlFrame{Payload: p})
			return true
		}
		accept.OnPongReceived = func(_ context.Context, p []byte) {
			raw.handleControl(ControlFrame{Pong: true, Payload: p})
		}
	}
	if s.opts.Compress {
		accept.CompressionMode = websocket.CompressionNoContextTakeover
		accept.CompressionThreshold = s.opts.CompressThreshold
	}
	ws, err := websocket.Accept(uw, r, accept)
	if err != nil {
		s.log.Debug("phx: WebSocket upgrade failed", "err", err, "remote", r.RemoteAddr)
		return nil
	}
	limit := s.opts.MaxMessageSize
	if limit < 0 {
		limit = -1
	}
	ws.SetReadLimit(limit)
	t.out = uw.out
	t.in = uw.in
	if t.in.raw != nil {
		t.in.peek = t.in.peekReadable
	}
	t.conn.c.debug("phx: connected", "remote", r.RemoteAddr, "vsn", r.URL.Query().Get("vsn"))
	return ws
}

// wsTransport is the WebSocket [Transport]: one goroutine reads (Serve);
// writes take turns in the server's writePool as frames are queued (see
// Wake and writeTurn).
type wsTransport struct {
	conn *Conn
	// handshake: Serve asks for the upgrade (a nil send) and receives the
	// upgraded connection, nil if the upgrade failed. Unused afterwards.
	handshake chan *websocket.Conn
	ws        *websocket.Conn
	out       *batchWriter
	in        wsInput
	write     func() // t.write as a func value, made once (see Wake)
	writers   sync.WaitGroup

	attached    atomic.Bool // ws and write are set: writers may start
	wakeLater   bool        // under mu: a Wake came before attachSocket
	mu          sync.Mutex
	closeCode   int // a Close that came before the upgrade finished
	closeReason string
	closed      bool
	// closing: ws.Close was started, and reads coder/websocket's reader
	// on a goroutine of its own; awaitInput no longer looks at it.
	closing bool
}

var (
	errUpgradeFailed        = errors.New("phx: WebSocket upgrade failed")
	errNoPhoenixSubprotocol = errors.New(`phx: subprotocols offered without "phoenix" or one of Options.Subprotocols`)
)

// run serves conn over t, on the connection's own goroutine.
func (t *wsTransport) run(conn *Conn) {
	if err := conn.Serve(t, TransportFeatures{}); err == ErrServerClosed && t.conn == nil {
		close(t.handshake) // never served: the request answers 503
		return
	}
	t.finish()
}

// finish closes the socket once the connection is torn down, and waits for
// the writer.
func (t *wsTransport) finish() {
	if t.ws != nil {
		t.ws.CloseNow()
	}
	t.writers.Wait()
	t.conn.c.debug("phx: disconnected", "code", t.conn.c.closeCode)
}

// Serve implements [Transport]: it has the upgrade done, then reads frames
// until the connection fails or finishes closing.
func (t *wsTransport) Serve(conn *Conn) error {
	t.conn = conn
	t.handshake <- nil
	ws := <-t.handshake
	t.handshake = nil
	if ws == nil {
		return errUpgradeFailed
	}
	t.attachSocket(ws)
	t.readLoop(ws)
	return nil
}

// attachSocket makes ws the transport's socket, and carries out a Close
// that came before it.
func (t *wsTransport) attachSocket(ws *websocket.Conn) {
	// Made once: "go t.write()" would allocate its closure on every
	// start, once per connection per broadcast.
	t.write = t.writeLoop
	t.mu.Lock()
	t.ws = ws
	t.attached.Store(true)
	closed, code, reason := t.closed, t.closeCode, t.closeReason
	t.closing = closed
	wake := t.wakeLater
	t.mu.Unlock()
	if closed {
		go ws.Close(websocket.StatusCode(code), reason)
	}
	if wake {
		t.Wake()
	}
}

// Wake implements [Transport]: it starts a writer. Frames queued before the
// upgrade (a raw socket's Init pushes) wait for attachSocket.
func (t *wsTransport) Wake() {
	if !t.attached.Load() {
		t.mu.Lock()
		if !t.attached.Load() {
			t.wakeLater = true
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
	}
	t.writers.Add(1)
	if t.out.raw != nil {
		t.conn.c.srv.writers.submit(t) // see writeTurn
		return
	}
	go t.write()
}

// Close implements [Transport]: the close handshake runs on a goroutine of
// its own; Serve's read returns when it is done.
func (t *wsTransport) Close(code int, reason string) {
	t.mu.Lock()
	ws := t.ws
	if ws == nil {
		t.closed, t.closeCode, t.closeReason = true, code, reason
	} else {
		t.closing = true
	}
	t.mu.Unlock()
	if ws != nil {
		go ws.Close(websocket.StatusCode(code), reason)
	}
}

// readLoop reads frames until the connection fails or finishes closing.
// It reads with a context that never ends: coder/websocket kills the
// connection when a read's context ends, and closing is done with close
// codes instead.
//
// Between frames it waits in awaitInput, not in ws.Read: an idle
// connection's reader is parked there for most of its life, and how deep
// it is parked decides its stack. Parked inside coder/websocket's Read it
// uses ≈ 1.9 KiB of stack, too much for the runtime to shrink a stack that
// grew to 8 KiB (the starting size follows the average goroutine, which a
// join storm makes large) back to 4 KiB; parked in awaitInput it uses
// ≈ 0.6 KiB, and the next GC halves it.
func (t *wsTransport) readLoop(ws *websocket.Conn) {
	for {
		t.awaitInput()
		typ, data, err := ws.Read(context.Background())
		if err != nil {
			t.readFailed(err)
			return
		}
		// A malformed frame closes the connection (Receive did): keep
		// reading until the close handshake ends.
		_ = t.conn.Receive(Frame{Data: data, Binary: typ == websocket.MessageBinary})
	}
}

// awaitInput returns once a read would not block: the reader holds
// buffered bytes, or the socket has input (or failed). It returns at once
// when the socket cannot be waited on (not a system socket: TLS) or once a
// close handshake reads on its own.
func (t *wsTransport) awaitInput() {
	in := &t.in
	if in.raw == nil {
		return
	}
	t.mu.Lock()
	ready := t.closing || in.br.Buffered() > 0 || (in.prefixed != nil && len(in.prefixed.prefix) > 0)
	t.mu.Unlock()
	if !ready {
		_ = in.raw.Read(in.peek) // an error: ws.Read reports it
	}
}

// readFailed logs why reading ended, and closes with 1009 for a message
// over MaxMessageSize.
func (t *wsTransport) readFailed(err error) {
	c := t.conn.c
	switch status := websocket.CloseStatus(err); {
	case status == websocket.StatusMessageTooBig || errors.Is(err, websocket.ErrMessageTooBig):
		c.logger().Info("phx: message too big", "max", c.srv.opts.MaxMessageSize)
		t.conn.Close(closeTooBig, "message too big")
	case status != -1:
		c.debug("phx: client closed", "code", int(status))
	default:
		c.debug("phx: read failed", "err", err)
	}
}

// writeLoop writes queued frames until the queue is empty, then returns:
// the next frame queued starts another writer. It runs on a goroutine of
// its own: for a socket that cannot be written without blocking (TLS), or
// once a turn in the server's write pool found the socket full.
func (t *wsTransport) writeLoop() {
	defer t.writers.Done()
	var batch []Frame
	for {
		var ok bool
		// Frames in pieces stay in pieces (see writePieces).
		if batch, ok = t.conn.c.out.takeOrIdle(batch); !ok {
			return
		}
		t.writeBatch(batch, false)
		// After a failure, or while closing (the close handshake is under
		// way), the queue is closed: takeOrIdle ends this writer.
	}
}

// wsTurnBatches bounds what one turn in the write pool writes, so that a
// connection with a steady stream of frames takes its turn with the
// others.
const wsTurnBatches = 4

// writeTurn implements writeTurner: the writer's turn on a worker of the
// server's writePool. It writes as writeLoop does, but never waits for the
// socket: once a write finds the socket full, batchWriter keeps the rest,
// and the writer continues on a goroutine of its own (writeStalled), which
// waits for the client under WriteTimeout as writeLoop does. One wait is
// left: coder/websocket's write lock, when another goroutine of the same
// connection writes a control frame to a full socket (the pong to a
// client's ping, the close handshake); coder/websocket bounds that with
// its 5-second control-frame timeout. phoenix.js and browsers send no
// WebSocket pings.
func (t *wsTransport) writeTurn() (more bool) {
	q := &t.conn.c.out
	var batch []Frame
	for range wsTurnBatches {
		var ok bool
		if batch, ok = q.takeOrIdle(batch); !ok {
			t.writers.Done()
			return false
		}
		t.writeBatch(batch, true)
		if t.out.isStalled() {
			q.recycle(batch)
			go t.writeStalled()
			return false
		}
	}
	q.recycle(batch)
	return true
}

// writeStalled finishes what a turn in the write pool could not write, and
// goes on as writeLoop.
func (t *wsTransport) writeStalled() {
	if err := t.out.finishStalled(); err != nil {
		t.writeFailed(err)
	}
	t.writeLoop()
}

// writeBatch writes frames taken together with one system call (or one per
// wsMaxBatchBytes): out is corked while coder/websocket frames them, and
// each socket write must finish within WriteTimeout, or, when nonblocking,
// write what the socket takes at once (see batchWriter).
func (t *wsTransport) writeBatch(batch []Frame, nonblocking bool) {
	ws, out := t.ws, t.out
	out.cork(nonblocking)
	var err error
	for _, f := range batch {
		typ := websocket.MessageText
		if f.Binary {
			typ = websocket.MessageBinary
		}
		// coder/websocket writes into out's buffer here; out reaches
		// the socket only past wsMaxBatchBytes, under its own write
		// deadline, so this context needs none.
		if f.rest != nil {
			err = writePieces(ws, typ, &f)
		} else {
			err = ws.Write(context.Background(), typ, f.Data)
		}
		if err != nil {
			break
		}
	}
	if ferr := out.uncork(); err == nil {
		err = ferr
	}
	if err != nil {
		t.writeFailed(err)
	}
}

// writeFailed closes the connection after a failed write, unless it is
// closing already.
func (t *wsTransport) writeFailed(err error) {
	conn := t.conn
	if conn.c.ctx.Err() != nil {
		return
	}
	conn.c.logger().Info("phx: write failed; closing connection", "err", err)
	conn.Close(closeGoingAway, "write failed")
	t.ws.CloseNow()
}

// WebSocket buffer sizes. net/http hands a hijacked connection over with 4
// KiB read and write buffers, which coder/websocket would keep for the
// connection's life; upgradeWriter replaces them with small ones, so that
// idle connections stay small. Larger frames are read straight into their
// message, past the read buffer, and writes are gathered by batchWriter.
const (
	wsReadBufferSize  = 512
	wsWriteBufferSize = 256 // holds any control frame (125-byte payload)
	// wsMaxBatchBytes: a corked batch is written out when it grows past
	// this, so a burst never holds more than this much in memory.
	wsMaxBatchBytes = 64 << 10
	// wsDirectWriteBytes: a piece this large (a big frame's payload) is
	// written as it is rather than copied into the batch: a large
	// broadcast would otherwise cost a copy and an allocation of its size
	// per subscriber.
	wsDirectWriteBytes = 16 << 10
)

// writePieces writes a frame in pieces as one message, a fragment per
// piece: its shared bytes are written from where they are, never copied
// into a frame of this connection's own.
func writePieces(ws *websocket.Conn, typ websocket.MessageType, f *Frame) error {
	w, err := ws.Writer(context.Background(), typ)
	if err != nil {
		return err
	}
	for _, p := range [...][]byte{f.Data, f.rest.shared, f.rest.tail} {
		if len(p) == 0 {
			continue
		}
		if _, err := w.Write(p); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}

// upgradeWriter is the ResponseWriter given to websocket.Accept. Its Hijack
// hands coder/websocket the connection with small buffers (see
// wsReadBufferSize), the write side through a batchWriter.
type upgradeWriter struct {
	http.ResponseWriter
	writeTimeout time.Duration
	out          *batchWriter // set by Hijack
	in           wsInput      // set by Hijack
}

// Hijack implements [http.Hijacker].
func (u *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(u.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if brw.Writer.Buffered() > 0 { // the 101 response: net/http flushes it, but be sure
		if err := brw.Writer.Flush(); err != nil {
			nc.Close()
			return nil, nil, err
		}
	}
	var conn net.Conn = nc
	if n := brw.Reader.Buffered(); n > 0 { // sent by the client right behind its request
		b, _ := brw.Reader.Peek(n)
		conn = &prefixedConn{Conn: nc, prefix: bytes.Clone(b)}
	}
	u.in.br = bufio.NewReaderSize(conn, wsReadBufferSize)
	u.in.prefixed, _ = conn.(*prefixedConn)
	u.in.raw = waitableSocket(nc)
	u.out = &batchWriter{conn: nc, raw: u.in.raw, timeout: u.writeTimeout}
	return conn, bufio.NewReadWriter(u.in.br, bufio.NewWriterSize(u.out, wsWriteBufferSize)), nil
}

// Unwrap lets [http.ResponseController] reach the wrapped ResponseWriter.
func (u *upgradeWriter) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// wsInput is the read side coder/websocket was handed, as awaitInput
// needs it: the reader it reads frames from (and the prefix under it),
// and the socket to wait on, nil when there is none (a TLS connection).
type wsInput struct {
	br       *bufio.Reader
	prefixed *prefixedConn
	raw      syscall.RawConn
	peek     func(fd uintptr) bool // peekReadable as a func value, made once
	peekBuf  [1]byte
}

// prefixedConn is a net.Conn whose first reads return prefix: bytes that
// net/http had already read past the upgrade request.
type prefixedConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixedConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// batchWriter is what coder/websocket's bufio.Writer flushes into. Outside
// a batch every flush is written to the socket; between cork and uncork,
// flushes are gathered in a pooled buffer and uncork writes them with one
// system call. Every socket write has a deadline of timeout. Its lock is the
// connection's alone: nothing shared is held while a socket is written.
//
// A batch corked nonblocking (a turn in the server's writePool) never
// waits for the socket: each write takes what the socket accepts at once,
// and when it is full the writer is stalled: the rest, and whatever the
// batch writes after it, stay in buf, the batch's frames already taken from
// the queue, until finishStalled (or the next write from outside a batch)
// writes them under the deadline.
type batchWriter struct {
	conn    net.Conn
	raw     syscall.RawConn // conn's socket, for the non-blocking writes; nil: none (TLS)
	timeout time.Duration

	mu          sync.Mutex
	corked      bool
	nonblocking bool    // this batch must not wait for the socket
	stalled     bool    // buf holds bytes the socket did not take; they go first
	buf         *[]byte // while corked or stalled
	err         error   // the socket failed: every later write fails
}

var batchBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<10); return &b }}

// cork starts a batch; nonblocking asks that it never wait for the socket
// (only possible with raw).
func (w *batchWriter) cork(nonblocking bool) {
	w.mu.Lock()
	w.corked = true
	w.nonblocking = nonblocking && w.raw != nil
	if w.buf == nil {
		w.buf = batchBufPool.Get().(*[]byte)
	}
	w.mu.Unlock()
}

// uncork writes what the batch gathered and returns to writing through. A
// nonblocking batch may leave the writer stalled (isStalled).
func (w *batchWriter) uncork() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.flushLocked()
	w.corked, w.nonblocking = false, false
	if !w.stalled {
		w.releaseLocked()
	}
	return err
}

// isStalled reports whether the last nonblocking batch left bytes the
// socket did not take.
func (w *batchWriter) isStalled() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stalled
}

// finishStalled writes what a stalled batch left, waiting for the socket
// under the deadline.
func (w *batchWriter) finishStalled() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writePendingLocked()
}

func (w *batchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if !w.corked {
		if err := w.writePendingLocked(); err != nil {
			return 0, err
		}
		return w.writeLocked(p)
	}
	if w.nonblocking {
		if err := w.writeNowLocked(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if len(p) >= wsDirectWriteBytes {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
		return w.writeLocked(p)
	}
	*w.buf = append(*w.buf, p...)
	if len(*w.buf) >= wsMaxBatchBytes {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// writeNowLocked is Write in a nonblocking batch: p joins the batch, which
// is written out past wsMaxBatchBytes (a piece of wsDirectWriteBytes or more
// is written from where it is), as much as the socket takes. Once stalled,
// everything is kept for finishStalled: the batch's frames are already off
// the queue, and what they hold is bounded by MaxQueuedBytes.
func (w *batchWriter) writeNowLocked(p []byte) error {
	if !w.stalled && len(p) >= wsDirectWriteBytes {
		if err := w.flushLocked(); err != nil {
			return err
		}
		if !w.stalled {
			n, err := writeNonblocking(w.raw, p)
			if err != nil {
				w.err = err
				return err
			}
			p = p[n:]
			w.stalled = len(p) > 0
		}
	}
	*w.buf = append(*w.buf, p...)
	if !w.stalled && len(*w.buf) >= wsMaxBatchBytes {
		return w.flushLocked()
	}
	return nil
}

// flushLocked writes the batch: under the deadline, or in a nonblocking
// batch what the socket takes at once, keeping the rest (stalled).
func (w *batchWriter) flushLocked() error {
	if len(*w.buf) == 0 {
		return w.err
	}
	if !w.nonblocking {
		_, err := w.writeLocked(*w.buf)
		*w.buf = (*w.buf)[:0]
		w.stalled = false
		return err
	}
	if w.stalled || w.err != nil {
		return w.err
	}
	n, err := writeNonblocking(w.raw, *w.buf)
	if err != nil {
		w.err = err
		return err
	}
	rest := copy(*w.buf, (*w.buf)[n:])
	*w.buf = (*w.buf)[:rest]
	w.stalled = rest > 0
	return nil
}

// writePendingLocked writes what a stalled batch left, under the deadline.
func (w *batchWriter) writePendingLocked() error {
	if !w.stalled {
		return w.err
	}
	_, err := w.writeLocked(*w.buf)
	w.stalled = false
	w.releaseLocked()
	return err
}

// releaseLocked gives the batch buffer back to the pool.
func (w *batchWriter) releaseLocked() {
	if w.buf == nil {
		return
	}
	*w.buf = (*w.buf)[:0]
	if cap(*w.buf) <= wsMaxBatchBytes {
		batchBufPool.Put(w.buf)
	}
	w.buf = nil
}

func (w *batchWriter) writeLocked(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	var deadline time.Time // none for a negative WriteTimeout
	if w.timeout > 0 {
		deadline = time.Now().Add(w.timeout)
	}
	_ = w.conn.SetWriteDeadline(deadline)
	n, err := w.conn.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// headerList splits a comma-separated header, over all its lines.
// isUpgrade reports whether r asks for a WebSocket upgrade: Connection
// lists "upgrade" and Upgrade lists "websocket".
func isUpgrade(r *http.Request) bool {
	has := func(key, token string) bool {
		return slices.ContainsFunc(headerList(r.Header, key), func(v string) bool { return strings.EqualFold(v, token) })
	}
	return has("Connection", "upgrade") && has("Upgrade", "websocket")
}

func headerList(h http.Header, key string) []string {
	var out []string
	for _, line := range h.Values(key) {
		for _, v := range strings.Split(line, ",") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}
