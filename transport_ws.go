package phx

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/coder/websocket"
)

// authTokenPrefix marks the Sec-WebSocket-Protocol element in which
// phoenix.js (authToken option) sends a token.
const authTokenPrefix = "base64url.bearer.phx."

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
	if !s.checkOrigin(r) {
		s.log.Info("phx: connection refused: origin not allowed", "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
		http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
		return
	}
	query := r.URL.Query()
	ser, err := serializerForQuery(query)
	if err != nil {
		s.log.Info("phx: connection refused", "err", err, "remote", r.RemoteAddr)
		http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
		return
	}
	offered := headerList(r.Header, "Sec-WebSocket-Protocol")
	authToken, rest, err := extractAuthToken(offered)
	if err != nil || (len(offered) > 0 && !contains(rest, "phoenix")) {
		s.log.Info("phx: connection refused: bad Sec-WebSocket-Protocol", "err", err, "remote", r.RemoteAddr)
		http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
		return
	}
	info := &ConnectInfo{
		Context:    r.Context(),
		Params:     query,
		AuthToken:  authToken,
		Header:     r.Header,
		Origin:     r.Header.Get("Origin"),
		RemoteAddr: r.RemoteAddr,
		Transport:  "websocket",
		Request:    r,
	}
	assigns, id, status, err := s.connect(info)
	if err != nil {
		s.log.Info("phx: connection refused by Connect", "err", err, "remote", r.RemoteAddr)
		http.Error(w, http.StatusText(status), status)
		return
	}

	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:       []string{"phoenix"},
		InsecureSkipVerify: true, // origin already checked by our own policy
	})
	if err != nil {
		s.log.Debug("phx: WebSocket upgrade failed", "err", err, "remote", r.RemoteAddr)
		return // Accept wrote the response
	}
	limit := s.opts.MaxMessageSize
	if limit < 0 {
		limit = -1
	}
	ws.SetReadLimit(limit)

	c := newConn(s, ser, id, assigns, "websocket")
	c.closeTransport = func(code int, reason string) {
		go ws.Close(websocket.StatusCode(code), reason)
	}
	if !s.register(c) {
		ws.Close(closeServiceRestart, "server shutting down")
		return
	}
	c.log.Debug("phx: connected", "remote", r.RemoteAddr, "vsn", ser.vsn())
	c.start()
	// The connection outlives this request: return, so that net/http's
	// connection goroutine, its request and response state are freed (the
	// connection is hijacked, net/http is done with it), and serve it on a
	// goroutine of our own.
	go c.serveWS(ws)
}

// serveWS runs a WebSocket connection until it closes: this goroutine
// reads, another writes, and teardown runs every Terminate before the
// server forgets the connection.
func (c *conn) serveWS(ws *websocket.Conn) {
	defer c.srv.unregister(c)
	writerDone := make(chan struct{})
	go c.writeLoopWS(ws, writerDone)
	c.readLoopWS(ws)
	c.teardown()
	<-writerDone
	ws.CloseNow()
	c.log.Debug("phx: disconnected", "code", c.closeCode)
}

// readLoopWS reads frames until the connection fails or finishes closing.
// It reads with a context that never ends: coder/websocket kills the
// connection when a read's context ends, and closing is done with
// close codes instead.
func (c *conn) readLoopWS(ws *websocket.Conn) {
	ctx := context.Background()
	for {
		typ, data, err := ws.Read(ctx)
		if err != nil {
			switch status := websocket.CloseStatus(err); {
			case status == websocket.StatusMessageTooBig || errors.Is(err, websocket.ErrMessageTooBig):
				c.log.Info("phx: message too big", "max", c.srv.opts.MaxMessageSize)
				c.close(closeTooBig, "message too big", ErrClosed)
			case status != -1:
				c.log.Debug("phx: client closed", "code", int(status))
			default:
				c.log.Debug("phx: read failed", "err", err)
			}
			return
		}
		if c.ctx.Err() != nil {
			continue // closing: drain until the close handshake ends
		}
		if err := c.handleFrame(data, typ == websocket.MessageBinary); err != nil {
			c.log.Info("phx: malformed frame; closing connection", "err", err)
			c.srv.metrics.badFrames.Add(1)
			c.close(closeInvalidData, "malformed message", ErrClosed)
		}
	}
}

// writeLoopWS writes queued frames until the connection starts closing.
// Each batch of frames must be written within WriteTimeout.
func (c *conn) writeLoopWS(ws *websocket.Conn, done chan<- struct{}) {
	defer close(done)
	var batch []frame
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.out.ready:
		}
		batch = c.out.take(batch)
		ctx, cancel := context.WithTimeout(context.Background(), c.srv.opts.WriteTimeout)
		for _, f := range batch {
			typ := websocket.MessageText
			if f.binary {
				typ = websocket.MessageBinary
			}
			if err := ws.Write(ctx, typ, f.data); err != nil {
				cancel()
				c.log.Info("phx: write failed; closing connection", "err", err)
				c.close(closeGoingAway, "write failed", ErrClosed)
				return
			}
		}
		cancel()
		clear(batch)
	}
}

// serializerForQuery picks the serializer from the vsn query parameter. The
// last vsn wins, as in Plug; a missing vsn means V1; an empty or non-string
// vsn (vsn=, vsn[]=...) is refused.
func serializerForQuery(q map[string][]string) (serializer, error) {
	for k := range q {
		if strings.HasPrefix(k, "vsn[") {
			return nil, ErrUnsupportedVsn
		}
	}
	vs, present := q["vsn"]
	if !present {
		return serializerFor("") // Phoenix's default: 1.0.0
	}
	if len(vs) == 0 || vs[len(vs)-1] == "" {
		return nil, ErrUnsupportedVsn // present but empty: Phoenix refuses it
	}
	return serializerFor(vs[len(vs)-1])
}

// extractAuthToken finds the authToken element among the offered
// subprotocols, decodes it (standard or URL-safe base64, padded or not) and
// returns the others. More than one token element is an error.
func extractAuthToken(offered []string) (token string, rest []string, err error) {
	found := false
	for _, p := range offered {
		enc, ok := strings.CutPrefix(p, authTokenPrefix)
		if !ok {
			rest = append(rest, p)
			continue
		}
		if found {
			return "", nil, errors.New("phx: more than one auth token subprotocol")
		}
		found = true
		if len(enc) > 8<<10 {
			return "", nil, errors.New("phx: auth token too long")
		}
		b, err := decodeBase64Any(enc)
		if err != nil {
			return "", nil, errors.New("phx: auth token is not base64")
		}
		token = string(b)
	}
	return token, rest, nil
}

func decodeBase64Any(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// headerList splits a comma-separated header, over all its lines.
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

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
