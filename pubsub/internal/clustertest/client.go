package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Frame is one decoded V2 frame [join_ref, ref, topic, event, payload].
type Frame struct {
	JoinRef, Ref  string // "" for null
	Topic, Event  string
	Payload       json.RawMessage
	At            time.Time
	payloadFields map[string]json.RawMessage
}

// Field returns a top-level field of the payload as raw JSON ("" if absent).
func (f *Frame) Field(name string) string {
	if f.payloadFields == nil {
		f.payloadFields = map[string]json.RawMessage{}
		_ = json.Unmarshal(f.Payload, &f.payloadFields)
	}
	return string(f.payloadFields[name])
}

// Client is a Phoenix V2 WebSocket client that records every frame.
type Client struct {
	t    testing.TB
	Name string
	conn *websocket.Conn
	done chan struct{}

	mu      sync.Mutex
	frames  []*Frame
	changed chan struct{} // closed and replaced at every new frame
	ref     int
	joins   map[string]string // topic -> join ref
}

// DialClient connects to url (ws://host/socket) as user.
func DialClient(t testing.TB, url, user string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url+"/websocket?vsn=2.0.0&user="+user, nil)
	if err != nil {
		t.Fatalf("dial %s as %s: %v", url, user, err)
	}
	conn.SetReadLimit(-1)
	c := &Client{t: t, Name: user, conn: conn, done: make(chan struct{}), changed: make(chan struct{}), joins: map[string]string{}}
	go c.read()
	t.Cleanup(c.Close)
	return c
}

func (c *Client) read() {
	defer close(c.done)
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			return
		}
		var raw []json.RawMessage
		if json.Unmarshal(data, &raw) != nil || len(raw) != 5 {
			continue
		}
		f := &Frame{Payload: raw[4], At: time.Now()}
		_ = json.Unmarshal(raw[0], &f.JoinRef)
		_ = json.Unmarshal(raw[1], &f.Ref)
		_ = json.Unmarshal(raw[2], &f.Topic)
		_ = json.Unmarshal(raw[3], &f.Event)
		c.mu.Lock()
		c.frames = append(c.frames, f)
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
}

// Close closes the connection and waits for the reader.
func (c *Client) Close() {
	c.conn.CloseNow()
	<-c.done
}

// Push sends event on topic and returns its ref.
func (c *Client) Push(topic, event string, payload any) string {
	c.t.Helper()
	c.mu.Lock()
	c.ref++
	ref := strconv.Itoa(c.ref)
	joinRef := c.joins[topic]
	if event == "phx_join" {
		joinRef = ref
		c.joins[topic] = ref
	}
	c.mu.Unlock()
	if payload == nil {
		payload = map[string]any{}
	}
	data, err := json.Marshal([]any{joinRef, ref, topic, event, payload})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, data); err != nil {
		c.t.Fatalf("%s: write: %v", c.Name, err)
	}
	return ref
}

// Reply waits for the reply to ref and returns its status.
func (c *Client) Reply(ref string) string {
	c.t.Helper()
	fs := c.Wait("reply "+ref, func(f *Frame) bool { return f.Event == "phx_reply" && f.Ref == ref }, 1, 5*time.Second)
	var status string
	_ = json.Unmarshal([]byte(fs[0].Field("status")), &status)
	return status
}

// Join joins topic and fails the test unless the reply is ok.
func (c *Client) Join(topic string) {
	c.t.Helper()
	if st := c.Reply(c.Push(topic, "phx_join", nil)); st != "ok" {
		c.t.Fatalf("%s: join %s: %s", c.Name, topic, st)
	}
}

// Matching returns the frames received so far that match pred.
func (c *Client) Matching(pred func(*Frame) bool) []*Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Frame
	for _, f := range c.frames {
		if pred(f) {
			out = append(out, f)
		}
	}
	return out
}

// Wait waits until at least n received frames match pred, and returns them.
func (c *Client) Wait(what string, pred func(*Frame) bool, n int, d time.Duration) []*Frame {
	c.t.Helper()
	deadline := time.After(d)
	for {
		c.mu.Lock()
		changed := c.changed
		c.mu.Unlock()
		if fs := c.Matching(pred); len(fs) >= n {
			return fs
		}
		select {
		case <-changed:
		case <-c.done:
			c.t.Fatalf("%s: connection closed while waiting for %s", c.Name, what)
		case <-deadline:
			c.t.Fatalf("%s: %d of %d %s after %v", c.Name, len(c.Matching(pred)), n, what, d)
		}
	}
}

// Event matches frames of one event on one topic whose payload contains
// every "field":value pair of want (values compared as JSON text).
func Event(topic, event string, want map[string]string) func(*Frame) bool {
	return func(f *Frame) bool {
		if f.Topic != topic || f.Event != event {
			return false
		}
		for k, v := range want {
			if f.Field(k) != v {
				return false
			}
		}
		return true
	}
}

// Leaves matches presence_diff frames on topic whose leaves include key.
func Leaves(topic, key string) func(*Frame) bool {
	return func(f *Frame) bool {
		if f.Topic != topic || f.Event != "presence_diff" {
			return false
		}
		var leaves map[string]json.RawMessage
		_ = json.Unmarshal([]byte(f.Field("leaves")), &leaves)
		_, ok := leaves[key]
		return ok
	}
}

func quote(s string) string { return strconv.Quote(s) }

func describe(fs []*Frame) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "\n  %s %s %s", f.Topic, f.Event, f.Payload)
	}
	return b.String()
}
