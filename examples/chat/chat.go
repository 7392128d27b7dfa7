package main

import (
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/phxgo/phx"
)

// maxBodyBytes is the longest message body, in bytes.
const maxBodyBytes = 2000

// Message is one chat message as broadcast (and recorded in the room's
// history): {"user":"ann","body":"hi","at":1700000000000,"phx_offset":1}.
// The library adds phx_offset, the message's place in the room, which the
// page uses as its ID.
type Message struct {
	User string `json:"user"` // author
	Body string `json:"body"`
	At   int64  `json:"at"` // time received, Unix milliseconds
}

var roomNameRE = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

func validRoom(name string) bool { return roomNameRE.MatchString(name) }

// chat is what every room channel shares: the clock and who is online.
// The rooms' history is the library's (phx.WithHistory on the room:*
// route): in memory on one node, in the broker's store (Redis Streams or
// NATS JetStream) on a cluster, so that any node recovers what a client
// missed.
type chat struct {
	now      func() time.Time
	presence *phx.Presence // who is online, per room
}

// roomHistory bounds each room's history. Only new_msg is recorded:
// typing hints are not worth replaying.
var roomHistory = phx.HistoryOptions{MaxMessages: 1000, MaxAge: 24 * time.Hour, MaxReplay: 1000, Events: []string{"new_msg"}}

// room is the channel behind the topic "room:NAME", one per joined client.
//
// The library keeps each room's history: a join with phx_position {epoch,
// offset} gets recovered/replayed/phx_position in its reply, followed by
// the messages missed since (each new_msg carries its phx_offset, which is
// its ID); {"epoch": "", "offset": 0} asks for the room's recent messages.
// See docs/history.md.
//
// Events from the client:
//
//	new_msg {"body": "text"}  reply {"id": N}; broadcast new_msg {"user","body","at","phx_offset"} to every member
//	typing {}                 broadcast typing {"user": NAME} to the other members
type room struct {
	chat *chat
	user string // from the connection's assigns, set by Connect
	name string // the part of the topic after "room:"
}

// joinReply is the reply to a successful join.
func (r *room) Join(s *phx.Socket, payload phx.Payload) (any, error) {
	r.user, _ = s.Assigns["user"].(string)
	if r.user == "" {
		return nil, phx.Errorf("unauthorized")
	}
	r.name = strings.TrimPrefix(s.Topic(), "room:")
	if !validRoom(r.name) {
		return nil, phx.Errorf("invalid room")
	}
	// The library replays what the client missed after this reply.
	return nil, r.trackOnline(s)
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
	// Recorded, numbered (phx_offset) and broadcast in offset order by the
	// library.
	pos, err := s.Server().BroadcastWith(s.Context(), s.Topic(), "new_msg", m, phx.BroadcastOptions{})
	if errors.Is(err, phx.ErrHistoryUnavailable) {
		// The history's store (the broker on a cluster) does not answer:
		// nothing was recorded or delivered, so sending again is safe.
		s.Logger().Warn("chat: message not sent", "err", err)
		return nil, phx.Errorf("unavailable")
	}
	if err != nil {
		return nil, err // logged; the client gets {"reason":"internal error"}
	}
	return map[string]uint64{"id": pos.Offset}, nil
}

// The compile-time checks that room implements the hooks it means to.
var (
	_ phx.Channel   = (*room)(nil)
	_ phx.InHandler = (*room)(nil)
)
