package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/pubsub/natspubsub"
	"github.com/phxgo/phx/pubsub/redispubsub"
)

// Running several copies of the chat as one: each copy (node) is started
// with the same -pubsub broker URL and CHAT_SECRET. Broadcasts and presence
// then span every node, and the rooms' history lives in the broker (Redis
// Streams, or a NATS JetStream stream): message IDs (phx_offset) are one
// sequence per room whichever node records, and a client that reconnects
// to another node, or to a restarted one, recovers what it missed.

// dialPubSub maps -pubsub ("" | nats://HOST:PORT | redis://HOST:PORT) to a
// PubSub, the history store that goes with it (nil: the library's, in
// memory) and their closer.
func dialPubSub(u string, log *slog.Logger) (phx.PubSub, phx.HistoryStore, func() error, error) {
	switch {
	case u == "":
		return phx.NewMemoryPubSub(), nil, func() error { return nil }, nil
	case strings.HasPrefix(u, "nats://"):
		ps, err := natspubsub.Dial(u, &natspubsub.Options{Logger: log})
		if err != nil {
			return nil, nil, nil, err
		}
		h, err := natspubsub.NewHistory(ps, nil)
		if err != nil {
			ps.Close()
			return nil, nil, nil, fmt.Errorf("history on %s: %w", u, err)
		}
		return ps, h, func() error { return errors.Join(h.Close(), ps.Close()) }, nil
	case strings.HasPrefix(u, "redis://"), strings.HasPrefix(u, "rediss://"):
		ps, err := redispubsub.Dial(u, &redispubsub.Options{Logger: log})
		if err != nil {
			return nil, nil, nil, err
		}
		h, err := redispubsub.NewHistory(ps, nil)
		if err != nil {
			ps.Close()
			return nil, nil, nil, fmt.Errorf("history on %s: %w", u, err)
		}
		return ps, h, func() error { return errors.Join(h.Close(), ps.Close()) }, nil
	}
	return nil, nil, nil, fmt.Errorf("-pubsub: want nats://HOST:PORT or redis://HOST:PORT, got %q", u)
}

// replicatePresence makes the online lists span the nodes.
func replicatePresence(p *phx.Presence, down time.Duration) (stop func(), err error) {
	var opts *phx.ReplicateOptions
	if down > 0 {
		opts = &phx.ReplicateOptions{DownPeriod: down, HeartbeatPeriod: down / 4}
	}
	return p.Replicate(context.Background(), nil, opts)
}
