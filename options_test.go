package phx_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
	"github.com/phxgo/phx/token"
)

// TestNewInvalidOptions: New returns every configuration error NewServer
// panics with, each wrapping ErrInvalidOptions and naming the field.
func TestNewInvalidOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		opts  phx.Options
		field string // in the error text
		also  error  // also wrapped, if any
	}{
		{"origin without host", phx.Options{AllowedOrigins: []string{"https://ok.example", "example.com"}}, "AllowedOrigins[1]", nil},
		{"origin with path", phx.Options{AllowedOrigins: []string{"https://example.com/app"}}, "AllowedOrigins[0]", nil},
		{"origin wildcard inside", phx.Options{AllowedOrigins: []string{"//a.*.example.com"}}, "AllowedOrigins[0]", nil},
		{"short secret", phx.Options{LongPoll: phx.LongPollOptions{Secret: make([]byte, 16)}}, "LongPoll.Secret", token.ErrSecretTooShort},
		{"bad requirement", phx.Options{Serializers: []phx.VersionedSerializer{{Version: ">= 2.0.0", Serializer: phx.V2JSONSerializer()}}}, "Serializers[0]", nil},
		{"nil serializer", phx.Options{Serializers: []phx.VersionedSerializer{{Version: "~> 1.0.0", Serializer: phx.V1JSONSerializer()}, {Version: "~> 2.0.0"}}}, "Serializers[1]", nil},
		{"negative window", phx.Options{LongPoll: phx.LongPollOptions{Window: -time.Second}}, "LongPoll.Window", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Logger = quietLogger()
			srv, err := phx.New(&opts)
			if srv != nil || !errors.Is(err, phx.ErrInvalidOptions) {
				t.Fatalf("New = %v, %v; want nil and an error wrapping ErrInvalidOptions", srv, err)
			}
			if tc.also != nil && !errors.Is(err, tc.also) {
				t.Errorf("error %q does not wrap %v", err, tc.also)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %s", err, tc.field)
			}
			defer func() {
				v := recover()
				if perr, ok := v.(error); !ok || !errors.Is(perr, phx.ErrInvalidOptions) {
					t.Errorf("NewServer panicked with %v, want the error New returns", v)
				}
			}()
			phx.NewServer(&opts)
		})
	}
}

func TestNewValidOptions(t *testing.T) {
	t.Parallel()
	for _, opts := range []*phx.Options{
		nil,
		{Logger: quietLogger(), AllowedOrigins: []string{"https://example.com", "//*.example.org:8443"}},
		{Logger: quietLogger(), LongPoll: phx.LongPollOptions{Secret: make([]byte, 32)}},
		{Logger: quietLogger(), Serializers: phx.DefaultSerializers()},
		// Every negative value that disables something is accepted.
		{Logger: quietLogger(), HeartbeatTimeout: -1, MaxMessageSize: -1, MaxChannels: -1, WriteTimeout: -1,
			MaxQueuedMessages: -1, MaxQueuedBytes: -1, MaxChannelQueue: -1, MaxInboundRate: -1, InboundBurst: -1,
			MaxProtocolErrors: -1, JoinTimeout: -1, DrainBatchSize: -1, DrainBatchInterval: -1,
			LongPoll: phx.LongPollOptions{IdleTimeout: -1, MaxBody: -1}},
	} {
		if srv, err := phx.New(opts); err != nil || srv == nil {
			t.Errorf("New(%+v) = %v, %v", opts, srv, err)
		}
	}
}

// Negative values disable: no pacing of Shutdown, no idle timeout for
// long-poll sessions, no inbound rate limit for a negative InboundBurst.
func TestNegativeOptionsDisable(t *testing.T) {
	t.Parallel()
	t.Run("drain pacing", func(t *testing.T) {
		t.Parallel()
		ts, _ := newRoomServer(t, &phx.Options{DrainBatchSize: -1, DrainBatchInterval: time.Hour})
		var cs []*wsClient
		for range 3 {
			cs = append(cs, dial(t, ts.url, "user=d&vsn=2.0.0", nil))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ts.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v (one batch expected, not an hour apart)", err)
		}
		for _, c := range cs {
			c.expectClosed(websocket.StatusServiceRestart)
		}
	})
	t.Run("long-poll idle timeout", func(t *testing.T) {
		t.Parallel()
		ts, _ := newRoomServer(t, &phx.Options{LongPoll: phx.LongPollOptions{IdleTimeout: -1}})
		c := lpOpen(t, ts, "user=i&vsn=2.0.0")
		time.Sleep(100 * time.Millisecond)
		c.join("room:i", "1") // the session is still there
	})
	t.Run("inbound burst", func(t *testing.T) {
		t.Parallel()
		ts, _ := newRoomServer(t, &phx.Options{MaxInboundRate: 1, InboundBurst: -1})
		c := dial(t, ts.url, "user=b&vsn=2.0.0", nil)
		for i := range 20 {
			c.send(nil, fmt.Sprint(i), "phoenix", "heartbeat", map[string]any{})
		}
		for i := range 20 {
			c.expect(fmt.Sprintf(`[null,"%d","phoenix","phx_reply",{"status":"ok","response":{}}]`, i))
		}
	})
}

// ctxProbe is a channel whose join reply says what its context carries.
type ctxProbe struct{}

type probeKey struct{}

func (ctxProbe) Join(s *phx.Socket, _ phx.Payload) (any, error) {
	_, fromRequest := s.Context().Value(http.ServerContextKey).(*http.Server)
	kept, _ := s.Context().Value(probeKey{}).(string)
	return map[string]any{"kept": kept, "request": fromRequest}, nil
}

func (ctxProbe) HandleIn(*phx.Socket, string, phx.Payload) (any, error) { return nil, nil }

// TestConnectReplacesContext: channels' contexts carry the values of
// ConnectInfo.Context as Connect leaves it: the upgrade request's by
// default, only the replacement's when Connect replaces it.
func TestConnectReplacesContext(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts := newTestServer(t, &phx.Options{Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			if info.Params.Get("replace") != "" {
				info.Context = context.WithValue(context.Background(), probeKey{}, "kept")
			}
			return nil, nil
		}}, func(s *phx.Server) {
			s.Channel("probe:*", func() phx.Channel { return ctxProbe{} })
		})
		c := dialMode(t, ts, m, "vsn=2.0.0")
		if got := c.join("probe:a", "1", map[string]any{}); !strings.Contains(got, `"response":{"kept":"","request":true}`) {
			t.Fatalf("default: join reply %s, want the request's values", got)
		}
		c = dialMode(t, ts, m, "vsn=2.0.0&replace=1")
		if got := c.join("probe:a", "1", map[string]any{}); !strings.Contains(got, `"response":{"kept":"kept","request":false}`) {
			t.Fatalf("replaced: join reply %s, want the replacement's values only", got)
		}
	}, modeWebSocket, modeLongPoll)
}
