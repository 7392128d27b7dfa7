package phx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"sync"
	"time"
	"unicode/utf8"
)

// A RawSocket speaks the application's own protocol over the server's
// transports, without channels, topics or Phoenix frames: Phoenix's
// Phoenix.Socket.Transport. Mount one with [Server.RawSocketHandler]; each
// connection gets its own RawSocket from the connect function given
// there. Every message the client sends reaches HandleIn as it was sent.
//
// Hooks of one connection run one at a time: Init first, then HandleIn,
// HandleInfo and HandleControl in the order their events arrive, then
// Terminate. A hook that panics closes its connection with 1011 and only
// that one.
//
// A RawSocket may also implement [RawInfoHandler], [RawControlHandler],
// [RawTerminator] and ID() string (the socket ID, for [Server.Disconnect]
// and [Options.MaxConnectionsPerID]).
type RawSocket interface {
	// Init runs once the connection is established, before any other
	// hook; it may Push. An error closes the connection with 1011.
	Init(c *RawConn) error
	// HandleIn receives one message from the client: text (valid UTF-8)
	// or binary. An error closes the connection with 1011; close with
	// another code with [RawConn.Close].
	HandleIn(c *RawConn, msg RawMessage) error
}

// RawInfoHandler is implemented by a [RawSocket] that receives values sent
// with [RawConn.Send], as Phoenix's handle_info.
type RawInfoHandler interface {
	HandleInfo(c *RawConn, msg any)
}

// RawControlHandler is implemented by a [RawSocket] that wants the
// WebSocket ping and pong frames its client sends, as Phoenix's
// handle_control. Pings are answered with a pong either way. Long-poll has
// no control frames.
type RawControlHandler interface {
	HandleControl(c *RawConn, f ControlFrame)
}

// RawTerminator is implemented by a [RawSocket] that wants to know when
// its connection ends: reason is [ErrClosed] when the client went away or
// the connection was closed, [ErrServerClosed] during Shutdown, a
// [*PanicError] after a panicking hook, or the error a hook returned.
type RawTerminator interface {
	Terminate(c *RawConn, reason error)
}

// RawMessage is one message of a [RawSocket]'s protocol.
type RawMessage struct {
	Data   []byte
	Binary bool
}

// ControlFrame is a WebSocket ping or pong a client sent (see
// [RawControlHandler]).
type ControlFrame struct {
	Pong    bool // false: a ping
	Payload []byte
}

// RawConnectFunc authenticates a raw socket connection, as
// [Options.Connect] does for channel sockets, and returns the RawSocket
// that serves it. info.Session is set as for channel sockets
// ([Options.LoadSession]); info.Params holds the query parameters (no vsn
// is negotiated). A non-nil error refuses the connection with HTTP 403, or
// the error's StatusCode() when it has one of 400 or more.
type RawConnectFunc func(info *ConnectInfo) (RawSocket, error)

// RawSocketHandler returns an http.Handler serving raw sockets made by
// connect, on the same paths as ServeHTTP (".../websocket" and
// ".../longpoll") and with the same machinery as channel sockets: the
// origin and host checks, [Options.LoadSession], the drain on Shutdown
// (close 1012), MaxMessageSize, the idle timeout (HeartbeatTimeout: a raw
// protocol must send something, a WebSocket ping included, that often),
// MaxInboundRate (a message over it is dropped, past MaxRateLimited the
// connection closes with 1008), the outbound queue limits, Disconnect by
// socket ID and the telemetry events (SocketConnected, SocketClosed).
// Options.Connect and Options.ID do not run for raw sockets.
//
//	mux.Handle("/raw/", srv.RawSocketHandler(func(info *phx.ConnectInfo) (phx.RawSocket, error) {
//		return &echo{}, nil
//	}))
//
// Over long-poll, each poll answers with the text messages pushed since
// the last one and each POST body is one message (or one per line with
// Content-Type application/x-ndjson); binary messages cannot be pushed
// ([ErrBinaryUnsupported]).
func (s *Server) RawSocketHandler(connect RawConnectFunc) http.Handler {
	if connect == nil {
		panic("phx: RawSocketHandler with a nil connect function")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), rawConnectKey{}, connect)))
	})
}

// rawConnectKey carries the RawConnectFunc of a RawSocketHandler request
// to Accept.
type rawConnectKey struct{}

// rawConnectOf returns the RawConnectFunc a request for info carries.
func rawConnectOf(info *ConnectInfo) RawConnectFunc {
	if info.Context == nil {
		return nil
	}
	f, _ := info.Context.Value(rawConnectKey{}).(RawConnectFunc)
	return f
}

// acceptRaw is Accept for a raw socket.
func (s *Server) acceptRaw(info *ConnectInfo, connect RawConnectFunc, start time.Time) (*Conn, error) {
	s.loadSession(info)
	sock, status, err := s.rawConnect(info, connect)
	if err != nil {
		return nil, s.accepted(info, start, "", &RefusedError{Status: status, Err: err})
	}
	id := ""
	if idr, ok := sock.(interface{ ID() string }); ok {
		id = idr.ID()
	}
	c, err := s.admit(info, codecV2, id, Assigns{})
	if err != nil {
		return nil, s.accepted(info, start, id, err)
	}
	c.raw = &RawConn{c: c, sock: sock}
	s.accepted(info, start, id, nil)
	return &c.pub, nil
}

// rawConnect runs connect, turning a panic into HTTP 500.
func (s *Server) rawConnect(info *ConnectInfo, connect RawConnectFunc) (sock RawSocket, status int, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("phx: raw socket connect panicked", "panic", v, "stack", string(debug.Stack()))
			sock, status, err = nil, http.StatusInternalServerError, fmt.Errorf("phx: raw socket connect panicked: %v", v)
		}
	}()
	sock, err = connect(info)
	if err == nil && sock == nil {
		err = errors.New("phx: raw socket connect returned no RawSocket")
		return nil, http.StatusInternalServerError, err
	}
	if err != nil {
		return nil, refusalStatus(err), err
	}
	return sock, 0, nil
}

// RawConn is a raw socket connection, as its [RawSocket]'s hooks see it.
// Its methods are safe to call from any goroutine.
type RawConn struct {
	c    *conn
	sock RawSocket

	hooks sync.Mutex // held while a hook runs: one at a time

	mu      sync.Mutex // guards the fields below
	infos   []any      // Send's values, not yet handled
	running bool       // a goroutine is handling infos
	ended   bool       // Terminate ran or is running
}

// Push sends msg to the client. It fails with [ErrClosed] once the
// connection is closing, with [ErrBinaryUnsupported] for a binary message
// on a transport without binary frames (long-poll), and with
// [ErrInvalidPayload] for text that is not valid UTF-8.
func (r *RawConn) Push(msg RawMessage) error {
	if msg.Binary && r.c.textOnly {
		return fmt.Errorf("%w: the %s transport carries text only", ErrBinaryUnsupported, r.c.transport)
	}
	if !msg.Binary && !utf8.Valid(msg.Data) {
		return fmt.Errorf("%w: a text message must be valid UTF-8", ErrInvalidPayload)
	}
	if !r.c.enqueue(Frame{Data: msg.Data, Binary: msg.Binary}) {
		return ErrClosed
	}
	return nil
}

// Send delivers msg to the socket's HandleInfo, after the hooks already
// running or queued; values sent together arrive in order. Without
// [RawInfoHandler] it is dropped. It fails with [ErrClosed] once the
// connection has ended.
func (r *RawConn) Send(msg any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return ErrClosed
	}
	r.infos = append(r.infos, msg)
	if !r.running {
		r.running = true
		go r.handleInfos()
	}
	return nil
}

// Close closes the connection with a WebSocket close code (1000 for a
// normal end, 4000–4999 for the application's own) and reason; long-poll
// clients see their session end. Terminate then runs with [ErrClosed].
func (r *RawConn) Close(code int, reason string) { r.c.close(code, reason, ErrClosed) }

// ID returns the socket ID (from the RawSocket's ID method), "" for none.
func (r *RawConn) ID() string { return r.c.id }

// Transport names the transport: "websocket", "longpoll", or a custom
// transport's name.
func (r *RawConn) Transport() string { return r.c.transport }

// Context is canceled when the connection starts closing.
func (r *RawConn) Context() context.Context { return r.c.ctx }

// start runs Init. Serve calls it once the transport is attached; Init's
// pushes wait in the queue until the transport can write them.
func (r *RawConn) start() {
	r.hooks.Lock()
	defer r.hooks.Unlock()
	r.call("Init", func() error { return r.sock.Init(r) })
}

// handleIn hands one client message to HandleIn; it runs on the
// transport's reading goroutine, so a slow HandleIn slows its reads.
func (r *RawConn) handleIn(data []byte, binary bool) error {
	if !binary && !utf8.Valid(data) {
		return fmt.Errorf("%w: text message is not valid UTF-8", ErrMalformed)
	}
	c := r.c
	now := time.Now()
	if !c.limits.allow(now, c.srv.opts.MaxInboundRate, c.srv.opts.InboundBurst) {
		c.countRateLimited(now, "dropping") // a raw protocol has no error reply
		return nil
	}
	// The transport reuses its read buffer on some paths: HandleIn may
	// keep what it gets.
	msg := RawMessage{Data: append([]byte(nil), data...), Binary: binary}
	r.hooks.Lock()
	defer r.hooks.Unlock()
	if c.ctx.Err() == nil {
		r.call("HandleIn", func() error { return r.sock.HandleIn(r, msg) })
	}
	return nil
}

// handleControl hands a WebSocket ping or pong to HandleControl.
func (r *RawConn) handleControl(f ControlFrame) {
	r.c.lastRead.Store(time.Now().UnixNano())
	h, ok := r.sock.(RawControlHandler)
	if !ok {
		return
	}
	f.Payload = append([]byte(nil), f.Payload...)
	r.hooks.Lock()
	defer r.hooks.Unlock()
	if r.c.ctx.Err() == nil {
		r.call("HandleControl", func() error { h.HandleControl(r, f); return nil })
	}
}

// handleInfos handles Send's values in order until none is left.
func (r *RawConn) handleInfos() {
	h, _ := r.sock.(RawInfoHandler)
	for {
		r.mu.Lock()
		if len(r.infos) == 0 || r.ended {
			r.infos, r.running = nil, false
			r.mu.Unlock()
			return
		}
		msg := r.infos[0]
		r.infos[0] = nil
		r.infos = r.infos[1:]
		r.mu.Unlock()
		if h == nil {
			continue
		}
		r.hooks.Lock()
		if r.c.ctx.Err() == nil {
			r.call("HandleInfo", func() error { h.HandleInfo(r, msg); return nil })
		}
		r.hooks.Unlock()
	}
}

// call runs one hook (r.hooks held): an error or a panic closes the
// connection with 1011, and becomes Terminate's reason.
func (r *RawConn) call(hook string, f func() error) {
	err := func() (err error) {
		defer func() {
			if v := recover(); v != nil {
				r.c.logger().Error("phx: raw socket "+hook+" panicked", "panic", v, "stack", string(debug.Stack()))
				err = &PanicError{Value: v, Stack: debug.Stack()}
			}
		}()
		return f()
	}()
	if err != nil {
		if _, ok := err.(*PanicError); !ok {
			r.c.logger().Info("phx: raw socket "+hook+" failed; closing connection", "err", err)
		}
		r.c.close(closeInternal, "internal error", err)
	}
}

// terminate runs Terminate once the connection is torn down, after any
// hook in progress; values sent but not yet handled are dropped.
func (r *RawConn) terminate(reason error) {
	r.mu.Lock()
	r.ended = true
	r.mu.Unlock()
	r.hooks.Lock()
	defer r.hooks.Unlock()
	if t, ok := r.sock.(RawTerminator); ok {
		func() {
			defer func() {
				if v := recover(); v != nil {
					r.c.logger().Error("phx: raw socket Terminate panicked", "panic", v, "stack", string(debug.Stack()))
				}
			}()
			t.Terminate(r, reason)
		}()
	}
}

// isRawRequest reports whether r came through a RawSocketHandler.
func isRawRequest(r *http.Request) bool {
	_, ok := r.Context().Value(rawConnectKey{}).(RawConnectFunc)
	return ok
}
