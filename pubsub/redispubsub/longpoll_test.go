package redispubsub

import (
	"testing"

	"github.com/phxgo/phx/pubsub/internal/clustertest"
)

// The official LongPoll client behind a round-robin proxy in front of two
// nodes on a real Redis server: requests for the session that land on the
// other node are relayed to its owner, and a node cut off mid-session
// makes the client reconnect and rejoin through the survivor.
func TestLongPollAcrossNodes(t *testing.T) {
	clustertest.RunLongPoll(t, startRedis(t))
}
