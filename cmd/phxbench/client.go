package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// clientConfig is what every client of a run shares.
type clientConfig struct {
	endpoint    *url.URL // transport endpoint (…/websocket or …/longpoll)
	transport   string   // "websocket" or "longpoll"
	vsn         string   // "2.0.0" or "1.0.0"
	params      []string // key=value templates
	tokens      *tokenSource
	userTmpl    string
	topicTmpl   string
	joinPayload string
	heartbeat   time.Duration // 0: none
	timeout     time.Duration // connect, join, each reply
	readLimit   int64
	httpClient  *http.Client // dials through the source addresses
	run         string       // stamp run ID
	event       string       // the event whose stamps count as deliveries
	counters    *counters
}

// counters are a run's totals, updated by every client.
type counters struct {
	connects       atomic.Int64
	connectErrors  atomic.Int64
	joins          atomic.Int64
	joinErrors     atomic.Int64
	leaves         atomic.Int64
	heartbeats     atomic.Int64
	heartbeatMiss  atomic.Int64
	framesIn       atomic.Int64
	bytesIn        atomic.Int64
	otherFrames    atomic.Int64 // frames that are neither replies nor stamped deliveries
	serverCloses   atomic.Int64 // connections the server closed or lost
	channelErrors  atomic.Int64 // phx_error / phx_close for a joined channel
	malformedInput atomic.Int64
	lastErr        atomic.Pointer[string]
}

func (c *counters) noteErr(err error) {
	if err == nil {
		return
	}
	s := err.Error()
	c.lastErr.Store(&s)
}

type reply struct {
	status   string
	response []byte
	at       time.Time
}

// client is one Phoenix socket with one channel.
type client struct {
	cfg   *clientConfig
	i     int
	vars  map[string]string
	topic string
	v1    bool
	tr    transport

	refSeq atomic.Uint64
	joined atomic.Bool

	mu      sync.Mutex
	joinRef string // of the current join (mu)
	pending map[string]chan reply

	// onDeliver receives the stamps of cfg.event pushes and broadcasts on
	// the client's topic, on the read goroutine.
	onDeliver func(seq int, sentNanos int64, at time.Time)

	closing atomic.Bool
	done    chan struct{} // read loop ended
	cancel  context.CancelFunc
}

// transport carries frames; the websocket and long-poll implementations
// below.
type transport interface {
	send(ctx context.Context, data []byte) error
	// readLoop calls handle for every frame until the transport fails or
	// ctx ends; data is only valid during the call.
	readLoop(ctx context.Context, handle func(data []byte)) error
	close()
}

func newClient(cfg *clientConfig, i int) *client {
	vars := clientVars(cfg.userTmpl, i)
	return &client{
		cfg:     cfg,
		i:       i,
		vars:    vars,
		topic:   expand(cfg.topicTmpl, vars),
		v1:      cfg.vsn != "" && cfg.vsn[0] == '1',
		pending: make(map[string]chan reply),
		done:    make(chan struct{}),
	}
}

// connect gets a token if configured, opens the transport and starts the
// read loop and heartbeats. ctx bounds the connection's life.
func (c *client) connect(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.timeout)
	defer cancel()
	if c.cfg.tokens != nil {
		tok, err := c.cfg.tokens.get(cctx, c.vars)
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		c.vars["token"] = tok
	}
	u, err := connectURL(c.cfg.endpoint, c.cfg.params, c.vars, c.cfg.vsn)
	if err != nil {
		return err
	}
	switch c.cfg.transport {
	case "longpoll":
		c.tr, err = dialLongPoll(cctx, c.cfg.httpClient, u)
	default:
		c.tr, err = dialWS(cctx, c.cfg.httpClient, u, c.cfg.readLimit)
	}
	if err != nil {
		return err
	}
	lctx, lcancel := context.WithCancel(ctx)
	c.cancel = lcancel
	go func() {
		defer close(c.done)
		err := c.tr.readLoop(lctx, c.handle)
		if !c.closing.Load() && lctx.Err() == nil {
			c.cfg.counters.serverCloses.Add(1)
			c.cfg.counters.noteErr(fmt.Errorf("client %d: connection lost: %w", c.i, err))
		}
		c.failPending()
	}()
	if c.cfg.heartbeat > 0 && c.cfg.transport == "websocket" {
		go c.heartbeats(lctx)
	}
	return nil
}

// close ends the connection and waits for the read loop.
func (c *client) close() {
	if c.tr == nil {
		return
	}
	c.closing.Store(true)
	c.tr.close()
	c.cancel()
	<-c.done
}

func (c *client) nextRef() string { return strconv.FormatUint(c.refSeq.Add(1), 10) }

func (c *client) encode(m msg) []byte {
	if c.v1 {
		return encodeV1(nil, m)
	}
	return encodeV2(nil, m)
}

// push sends event on the channel and returns a channel for its reply. A
// phx_join gets its own ref as join_ref, which becomes the client's.
func (c *client) push(ctx context.Context, topic, joinRef, event string, payload []byte) (<-chan reply, error) {
	ref := c.nextRef()
	ch := make(chan reply, 1)
	c.mu.Lock()
	if event == "phx_join" {
		joinRef = ref
		c.joinRef = ref
	}
	c.pending[ref] = ch
	c.mu.Unlock()
	err := c.tr.send(ctx, c.encode(msg{JoinRef: joinRef, Ref: ref, Topic: topic, Event: event, Payload: payload}))
	if err != nil {
		c.mu.Lock()
		delete(c.pending, ref)
		c.mu.Unlock()
		return nil, err
	}
	return ch, nil
}

// request sends and waits for the reply (cfg.timeout at most).
func (c *client) request(ctx context.Context, topic, joinRef, event string, payload []byte) (reply, error) {
	ch, err := c.push(ctx, topic, joinRef, event, payload)
	if err != nil {
		return reply{}, err
	}
	t := time.NewTimer(c.cfg.timeout)
	defer t.Stop()
	select {
	case r, ok := <-ch:
		if !ok {
			return reply{}, errors.New("connection closed before the reply")
		}
		return r, nil
	case <-t.C:
		return reply{}, fmt.Errorf("no reply to %s within %v", event, c.cfg.timeout)
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

// join joins the client's topic with the join payload.
func (c *client) join(ctx context.Context) error {
	r, err := c.request(ctx, c.topic, "", "phx_join", []byte(expand(c.cfg.joinPayload, c.vars)))
	if err != nil {
		return fmt.Errorf("join %s: %w", c.topic, err)
	}
	if r.status != "ok" {
		return fmt.Errorf("join %s refused: %s %s", c.topic, r.status, r.response)
	}
	c.joined.Store(true)
	return nil
}

// leave leaves the topic and waits for the server's ok.
func (c *client) leave(ctx context.Context) error {
	c.joined.Store(false)
	c.mu.Lock()
	joinRef := c.joinRef
	c.mu.Unlock()
	r, err := c.request(ctx, c.topic, joinRef, "phx_leave", nil)
	if err != nil {
		return err
	}
	if r.status != "ok" {
		return fmt.Errorf("leave refused: %s", r.status)
	}
	return nil
}

// handle dispatches one frame from the server.
func (c *client) handle(data []byte) {
	at := time.Now()
	cn := c.cfg.counters
	cn.framesIn.Add(1)
	cn.bytesIn.Add(int64(len(data)))
	var m msg
	var err error
	if c.v1 {
		m, err = decodeV1(data)
	} else {
		m, err = decodeV2(data)
	}
	if err != nil {
		cn.malformedInput.Add(1)
		return
	}
	switch m.Event {
	case "phx_reply":
		c.mu.Lock()
		ch := c.pending[m.Ref]
		delete(c.pending, m.Ref)
		c.mu.Unlock()
		if ch != nil {
			st, resp := replyStatus(m.Payload)
			ch <- reply{status: st, response: append([]byte(nil), resp...), at: at}
		}
		return
	case "phx_error", "phx_close":
		c.mu.Lock()
		current := m.Topic == c.topic && m.JoinRef == c.joinRef
		c.mu.Unlock()
		if current && c.joined.Load() {
			c.joined.Store(false)
			cn.channelErrors.Add(1)
			cn.noteErr(fmt.Errorf("client %d: %s on %s: %s", c.i, m.Event, m.Topic, m.Payload))
		}
		return
	}
	if m.Event == c.cfg.event && m.Topic == c.topic && c.onDeliver != nil {
		if findStamps(m.Payload, c.cfg.run, func(seq int, nanos int64) { c.onDeliver(seq, nanos, at) }) > 0 {
			return
		}
	}
	cn.otherFrames.Add(1)
}

// failPending closes the reply channels of unanswered pushes.
func (c *client) failPending() {
	c.mu.Lock()
	for ref, ch := range c.pending {
		close(ch)
		delete(c.pending, ref)
	}
	c.mu.Unlock()
}

// heartbeats sends one heartbeat per interval, as phoenix.js (the first one
// interval after opening), and counts those not answered within the
// interval.
func (c *client) heartbeats(ctx context.Context) {
	iv := c.cfg.heartbeat
	t := time.NewTicker(iv)
	defer t.Stop()
	var last <-chan reply
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if last != nil {
			select {
			case _, ok := <-last:
				if !ok {
					return
				}
			default:
				c.cfg.counters.heartbeatMiss.Add(1)
			}
		}
		ch, err := c.push(ctx, "phoenix", "", "heartbeat", nil)
		if err != nil {
			return
		}
		c.cfg.counters.heartbeats.Add(1)
		last = ch
	}
}

// ---- WebSocket ----

type wsTransport struct {
	ws  *websocket.Conn
	buf bytes.Buffer
}

func dialWS(ctx context.Context, hc *http.Client, u string, readLimit int64) (*wsTransport, error) {
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket upgrade refused: HTTP %d", resp.StatusCode)
		}
		return nil, err
	}
	ws.SetReadLimit(readLimit)
	return &wsTransport{ws: ws}, nil
}

func (t *wsTransport) send(ctx context.Context, data []byte) error {
	return t.ws.Write(ctx, websocket.MessageText, data)
}

func (t *wsTransport) readLoop(ctx context.Context, handle func([]byte)) error {
	for {
		_, r, err := t.ws.Reader(ctx)
		if err != nil {
			return err
		}
		t.buf.Reset()
		if _, err := t.buf.ReadFrom(r); err != nil {
			return err
		}
		handle(t.buf.Bytes())
		if t.buf.Cap() > 64<<10 {
			t.buf = bytes.Buffer{} // don't keep a big frame's buffer per connection
		}
	}
}

func (t *wsTransport) close() {
	t.ws.Close(websocket.StatusNormalClosure, "")
}

// ---- Long-poll (docs/protocol.md §6) ----

type lpTransport struct {
	hc    *http.Client
	url   string
	mu    sync.Mutex
	token string
	stop  context.CancelFunc
	ctx   context.Context
}

type lpAnswer struct {
	Status   int      `json:"status"`
	Token    string   `json:"token"`
	Messages []string `json:"messages"`
}

func dialLongPoll(ctx context.Context, hc *http.Client, u string) (*lpTransport, error) {
	t := &lpTransport{hc: hc, url: u}
	t.ctx, t.stop = context.WithCancel(context.Background())
	a, err := t.get(ctx)
	if err != nil {
		return nil, err
	}
	if a.Status != 410 || a.Token == "" {
		return nil, fmt.Errorf("long-poll open: status %d", a.Status)
	}
	t.token = a.Token
	return t, nil
}

func (t *lpTransport) get(ctx context.Context) (lpAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return lpAnswer{}, err
	}
	t.mu.Lock()
	if t.token != "" {
		req.Header.Set("X-Phoenix-Longpoll-Token", t.token)
	}
	t.mu.Unlock()
	resp, err := t.hc.Do(req)
	if err != nil {
		return lpAnswer{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return lpAnswer{}, fmt.Errorf("long-poll: HTTP %d", resp.StatusCode)
	}
	var a lpAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return lpAnswer{}, err
	}
	return a, nil
}

func (t *lpTransport) send(ctx context.Context, data []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	t.mu.Lock()
	req.Header.Set("X-Phoenix-Longpoll-Token", t.token)
	t.mu.Unlock()
	resp, err := t.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var a lpAnswer
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&a) != nil || a.Status != 200 {
		return fmt.Errorf("long-poll POST: HTTP %d, status %d", resp.StatusCode, a.Status)
	}
	return nil
}

func (t *lpTransport) readLoop(ctx context.Context, handle func([]byte)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-t.ctx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		a, err := t.get(ctx)
		if err != nil {
			return err
		}
		switch a.Status {
		case 200, 204:
		default:
			return fmt.Errorf("long-poll session ended: status %d", a.Status)
		}
		if a.Token != "" {
			t.mu.Lock()
			t.token = a.Token
			t.mu.Unlock()
		}
		for _, m := range a.Messages {
			handle([]byte(m))
		}
	}
}

func (t *lpTransport) close() { t.stop() }
