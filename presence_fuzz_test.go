package phx

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// jsState is the client's presence state, merged with the algorithm of
// phoenix.js's Presence.syncDiff: joins first (existing metas not among the
// joined refs kept before the joined ones), then leaves (metas removed by
// phx_ref, a key with no metas deleted).
type jsState map[string][]string // key -> phx_refs in order

func (st jsState) syncDiff(joins, leaves map[string]*PresenceEntry) {
	for key, e := range joins {
		joined := map[string]bool{}
		var refs []string
		for _, m := range e.Metas {
			r := m["phx_ref"].(string)
			joined[r] = true
			refs = append(refs, r)
		}
		var kept []string
		for _, r := range st[key] {
			if !joined[r] {
				kept = append(kept, r)
			}
		}
		st[key] = append(kept, refs...)
	}
	for key, e := range leaves {
		cur, ok := st[key]
		if !ok {
			continue
		}
		left := map[string]bool{}
		for _, m := range e.Metas {
			left[m["phx_ref"].(string)] = true
		}
		var kept []string
		for _, r := range cur {
			if !left[r] {
				kept = append(kept, r)
			}
		}
		if len(kept) == 0 {
			delete(st, key)
		} else {
			st[key] = kept
		}
	}
}

func (st jsState) String() string {
	var keys []string
	for k, refs := range st {
		sorted := append([]string(nil), refs...)
		sort.Strings(sorted)
		keys = append(keys, k+"="+strings.Join(sorted, ","))
	}
	sort.Strings(keys)
	return strings.Join(keys, " ")
}

func listState(l map[string]*PresenceEntry) jsState {
	st := jsState{}
	for k, e := range l {
		for _, m := range e.Metas {
			st[k] = append(st[k], m["phx_ref"].(string))
		}
	}
	return st
}

// FuzzPresenceDiff applies a random sequence of track, update, untrack and
// channel-end operations. Invariants: List matches a model of what is
// tracked (never a negative or stray entry), and a client that starts empty
// and applies every presence_diff with the JavaScript merge algorithm ends
// with exactly List's state.
func FuzzPresenceDiff(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{0, 0, 0, 16, 32, 48, 64, 3, 3})
	f.Add([]byte{1, 17, 33, 2, 18, 34, 3, 19})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 200 {
			ops = ops[:200]
		}
		srv := NewServer(&Options{Logger: slog.New(slog.DiscardHandler)})
		p := NewPresence(srv, &PresenceOptions{BatchInterval: -1})
		var mu sync.Mutex
		client := jsState{}
		diffs := 0
		srv.pubsub.Subscribe("t", NewSubscriber(func(b *Broadcast) {
			var d struct {
				Joins  map[string]*PresenceEntry `json:"joins"`
				Leaves map[string]*PresenceEntry `json:"leaves"`
			}
			var raw struct {
				Joins  map[string]struct{ Metas []Meta } `json:"joins"`
				Leaves map[string]struct{ Metas []Meta } `json:"leaves"`
			}
			if err := json.Unmarshal(b.Payload.Data, &raw); err != nil {
				t.Errorf("bad diff %s", b.Payload.Data)
				return
			}
			d.Joins, d.Leaves = map[string]*PresenceEntry{}, map[string]*PresenceEntry{}
			for k, v := range raw.Joins {
				d.Joins[k] = &PresenceEntry{Metas: v.Metas}
			}
			for k, v := range raw.Leaves {
				d.Leaves[k] = &PresenceEntry{Metas: v.Metas}
			}
			mu.Lock()
			client.syncDiff(d.Joins, d.Leaves)
			diffs++
			mu.Unlock()
		}))
		// 4 channels (owners), 3 keys.
		socks := make([]*Socket, 4)
		mk := func(i int) *Socket {
			c := newConn(context.Background(), srv, codecV2, "", nil, "fuzz")
			return newChannel(c, "t", Ref(`"1"`), nil).sock
		}
		for i := range socks {
			socks[i] = mk(i)
		}
		model := map[[2]int]bool{} // (owner, key) tracked
		for _, op := range ops {
			owner, key, kind := int(op&3), int(op>>2&3)%3, op>>4&3
			k := fmt.Sprintf("k%d", key)
			s := socks[owner]
			switch kind {
			case 0: // track
				err := p.Track(s, k, map[string]any{"op": int(op)})
				if model[[2]int{owner, key}] != (err == ErrAlreadyTracked) {
					t.Fatalf("Track(%d,%s): %v with model %v", owner, k, err, model[[2]int{owner, key}])
				}
				if err == nil {
					model[[2]int{owner, key}] = true
				}
			case 1: // update
				err := p.Update(s, k, map[string]any{"op": int(op)})
				if model[[2]int{owner, key}] != (err == nil) {
					t.Fatalf("Update(%d,%s): %v", owner, k, err)
				}
			case 2: // untrack
				err := p.Untrack(s, k)
				if model[[2]int{owner, key}] != (err == nil) {
					t.Fatalf("Untrack(%d,%s): %v", owner, k, err)
				}
				delete(model, [2]int{owner, key})
			case 3: // the channel ends: all its entries leave
				s.ch.markEnded()
				for kk := range model {
					if kk[0] == owner {
						delete(model, kk)
					}
				}
				socks[owner] = mk(owner)
			}
			// List matches the model.
			l := p.List("t")
			count := 0
			for _, e := range l {
				if len(e.Metas) == 0 {
					t.Fatal("a key with no metas is listed")
				}
				count += len(e.Metas)
			}
			if count != len(model) {
				t.Fatalf("List has %d metas, model %d", count, len(model))
			}
		}
		// Every diff delivered (BatchInterval < 0 flushes at once, in
		// order): the client's merged state equals List.
		want := listState(p.List("t")).String()
		deadline := time.Now().Add(2 * time.Second)
		for {
			mu.Lock()
			got := client.String()
			mu.Unlock()
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("client state after %d diffs:\n%s\nserver List:\n%s", diffs, got, want)
			}
			time.Sleep(time.Millisecond)
		}
	})
}
