package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

func TestMemoryStore(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore(5)
	if got, err := s.Since(ctx, "nowhere", 0, 10); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("unknown room: %v, %v; want an empty, non-nil list", got, err)
	}
	for i := 1; i <= 8; i++ {
		m, err := s.Append(ctx, "a", Message{ID: 99, User: "ann", Body: fmt.Sprint(i), At: int64(i)})
		if err != nil || m.ID != int64(i) || m.Body != fmt.Sprint(i) {
			t.Fatalf("Append #%d = %+v, %v; want id %d", i, m, err, i)
		}
	}
	if m, _ := s.Append(ctx, "b", Message{}); m.ID != 1 {
		t.Errorf("ids are per room: first in b is %d", m.ID)
	}

	for _, tc := range []struct {
		after   int64
		limit   int
		wantIDs []int64
	}{
		{0, 100, []int64{4, 5, 6, 7, 8}}, // only the last 5 are kept
		{5, 100, []int64{6, 7, 8}},
		{0, 2, []int64{7, 8}}, // the last ones within the limit
		{6, 1, []int64{8}},
		{8, 10, nil},
		{100, 10, nil},
		{0, 0, nil},
	} {
		got, err := s.Since(ctx, "a", tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, m := range got {
			ids = append(ids, m.ID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(tc.wantIDs) {
			t.Errorf("Since(after %d, limit %d) = %v, want %v", tc.after, tc.limit, ids, tc.wantIDs)
		}
	}

	// The result is a copy.
	got, _ := s.Since(ctx, "a", 0, 10)
	got[0].Body = "changed"
	if again, _ := s.Since(ctx, "a", 0, 10); again[0].Body == "changed" {
		t.Error("Since returned the store's own memory")
	}
}

func TestMemoryStoreDefaultBound(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore(0)
	for range 1500 {
		s.Append(ctx, "r", Message{})
	}
	got, _ := s.Since(ctx, "r", 0, 5000)
	if len(got) != 1000 || got[0].ID != 501 {
		t.Fatalf("kept %d messages from id %d, want the last 1000 (from 501)", len(got), got[0].ID)
	}
	if cap(s.rooms["r"].msgs) > 2000 {
		t.Errorf("backing array of %d messages for 1000 kept", cap(s.rooms["r"].msgs))
	}
}

func TestMemoryStoreConcurrent(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore(0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for range 100 {
				if _, err := s.Append(ctx, fmt.Sprint("room", g%2), Message{}); err != nil {
					t.Error(err)
				}
				s.Since(ctx, "room0", 0, 10)
			}
		})
	}
	wg.Wait()
	for _, room := range []string{"room0", "room1"} {
		got, _ := s.Since(ctx, room, 0, 1000)
		if len(got) != 400 {
			t.Fatalf("%s has %d messages, want 400", room, len(got))
		}
		for i, m := range got {
			if m.ID != int64(i+1) {
				t.Fatalf("%s: message %d has id %d: ids must be 1, 2, 3...", room, i, m.ID)
			}
		}
	}
}
