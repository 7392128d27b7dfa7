package phxprometheus_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
	"github.com/phxgo/phx/telemetry/phxprometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type pingRoom struct{}

func (pingRoom) Join(*phx.Socket, phx.Payload) (any, error) { return nil, nil }

func (pingRoom) HandleIn(_ *phx.Socket, event string, _ phx.Payload) (any, error) {
	return map[string]string{"pong": event}, nil
}

// This example serves a phx server and its metrics on /metrics, plays a
// client that joins a room and pushes one event, shuts the server down (so
// that every hook has run) and prints some of what /metrics shows.
func Example() {
	reg := prometheus.NewRegistry()
	metrics, err := phxprometheus.New(phxprometheus.Options{Registerer: reg})
	if err != nil {
		panic(err)
	}
	srv := phx.NewServer(&phx.Options{
		Logger:    slog.New(slog.DiscardHandler),
		Telemetry: metrics.Telemetry(),
	})
	srv.Channel("room:*", func() phx.Channel { return pingRoom{} })
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := httptest.NewServer(mux)
	defer hs.Close()

	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/socket/websocket?vsn=2.0.0", nil)
	if err != nil {
		panic(err)
	}
	defer ws.CloseNow()
	for _, frame := range []string{
		`["1","1","room:lobby","phx_join",{}]`,
		`["1","2","room:lobby","ping",{}]`,
	} {
		ws.Write(ctx, websocket.MessageText, []byte(frame))
		ws.Read(ctx) // the reply
	}
	go func() { // answers the server's close
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				return
			}
		}
	}()
	srv.Shutdown(ctx) // closes the connection (1012), returns once every hook has run

	res, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	lines := bufio.NewScanner(res.Body)
	for lines.Scan() {
		line := lines.Text()
		for _, prefix := range []string{
			"phx_sockets_open",
			"phx_socket_closes_total",
			"phx_channel_joins_total",
			"phx_channel_handle_in_duration_seconds_count",
		} {
			if strings.HasPrefix(line, prefix+"{") {
				fmt.Println(line)
			}
		}
	}
	// Output:
	// phx_channel_handle_in_duration_seconds_count{event="ping",route="room:*",status="ok"} 1
	// phx_channel_joins_total{route="room:*",status="ok"} 1
	// phx_socket_closes_total{code="1012",transport="websocket"} 1
	// phx_sockets_open{transport="websocket"} 0
}

// This example adds an application's own hook to the collector's: Chain
// calls both, in order.
func ExampleChain() {
	reg := prometheus.NewRegistry()
	metrics, err := phxprometheus.New(phxprometheus.Options{Registerer: reg})
	if err != nil {
		panic(err)
	}
	audit := &phx.Telemetry{
		ChannelJoined: func(e phx.ChannelJoined) {
			fmt.Println("joined", e.Topic, e.Status)
		},
	}
	opts := &phx.Options{Telemetry: phxprometheus.Chain(metrics.Telemetry(), audit)}

	// The server calls the hooks; here, one join event by hand.
	opts.Telemetry.ChannelJoined(phx.ChannelJoined{Route: "room:*", Topic: "room:lobby", Status: "ok"})
	families, _ := reg.Gather()
	for _, f := range families {
		if f.GetName() == "phx_channel_joins_total" {
			fmt.Println(f.GetName(), f.GetMetric()[0].GetCounter().GetValue())
		}
	}
	// Output:
	// joined room:lobby ok
	// phx_channel_joins_total 1
}
