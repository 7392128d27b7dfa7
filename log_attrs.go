package phx

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// withAttr returns l with the attribute key=value added to every record it
// logs, like l.With(key, value), but without formatting anything up front.
//
// Every connection's logger carries its socket ID and every channel's its
// topic. slog's built-in handlers format a With's attributes when it is
// called and keep the bytes, about 0.3 KiB per call, for the life of the
// connection or channel, although most never log a line. attrHandler adds
// the attribute when a record is handled instead: a line costs a copy of
// its record, an idle channel costs 64 bytes.
func withAttr(l *slog.Logger, key, value string) *slog.Logger {
	a := slog.String(key, value)
	if p, ok := l.Handler().(*attrHandler); ok && p.n < len(p.attrs) {
		h := &attrHandler{next: p.next, attrs: p.attrs, n: p.n + 1}
		h.attrs[p.n] = a
		return slog.New(h)
	}
	return slog.New(&attrHandler{next: l.Handler(), attrs: [2]slog.Attr{a}, n: 1})
}

// attrHandler is next with attrs[:n] added to each record ahead of the
// record's own attributes, as next.WithAttrs(attrs[:n]) would add them.
type attrHandler struct {
	next  slog.Handler
	attrs [2]slog.Attr
	n     int
}

func (h *attrHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *attrHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(h.attrs[:h.n]...)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs and WithGroup hand over to next's own, so that a logger made
// from a connection's or channel's (Socket.Logger().With(...)) formats as
// slog's handlers do.
func (h *attrHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	return h.next.WithAttrs(h.attrs[:h.n]).WithAttrs(as)
}

func (h *attrHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.next.WithAttrs(h.attrs[:h.n]).WithGroup(name)
}

// keepLogger stores l in p unless p holds a logger already, and returns
// the one p holds: for loggers made on first use by any goroutine.
func keepLogger(p *atomic.Pointer[slog.Logger], l *slog.Logger) *slog.Logger {
	if p.CompareAndSwap(nil, l) {
		return l
	}
	return p.Load()
}
