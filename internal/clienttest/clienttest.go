// Package clienttest is a raw Phoenix Channels client for tests, speaking
// through the client half of internal/wire. [Conn] is a WebSocket
// connection that writes frames and hands over every frame the server sends;
// [Client], built on it, is a V2 client that numbers refs as phoenix.js does
// and records every message it receives.
package clienttest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx/internal/wire"
)

// Timeout bounds every write of a [Client] and every wait of [Client.Next].
const Timeout = 5 * time.Second

// Frame is one WebSocket message from the server, as it was read.
type Frame struct {
	Data   []byte
	Binary bool
	At     time.Time // when it was read
}

// Conn is a WebSocket connection to a Phoenix server. Its reader goroutine
// hands every frame, in order, to the handler given to [Dial], until the
// connection ends.
type Conn struct {
	ws   *websocket.Conn
	done chan struct{}
	err  error // why reading stopped; set before done is closed
}

// Dial connects to url, a ws:// URL with its query (vsn included), and
// starts the reader, which calls onFrame for each frame on its own goroutine;
// onFrame should not block for long. The response is websocket.Dial's: on a
// refused upgrade it carries the HTTP status.
func Dial(ctx context.Context, url string, opts *websocket.DialOptions, onFrame func(Frame)) (*Conn, *http.Response, error) {
	ws, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		return nil, resp, fmt.Errorf("clienttest: dial %s: %w", url, err)
	}
	ws.SetReadLimit(-1)
	c := &Conn{ws: ws, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			typ, data, err := ws.Read(context.Background())
			if err != nil {
				c.err = err
				return
			}
			onFrame(Frame{Data: data, Binary: typ == websocket.MessageBinary, At: time.Now()})
		}
	}()
	return c, resp, nil
}

// WS returns the underlying WebSocket connection.
func (c *Conn) WS() *websocket.Conn { return c.ws }

// Done is closed when the reader has stopped: the connection is over and
// every frame has been handed over.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the reader stopped (a websocket.CloseError when the server
// closed the connection), or nil while it runs.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Write sends one frame as it is: binary or text.
func (c *Conn) Write(ctx context.Context, data []byte, binary bool) error {
	typ := websocket.MessageText
	if binary {
		typ = websocket.MessageBinary
	}
	if err := c.ws.Write(ctx, typ, data); err != nil {
		return fmt.Errorf("clienttest: write: %w", err)
	}
	return nil
}

// Send encodes m as a V2 client frame ([wire.EncodeClientV2]: binary when
// its payload is) and writes it.
func (c *Conn) Send(ctx context.Context, m wire.Message) error {
	data, err := wire.EncodeClientV2(m)
	if err != nil {
		return fmt.Errorf("clienttest: encode: %w", err)
	}
	return c.Write(ctx, data, m.Payload.Binary)
}

// Close closes the connection at once and waits for the reader to stop.
func (c *Conn) Close() {
	_ = c.ws.CloseNow()
	<-c.done
}

// Message is one server message as a [Client] received it.
type Message struct {
	JoinRef, Ref wire.Ref // JSON tokens, nil for null
	Topic, Event string
	// Payload is the payload as raw JSON, or the bytes of a binary frame
	// (for a binary reply: the response).
	Payload json.RawMessage
	Binary  bool
	// Status and Response are those of a reply (Event "phx_reply").
	Status   string
	Response json.RawMessage
	At       time.Time // when it was read

	fields map[string]json.RawMessage // top-level members of a JSON object payload
	taken  bool                       // returned by Next
}

// Field returns a top-level member of the payload as raw JSON, or "" when
// the payload has none (or is not a JSON object).
func (m *Message) Field(name string) string { return string(m.fields[name]) }

// String formats m as its V2 text frame would read.
func (m *Message) String() string {
	ref := func(r wire.Ref) string {
		if r == nil {
			return "null"
		}
		return string(r)
	}
	payload := string(m.Payload)
	if m.Binary {
		payload = fmt.Sprintf("<%d bytes>", len(m.Payload))
	}
	return fmt.Sprintf("[%s,%s,%q,%q,%s]", ref(m.JoinRef), ref(m.Ref), m.Topic, m.Event, payload)
}

// Client is a V2 client for tests. Like phoenix.js it numbers refs from 1
// and sends each push with the join_ref of its topic's last join; it records
// every message it receives, in order. Failures fail the test.
type Client struct {
	Name string // shown in failures
	t    testing.TB
	conn *Conn

	mu       sync.Mutex
	msgs     []*Message
	changed  chan struct{} // closed and replaced at every message
	ref      int
	joinRefs map[string]string // topic -> ref of its last phx_join
}

// New connects to url (a ws:// URL with its query, vsn=2.0.0 included) and
// closes the connection when the test ends. It fails the test if the
// connection is refused.
func New(t testing.TB, name, url string, opts *websocket.DialOptions) *Client {
	t.Helper()
	c := &Client{Name: name, t: t, changed: make(chan struct{}), joinRefs: map[string]string{}}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	conn, _, err := Dial(ctx, url, opts, c.receive)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	c.conn = conn
	t.Cleanup(conn.Close)
	return c
}

// receive decodes and records one frame.
func (c *Client) receive(f Frame) {
	sm, err := wire.DecodeServerV2(f.Data, f.Binary)
	if err != nil {
		c.t.Errorf("%s: %v", c.Name, err)
		return
	}
	m := &Message{JoinRef: sm.JoinRef, Ref: sm.Ref, Topic: sm.Topic, Event: sm.Event, Payload: sm.Payload.Data,
		Binary: f.Binary, Status: sm.Status, Response: sm.Response.Data, At: f.At}
	if !f.Binary {
		_ = json.Unmarshal(m.Payload, &m.fields)
	}
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// Conn returns the client's connection.
func (c *Client) Conn() *Conn { return c.conn }

// Done is closed when the connection is over.
func (c *Client) Done() <-chan struct{} { return c.conn.Done() }

// Close closes the connection and waits for its reader.
func (c *Client) Close() { c.conn.Close() }

// Push sends event on topic with payload (nil for {}) encoded as JSON, and
// returns the ref it used. A phx_join's ref becomes its topic's join_ref.
func (c *Client) Push(topic, event string, payload any) string {
	c.t.Helper()
	c.mu.Lock()
	c.ref++
	ref := strconv.Itoa(c.ref)
	if event == "phx_join" {
		c.joinRefs[topic] = ref
	}
	joinRef := c.joinRefs[topic]
	c.mu.Unlock()
	if payload == nil {
		payload = struct{}{}
	}
	data, err := json.Marshal(payload)
	if err != nil {
		c.t.Fatalf("%s: payload of %s: %v", c.Name, event, err)
	}
	m := wire.Message{Ref: wire.StringRef(ref), Topic: topic, Event: event, Payload: wire.Payload{Data: data}}
	if joinRef != "" {
		m.JoinRef = wire.StringRef(joinRef)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := c.conn.Send(ctx, m); err != nil {
		c.t.Fatalf("%s: %v", c.Name, err)
	}
	return ref
}

// Next returns the first message received that Next has not returned yet
// and that match accepts, waiting up to [Timeout] for it. Messages it passes
// over stay for later calls.
func (c *Client) Next(what string, match func(*Message) bool) *Message {
	c.t.Helper()
	var found *Message
	c.await(what, Timeout, func() bool {
		for _, m := range c.msgs {
			if !m.taken && match(m) {
				m.taken, found = true, m
				return true
			}
		}
		return false
	})
	return found
}

// Wait waits up to d until at least n of the messages received so far
// match, and returns them all. Unlike Next, it counts messages Next has
// returned, and takes none.
func (c *Client) Wait(what string, match func(*Message) bool, n int, d time.Duration) []*Message {
	c.t.Helper()
	var found []*Message
	c.await(fmt.Sprintf("%d× %s", n, what), d, func() bool {
		found = c.matching(match)
		return len(found) >= n
	})
	return found
}

// Matching returns the messages received so far that match accepts; a nil
// match accepts all.
func (c *Client) Matching(match func(*Message) bool) []*Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.matching(match)
}

func (c *Client) matching(match func(*Message) bool) []*Message {
	var out []*Message
	for _, m := range c.msgs {
		if match == nil || match(m) {
			out = append(out, m)
		}
	}
	return out
}

// Reply waits (as [Client.Next]) for the reply to the push on topic with ref.
func (c *Client) Reply(topic, ref string) *Message {
	c.t.Helper()
	return c.Next("reply to ref "+ref+" on "+topic, func(m *Message) bool {
		return m.Event == "phx_reply" && m.Topic == topic && m.Ref.String() == ref
	})
}

// Join joins topic with payload and returns the reply, whatever its status.
func (c *Client) Join(topic string, payload any) *Message {
	c.t.Helper()
	return c.Reply(topic, c.Push(topic, "phx_join", payload))
}

// JoinOK joins topic with payload, fails the test unless the reply is ok,
// and returns it.
func (c *Client) JoinOK(topic string, payload any) *Message {
	c.t.Helper()
	r := c.Join(topic, payload)
	if r.Status != "ok" {
		c.t.Fatalf("%s: join %s: %s %s", c.Name, topic, r.Status, r.Response)
	}
	return r
}

// await calls ready, under the lock, now and at every new message until it
// returns true. It fails the test when the connection ends or d passes
// first.
func (c *Client) await(what string, d time.Duration, ready func() bool) {
	c.t.Helper()
	deadline := time.After(d)
	closed := false
	for {
		c.mu.Lock()
		ok := ready()
		changed := c.changed
		c.mu.Unlock()
		switch {
		case ok:
			return
		case closed:
			c.t.Fatalf("%s: connection closed (%v) while waiting for %s; messages:%s", c.Name, c.conn.Err(), what, c.describe())
		}
		select {
		case <-changed:
		case <-c.conn.Done():
			closed = true // check once more: the last messages came before Done
		case <-deadline:
			c.t.Fatalf("%s: no %s after %v; messages:%s", c.Name, what, d, c.describe())
		}
	}
}

// describe lists the messages received so far, one a line.
func (c *Client) describe() string {
	var b strings.Builder
	for _, m := range c.Matching(nil) {
		b.WriteString("\n  ")
		b.WriteString(m.String())
	}
	return b.String()
}
