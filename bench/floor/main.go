// Command floor is the benchmarks' floor: the smallest coder/websocket
// server that speaks the Phoenix protocol subset phxbench's idle and fanout
// scenarios use (V2 JSON only). It accepts any connection at
// /socket/websocket, answers heartbeats and joins ("ok", {}), and on any
// other event broadcasts [null,null,topic,event,payload] to every socket
// joined to the topic (serialized once) and replies ok {}. Tuned as the
// library is: small buffers after the upgrade, one reader goroutine per
// connection and a writer only while it has frames queued, a checked
// queue per connection (a client 1024 frames behind is dropped), and an
// idle reader parked in a shallow wait for input (an MSG_PEEK read on the
// socket) rather than inside coder/websocket's Read, so that its stack
// shrinks to 4 KiB (-shallow-wait=false parks it in Read); no channels, no
// auth, no limits: what any server of this shape costs.
//
// With -presence it keeps its own presence, as the chat example does with
// the library's: every join is tracked (a pre-encoded meta), the joiner
// gets the room's presence_state (encoded once per change of the room)
// after its join reply, and each room's changes go out as one batched
// presence_diff.
//
//	floor -addr 127.0.0.1:0   # logs "floor: listening on http://127.0.0.1:PORT/"
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// Buffer sizes after the upgrade: net/http's hijacked connection comes
// with 4 KiB read and write buffers that coder/websocket would keep for the
// connection's life; small ones keep an idle connection small (larger
// frames are read past the buffer, straight into their message).
const (
	readBufferSize  = 512
	writeBufferSize = 256
)

type conn struct {
	ws      *websocket.Conn
	id      uint64
	mu      sync.Mutex
	q       [][]byte
	closed  bool
	writing bool              // a writer goroutine is running
	joined  map[string]string // topic -> join_ref; reader goroutine only
	in      *input            // for the shallow wait; nil: wait in ws.Read
}

// send queues a frame and starts a writer if none runs: a connection has a
// writer goroutine only while it has frames to write.
func (c *conn) send(b []byte) {
	c.mu.Lock()
	if c.closed || len(c.q) >= 1024 {
		drop := !c.closed
		c.closed = true
		c.mu.Unlock()
		if drop {
			go c.ws.Close(websocket.StatusPolicyViolation, "too slow")
		}
		return
	}
	c.q = append(c.q, b)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.write()
	}
}

// write sends the queued frames until the queue is empty, then ends.
func (c *conn) write() {
	var batch [][]byte
	for {
		c.mu.Lock()
		if len(c.q) == 0 || c.closed {
			c.q = nil
			c.writing = false
			c.mu.Unlock()
			return
		}
		batch, c.q = c.q, batch[:0]
		c.mu.Unlock()
		wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for _, b := range batch {
			if err := c.ws.Write(wctx, websocket.MessageText, b); err != nil {
				cancel()
				c.ws.CloseNow()
				c.mu.Lock()
				c.closed, c.writing, c.q = true, false, nil
				c.mu.Unlock()
				return
			}
		}
		cancel()
		clear(batch)
	}
}

// room is one topic: its sockets and, with -presence, who is in it.
type room struct {
	conns   map[*conn]struct{}
	members map[string][]*member // by key, in join order
	state   []byte               // presence_state payload until the next change
	joins   map[string][][]byte  // unsent diff: metas by key
	leaves  map[string][][]byte
	timer   bool // a diff flush is scheduled
}

// member is one presence: its key and its meta's JSON (phx_ref included).
type member struct {
	c    *conn
	key  string
	meta []byte
}

type hub struct {
	mu       sync.RWMutex
	topics   map[string]*room
	presence bool
	batch    time.Duration
	refs     atomic.Uint64
}

func (h *hub) join(topic string, c *conn) (state []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.topics[topic]
	if r == nil {
		r = &room{conns: map[*conn]struct{}{}}
		h.topics[topic] = r
	}
	r.conns[c] = struct{}{}
	if !h.presence {
		return nil
	}
	key := "u" + strconv.FormatUint(c.id, 10)
	meta := fmt.Appendf(nil, `{"online_at":%d,"phx_ref":"F%d"}`, time.Now().UnixMilli(), h.refs.Add(1))
	if r.members == nil {
		r.members = map[string][]*member{}
	}
	r.members[key] = append(r.members[key], &member{c: c, key: key, meta: meta})
	r.state = nil
	h.queueDiff(topic, r, &r.joins, key, meta)
	return h.stateOf(r)
}

func (h *hub) leave(topic string, c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.topics[topic]
	if r == nil {
		return
	}
	delete(r.conns, c)
	key := "u" + strconv.FormatUint(c.id, 10)
	ms := r.members[key]
	for i, m := range ms {
		if m.c == c {
			ms = append(ms[:i:i], ms[i+1:]...)
			if len(ms) == 0 {
				delete(r.members, key)
			} else {
				r.members[key] = ms
			}
			r.state = nil
			h.queueDiff(topic, r, &r.leaves, key, m.meta)
			break
		}
	}
	if len(r.conns) == 0 && len(r.members) == 0 && !r.timer {
		delete(h.topics, topic)
	}
}

// queueDiff adds a join or leave to the room's next presence_diff (h.mu
// held), scheduling the flush.
func (h *hub) queueDiff(topic string, r *room, side *map[string][][]byte, key string, meta []byte) {
	if *side == nil {
		*side = map[string][][]byte{}
	}
	(*side)[key] = append((*side)[key], meta)
	if !r.timer {
		r.timer = true
		time.AfterFunc(h.batch, func() { h.flush(topic) })
	}
}

// flush broadcasts a room's pending presence_diff.
func (h *hub) flush(topic string) {
	h.mu.Lock()
	r := h.topics[topic]
	if r == nil {
		h.mu.Unlock()
		return
	}
	joins, leaves := r.joins, r.leaves
	r.joins, r.leaves, r.timer = nil, nil, false
	if len(r.conns) == 0 && len(r.members) == 0 {
		delete(h.topics, topic)
	}
	h.mu.Unlock()
	b := append([]byte(`{"joins":`), appendEntries(nil, joins)...)
	b = append(append(b, `,"leaves":`...), appendEntries(nil, leaves)...)
	h.broadcast(topic, frame(nil, nil, topic, "presence_diff", append(b, '}')))
}

// stateOf returns the room's presence_state payload, encoded once per
// change (h.mu held).
func (h *hub) stateOf(r *room) []byte {
	if r.state == nil {
		metas := make(map[string][][]byte, len(r.members))
		for k, ms := range r.members {
			for _, m := range ms {
				metas[k] = append(metas[k], m.meta)
			}
		}
		r.state = appendEntries(nil, metas)
	}
	return r.state
}

// appendEntries appends {key: {"metas": [meta, ...]}, ...}.
func appendEntries(b []byte, metas map[string][][]byte) []byte {
	b = append(b, '{')
	first := true
	for k, ms := range metas {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = strconv.AppendQuote(b, k)
		b = append(b, `:{"metas":[`...)
		for i, m := range ms {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, m...)
		}
		b = append(b, "]}"...)
	}
	return append(b, '}')
}

func (h *hub) broadcast(topic string, frame []byte) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if r := h.topics[topic]; r != nil {
		for c := range r.conns {
			c.send(frame)
		}
	}
}

// frame encodes [join_ref, ref, topic, event, payload]; refs are raw JSON.
func frame(joinRef, ref json.RawMessage, topic, event string, payload []byte) []byte {
	b := make([]byte, 0, 32+len(topic)+len(event)+len(payload))
	b = append(append(b, '['), orNull(joinRef)...)
	b = append(append(b, ','), orNull(ref)...)
	b = strconv.AppendQuote(append(b, ','), topic)
	b = strconv.AppendQuote(append(b, ','), event)
	b = append(append(b, ','), payload...)
	return append(b, ']')
}

func orNull(r json.RawMessage) []byte {
	if len(r) == 0 {
		return []byte("null")
	}
	return r
}

var okEmpty = []byte(`{"status":"ok","response":{}}`)

var connIDs atomic.Uint64

func (h *hub) serve(w http.ResponseWriter, r *http.Request) {
	sb := &smallBuffers{ResponseWriter: w}
	ws, err := websocket.Accept(sb, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	c := &conn{ws: ws, id: connIDs.Add(1), joined: map[string]string{}}
	if shallowWait && sb.in.raw != nil {
		in := sb.in // a copy: sb holds net/http's response, request and buffers
		in.peek = in.peekReadable
		c.in = &in
	}
	// Read on a goroutine of our own and return: net/http's connection
	// goroutine, its request and its 4 KiB read buffer then go away.
	go h.read(c)
}

// read is the connection's reader goroutine, until the connection fails.
func (h *hub) read(c *conn) {
	ws := c.ws
	defer func() {
		for t := range c.joined {
			h.leave(t, c)
		}
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		ws.CloseNow()
	}()
	for {
		if c.in != nil {
			c.in.wait()
		}
		_, data, err := ws.Read(context.Background())
		if err != nil {
			return
		}
		var f [5]json.RawMessage
		var topic, event string
		if json.Unmarshal(data, &f) != nil || json.Unmarshal(f[2], &topic) != nil || json.Unmarshal(f[3], &event) != nil {
			ws.Close(websocket.StatusInvalidFramePayloadData, "malformed")
			return
		}
		joinRef, ref := f[0], f[1]
		if string(joinRef) == "null" {
			joinRef = nil
		}
		switch event {
		case "heartbeat", "phx_join", "phx_leave":
			var state []byte
			switch event {
			case "phx_join":
				state = h.join(topic, c)
				c.joined[topic] = string(joinRef)
			case "phx_leave":
				h.leave(topic, c)
				delete(c.joined, topic)
			}
			c.send(frame(joinRef, ref, topic, "phx_reply", okEmpty))
			if state != nil {
				c.send(frame(joinRef, nil, topic, "presence_state", state))
			}
		default:
			h.broadcast(topic, frame(nil, nil, topic, event, f[4]))
			c.send(frame(joinRef, ref, topic, "phx_reply", okEmpty))
		}
	}
}

// smallBuffers is the ResponseWriter given to websocket.Accept: its Hijack
// hands the connection over with small buffers (see readBufferSize).
type smallBuffers struct {
	http.ResponseWriter
	in input // what Hijack handed coder/websocket, for the shallow wait
}

func (s *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		nc.Close()
		return nil, nil, err
	}
	var c net.Conn = nc
	if n := brw.Reader.Buffered(); n > 0 { // sent right behind the upgrade request
		b, _ := brw.Reader.Peek(n)
		c = &prefixed{Conn: nc, prefix: bytes.Clone(b)}
	}
	s.in.br = bufio.NewReaderSize(c, readBufferSize)
	s.in.prefixed, _ = c.(*prefixed)
	if tc, ok := nc.(*net.TCPConn); ok {
		s.in.raw, _ = tc.SyscallConn()
	}
	return c, bufio.NewReadWriter(s.in.br, bufio.NewWriterSize(c, writeBufferSize)), nil
}

// input is the read side of a connection as the shallow wait needs it.
type input struct {
	br       *bufio.Reader
	prefixed *prefixed
	raw      syscall.RawConn
	peek     func(fd uintptr) bool // peekReadable as a func value, made once
	buf      [1]byte
}

// peekReadable: true (done) when the socket has a byte, has ended or
// failed; false when a read would block. Nothing is consumed.
func (in *input) peekReadable(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), in.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EINTR
}

// wait returns once a read would not block: bytes are buffered, or the
// socket has input (or has failed).
func (in *input) wait() {
	if in.br.Buffered() > 0 || (in.prefixed != nil && len(in.prefixed.prefix) > 0) {
		return
	}
	_ = in.raw.Read(in.peek)
}

// shallowWait: readers wait in input.wait between frames (-shallow-wait).
var shallowWait = true

func (s *smallBuffers) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// prefixed is a net.Conn whose first reads return what net/http had read
// past the upgrade request.
type prefixed struct {
	net.Conn
	prefix []byte
}

func (p *prefixed) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen `address`")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this loopback `address` (e.g. 127.0.0.1:6060)")
	flag.BoolVar(&shallowWait, "shallow-wait", true, "park idle readers in an MSG_PEEK wait on the socket instead of inside coder/websocket's Read (as the library does)")
	presence := flag.Bool("presence", false, "track a presence per join (key u<connection number>, meta online_at and phx_ref), push presence_state after the join reply and broadcast presence_diff batched per room")
	batch := flag.Duration("presence-batch", 20*time.Millisecond, "with -presence: coalesce a room's changes within this `interval` into one presence_diff")
	flag.Parse()
	if *pprofAddr != "" {
		servePprof(*pprofAddr)
	}
	h := &hub{topics: map[string]*room{}, presence: *presence, batch: *batch}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/socket/websocket", h.serve)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(os.Stderr, "floor: listening on http://%s/\n", ln.Addr())
	go hs.Serve(ln)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	hs.Close()
}

// servePprof serves the profiles on their own listener, away from the
// measured mux.
func servePprof(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	fmt.Fprintf(os.Stderr, "%s: pprof on %s\n", "floor", ln.Addr())
	go http.Serve(ln, mux)
}
