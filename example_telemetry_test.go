package phx_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"

	"github.com/phxgo/phx"
)

// This example counts joins by route and outcome, as a metrics collector
// would, from the Telemetry hooks.
func ExampleTelemetry() {
	joined := make(chan phx.ChannelJoined, 1)
	srv := phx.NewServer(&phx.Options{
		Logger: slog.New(slog.DiscardHandler),
		Telemetry: &phx.Telemetry{
			ChannelJoined: func(e phx.ChannelJoined) { joined <- e },
		},
	})
	srv.Channel("room:*", func() phx.Channel { return &Room{} })
	serverSide, clientSide := net.Pipe()
	go func() {
		conn, err := srv.AcceptAuthenticated(&phx.ConnectInfo{
			Context:   context.Background(),
			Params:    url.Values{"vsn": {"2.0.0"}},
			Transport: "lines",
		}, phx.Assigns{"user": "ann"}, "")
		if err == nil {
			conn.Serve(&lineTransport{nc: serverSide}, phx.TransportFeatures{TextOnly: true})
		}
	}()
	fmt.Fprintln(clientSide, `["1","1","room:lobby","phx_join",{}]`)
	bufio.NewReader(clientSide).ReadString('\n') // the join reply
	e := <-joined
	fmt.Println(e.Route, e.Topic, e.Status)
	clientSide.Close()
	// Output: room:* room:lobby ok
}
