package main

import (
	"context"
	"sort"
	"sync"
)

// Message is one chat message as it is stored, sent in join replies and
// broadcast: {"id":1,"user":"ann","body":"hi","at":1700000000000}.
type Message struct {
	ID   int64  `json:"id"`   // increases by one per room, from 1
	User string `json:"user"` // author
	Body string `json:"body"`
	At   int64  `json:"at"` // time received, Unix milliseconds
}

// Store keeps the messages of every room. The chat only needs these two
// operations, so a database can replace the in-memory implementation.
// Implementations must be safe for concurrent use.
type Store interface {
	// Append stores m in room, assigning it the room's next ID (m.ID is
	// ignored), and returns the stored message.
	Append(ctx context.Context, room string, m Message) (Message, error)
	// Since returns the messages of room whose ID is greater than after,
	// oldest first; when there are more than limit of them, only the last
	// limit.
	Since(ctx context.Context, room string, after int64, limit int) ([]Message, error)
}

// MemoryStore is a Store in memory that keeps the last Max messages of each
// room. Its zero value is not usable: call NewMemoryStore.
type MemoryStore struct {
	max int

	mu    sync.Mutex
	rooms map[string]*roomLog
}

type roomLog struct {
	msgs   []Message // ascending IDs, at most max
	nextID int64
}

// NewMemoryStore returns an empty store keeping at most max messages per
// room (1000 when max <= 0).
func NewMemoryStore(max int) *MemoryStore {
	if max <= 0 {
		max = 1000
	}
	return &MemoryStore{max: max, rooms: make(map[string]*roomLog)}
}

// Append implements Store.
func (s *MemoryStore) Append(_ context.Context, room string, m Message) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[room]
	if r == nil {
		r = &roomLog{nextID: 1}
		s.rooms[room] = r
	}
	m.ID = r.nextID
	r.nextID++
	r.msgs = append(r.msgs, m)
	if n := len(r.msgs); n > s.max {
		// Drop the oldest. Once the backing array is full, append copies
		// only the kept messages, so memory stays under 2*max per room.
		clear(r.msgs[:n-s.max])
		r.msgs = r.msgs[n-s.max:]
	}
	return m, nil
}

// Since implements Store.
func (s *MemoryStore) Since(_ context.Context, room string, after int64, limit int) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[room]
	if r == nil || limit <= 0 {
		return []Message{}, nil
	}
	i := sort.Search(len(r.msgs), func(i int) bool { return r.msgs[i].ID > after })
	if n := len(r.msgs) - i; n > limit {
		i = len(r.msgs) - limit
	}
	return append([]Message{}, r.msgs[i:]...), nil
}
