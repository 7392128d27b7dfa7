package phx_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/phxgo/phx"
)

func TestConnectionExpiryAndRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var refreshes atomic.Int32
		rec := newRecorder()
		srv := phx.NewServer(&phx.Options{
			Logger:           quietLogger(),
			HeartbeatTimeout: 24 * time.Hour, // pipe peers send no heartbeats
			Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
				info.ExpiresAt = time.Now().Add(10 * time.Minute) // a token's expiry
				return phx.Assigns{"user": info.Params.Get("user")}, nil
			},
			ID: func(a phx.Assigns) string { return "users_socket:" + a["user"].(string) },
			Refresh: func(ctx context.Context, id string, a phx.Assigns) (time.Time, error) {
				if id != "users_socket:ann" {
					t.Errorf("Refresh for %q", id)
				}
				if refreshes.Add(1) == 1 {
					return time.Now().Add(5 * time.Minute), nil // still valid: extended
				}
				return time.Time{}, errors.New("revoked")
			},
		})
		srv.Channel("room:*", func() phx.Channel { return &room{rec: rec} })
		t.Cleanup(func() { srv.Shutdown(context.Background()) })
		c := dialPipe(t, srv, "user=ann&vsn=2.0.0")
		c.join("room:x", "1", map[string]any{})
		start := time.Now()

		time.Sleep(15*time.Minute - time.Millisecond)
		synctest.Wait()
		if c.isClosed() || refreshes.Load() != 1 {
			t.Fatalf("at 15m: closed %v, %d refreshes; want open after one refresh", c.isClosed(), refreshes.Load())
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		c.expectClosed(4001)
		if d := time.Since(start); d != 15*time.Minute {
			t.Fatalf("closed after %v, want 15m", d)
		}
		if got := rec.wait(t); got != "room:x:error:phx: connection expired" {
			t.Fatalf("Terminate reason %q", got)
		}
	})
}

func TestMaxConnectionsPerID(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, &phx.Options{MaxConnectionsPerID: 2})
	a := dial(t, ts.url, "user=zed&vsn=2.0.0", nil)
	dial(t, ts.url, "user=zed&vsn=2.0.0", nil)
	dial(t, ts.url, "user=other&vsn=2.0.0", nil) // another ID is not affected
	_, err := tryDial(t, ts.url, "user=zed&vsn=2.0.0", nil)
	var de *dialError
	if !errorsAs(err, &de) || de.status != http.StatusTooManyRequests {
		t.Fatalf("third connection of zed: %v, want HTTP 429", err)
	}
	lp := lpDo(t, ts, "GET", lpURL(ts)+"?user=zed&vsn=2.0.0", nil, "")
	if lp.Status != 403 {
		t.Fatalf("long-poll over the limit: %s, want status 403", lp.raw)
	}
	a.Close()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err := tryDial(t, ts.url, "user=zed&vsn=2.0.0", nil); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a connection of zed closed, but a new one is still refused")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
