package phx_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

// syncWriter is a bytes.Buffer safe for a logger's concurrent writes.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// Connects and joins are logged at Info by default, as Phoenix does, with
// secrets filtered; the levels are configurable.
func TestConnectAndJoinLogs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		level slog.Level
		want  bool
	}{{"default", 0, true}, {"debug", slog.LevelDebug, false}} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncWriter
			srv := phx.NewServer(&phx.Options{
				Logger:          slog.New(slog.NewTextHandler(&logs, nil)), // Info and up
				ConnectLogLevel: tc.level,
				JoinLogLevel:    tc.level,
				Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
					return phx.Assigns{"user": info.Params.Get("user")}, nil
				},
			})
			srv.Channel("room:*", func() phx.Channel { return &room{} })
			t.Cleanup(func() { srv.Shutdown(context.Background()) })
			c := dialPipe(t, srv, "user=ann&token=s3cret&user_password=hunter2&vsn=2.0.0")
			c.join("room:l", "1", map[string]any{})
			// The join is logged right after its reply is sent: give it a
			// moment on a loaded machine.
			var out string
			var connected, joined bool
			for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				out = logs.String()
				connected = strings.Contains(out, `msg="phx: socket connected" transport=pipe`) &&
					strings.Contains(out, "params.token=[FILTERED]") && strings.Contains(out, "params.user_password=[FILTERED]") &&
					strings.Contains(out, "params.user=ann")
				joined = strings.Contains(out, `msg="phx: joined"`) && strings.Contains(out, "route=room:*")
				if !tc.want || (connected && joined) || time.Now().After(deadline) {
					break
				}
			}
			if connected != tc.want || joined != tc.want {
				t.Fatalf("level %v: connect logged %v, join logged %v, want %v; logs:\n%s", tc.level, connected, joined, tc.want, out)
			}
			if strings.Contains(out, "s3cret") || strings.Contains(out, "hunter2") {
				t.Fatalf("a secret reached the logs:\n%s", out)
			}
		})
	}
}
