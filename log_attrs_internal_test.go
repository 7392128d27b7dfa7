package phx

import (
	"bytes"
	"log/slog"
	"regexp"
	"testing"
)

// TestWithAttrLogsAsWith: a logger made with withAttr writes the same lines
// as one made with slog's With, for the built-in handlers, through the
// chains the library builds (transport, socket ID, topic) and what a user
// adds on top (With, WithGroup, a group already open on the base).
func TestWithAttrLogsAsWith(t *testing.T) {
	stamp := regexp.MustCompile(`time=\S+ |"time":"[^"]*",`)
	handlers := map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler {
			return slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})
		},
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	}
	uses := map[string]func(l *slog.Logger){
		"plain":      func(l *slog.Logger) { l.Info("hello", "n", 1) },
		"with after": func(l *slog.Logger) { l.With("user", "ann").Warn("hi", "n", 2) },
		"group after": func(l *slog.Logger) {
			l.WithGroup("req").With("id", 7).Error("failed", "err", "boom")
		},
		"empty group": func(l *slog.Logger) { l.WithGroup("").Info("same", "k", "v") },
	}
	for hname, mk := range handlers {
		for _, grouped := range []bool{false, true} {
			for uname, use := range uses {
				var want, got bytes.Buffer
				wantBase, gotBase := slog.New(mk(&want)), slog.New(mk(&got))
				if grouped {
					wantBase, gotBase = wantBase.WithGroup("g"), gotBase.WithGroup("g")
				}
				use(wantBase.With("transport", "websocket").With("socket_id", "u:1").With("topic", "room:a"))
				use(withAttr(withAttr(withAttr(gotBase, "transport", "websocket"), "socket_id", "u:1"), "topic", "room:a"))
				w, g := stamp.ReplaceAllString(want.String(), ""), stamp.ReplaceAllString(got.String(), "")
				if w != g || w == "" {
					t.Errorf("%s, grouped %t, %s:\nWith:     %q\nwithAttr: %q", hname, grouped, uname, w, g)
				}
			}
		}
	}
}

// TestWithAttrIsSmall: a channel's logger, made from its connection's,
// stays one small handler (two attributes inline), and levels the base
// does not enable are not handled at all.
func TestWithAttrIsSmall(t *testing.T) {
	var b bytes.Buffer
	base := slog.New(slog.NewTextHandler(&b, nil)) // Info and above
	conn := withAttr(base, "socket_id", "u:1")
	ch := withAttr(conn, "topic", "room:a")
	h, ok := ch.Handler().(*attrHandler)
	if !ok || h.n != 2 || h.next != base.Handler() {
		t.Fatalf("channel's handler = %#v, want two attributes over the base handler", ch.Handler())
	}
	ch.Debug("not enabled")
	if b.Len() != 0 {
		t.Fatalf("a Debug line was written: %q", b.String())
	}
	allocs := testing.AllocsPerRun(100, func() { _ = withAttr(conn, "topic", "room:a") })
	if allocs > 2 {
		t.Errorf("withAttr allocates %.0f times, want at most 2 (handler, logger)", allocs)
	}
}
