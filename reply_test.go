package phx_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/phxgo/phx"
)

// badReplies is a channel whose Join and HandleIn reply with whatever its
// payload asks for, objects or not.
type badReplies struct{ rec *recorder }

func badReply(p phx.Payload) any {
	var params struct{ Reply string }
	_ = p.Decode(&params)
	switch params.Reply {
	case "string":
		return "hello"
	case "slice":
		return []int{1, 2}
	case "raw_array":
		return json.RawMessage(`[1]`)
	case "error_string":
		return &phx.ReplyError{Status: "error", Response: "nope"}
	}
	return map[string]string{"fine": "yes"}
}

func (b *badReplies) Join(s *phx.Socket, p phx.Payload) (any, error) {
	if r, ok := badReply(p).(*phx.ReplyError); ok {
		return nil, r
	}
	return badReply(p), nil
}

func (b *badReplies) HandleIn(s *phx.Socket, event string, p phx.Payload) (any, error) {
	if r, ok := badReply(p).(*phx.ReplyError); ok {
		return nil, r
	}
	return badReply(p), nil
}

func (b *badReplies) Terminate(s *phx.Socket, reason error) {
	if errors.Is(reason, phx.ErrInvalidPayload) {
		b.rec.add(s.Topic() + ":invalid_payload")
		return
	}
	b.rec.add(s.Topic() + ":" + reasonName(reason))
}

// logRecorder keeps the records logged at Error.
type logRecorder struct {
	mu      sync.Mutex
	records []map[string]string // message under "msg", then every attribute
}

func (l *logRecorder) Enabled(_ context.Context, lvl slog.Level) bool { return lvl >= slog.LevelError }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	l.mu.Lock()
	l.records = append(l.records, m)
	l.mu.Unlock()
	return nil
}

// WithAttrs keeps the logger's attributes (topic, transport) in each record.
func (l *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &attrHandler{l: l, attrs: attrs}
}

func (l *logRecorder) WithGroup(string) slog.Handler { return l }

// find returns the Error record with the given attributes, if any.
func (l *logRecorder) find(want map[string]string) map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, r := range l.records {
		for k, v := range want {
			if r[k] != v {
				continue next
			}
		}
		return r
	}
	return nil
}

type attrHandler struct {
	l     *logRecorder
	attrs []slog.Attr
}

func (h *attrHandler) Enabled(ctx context.Context, lvl slog.Level) bool { return h.l.Enabled(ctx, lvl) }

func (h *attrHandler) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(h.attrs...)
	return h.l.Handle(ctx, r)
}

func (h *attrHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &attrHandler{l: h.l, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *attrHandler) WithGroup(string) slog.Handler { return h }

// TestNonObjectReplies: a Join or HandleIn reply that is not a JSON object
// is an error the client sees ({"reason":"internal error"}, the channel not
// joined after a Join) and one logged at Error with the value's type, the
// topic and the event.
func TestNonObjectReplies(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		logs := &logRecorder{}
		rec := newRecorder()
		ts := newTestServer(t, &phx.Options{Logger: slog.New(logs)}, func(s *phx.Server) {
			s.Channel("bad:*", func() phx.Channel { return &badReplies{rec: rec} })
		})
		c := dialMode(t, ts, m, "vsn=2.0.0")

		for i, tc := range []struct{ reply, typ string }{
			{"string", "string"},
			{"slice", "[]int"},
			{"raw_array", "json.RawMessage"},
		} {
			ref := string(rune('1' + i))
			topic := "bad:join_" + tc.reply
			c.send(ref, ref, topic, "phx_join", map[string]string{"reply": tc.reply})
			c.expect(`["` + ref + `","` + ref + `","` + topic + `","phx_reply",{"status":"error","response":{"reason":"internal error"}}]`)
			if r := logs.find(map[string]string{"topic": topic, "event": "phx_join", "type": tc.typ}); r == nil {
				t.Errorf("no Error log for Join's %s reply on %s; logged: %v", tc.typ, topic, logs.records)
			}
			if got := rec.wait(t); got != topic+":invalid_payload" {
				t.Errorf("Terminate %q, want %s:invalid_payload", got, topic)
			}
			// Not joined: a push to it is an unmatched topic.
			c.send(ref, "p"+ref, topic, "x", map[string]string{})
			c.expect(`[null,"p` + ref + `","` + topic + `","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
		}

		c.join("bad:in", "10", map[string]string{})
		for i, tc := range []struct{ reply, typ string }{
			{"string", "string"},
			{"slice", "[]int"},
			{"raw_array", "json.RawMessage"},
			{"error_string", "string"},
		} {
			ref := string(rune('a' + i))
			event := "ev_" + tc.reply
			c.send("10", ref, "bad:in", event, map[string]string{"reply": tc.reply})
			c.expect(`["10","` + ref + `","bad:in","phx_reply",{"status":"error","response":{"reason":"internal error"}}]`)
			if r := logs.find(map[string]string{"topic": "bad:in", "event": event, "type": tc.typ}); r == nil {
				t.Errorf("no Error log for HandleIn's %s reply to %s; logged: %v", tc.typ, event, logs.records)
			}
		}
		// The channel is still joined and answers objects as before.
		c.send("10", "z", "bad:in", "ok", map[string]string{})
		c.expect(`["10","z","bad:in","phx_reply",{"status":"ok","response":{"fine":"yes"}}]`)
	})
}
