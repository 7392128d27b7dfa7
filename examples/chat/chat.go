package main

import (
	"regexp"
	"strings"
	"time"

	"github.com/phxgo/phx"
)

const (
	historyLimit = 100  // messages at most in a join reply
	maxBodyBytes = 2000 // longest message body, in bytes
)

var roomNameRE = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

func validRoom(name string) bool { return roomNameRE.MatchString(name) }

// chat is what every room channel shares: the message store, the clock and
// who is online.
type chat struct {
	// store is nil on one node: the rooms' history is the library's
	// (phx.WithHistory on the room:* route), and so are message IDs (the
	// phx_offset of each broadcast) and catch-up on rejoin. On a cluster,
	// until the library has a history store shared by nodes, the chat keeps
	// its own: store assigns IDs and the join reply carries what was missed
	// (last_seen_id).
	store    Store
	now      func() time.Time
	presence *phx.Presence // who is online, per room

	// On a cluster: watcher stores the messages other nodes broadcast in
	// the rooms joined here. nil on a single node.
	watcher *roomWatcher
	ps      phx.PubSub
}

// roomHistory bounds the library's history of each room, on one node.
// Only new_msg is recorded: typing hints are not worth replaying.
var roomHistory = phx.HistoryOptions{MaxMessages: 1000, MaxAge: 24 * time.Hour, MaxReplay: 1000, Events: []string{"new_msg"}}

// room is the channel behind the topic "room:NAME", one per joined client.
//
// On one node, the library keeps each room's history: a join with
// phx_position {epoch, offset} gets recovered/replayed/phx_position in its
// reply, followed by the messages missed since (each new_msg carries its
// phx_offset, which is its ID); {"epoch": "", "offset": 0} asks for the
// room's recent messages. See docs/history.md.
//
// On a cluster, joining replies with the room's recent history from the
// chat's own store: {"messages": [...]}, the messages whose ID is greater
// than the join payload's last_seen_id (all of them when it is absent), at
// most historyLimit. A client that reconnects rejoins with the last ID it
// has seen and so catches up on what it missed while it was away.
//
// Events from the client:
//
//	new_msg {"body": "text"}  reply {"id": N}; broadcast new_msg {"id","user","body","at"} to every member
//	typing {}                 broadcast typing {"user": NAME} to the other members
type room struct {
	chat *chat
	user string // from the connection's assigns, set by Connect
	name string // the part of the topic after "room:"
}

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
	if r.chat.store == nil {
		// The library replays what the client missed after this reply.
		return nil, r.trackOnline(s)
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
		}
	}

	// No gap between the history read above and live messages: the
	// library subscribed this channel to the room before Join ran and
	// holds what is broadcast meanwhile until the reply is out (a message
	// both in the reply and broadcast is shown once: the page merges by
	// ID).
	if r.chat.watcher != nil {
		r.chat.watcher.watch(r.chat.ps, r.name)
	}
	return reply, r.trackOnline(s)
}

// trackOnline tracks this user in the room (a user with several tabs has
// one meta per tab) and pushes presence_state, which the page's Presence
// class waits for; presence_diff broadcasts follow every change, and reach
// this client too although it is tracked inside Join (the library holds
// them until the join reply). The entry leaves when this channel ends,
// however it ends.
func (r *room) trackOnline(s *phx.Socket) error {
	if err := r.chat.presence.Track(s, r.user, map[string]any{"online_at": r.chat.now().UnixMilli()}); err != nil {
		return err
	}
	return r.chat.presence.PushState(s)
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

	m := Message{User: r.user, Body: body, At: r.chat.now().UnixMilli()}
	if r.chat.store == nil {
		// Recorded, numbered (phx_offset) and broadcast in offset order by
		// the library.
		pos, err := s.Server().BroadcastWith(s.Context(), s.Topic(), "new_msg", m, phx.BroadcastOptions{})
		if err != nil {
			return nil, err // logged; the client gets {"reason":"internal error"}
		}
		return map[string]uint64{"id": pos.Offset}, nil
	}
	// No lock across the broadcast: a slow broker must not hold up the
	// room. Concurrent senders' broadcasts may then arrive out of ID
	// order; the page shows messages in ID order.
	m, err := r.chat.store.Append(s.Context(), r.name, m)
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
	_ phx.Channel   = (*room)(nil)
	_ phx.InHandler = (*room)(nil)
)
