package main

import (
	"hash/fnv"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/phxgo/phx"
)

const (
	historyLimit = 100  // messages at most in a join reply
	maxBodyBytes = 2000 // longest message body, in bytes
)

var roomNameRE = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

func validRoom(name string) bool { return roomNameRE.MatchString(name) }

// chat is what every room channel shares: the message store, the clock, and
// the locks that keep each room's messages in order.
type chat struct {
	store    Store
	now      func() time.Time
	presence *phx.Presence // who is online, per room

	// On a cluster: watcher stores the messages other nodes broadcast in
	// the rooms joined here. nil on a single node.
	watcher *roomWatcher
	ps      phx.PubSub

	// A message is stored (which assigns its ID) and broadcast while its
	// room's lock is held, so that even with concurrent senders every
	// member receives a room's messages in ID order. The locks are striped:
	// rooms that share a stripe just wait for each other a little, and the
	// memory used does not grow with the number of rooms.
	locks [64]sync.Mutex
}

func (c *chat) roomLock(room string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(room))
	return &c.locks[h.Sum32()%uint32(len(c.locks))]
}

// room is the channel behind the topic "room:NAME", one per joined client.
//
// Joining replies with the room's recent history: {"messages": [...]}, the
// messages whose ID is greater than the join payload's last_seen_id (all of
// them when it is absent), at most historyLimit. A client that reconnects
// rejoins with the last ID it has seen and so catches up on what it missed
// while it was away: Phoenix itself delivers at most once.
//
// Events from the client:
//
//	new_msg {"body": "text"}  reply {"id": N}; broadcast new_msg {"id","user","body","at"} to every member
//	typing {}                 broadcast typing {"user": NAME} to the other members
type room struct {
	chat *chat
	user string // from the connection's assigns, set by Connect
	name string // the part of the topic after "room:"

	// sentUpTo is the highest message ID sent in the join reply: the
	// after-join catch-up sends what was stored after it.
	sentUpTo int64
}

// afterJoin is sent to the channel itself by Join; see HandleInfo.
type afterJoin struct{}

// joinReply is the reply to a successful join.
type joinReply struct {
	Messages []Message `json:"messages"`
	// Reset is true when the client's last_seen_id is ahead of the room's
	// newest message: its IDs come from before a restart of the server
	// (the memory store forgets everything). Messages then holds the whole
	// current history and the client must drop what it showed before.
	Reset bool `json:"reset,omitempty"`
}

func (r *room) Join(s *phx.Socket, payload phx.Payload) (any, error) {
	r.user, _ = s.Assigns["user"].(string)
	if r.user == "" {
		return nil, phx.Errorf("unauthorized")
	}
	r.name = strings.TrimPrefix(s.Topic(), "room:")
	if !validRoom(r.name) {
		return nil, phx.Errorf("invalid room")
	}
	var req struct {
		LastSeenID *int64 `json:"last_seen_id"`
	}
	if err := payload.Decode(&req); err != nil {
		return nil, phx.Errorf("invalid last_seen_id")
	}
	var after int64
	if req.LastSeenID != nil && *req.LastSeenID > 0 {
		after = *req.LastSeenID
	}

	ctx := s.Context()
	msgs, err := r.chat.store.Since(ctx, r.name, after, historyLimit)
	if err != nil {
		return nil, err // logged; the client gets {"reason":"join refused"}
	}
	reply := joinReply{Messages: msgs}
	if after > 0 && len(msgs) == 0 {
		// Nothing new, or the client saw IDs that this server never gave.
		last, err := r.chat.store.Since(ctx, r.name, 0, 1)
		if err != nil {
			return nil, err
		}
		if len(last) == 0 || last[0].ID < after {
			if reply.Messages, err = r.chat.store.Since(ctx, r.name, 0, historyLimit); err != nil {
				return nil, err
			}
			reply.Reset = true
			after = 0
		}
	}
	r.sentUpTo = after
	if n := len(reply.Messages); n > 0 {
		r.sentUpTo = reply.Messages[n-1].ID
	}

	// The channel subscribes to the room's broadcasts only once Join has
	// returned, so a message sent meanwhile would be in neither the reply
	// nor the broadcasts this client gets. HandleInfo runs after the
	// subscription and sends such messages.
	if err := s.Send(afterJoin{}); err != nil {
		return nil, err
	}

	if r.chat.watcher != nil {
		r.chat.watcher.watch(r.chat.ps, r.name)
	}

	// Who is online: track this user in the room (a user with several tabs
	// has one meta per tab) and push presence_state, which the page's
	// Presence class waits for; presence_diff broadcasts follow every
	// change. The entry leaves when this channel ends, however it ends.
	if err := r.chat.presence.Track(s, r.user, map[string]any{"online_at": r.chat.now().UnixMilli()}); err != nil {
		return nil, err
	}
	if err := r.chat.presence.PushState(s); err != nil {
		return nil, err
	}

	return reply, nil
}

// HandleInfo runs right after the join: it pushes as new_msg the messages
// stored between the history read in Join and the subscription. The client
// may also get some of them as broadcasts, or before older ones: it ignores
// IDs it already has and shows messages in ID order.
func (r *room) HandleInfo(s *phx.Socket, msg any) {
	if _, ok := msg.(afterJoin); !ok {
		return
	}
	missed, err := r.chat.store.Since(s.Context(), r.name, r.sentUpTo, historyLimit)
	if err != nil {
		s.Logger().Warn("chat: after-join catch-up failed", "err", err)
		return
	}
	for _, m := range missed {
		if err := s.Push("new_msg", m); err != nil {
			return
		}
	}
}

func (r *room) HandleIn(s *phx.Socket, event string, payload phx.Payload) (any, error) {
	switch event {
	case "new_msg":
		return r.newMsg(s, payload)
	case "typing":
		if err := s.BroadcastFrom("typing", map[string]string{"user": r.user}); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return nil, phx.Errorf("unknown event")
}

func (r *room) newMsg(s *phx.Socket, payload phx.Payload) (any, error) {
	var in struct {
		Body *string `json:"body"`
	}
	if err := payload.Decode(&in); err != nil || in.Body == nil {
		return nil, phx.Errorf("invalid message")
	}
	body := *in.Body
	switch {
	case strings.TrimSpace(body) == "":
		return nil, phx.Errorf("empty")
	case len(body) > maxBodyBytes:
		return nil, phx.Errorf("too long")
	}

	lock := r.chat.roomLock(r.name)
	lock.Lock()
	defer lock.Unlock()
	m, err := r.chat.store.Append(s.Context(), r.name, Message{
		User: r.user,
		Body: body,
		At:   r.chat.now().UnixMilli(),
	})
	if err != nil {
		return nil, err // logged; the client gets {"reason":"internal error"}
	}
	if err := s.Broadcast("new_msg", m); err != nil {
		// Stored but not delivered: members get it when they next rejoin.
		s.Logger().Warn("chat: broadcast failed", "err", err, "id", m.ID)
	}
	return map[string]int64{"id": m.ID}, nil
}

// The compile-time checks that room implements the hooks it means to.
var (
	_ phx.Channel     = (*room)(nil)
	_ phx.InHandler   = (*room)(nil)
	_ phx.InfoHandler = (*room)(nil)
)
