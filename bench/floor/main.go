// Command floor is the benchmarks' floor: the smallest coder/websocket
// server that speaks the Phoenix protocol subset phxbench's idle and fanout
// scenarios use (V2 JSON only). It accepts any connection at
// /socket/websocket, answers heartbeats and joins ("ok", {}), and on any
// other event broadcasts [null,null,topic,event,payload] to every socket
// joined to the topic (serialized once) and replies ok {}. One reader and
// one writer goroutine per connection, an unbounded-but-checked queue per
// connection (a client 1024 frames behind is dropped), no channels, no
// auth, no presence, no limits: what any server of this shape costs.
//
//	floor -addr 127.0.0.1:0   # logs "floor: listening on http://127.0.0.1:PORT/"
package main

import (
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
	"syscall"
	"time"

	"github.com/coder/websocket"
)

type conn struct {
	ws     *websocket.Conn
	mu     sync.Mutex
	q      [][]byte
	closed bool
	wake   chan struct{}
	joined map[string]string // topic -> join_ref; reader goroutine only
}

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
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) writeLoop(ctx context.Context) {
	var batch [][]byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		c.mu.Lock()
		batch = append(batch[:0], c.q...)
		clear(c.q)
		c.q = c.q[:0]
		c.mu.Unlock()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		for _, b := range batch {
			if err := c.ws.Write(wctx, websocket.MessageText, b); err != nil {
				cancel()
				c.ws.CloseNow()
				return
			}
		}
		cancel()
		clear(batch)
	}
}

type hub struct {
	mu     sync.RWMutex
	topics map[string]map[*conn]struct{}
}

func (h *hub) join(topic string, c *conn) {
	h.mu.Lock()
	m := h.topics[topic]
	if m == nil {
		m = make(map[*conn]struct{})
		h.topics[topic] = m
	}
	m[c] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) leave(topic string, c *conn) {
	h.mu.Lock()
	delete(h.topics[topic], c)
	if len(h.topics[topic]) == 0 {
		delete(h.topics, topic)
	}
	h.mu.Unlock()
}

func (h *hub) broadcast(topic string, frame []byte) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.topics[topic] {
		c.send(frame)
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

func (h *hub) serve(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{ws: ws, wake: make(chan struct{}, 1), joined: map[string]string{}}
	go c.writeLoop(ctx)
	defer func() {
		for t := range c.joined {
			h.leave(t, c)
		}
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		cancel()
		ws.CloseNow()
	}()
	for {
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
			switch event {
			case "phx_join":
				h.join(topic, c)
				c.joined[topic] = string(joinRef)
			case "phx_leave":
				h.leave(topic, c)
				delete(c.joined, topic)
			}
			c.send(frame(joinRef, ref, topic, "phx_reply", okEmpty))
		default:
			h.broadcast(topic, frame(nil, nil, topic, event, f[4]))
			c.send(frame(joinRef, ref, topic, "phx_reply", okEmpty))
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen `address`")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this loopback `address` (e.g. 127.0.0.1:6060)")
	flag.Parse()
	if *pprofAddr != "" {
		servePprof(*pprofAddr)
	}
	h := &hub{topics: map[string]map[*conn]struct{}{}}
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
