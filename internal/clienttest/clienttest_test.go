package clienttest_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/clienttest"
	"github.com/phxgo/phx/internal/leaktest"
	"github.com/phxgo/phx/internal/wire"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// echo replies to every push with its payload, and broadcasts "bin" as a
// binary frame.
type echo struct{}

func (echo) Join(*phx.Socket, phx.Payload) (any, error) { return map[string]int{"joined": 1}, nil }

func (echo) HandleIn(s *phx.Socket, event string, p phx.Payload) (any, error) {
	if event == "bin" {
		return nil, s.Broadcast("bin", phx.Binary{1, 2, 3})
	}
	return json.RawMessage(p.Data), nil
}

// serve returns the ws:// URL of a server with the echo channel on room:*.
func serve(t *testing.T) string {
	srv := phx.NewServer(&phx.Options{Logger: slog.New(slog.DiscardHandler)})
	srv.Channel("room:*", func() phx.Channel { return echo{} })
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		hs.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/websocket"
}

func TestClient(t *testing.T) {
	url := serve(t)
	c := clienttest.New(t, "ann", url+"?vsn=2.0.0", nil)
	if r := c.JoinOK("room:1", nil); r.Field("status") != `"ok"` || string(r.Response) != `{"joined":1}` || r.Ref.String() != "1" {
		t.Fatalf("join reply %v: status %q response %s", r, r.Status, r.Response)
	}
	ref := c.Push("room:1", "ping", map[string]string{"a": "<&>"})
	r := c.Reply("room:1", ref)
	if r.JoinRef.String() != "1" || r.Ref.String() != "2" || r.Status != "ok" || string(r.Response) != `{"a":"\u003c\u0026\u003e"}` {
		t.Fatalf("reply %v: %q %s", r, r.Status, r.Response)
	}
	c.Push("room:1", "bin", nil)
	bin := c.Next("binary broadcast", func(m *clienttest.Message) bool { return m.Event == "bin" })
	if !bin.Binary || string(bin.Payload) != "\x01\x02\x03" || bin.JoinRef != nil || bin.Ref != nil || bin.At.IsZero() {
		t.Fatalf("binary broadcast %v: %x", bin, bin.Payload)
	}
	// Wait counts every message, Next hands each out once.
	if all := c.Wait("replies", func(m *clienttest.Message) bool { return m.Event == "phx_reply" }, 3, time.Second); len(all) != 3 {
		t.Fatalf("%d replies", len(all))
	}
	if n := len(c.Matching(nil)); n != 4 {
		t.Fatalf("%d messages, want 4: %v", n, c.Matching(nil))
	}
	r3 := c.Next("third reply", func(m *clienttest.Message) bool { return m.Event == "phx_reply" })
	if r3.Ref.String() != "3" {
		t.Fatalf("Next returned %v, want the reply to ref 3 (the others were taken)", r3)
	}
	c.Close()
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
}

func TestConn(t *testing.T) {
	url := serve(t)
	if _, resp, err := clienttest.Dial(context.Background(), url+"?vsn=9.0.0", nil, nil); err == nil || resp == nil || resp.StatusCode < http.StatusBadRequest {
		t.Fatalf("dial with an unknown vsn: %v, want an HTTP error status", err)
	}
	frames := make(chan clienttest.Frame, 8)
	c, _, err := clienttest.Dial(context.Background(), url+"?vsn=2.0.0", nil, func(f clienttest.Frame) { frames <- f })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	// A binary push to a topic not joined gets a text error reply.
	bin := wire.Message{Ref: wire.StringRef("7"), Topic: "room:x", Event: "e", Payload: wire.Payload{Data: []byte{9}, Binary: true}}
	if err := c.Send(ctx, bin); err != nil {
		t.Fatal(err)
	}
	f := <-frames
	m, err := wire.DecodeServerV2(f.Data, f.Binary)
	if err != nil || m.Status != "error" || m.Ref.String() != "7" {
		t.Fatalf("reply %q: %+v %v", f.Data, m, err)
	}
	if c.Err() != nil {
		t.Fatalf("Err() = %v while the connection is open", c.Err())
	}
}
