// Package phxtest tests channels without a network, as Phoenix.ChannelTest
// does for Elixir. A [Socket] is a client connection made in memory to a real
// [phx.Server]: joins go through the server's router, channels run on their
// own goroutines with the server's PubSub, and everything the server sends
// is recorded for the test to wait for.
//
//	sock := phxtest.NewSocket(t, srv, phx.Assigns{"user": "ann"})
//	room := sock.JoinOK("room:lobby", nil)
//	ref := room.Push("new_msg", map[string]string{"body": "hi"})
//	room.AssertReply(ref, "ok", map[string]int{"id": 1})
//	room.AssertBroadcast("new_msg", map[string]any{"body": "hi", "user": "ann"})
//
// Every Await and Assert fails the test with a readable message after
// [Socket.Timeout] instead of hanging. Sockets close themselves in
// t.Cleanup. Tests may run in parallel.
package phxtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/wire"
)

// DefaultTimeout is how long Await and Assert methods wait by default.
const DefaultTimeout = 2 * time.Second

// Message is one message the server sent to the client.
type Message struct {
	JoinRef string // "" when null (broadcasts)
	Ref     string // "" when null (pushes, broadcasts)
	Topic   string
	Event   string
	Payload json.RawMessage // JSON payload; nil for a binary one
	Binary  []byte          // binary payload; nil for JSON

	published bool            // recorded from the topic (AwaitBroadcast), not received
	status    string          // a reply's status
	response  json.RawMessage // a text reply's response
}

// IsBroadcast reports whether m reached the client as a broadcast (no
// join_ref) rather than a push or reply of its channel.
func (m Message) IsBroadcast() bool { return m.JoinRef == "" && m.Ref == "" }

// String renders m compactly for failure messages.
func (m Message) String() string {
	p := string(m.Payload)
	if m.Binary != nil {
		p = fmt.Sprintf("<binary %d bytes>", len(m.Binary))
	}
	return fmt.Sprintf("[%q %q %s %s %s]", m.JoinRef, m.Ref, m.Topic, m.Event, p)
}

// Reply is the server's reply to a push.
type Reply struct {
	Status   string
	Response json.RawMessage
	Binary   []byte // binary response, if any
}

// Decode unmarshals the reply's response into v.
func (r Reply) Decode(v any) error { return json.Unmarshal(r.Response, v) }

// Socket is an in-memory client connection to a server under test.
type Socket struct {
	// Timeout bounds every Await and Assert; DefaultTimeout unless changed.
	Timeout time.Duration

	t    testing.TB
	srv  *phx.Server
	conn *memoryConn

	mu     sync.Mutex
	cond   *sync.Cond
	msgs   []Message // received, not yet consumed by an Await
	closed bool
	bad    error // a frame that could not be decoded
	ref    int

	watched map[string]bool // topics whose broadcasts are recorded
	echoes  []Message       // consumed broadcasts whose client frame is still to come
}

// NewSocket connects to srv as a client whose Connect returned assigns. The
// socket's ID comes from the server's ID hook. The socket is closed, and its
// channels terminated, when the test ends.
func NewSocket(t testing.TB, srv *phx.Server, assigns phx.Assigns) *Socket {
	t.Helper()
	return NewSocketID(t, srv, assigns, "")
}

// NewSocketID is NewSocket with an explicit socket ID.
func NewSocketID(t testing.TB, srv *phx.Server, assigns phx.Assigns, id string) *Socket {
	t.Helper()
	conn, err := dialMemory(srv, assigns, id)
	if err != nil {
		t.Fatalf("phxtest: connect: %v", err)
	}
	return newSocket(t, srv, conn)
}

// Connect connects to srv through its real [phx.Options.Connect] and
// [phx.Options.ID], with params as the client's connect params, as
// ChannelTest's connect/3. vsn is 2.0.0 unless params has one. When Connect
// refuses, Connect returns the [*phx.RefusedError] (its Status is the HTTP
// status a real client would get) and no Socket.
func Connect(t testing.TB, srv *phx.Server, params url.Values) (*Socket, error) {
	t.Helper()
	return ConnectInfo(t, srv, &phx.ConnectInfo{Params: params})
}

// ConnectInfo is Connect with the whole connect info Connect receives
// (headers, origin, remote address, auth token). Empty Params get vsn
// 2.0.0, a nil Context is context.Background(), an empty Transport is
// "memory".
func ConnectInfo(t testing.TB, srv *phx.Server, info *phx.ConnectInfo) (*Socket, error) {
	t.Helper()
	in := *info
	in.Params = url.Values{}
	for k, vs := range info.Params {
		in.Params[k] = append([]string(nil), vs...)
	}
	if in.Params.Get("vsn") == "" {
		in.Params.Set("vsn", "2.0.0")
	}
	if in.Context == nil {
		in.Context = context.Background()
	}
	if in.Transport == "" {
		in.Transport = "memory"
	}
	conn, err := connectMemory(srv, &in)
	if err != nil {
		return nil, err
	}
	return newSocket(t, srv, conn), nil
}

func newSocket(t testing.TB, srv *phx.Server, conn *memoryConn) *Socket {
	s := &Socket{Timeout: DefaultTimeout, t: t, srv: srv, conn: conn}
	s.cond = sync.NewCond(&s.mu)
	go s.readLoop()
	t.Cleanup(s.Close)
	return s
}

func (s *Socket) readLoop() {
	for f := range s.conn.frames {
		m, err := decode(f)
		s.mu.Lock()
		if err != nil && s.bad == nil {
			s.bad = err
		} else if err == nil && !s.dropEcho(m) {
			s.msgs = append(s.msgs, m)
		}
		s.cond.Broadcast()
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
}

// Close closes the connection from the client side and waits until every
// channel has terminated. Calling it again does nothing.
func (s *Socket) Close() { s.conn.close() }

// AwaitClosed waits for the server to close the connection and returns the
// close code (1001 after a Disconnect, 1012 after Shutdown, ...).
func (s *Socket) AwaitClosed() int {
	s.t.Helper()
	deadline := time.Now().Add(s.Timeout)
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.closed {
		if !s.waitUntil(deadline) {
			s.t.Fatalf("phxtest: the server did not close the connection within %v", s.Timeout)
		}
	}
	return s.conn.closeCode()
}

// waitUntil waits on the condition until deadline; false on timeout. s.mu
// is held.
func (s *Socket) waitUntil(deadline time.Time) bool {
	d := time.Until(deadline)
	if d <= 0 {
		return false
	}
	t := time.AfterFunc(d, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	s.cond.Wait()
	t.Stop()
	return time.Now().Before(deadline)
}

// await removes and returns the first received message that match accepts,
// waiting up to Timeout; it fails the test with desc otherwise.
func (s *Socket) await(desc string, match func(Message) bool) Message {
	s.t.Helper()
	m, ok := s.find(s.Timeout, match)
	if !ok {
		s.mu.Lock()
		var seen []string
		for _, m := range s.msgs {
			seen = append(seen, "  "+m.String())
		}
		bad := s.bad
		s.mu.Unlock()
		msg := fmt.Sprintf("phxtest: timed out after %v waiting for %s", s.Timeout, desc)
		if len(seen) > 0 {
			msg += "\nunconsumed messages:\n" + strings.Join(seen, "\n")
		} else {
			msg += "\nno unconsumed messages"
		}
		if bad != nil {
			msg += "\nundecodable frame: " + bad.Error()
		}
		s.t.Fatal(msg)
	}
	return m
}

func (s *Socket) find(timeout time.Duration, match func(Message) bool) (Message, bool) {
	deadline := time.Now().Add(timeout)
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for i, m := range s.msgs {
			if match(m) {
				s.msgs = append(s.msgs[:i:i], s.msgs[i+1:]...)
				return m, true
			}
		}
		if s.closed || !s.waitUntil(deadline) {
			// One last look: frames may have arrived with the close.
			for i, m := range s.msgs {
				if match(m) {
					s.msgs = append(s.msgs[:i:i], s.msgs[i+1:]...)
					return m, true
				}
			}
			return Message{}, false
		}
	}
}

func (s *Socket) nextRef() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ref++
	return strconv.Itoa(s.ref)
}

func (s *Socket) send(joinRef, ref, topic, event string, payload any) {
	s.t.Helper()
	var p wire.Payload
	switch v := payload.(type) {
	case nil:
		p.Data = wire.EmptyObject()
	case phx.Binary:
		p = wire.Payload{Data: v, Binary: true}
	default:
		b, err := json.Marshal(v)
		if err != nil {
			s.t.Fatalf("phxtest: encode payload: %v", err)
		}
		p.Data = b
	}
	frame, err := wire.EncodeClientV2(wire.Message{
		JoinRef: textRef(joinRef), Ref: textRef(ref), Topic: topic, Event: event, Payload: p,
	})
	if err != nil {
		s.t.Fatalf("phxtest: encode %s on %s: %v", event, topic, err)
	}
	if err := s.conn.send(phx.Frame{Data: frame, Binary: p.Binary}); err != nil {
		s.t.Fatalf("phxtest: send %s on %s: %v", event, topic, err)
	}
}

// textRef is the ref phoenix.js sends for s: a JSON string, or null for "".
func textRef(s string) wire.Ref {
	if s == "" {
		return nil
	}
	return wire.StringRef(s)
}

// JoinError is the error Join returns when the channel refuses the join.
type JoinError struct {
	Response json.RawMessage
}

// Error implements error.
func (e *JoinError) Error() string { return "phxtest: join refused: " + string(e.Response) }

// Join joins topic with payload (nil for {}) through the server's router
// and waits for the reply. A refused join returns a *JoinError carrying the
// error response, such as {"reason":"unmatched topic"}.
func (s *Socket) Join(topic string, payload any) (*Channel, json.RawMessage, error) {
	s.t.Helper()
	ref := s.nextRef()
	s.send(ref, ref, topic, "phx_join", payload)
	r := s.awaitReply(topic, ref)
	if r.Status != "ok" {
		return nil, nil, &JoinError{Response: r.Response}
	}
	s.watch(topic)
	return &Channel{s: s, topic: topic, joinRef: ref}, r.Response, nil
}

// JoinOK is Join for joins that must succeed: it fails the test otherwise.
func (s *Socket) JoinOK(topic string, payload any) *Channel {
	s.t.Helper()
	ch, _, err := s.Join(topic, payload)
	if err != nil {
		s.t.Fatalf("phxtest: join %s: %v", topic, err)
	}
	return ch
}

func (s *Socket) awaitReply(topic, ref string) Reply {
	s.t.Helper()
	m := s.await(fmt.Sprintf("the reply to ref %s on %s", ref, topic), func(m Message) bool {
		return !m.published && m.Event == "phx_reply" && m.Topic == topic && m.Ref == ref
	})
	if m.Binary != nil {
		return Reply{Status: m.status, Binary: m.Binary}
	}
	if m.status == "" {
		s.t.Fatalf("phxtest: reply without a status: %s", m.Payload)
	}
	return Reply{Status: m.status, Response: m.response}
}

// Channel is a joined topic on a test Socket.
type Channel struct {
	s       *Socket
	topic   string
	joinRef string
}

// Topic returns the channel's topic.
func (ch *Channel) Topic() string { return ch.topic }

// Push sends event with payload (nil for {}, phx.Binary for a binary
// frame) and returns its ref for AwaitReply.
func (ch *Channel) Push(event string, payload any) string {
	ch.s.t.Helper()
	ref := ch.s.nextRef()
	ch.s.send(ch.joinRef, ref, ch.topic, event, payload)
	return ref
}

// AwaitReply waits for the reply to the push with ref.
func (ch *Channel) AwaitReply(ref string) Reply {
	ch.s.t.Helper()
	return ch.s.awaitReply(ch.topic, ref)
}

// AssertReply waits for the reply to ref and checks its status and, unless
// want is nil, its response as AssertPush checks a payload.
func (ch *Channel) AssertReply(ref, status string, want any) Reply {
	ch.s.t.Helper()
	r := ch.AwaitReply(ref)
	if r.Status != status {
		ch.s.t.Fatalf("phxtest: reply to %s on %s: status %q, want %q (response %s)", ref, ch.topic, r.Status, status, r.Response)
	}
	if want != nil {
		assertJSON(ch.s.t, fmt.Sprintf("reply to %s on %s", ref, ch.topic), r.Response, want)
	}
	return r
}

// AwaitPush waits for a push of event to this channel (a message carrying
// its join_ref, such as Socket.Push or a HandleOut push) and returns it.
func (ch *Channel) AwaitPush(event string) Message {
	ch.s.t.Helper()
	return ch.s.await(fmt.Sprintf("push %q on %s", event, ch.topic), func(m Message) bool {
		return !m.published && m.Topic == ch.topic && m.Event == event && m.JoinRef == ch.joinRef && m.Ref == ""
	})
}

// AssertPush waits for a push of event and compares its payload with want:
// equal once both are JSON-encoded, or, when want is a [Matcher]
// ([Subset], [Func]), accepted by it.
func (ch *Channel) AssertPush(event string, want any) Message {
	ch.s.t.Helper()
	m := ch.AwaitPush(event)
	assertJSON(ch.s.t, fmt.Sprintf("push %q on %s", event, ch.topic), m.Payload, want)
	return m
}

// AwaitBroadcast waits for a broadcast of event published on the channel's
// topic since the join, as ChannelTest's assert_broadcast: it sees what was
// published, whether or not the channel intercepts the event (a rewritten
// or dropped HandleOut push is checked with AwaitPush). The client's own
// copy of a broadcast the channel does not intercept is consumed with it.
// The returned Message has no refs.
func (ch *Channel) AwaitBroadcast(event string) Message {
	ch.s.t.Helper()
	m := ch.s.await(fmt.Sprintf("broadcast %q on %s", event, ch.topic), func(m Message) bool {
		return m.published && m.Topic == ch.topic && m.Event == event
	})
	ch.s.consumeEcho(m)
	return m
}

// AssertBroadcast waits for a broadcast of event on the channel's topic and
// compares its payload with want (see AssertPush for matchers).
func (ch *Channel) AssertBroadcast(event string, want any) Message {
	ch.s.t.Helper()
	m := ch.AwaitBroadcast(event)
	assertJSON(ch.s.t, fmt.Sprintf("broadcast %q on %s", event, ch.topic), m.Payload, want)
	return m
}

// RefuteBroadcast checks that no broadcast of event is published on the
// channel's topic within d.
func (ch *Channel) RefuteBroadcast(event string, d time.Duration) {
	ch.s.t.Helper()
	ch.s.refute(fmt.Sprintf("broadcast %q on %s", event, ch.topic), d, func(m Message) bool {
		return m.published && m.Topic == ch.topic && m.Event == event
	})
}

// RefutePush checks that no push of event reaches the channel within d.
func (ch *Channel) RefutePush(event string, d time.Duration) {
	ch.s.t.Helper()
	ch.s.refute(fmt.Sprintf("push %q on %s", event, ch.topic), d, func(m Message) bool {
		return !m.published && m.Topic == ch.topic && m.Event == event && m.JoinRef == ch.joinRef && m.Ref == ""
	})
}

// RefuteReply checks that no reply to ref arrives within d (HandleIn
// returned NoReply and nothing replied later).
func (ch *Channel) RefuteReply(ref string, d time.Duration) {
	ch.s.t.Helper()
	ch.s.refute(fmt.Sprintf("reply to %s on %s", ref, ch.topic), d, func(m Message) bool {
		return !m.published && m.Event == "phx_reply" && m.Topic == ch.topic && m.Ref == ref
	})
}

// RefuteMessage checks that no message of event (push or broadcast) reaches
// the client on the channel's topic within d.
func (ch *Channel) RefuteMessage(event string, d time.Duration) {
	ch.s.t.Helper()
	ch.s.refute(fmt.Sprintf("%s on %s", event, ch.topic), d, func(m Message) bool {
		return !m.published && m.Topic == ch.topic && m.Event == event
	})
}

// refute fails the test if a message match accepts arrives within d.
func (s *Socket) refute(desc string, d time.Duration, match func(Message) bool) {
	s.t.Helper()
	if m, ok := s.find(d, match); ok {
		s.t.Fatalf("phxtest: unexpected %s: %s", desc, m)
	}
}

// Leave leaves the channel, checks the ok reply, and waits for phx_close.
func (ch *Channel) Leave() {
	ch.s.t.Helper()
	ref := ch.Push("phx_leave", nil)
	ch.AssertReply(ref, "ok", nil)
	ch.AwaitClose()
}

// AwaitClose waits for phx_close: the server ended the channel gracefully.
func (ch *Channel) AwaitClose() {
	ch.s.t.Helper()
	ch.awaitLifecycle("phx_close")
}

// AwaitError waits for phx_error: the channel crashed (a real client would
// rejoin).
func (ch *Channel) AwaitError() {
	ch.s.t.Helper()
	ch.awaitLifecycle("phx_error")
}

func (ch *Channel) awaitLifecycle(event string) {
	ch.s.t.Helper()
	ch.s.await(fmt.Sprintf("%s on %s", event, ch.topic), func(m Message) bool {
		return !m.published && m.Topic == ch.topic && m.Event == event && m.JoinRef == ch.joinRef
	})
}

func assertJSON(t testing.TB, what string, got json.RawMessage, want any) {
	t.Helper()
	if m, ok := want.(Matcher); ok {
		if err := m.match(got); err != nil {
			t.Fatalf("phxtest: %s: %v\n got: %s", what, err, compact(got))
		}
		return
	}
	wantJSON, err := json.Marshal(want)
	if err != nil {
		t.Fatalf("phxtest: encode expected value: %v", err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("phxtest: %s: payload is not JSON: %s", what, got)
	}
	_ = json.Unmarshal(wantJSON, &w)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("phxtest: %s:\n got: %s\nwant: %s", what, compact(got), wantJSON)
	}
}

func compact(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return string(b)
	}
	return buf.String()
}

// decode parses a V2 frame as the official client does.
func decode(f phx.Frame) (Message, error) {
	sm, err := wire.DecodeServerV2(f.Data, f.Binary)
	if err != nil {
		return Message{}, err
	}
	m := Message{
		JoinRef:  sm.JoinRef.String(),
		Ref:      sm.Ref.String(),
		Topic:    sm.Topic,
		Event:    sm.Event,
		status:   sm.Status,
		response: json.RawMessage(sm.Response.Data),
	}
	if f.Binary {
		m.Binary = append([]byte{}, sm.Payload.Data...)
	} else {
		m.Payload = json.RawMessage(sm.Payload.Data)
	}
	return m, nil
}
