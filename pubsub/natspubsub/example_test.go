package natspubsub_test

import (
	"context"
	"log"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/phxgo/phx"
	"github.com/phxgo/phx/pubsub/natspubsub"
)

// A node of a cluster: broadcasts and presence reach the clients of every
// node connected to the same NATS server.
func Example() {
	ps, err := natspubsub.Dial("nats://127.0.0.1:4222", &natspubsub.Options{
		NATSOptions: []nats.Option{nats.UserInfo("app", "secret")},
		OnGap: func(g natspubsub.Gap) {
			log.Printf("NATS outage of %v: %d queued broadcasts replayed, %d dropped",
				g.End.Sub(g.Start), g.Replayed, g.Dropped)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer ps.Close()

	srv := phx.NewServer(&phx.Options{PubSub: ps})
	presence := phx.NewPresence(srv, nil)
	stop, err := presence.Replicate(context.Background(), ps, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer stop()

	http.Handle("/socket/", srv)
	log.Fatal(http.ListenAndServe(":4000", nil))
}
