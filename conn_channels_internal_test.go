package phx

import (
	"fmt"
	"testing"
)

// TestChannelTable: the table finds, replaces and forgets channels by
// topic the same way below and above the size at which it moves from its
// list to a map, and close hands back every channel once.
func TestChannelTable(t *testing.T) {
	for _, n := range []int{1, channelTableList, channelTableList + 1, 3 * channelTableList} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var tab channelTable
			chans := make([]*channel, n)
			for i := range chans {
				chans[i] = &channel{topic: fmt.Sprintf("room:%d", i)}
				tab.add(chans[i])
			}
			if tab.len() != n {
				t.Fatalf("len = %d, want %d", tab.len(), n)
			}
			for _, ch := range chans {
				if got := tab.get(ch.topic); got != ch {
					t.Fatalf("get(%q) = %p, want %p", ch.topic, got, ch)
				}
			}
			if tab.get("room:none") != nil {
				t.Fatal("get of an unknown topic found a channel")
			}
			// A replaced channel's late remove leaves its successor.
			old, repl := chans[0], &channel{topic: chans[0].topic}
			tab.remove(old)
			tab.add(repl)
			tab.remove(old)
			if tab.get(old.topic) != repl || tab.len() != n {
				t.Fatalf("after replacing %q: get = %p, len %d; want the replacement, %d", old.topic, tab.get(old.topic), tab.len(), n)
			}
			tab.remove(chans[n-1])
			if n > 1 && (tab.get(chans[n-1].topic) != nil || tab.len() != n-1) {
				t.Fatalf("remove left %q (len %d)", chans[n-1].topic, tab.len())
			}
			got := tab.close()
			if !tab.closed || tab.len() != 0 || tab.get(repl.topic) != nil {
				t.Fatalf("after close: closed %t, len %d", tab.closed, tab.len())
			}
			want := n - 1
			if n == 1 { // chans[0] had been replaced: the remove did nothing
				want = 1
			}
			if len(got) != want {
				t.Fatalf("close returned %d channels, want %d", len(got), want)
			}
		})
	}
}
