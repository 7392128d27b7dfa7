package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/pubsub/natspubsub"
	"github.com/phxgo/phx/pubsub/redispubsub"
)

// Running several copies of the chat as one: each copy (node) is started
// with the same -pubsub broker URL and CHAT_SECRET and a distinct -node
// number. Broadcasts and presence then span every node, and:
//
//   - message IDs stay unique across nodes: node k only assigns IDs
//     congruent to k modulo maxNodes, still increasing per room;
//   - every node stores the messages the others send (it watches the rooms
//     its clients joined), so history and catch-up work on any node for
//     what was said while it was up. A database behind Store would make
//     history complete.

// maxNodes is how many nodes one chat can have.
const maxNodes = 64

// dialPubSub maps -pubsub ("" | nats://HOST:PORT | redis://HOST:PORT) to a
// PubSub and its closer.
func dialPubSub(u string, log *slog.Logger) (phx.PubSub, func() error, error) {
	switch {
	case u == "":
		return phx.NewMemoryPubSub(), func() error { return nil }, nil
	case strings.HasPrefix(u, "nats://"):
		ps, err := natspubsub.Dial(u, &natspubsub.Options{Logger: log})
		if err != nil {
			return nil, nil, err
		}
		return ps, ps.Close, nil
	case strings.HasPrefix(u, "redis://"), strings.HasPrefix(u, "rediss://"):
		ps, err := redispubsub.Dial(u, &redispubsub.Options{Logger: log})
		if err != nil {
			return nil, nil, err
		}
		return ps, ps.Close, nil
	}
	return nil, nil, fmt.Errorf("-pubsub: want nats://HOST:PORT or redis://HOST:PORT, got %q", u)
}

// roomWatcher stores the messages other nodes broadcast in the rooms this
// node's clients joined. It also sees this node's own broadcasts, which the
// store already has.
type roomWatcher struct {
	store observer
	log   *slog.Logger

	mu      sync.Mutex
	watched map[string]bool
}

// observer is a Store that can record a message whose ID another node
// assigned. MemoryStore is one.
type observer interface {
	Observe(room string, m Message)
}

// watch subscribes the node to a room's topic (once).
func (w *roomWatcher) watch(ps phx.PubSub, room string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watched[room] {
		return
	}
	w.watched[room] = true
	if err := ps.Subscribe("room:"+room, phx.NewSubscriber(func(b *phx.Broadcast) {
		if b.Event != "new_msg" {
			return
		}
		var m Message
		if err := json.Unmarshal(b.Payload.Data, &m); err != nil {
			w.log.Warn("chat: bad new_msg from another node", "err", err)
			return
		}
		w.store.Observe(room, m)
	})); err != nil {
		w.log.Warn("chat: cannot watch room", "room", room, "err", err)
	}
}

// replicatePresence makes the online lists span the nodes.
func replicatePresence(p *phx.Presence, down time.Duration) (stop func(), err error) {
	var opts *phx.ReplicateOptions
	if down > 0 {
		opts = &phx.ReplicateOptions{DownPeriod: down, HeartbeatPeriod: down / 4}
	}
	return p.Replicate(context.Background(), nil, opts)
}
