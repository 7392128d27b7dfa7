package phx_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
)

// TestShutdownEitherOrder shuts down a real http.Server and the phx
// Server in both orders, with a WebSocket client, a long-poll client whose
// poll is held and an idle long-poll session: either way the held poll
// answers 410 at once (not 204 after the window), the WebSocket is closed
// with 1012, every channel terminates with ErrServerClosed, and the whole
// sequence takes well under LongPoll.Window.
func TestShutdownEitherOrder(t *testing.T) {
	for _, order := range []string{"http then phx", "phx then http"} {
		t.Run(order, func(t *testing.T) {
			t.Parallel()
			const window = 10 * time.Second
			ts, rec := newRoomServer(t, &phx.Options{LongPoll: phx.LongPollOptions{Window: window}})
			ws := dial(t, ts.url, "user=w&vsn=2.0.0", nil)
			ws.join("room:x", "1", map[string]any{})
			polled := lpOpen(t, ts, "user=p&vsn=2.0.0")
			polled.join("room:x", "1")
			idle := lpOpen(t, ts, "user=i&vsn=2.0.0")
			idle.join("room:x", "1")
			held := lpPollAsync(polled)
			time.Sleep(100 * time.Millisecond) // let the poll be held

			ctx, cancel := context.WithTimeout(context.Background(), 2*window)
			defer cancel()
			start := time.Now()
			if order == "http then phx" {
				if err := ts.http.Config.Shutdown(ctx); err != nil {
					t.Fatalf("http.Server.Shutdown: %v", err)
				}
				// http.Server.Shutdown alone drained the phx Server's
				// connections: the poll it waited for was answered 410,
				// and the WebSocket is closed with 1012.
				if rep := waitReply(t, held, time.Second); rep.Status != 410 {
					t.Fatalf("held poll after http.Server.Shutdown: %s, want status 410", rep.raw)
				}
				ws.expectClosed(websocket.StatusServiceRestart)
				if err := ts.Shutdown(ctx); err != nil {
					t.Fatalf("Server.Shutdown: %v", err)
				}
			} else {
				if err := ts.Shutdown(ctx); err != nil {
					t.Fatalf("Server.Shutdown: %v", err)
				}
				if err := ts.http.Config.Shutdown(ctx); err != nil {
					t.Fatalf("http.Server.Shutdown: %v", err)
				}
				if rep := waitReply(t, held, time.Second); rep.Status != 410 {
					t.Fatalf("held poll after Shutdown: %s, want status 410", rep.raw)
				}
				ws.expectClosed(websocket.StatusServiceRestart)
			}
			if took := time.Since(start); took > window/2 {
				t.Errorf("shutting down took %v, want well under LongPoll.Window (%v)", took, window)
			}
			// Every Terminate ran before Server.Shutdown returned.
			if got := len(rec.ch); got != 3 {
				t.Fatalf("%d Terminate calls when Shutdown returned, want 3", got)
			}
			for range 3 {
				if got := rec.wait(t); got != "room:x:shutdown" {
					t.Fatalf("Terminate %q, want room:x:shutdown", got)
				}
			}
			if n := ts.Stats().Connections; n != 0 {
				t.Fatalf("%d connections after Shutdown", n)
			}
		})
	}
}

// TestShutdownContextEndsDrain: when Shutdown's context ends during the
// paced drain, the connections still waiting for their batch are closed at
// once, and a drain started by http.Server.Shutdown is hurried the same way.
func TestShutdownContextEndsDrain(t *testing.T) {
	t.Parallel()
	ts, rec := newRoomServer(t, &phx.Options{DrainBatchSize: 1, DrainBatchInterval: time.Hour})
	a := dial(t, ts.url, "user=a&vsn=2.0.0", nil)
	a.join("room:y", "1", map[string]any{})
	b := dial(t, ts.url, "user=b&vsn=2.0.0", nil)
	b.join("room:y", "1", map[string]any{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.http.Config.Shutdown(ctx); err != nil { // starts the drain
		t.Fatalf("http.Server.Shutdown: %v", err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	if err := ts.Shutdown(short); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown with a short context: %v, want DeadlineExceeded", err)
	}
	a.expectClosed(websocket.StatusServiceRestart)
	b.expectClosed(websocket.StatusServiceRestart)
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	for range 2 {
		if got := rec.wait(t); got != "room:y:shutdown" {
			t.Fatalf("Terminate %q, want room:y:shutdown", got)
		}
	}
}
