package natspubsub

import (
	"context"
	"fmt"
	"testing"

	"github.com/phxgo/phx"
)

// BenchmarkHistoryRead reads a topic of 1,000 messages (100-byte
// payloads) from an embedded JetStream server: all of them, and the last
// 10 (a client that missed a few).
func BenchmarkHistoryRead(b *testing.B) {
	h := historyNode(b, startJetStream(b), "A").History.(*History)
	ctx := context.Background()
	const n = 1000
	payload := []byte(fmt.Sprintf(`{"body":%q}`, make([]byte, 88)))
	for range n {
		if _, err := h.Append(ctx, "bench", phx.HistoryMessage{Event: "e", Payload: payload}, phx.HistoryOptions{MaxMessages: 2 * n}); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name  string
		after uint64
	}{{"all", 0}, {"last10", n - 10}} {
		b.Run(c.name, func(b *testing.B) {
			want := int(n - c.after)
			for b.Loop() {
				page, err := h.Read(ctx, "bench", c.after, n)
				if err != nil {
					b.Fatal(err)
				}
				if len(page.Messages) != want || page.Messages[0].Offset != c.after+1 {
					b.Fatalf("read %d messages from %d", len(page.Messages), page.Messages[0].Offset)
				}
			}
		})
	}
}
