package redispubsub_test

import (
	"context"
	"log"
	"net/http"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/pubsub/redispubsub"
)

// A node of a cluster: broadcasts and presence reach the clients of every
// node connected to the same Redis.
func Example() {
	ps, err := redispubsub.Dial("redis://127.0.0.1:6379/0", &redispubsub.Options{
		Prefix: "myapp",
		OnGap: func(g redispubsub.Gap) {
			log.Printf("Redis outage of %v: %d queued broadcasts replayed, %d dropped",
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
