package phx_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/wire"
)

// The protocol tests run once per transport, as net/http's client-server
// tests run once per HTTP mode: one test body, every transport.

// mode is a transport the protocol tests run over.
type mode string

const (
	modeWebSocket mode = "websocket"
	modeLongPoll  mode = "longpoll"
	// modePipe is a custom Transport written on the public contract
	// (lineTransport, example_transport_test.go) over net.Pipe: what an
	// adapter outside this module would be.
	modePipe mode = "pipe"
)

var allModes = []mode{modeWebSocket, modeLongPoll, modePipe}

// run runs body once per mode (every mode when none is given), each as a
// parallel subtest named after its mode.
func run(t *testing.T, body func(t *testing.T, m mode), modes ...mode) {
	t.Helper()
	if len(modes) == 0 {
		modes = allModes
	}
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			body(t, m)
		})
	}
}

// peer is a raw client on one transport, speaking text frames.
type peer interface {
	// send writes a V2 frame [join_ref, ref, topic, event, payload], each
	// ref and the payload encoded as JSON.
	send(joinRef, ref any, topic, event string, payload any)
	// sendRaw writes one text frame as it is.
	sendRaw(frame string)
	// recv returns the next frame the server sent.
	recv() string
	// expect reads the next frame and compares it with want.
	expect(want string)
	// expectNothing checks that no frame arrives within d.
	expectNothing(d time.Duration)
	// join sends phx_join with joinRef == ref and expects an ok reply.
	join(topic, ref string, payload any) string
	// expectClosed waits for the server to close the connection, and
	// checks the close code (long-poll has none: there it checks that the
	// session is gone).
	expectClosed(want websocket.StatusCode)
}

// dialMode connects to ts over m with the given query (vsn included).
func dialMode(t *testing.T, ts *testServer, m mode, query string) peer {
	t.Helper()
	switch m {
	case modeWebSocket:
		return dial(t, ts.url, query, nil)
	case modeLongPoll:
		return &lpPeer{lpClient: lpOpen(t, ts, query)}
	case modePipe:
		return dialPipe(t, ts.Server, query)
	}
	t.Fatalf("unknown mode %q", m)
	return nil
}

func (c *wsClient) expectClosed(want websocket.StatusCode) {
	c.t.Helper()
	if code := c.expectClose(); code != want {
		c.t.Fatalf("close code %d, want %d", code, want)
	}
}

// encodeV2 encodes a client frame as wsClient.send does.
func encodeV2(t *testing.T, joinRef, ref any, topic, event string, payload any) string {
	t.Helper()
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	frame, err := wire.EncodeClientV2(wire.Message{
		JoinRef: js(joinRef), Ref: js(ref), Topic: topic, Event: event, Payload: wire.Payload{Data: js(payload)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(frame)
}

// expectFrame fails the test unless got is want.
func expectFrame(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("frame mismatch\n got: %s\nwant: %s", got, want)
	}
}

// joinReplyOK returns got, failing the test unless it is an ok reply.
func joinReplyOK(t *testing.T, topic, got string) string {
	t.Helper()
	reply, err := wire.DecodeServerV2([]byte(got), false)
	if err != nil || reply.Event != "phx_reply" {
		t.Fatalf("bad join reply %s (%v)", got, err)
	}
	if reply.Status != "ok" {
		t.Fatalf("join %s refused: %s", topic, got)
	}
	return got
}

// lpPeer is a long-poll session as a peer: every frame is one POST, and
// frames arrive through polls, buffered.
type lpPeer struct {
	*lpClient
	pending []string
}

func (c *lpPeer) send(joinRef, ref any, topic, event string, payload any) {
	c.t.Helper()
	c.sendRaw(encodeV2(c.t, joinRef, ref, topic, event, payload))
}

// sendRaw posts one frame. The answer is not checked: a frame that closes
// the session (malformed, too big) is answered 410 or 413, which
// expectClosed then sees.
func (c *lpPeer) sendRaw(frame string) {
	c.t.Helper()
	lpDoRaw(c.t, c.ts, "POST", c.url(), map[string]string{"Content-Type": "application/x-ndjson"}, frame)
}

func (c *lpPeer) recv() string {
	c.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); len(c.pending) == 0; {
		if time.Now().After(deadline) {
			c.t.Fatal("timed out waiting for a frame")
		}
		rep := c.get()
		switch rep.Status {
		case 200:
			c.pending = append(c.pending, rep.messages()...)
		case 204:
		default:
			c.t.Fatalf("poll: got %s while waiting for a frame", rep.raw)
		}
	}
	f := c.pending[0]
	c.pending = c.pending[1:]
	return f
}

func (c *lpPeer) expect(want string) {
	c.t.Helper()
	expectFrame(c.t, c.recv(), want)
}

func (c *lpPeer) expectNothing(d time.Duration) {
	c.t.Helper()
	for end := time.Now().Add(d); len(c.pending) == 0 && time.Now().Before(end); {
		if rep := c.get(); rep.Status == 200 {
			c.pending = append(c.pending, rep.messages()...)
		}
	}
	if len(c.pending) > 0 {
		c.t.Fatalf("unexpected frame: %s", c.pending[0])
	}
}

func (c *lpPeer) join(topic, ref string, payload any) string {
	c.t.Helper()
	c.send(ref, ref, topic, "phx_join", payload)
	return joinReplyOK(c.t, topic, c.recv())
}

// expectClosed polls until the session is gone: a poll answers 410 (the
// session closing, or a new one opened in its place). Frames still queued
// are discarded.
func (c *lpPeer) expectClosed(websocket.StatusCode) {
	c.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if time.Now().After(deadline) {
			c.t.Fatal("timed out waiting for the session to close")
		}
		if rep := c.get(); rep.Status == 410 {
			return
		}
	}
}

// pipePeer is the client end of a connection served by lineTransport.
type pipePeer struct {
	inbox
	nc     net.Conn
	closed chan int // the close code the server gave the transport
}

// dialPipe serves a connection over a pipe with lineTransport, after
// Accept has run Connect with the query's params.
func dialPipe(t *testing.T, srv *phx.Server, query string) *pipePeer {
	t.Helper()
	params, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := srv.Accept(&phx.ConnectInfo{Context: context.Background(), Params: params, Transport: "pipe"})
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	serverSide, clientSide := net.Pipe()
	done := make(chan struct{})
	var readErr error
	c := &pipePeer{
		inbox:  inbox{t: t, in: make(chan wsFrame, 4096), done: done, why: func() error { return readErr }},
		nc:     clientSide,
		closed: make(chan int, 1),
	}
	c.writeText = func(frame string) {
		_ = clientSide.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintln(clientSide, frame); err != nil {
			t.Fatal(err)
		}
	}
	tr := &recordingTransport{lineTransport: &lineTransport{nc: serverSide}, closed: c.closed}
	go conn.Serve(tr, phx.TransportFeatures{TextOnly: true})
	go func() {
		defer close(done)
		lines := bufio.NewReader(clientSide)
		for {
			line, err := lines.ReadString('\n')
			if err != nil {
				readErr = err
				return
			}
			c.in <- wsFrame{data: []byte(strings.TrimSuffix(line, "\n"))}
		}
	}()
	t.Cleanup(func() { clientSide.Close() })
	return c
}

func (c *pipePeer) expectClosed(want websocket.StatusCode) {
	c.t.Helper()
	select {
	case code := <-c.closed:
		if websocket.StatusCode(code) != want {
			c.t.Fatalf("close code %d, want %d", code, want)
		}
	case <-time.After(10 * time.Second):
		c.t.Fatal("timed out waiting for the server to close")
	}
}
