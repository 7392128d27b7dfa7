package main

import (
	"context"
	"sort"
	"sync"
)

// Message is one chat message as it is stored, sent in join replies and
// broadcast: {"id":1,"user":"ann","body":"hi","at":1700000000000}.
type Message struct {
	ID   int64  `json:"id,omitempty"` // increases by one per room, from 1; with the library's history, phx_offset is the ID
	User string `json:"user"`         // author
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
	// node and stride make IDs unique across the nodes of a cluster: this
	// store assigns only IDs with id % stride == node. One node: 0 and 1.
	node, stride int64

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
	return &MemoryStore{max: max, stride: 1, rooms: make(map[string]*roomLog)}
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
	// The smallest ID from nextID on that belongs to this node.
	m.ID = r.nextID + ((s.node-r.nextID)%s.stride+s.stride)%s.stride
	r.nextID = m.ID + 1
	r.msgs = append(r.msgs, m)
	s.trim(r)
	return m, nil
}

// trim drops the oldest messages beyond max. Once the backing array is
// full, append copies only the kept messages, so memory stays under 2*max
// per room.
func (s *MemoryStore) trim(r *roomLog) {
	if n := len(r.msgs); n > s.max {
		clear(r.msgs[:n-s.max])
		r.msgs = r.msgs[n-s.max:]
	}
}

// Observe records a message another node stored, with the ID that node
// gave it, unless it is already here; IDs this store assigns later are
// greater.
func (s *MemoryStore) Observe(room string, m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[room]
	if r == nil {
		r = &roomLog{nextID: 1}
		s.rooms[room] = r
	}
	i := sort.Search(len(r.msgs), func(i int) bool { return r.msgs[i].ID >= m.ID })
	if i < len(r.msgs) && r.msgs[i].ID == m.ID {
		return
	}
	r.msgs = append(r.msgs, Message{})
	copy(r.msgs[i+1:], r.msgs[i:])
	r.msgs[i] = m
	if m.ID >= r.nextID {
		r.nextID = m.ID + 1
	}
	s.trim(r)
}

// NewClusterMemoryStore is NewMemoryStore for node number node of a
// cluster of at most nodes copies of the chat: the IDs it assigns are
// congruent to node modulo nodes, so they never collide with another
// node's.
func NewClusterMemoryStore(max, node, nodes int) *MemoryStore {
	s := NewMemoryStore(max)
	s.node, s.stride = int64(node), int64(nodes)
	return s
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
