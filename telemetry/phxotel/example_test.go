package phxotel_test

import (
	"log"
	"net/http"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/telemetry/phxotel"
)

// This example reports a server to the global OpenTelemetry providers. Wrap
// the mux in an otelhttp handler (or any middleware that starts a span per
// request) and the connect, join and handle_in spans become children of
// the span of the request that opened the connection.
func ExampleNew() {
	obs, err := phxotel.New(phxotel.Options{}) // otel.GetTracerProvider(), otel.GetMeterProvider()
	if err != nil {
		log.Fatal(err)
	}
	srv := phx.NewServer(&phx.Options{Telemetry: obs.Telemetry()})
	http.Handle("/socket/", srv)
}
