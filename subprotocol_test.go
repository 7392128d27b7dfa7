package phx_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
)

func TestSubprotocols(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 8)
	ts := newTestServer(t, &phx.Options{
		Subprotocols: []string{"mqtt", "v2.chat"},
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			seen <- info.Subprotocol
			return nil, nil
		},
	}, nil)
	for _, tc := range []struct {
		offer []string
		want  string // the subprotocol chosen; "" for a refusal
	}{
		{nil, ""},
		{[]string{"mqtt"}, "mqtt"},
		{[]string{"v2.chat", "mqtt"}, "mqtt"}, // the server's order
		{[]string{"mqtt", "phoenix"}, "phoenix"},
		{[]string{"phoenix", "base64url.bearer.phx.dG9r"}, "phoenix"},
		{[]string{"sip"}, "refused"},
		{[]string{"base64url.bearer.phx.dG9r"}, "refused"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ws, resp, err := websocket.Dial(ctx, ts.url+"/websocket?vsn=2.0.0", &websocket.DialOptions{Subprotocols: tc.offer})
		cancel()
		if tc.want == "refused" {
			if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("offer %q: %v, want HTTP 403", tc.offer, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("offer %q: %v", tc.offer, err)
		}
		if got := ws.Subprotocol(); got != tc.want {
			t.Errorf("offer %q: subprotocol %q, want %q", tc.offer, got, tc.want)
		}
		if got := <-seen; got != tc.want {
			t.Errorf("offer %q: ConnectInfo.Subprotocol %q, want %q", tc.offer, got, tc.want)
		}
		ws.CloseNow()
	}
	if _, err := phx.New(&phx.Options{Subprotocols: []string{"a, b"}}); !errors.Is(err, phx.ErrInvalidOptions) {
		t.Fatalf("New with a bad subprotocol: %v, want ErrInvalidOptions", err)
	}
}
