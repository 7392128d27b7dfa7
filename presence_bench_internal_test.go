package phx

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"
)

// presenceBenchSockets returns n sockets of channels on rooms topics
// ("room:0".."room:<rooms-1>", round robin), each on its own connection.
func presenceBenchSockets(srv *Server, n, rooms int) []*Socket {
	socks := make([]*Socket, n)
	for i := range socks {
		c := newConn(context.Background(), srv, codecV2, "", nil, "bench")
		socks[i] = newChannel(c, fmt.Sprintf("room:%d", i%rooms), Ref(`"1"`), nil).sock
	}
	return socks
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkPresenceMemory measures what a tracked presence entry keeps
// alive once its diff has been flushed: the live heap after tracking
// 10,000 users in 100 rooms of 100 (the chat example's meta: online_at),
// less the live heap before, per entry. The sockets exist before the
// measurement, so only the presence's own state (and the cleanup it
// registers on the channel) counts. One op tracks all 10,000.
func BenchmarkPresenceMemory(b *testing.B) {
	const n, rooms = 10000, 100
	b.ReportAllocs()
	var perEntry float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		srv := NewServer(&Options{Logger: slog.New(slog.DiscardHandler)})
		p := NewPresence(srv, &PresenceOptions{BatchInterval: time.Hour})
		socks := presenceBenchSockets(srv, n, rooms)
		before := heapInUse()
		b.StartTimer()
		for j, s := range socks {
			if err := p.Track(s, fmt.Sprintf("user:%d", j), map[string]any{"online_at": int64(1764770000000 + j)}); err != nil {
				b.Fatal(err)
			}
		}
		p.flush()
		b.StopTimer()
		after := heapInUse()
		perEntry = float64(int64(after)-int64(before)) / n
		if got := len(p.List("room:7")); got != n/rooms {
			b.Fatalf("room:7 lists %d keys", got)
		}
		runtime.KeepAlive(socks)
		runtime.KeepAlive(p)
		b.StartTimer()
	}
	b.ReportMetric(perEntry, "live-B/entry")
}

// BenchmarkPresenceJoinStorm measures the garbage of joins to a big room:
// each op is one joiner that tracks itself and asks for presence_state in
// a room that already holds members users, as the chat example's Join does.
// The flushes (every batch joiners, standing for the BatchInterval) send
// the diffs and the states, so what one join costs includes its share of
// encoding the state. B/op is the bytes allocated per join.
func BenchmarkPresenceJoinStorm(b *testing.B) {
	for _, tc := range []struct{ members, batch int }{{1000, 50}, {5000, 50}} {
		b.Run(fmt.Sprintf("members=%d/joins-per-flush=%d", tc.members, tc.batch), func(b *testing.B) {
			srv := NewServer(&Options{Logger: slog.New(slog.DiscardHandler), MaxQueuedMessages: 1 << 20, MaxQueuedBytes: 1 << 40})
			p := NewPresence(srv, &PresenceOptions{BatchInterval: time.Hour})
			for j, s := range presenceBenchSockets(srv, tc.members, 1) {
				if err := p.Track(s, fmt.Sprintf("user:%d", j), map[string]any{"online_at": int64(j)}); err != nil {
					b.Fatal(err)
				}
			}
			p.flush()
			joiners := presenceBenchSockets(srv, b.N, 1)
			for _, s := range joiners {
				s.ch.setState(stateIdle) // pushes go to the connection's queue
			}
			b.ReportAllocs()
			b.ResetTimer()
			for j, s := range joiners {
				if err := p.Track(s, fmt.Sprintf("joiner:%d", j), map[string]any{"online_at": int64(j)}); err != nil {
					b.Fatal(err)
				}
				if err := p.PushState(s); err != nil {
					b.Fatal(err)
				}
				if j%tc.batch == tc.batch-1 {
					p.flush()
				}
				if j%tc.batch == 0 && j > 0 {
					// The previous flush's joiners' writers would have sent
					// their frames by now.
					for _, x := range joiners[j-tc.batch : j] {
						x.ch.conn.out.takeOrIdle(nil)
					}
				}
			}
			p.flush()
		})
	}
}

// TestPresenceStateSharedPerFlush checks that joiners whose Track is not
// yet broadcast get presence_state with the next flush, all the same
// state (encoded once), holding every joiner of that flush; and that a
// joiner with nothing pending gets it at once.
func TestPresenceStateSharedPerFlush(t *testing.T) {
	srv := NewServer(&Options{Logger: slog.New(slog.DiscardHandler)})
	p := NewPresence(srv, &PresenceOptions{BatchInterval: time.Hour})
	socks := presenceBenchSockets(srv, 3, 1)
	for _, s := range socks {
		s.ch.setState(stateIdle)
	}
	for i, s := range socks[:2] {
		if err := p.Track(s, fmt.Sprintf("u%d", i), map[string]any{"n": i}); err != nil {
			t.Fatal(err)
		}
		if err := p.PushState(s); err != nil {
			t.Fatal(err)
		}
	}
	frames := func(s *Socket) []Frame {
		fs, _ := s.ch.conn.out.takeOrIdle(nil)
		return fs
	}
	if fs := frames(socks[0]); len(fs) != 0 {
		t.Fatalf("state sent before the flush: %q", fs[0].Data)
	}
	waiting := len(p.waiting["room:0"])
	p.flush()
	if waiting != 2 {
		t.Fatalf("%d joiners waited for the flush, want 2", waiting)
	}
	state := p.state("room:0")
	for i, s := range socks[:2] {
		fs := frames(s)
		if len(fs) != 1 || !strings.Contains(string(fs[0].Data), `"presence_state",`+string(state)) {
			t.Fatalf("joiner %d got %d frames: %v", i, len(fs), fs)
		}
	}
	if !strings.Contains(string(state), `"u0":{"metas":[{"n":0,"phx_ref":`) || !strings.Contains(string(state), `"u1":{"metas":[{"n":1,`) {
		t.Fatalf("state %s", state)
	}
	// Nothing pending: at once.
	if err := p.PushState(socks[2]); err != nil {
		t.Fatal(err)
	}
	if fs := frames(socks[2]); len(fs) != 1 || !strings.Contains(string(fs[0].Data), string(state)) {
		t.Fatalf("late joiner got %v", fs)
	}
	// A meta that does not encode is refused at Track.
	if err := p.Track(socks[2], "bad", map[string]any{"c": make(chan int)}); err == nil {
		t.Fatal("meta holding a channel accepted")
	}
}
