package phx

import (
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// This file is the whole contract between the server and a transport: what
// carries one client connection's frames. WebSocket (transport_ws.go),
// long-poll (transport_longpoll.go) and phxtest's in-memory connections
// implement it, and so can a transport written outside this module.
//
// A transport serves one connection in three steps:
//
//	conn, err := srv.Accept(info) // 1. Connect and ID run, a serializer is chosen
//	if err != nil { ... }         //    refused: answer with RefusedError.Status
//	err = conn.Serve(t, features) // 2. registered, started, t.Serve runs,
//	                              //    then every channel terminates
//	                              // 3. Serve returns: the connection is gone
//
// Inside Serve, the transport hands every client frame to [Conn.Receive],
// and writes what [Conn.TakeFrames] gives it whenever [Transport.Wake] says
// frames are waiting.

// Transport carries the frames of one client connection. The server calls
// its methods; [Conn] is what the transport calls back.
type Transport interface {
	// Serve runs the connection: it reads the client's frames and hands
	// each to conn.Receive, one at a time and in order, until the client
	// is gone or conn.Done is closed, and returns then. It is called once,
	// by [Conn.Serve], after the connection is registered and subscribed
	// to its socket ID. When Serve returns, the connection's channels are
	// terminated; frames still queued are dropped.
	Serve(conn *Conn) error

	// Wake tells the transport that frames are waiting for the client. It
	// is called when the first frame is queued while the transport holds
	// none: the transport then calls conn.TakeFrames, writes what it gets,
	// and calls it again until it reports false; the next frame queued
	// after that calls Wake again. Wake is called with the queue's lock
	// held: it must not block nor call back into the Conn. Start a writer
	// goroutine, or signal one.
	Wake()

	// Close asks the transport to close the client connection with a
	// WebSocket close code (1001 after Disconnect or an idle timeout, 1008
	// for a slow or misbehaving client, 1012 during Shutdown, ...) and a
	// short reason. It is called at most once, from any goroutine,
	// possibly before Serve starts; it must not block, and Serve must
	// return soon after. conn.Done is already closed when Close is called.
	Close(code int, reason string)
}

// TransportFeatures tells the server what a transport cannot do. The zero
// value describes a WebSocket, which can do everything.
type TransportFeatures struct {
	// TextOnly: the transport carries text frames only. Binary frames
	// queued for the client (pushes of a [Binary] payload) are dropped.
	TextOnly bool
	// OwnLiveness: the transport decides itself when a client is gone, so
	// [Options.HeartbeatTimeout] does not apply (long-poll closes a session
	// not polled for [LongPollOptions.IdleTimeout]).
	OwnLiveness bool
}

// Accept authenticates a new client connection: it chooses the serializer
// from info.Params ("vsn"), runs [Options.LoadSession] (when info.Request
// is set) and [Options.Connect] with info, then
// [Options.ID]. info.Transport names the transport (in logs and
// [Socket.Transport]). A refusal is a [*RefusedError] carrying the HTTP
// status to answer with; once Shutdown has begun, Accept returns
// [ErrServerClosed]. The Conn returned does nothing until Serve; serve
// every Conn Accept returns (it counts against
// [Options.MaxConnectionsPerID] until Serve returns).
func (s *Server) Accept(info *ConnectInfo) (*Conn, error) {
	start := time.Now()
	if s.isDraining() {
		return nil, s.accepted(info, start, "", ErrServerClosed)
	}
	if connect := rawConnectOf(info); connect != nil {
		return s.acceptRaw(info, connect, start)
	}
	cd, err := negotiate(s.serializers, info.Params)
	if err != nil {
		return nil, s.accepted(info, start, "", &RefusedError{Status: http.StatusForbidden, Err: err})
	}
	s.loadSession(info)
	assigns, id, status, err := s.connect(info)
	if err != nil {
		return nil, s.accepted(info, start, "", &RefusedError{Status: status, Err: err})
	}
	c, err := s.admit(info, cd, id, assigns)
	if err != nil {
		return nil, s.accepted(info, start, id, err)
	}
	s.accepted(info, start, id, nil)
	return &c.pub, nil
}

// admit makes the connection Accept or AcceptAuthenticated let in, once it
// has its place under MaxConnectionsPerID.
func (s *Server) admit(info *ConnectInfo, cd codec, id string, assigns Assigns) (*conn, error) {
	if !s.reserveID(id) {
		return nil, refusedTooMany(id, s.opts.MaxConnectionsPerID)
	}
	c := newConn(info.Context, s, cd, id, assigns, info.Transport)
	if !info.ExpiresAt.IsZero() {
		c.expiresAt = max(info.ExpiresAt.UnixNano(), 1)
	}
	return c, nil
}

// accepted logs a connection attempt and sends its telemetry event; it
// returns err.
func (s *Server) accepted(info *ConnectInfo, start time.Time, id string, err error) error {
	d := time.Since(start)
	if err == nil {
		if s.log.Enabled(info.Context, s.opts.ConnectLogLevel) {
			s.log.Log(info.Context, s.opts.ConnectLogLevel, "phx: socket connected", "transport", info.Transport,
				"socket_id", id, "vsn", info.Params.Get("vsn"), "duration", d, "params", logParams(info.Params))
		}
	}
	s.opts.Telemetry.socketConnected(s, SocketConnected{
		Context: info.Context, Transport: info.Transport, Vsn: info.Params.Get("vsn"), ID: id, Duration: d, Err: err,
	})
	return err
}

// AcceptAuthenticated is Accept for a client the caller has authenticated
// itself: [Options.Connect] does not run, and the connection gets assigns
// as if Connect had returned them. An empty id asks [Options.ID]. phxtest
// connects this way.
func (s *Server) AcceptAuthenticated(info *ConnectInfo, assigns Assigns, id string) (*Conn, error) {
	if s.isDraining() {
		return nil, ErrServerClosed
	}
	cd, err := negotiate(s.serializers, info.Params)
	if err != nil {
		return nil, &RefusedError{Status: http.StatusForbidden, Err: err}
	}
	if assigns == nil {
		assigns = Assigns{}
	}
	if id == "" && s.opts.ID != nil {
		id = s.opts.ID(assigns)
	}
	c, err := s.admit(info, cd, id, assigns)
	if err != nil {
		return nil, err
	}
	s.opts.Telemetry.socketConnected(s, SocketConnected{
		Context: info.Context, Transport: info.Transport, Vsn: info.Params.Get("vsn"), ID: id,
	})
	return &c.pub, nil
}

// Conn is one client connection, as its [Transport] sees it: frames in
// through Receive, frames out through TakeFrames. Get one from
// [Server.Accept] and run it with Serve.
type Conn struct {
	c *conn
}

// Serve runs the connection over t until it ends: it registers the
// connection with the server (so that Shutdown waits for it), subscribes
// it to its socket ID (so that Disconnect reaches it), runs t.Serve, then
// terminates every channel and unregisters the connection. It returns
// t.Serve's error, or [ErrServerClosed] without calling t.Serve when the
// server is shutting down. Call Serve once per Conn. It blocks for the
// connection's life: an HTTP handler that must return first (a hijacked
// WebSocket, a long-poll request that opens a session) runs it on a
// goroutine of its own.
func (p *Conn) Serve(t Transport, features TransportFeatures) error {
	c := p.c
	if err := c.begin(t, features); err != nil {
		return err
	}
	// Kept small: t.Serve's reads, and every frame they dispatch, run on
	// top of this frame for the connection's life.
	err := t.Serve(p)
	c.teardown()
	c.srv.unregister(c)
	c.srv.releaseID(c.id)
	return err
}

// begin registers the connection, attaches t and starts the connection.
func (c *conn) begin(t Transport, features TransportFeatures) error {
	if !c.serving.CompareAndSwap(false, true) {
		return errConnServed
	}
	c.textOnly = features.TextOnly
	c.noIdleTimer = features.OwnLiveness
	if !c.srv.register(c) {
		c.cancel()
		c.srv.releaseID(c.id)
		// Accepted, never served: its SocketClosed still pairs with the
		// SocketConnected, for gauges of open connections.
		c.srv.opts.Telemetry.socketClosed(c, SocketClosed{
			Context: c.ctx, Transport: c.transport, ID: c.id, Code: closeServiceRestart, Reason: "server shutting down",
		})
		return ErrServerClosed
	}
	c.attach(t)
	c.start()
	c.armExpiry()
	if c.raw != nil {
		c.raw.start()
	}
	return nil
}

var errConnServed = errors.New("phx: Conn.Serve called twice")

// Receive decodes one frame from the client and dispatches it: a join
// starts a channel, an event goes to its channel's mailbox, a heartbeat is
// answered. Call it from one goroutine at a time, in the order frames
// arrived. It returns nil once the connection is closing (late frames are
// ignored). A frame over [Options.MaxMessageSize] closes the connection
// with 1009 and returns [ErrMessageTooBig]; one that cannot be decoded
// closes it with 1007 and returns an error wrapping [ErrMalformed]. The
// frame's bytes may be reused once Receive returns.
func (p *Conn) Receive(f Frame) error {
	c := p.c
	if limit := c.srv.opts.MaxMessageSize; limit > 0 && int64(len(f.Data)) > limit {
		return c.tooBig(len(f.Data), limit)
	}
	if err := c.handleFrame(f.Data, f.Binary); err != nil {
		c.malformed(err)
		return err
	}
	return nil
}

// tooBig closes a connection that sent a frame over MaxMessageSize.
func (c *conn) tooBig(n int, limit int64) error {
	if c.ctx.Err() != nil {
		return nil // closing: late frames are ignored
	}
	c.logger().Info("phx: message too big; closing connection", "bytes", n, "max", limit)
	c.close(closeTooBig, "message too big", ErrClosed)
	return ErrMessageTooBig
}

// TakeFrames returns the frames queued for the client, in order, and takes
// back written, the batch the previous call returned (its array is reused:
// do not keep it). It reports false when nothing is queued or the
// connection is closing; the transport's writer should then stop until the
// next [Transport.Wake]. A frame's Data must not be modified: a broadcast's
// bytes are shared by every subscriber.
func (p *Conn) TakeFrames(written []Frame) ([]Frame, bool) {
	frames, ok := p.c.out.takeOrIdle(written)
	for i := range frames {
		frames[i] = frames[i].whole()
	}
	return frames, ok
}

// Done returns a channel closed when the connection starts closing, for
// whatever reason: the client went away, the server closed it, or the
// transport called Close.
func (p *Conn) Done() <-chan struct{} { return p.c.ctx.Done() }

// Close closes the connection from the transport's side, with a WebSocket
// close code and reason: a write that failed (1001), a frame the transport
// itself found too big (1009). Its channels terminate with [ErrClosed].
// Closing is asynchronous: Serve returns once it is done. Calling Close
// again, or after the connection closed, does nothing.
func (p *Conn) Close(code int, reason string) { p.c.close(code, reason, ErrClosed) }

// ID returns the connection's socket ID ([Options.ID]), "" if anonymous.
func (p *Conn) ID() string { return p.c.id }

// Logger returns the connection's logger: the server's, with the transport
// and socket ID as attributes.
func (p *Conn) Logger() *slog.Logger { return p.c.logger() }

// malformed closes a connection that sent a frame it cannot decode.
func (c *conn) malformed(err error) {
	c.logger().Info("phx: malformed frame; closing connection", "err", err)
	c.srv.metrics.badFrames.Add(1)
	c.close(closeInvalidData, "malformed message", ErrClosed)
}
