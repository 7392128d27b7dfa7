package phx_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/phxgo/phx"
)

// Transports mounted on paths of the app's own, with path parameters that
// reach Connect (Phoenix's websocket: [path: "/live/:tenant"]).
func TestCustomTransportPaths(t *testing.T) {
	t.Parallel()
	srv := phx.NewServer(&phx.Options{
		Logger: quietLogger(),
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			return phx.Assigns{"user": info.Request.PathValue("tenant")}, nil
		},
	})
	srv.Channel("room:*", func() phx.Channel { return &room{} })
	mux := http.NewServeMux()
	mux.Handle("GET /live/{tenant}", srv.WebSocketHandler())
	mux.Handle("/poll/{tenant}", srv.LongPollHandler())
	hs := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Shutdown(context.Background()); hs.Close() })

	base := "ws" + strings.TrimPrefix(hs.URL, "http")
	c, err := tryDialURL(t, base+"/live/acme?vsn=2.0.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.send("1", "1", "room:a", "phx_join", map[string]any{})
	c.expect(`["1","1","room:a","phx_reply",{"status":"ok","response":{"topic":"room:a","user":"acme"}}]`)

	ts := &testServer{Server: srv, http: hs}
	rep := lpDo(t, ts, "GET", hs.URL+"/poll/globex?vsn=2.0.0", nil, "")
	if rep.Status != 410 || rep.token() == "" {
		t.Fatalf("long-poll open on a custom path: %s", rep.raw)
	}
}
