package phx_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/phxgo/phx"
)

// userBroadcastSerializer is V2 plus one binary frame kind a client may send:
// 3, a "user broadcast" in the layout @supabase/realtime-js uses,
//
//	3 | len(join_ref) | len(ref) | len(topic) | len(event) | len(meta) | encoding |
//	join_ref | ref | topic | event | meta | payload
//
// (encoding 1: the payload is JSON). It decodes such a frame into a "broadcast"
// event whose payload is {"event": event, "payload": payload}.
type userBroadcastSerializer struct{ phx.Serializer }

func (s userBroadcastSerializer) Decode(data []byte, binary bool) (phx.Message, error) {
	if !binary || len(data) == 0 || data[0] != 3 {
		return s.Serializer.Decode(data, binary)
	}
	if len(data) < 7 {
		return phx.Message{}, fmt.Errorf("%w: short user broadcast header", phx.ErrMalformed)
	}
	lens := data[1:6]
	rest := data[7:]
	fields := make([]string, 5)
	for i, n := range lens {
		if int(n) > len(rest) {
			return phx.Message{}, fmt.Errorf("%w: user broadcast field %d overflows", phx.ErrMalformed, i)
		}
		fields[i], rest = string(rest[:n]), rest[n:]
	}
	if data[6] != 1 || !json.Valid(rest) {
		return phx.Message{}, fmt.Errorf("%w: user broadcast payload is not JSON", phx.ErrMalformed)
	}
	payload, err := json.Marshal(map[string]any{"event": fields[3], "payload": json.RawMessage(rest)})
	if err != nil {
		return phx.Message{}, err
	}
	return phx.Message{
		JoinRef: phx.StringRef(fields[0]), Ref: phx.StringRef(fields[1]),
		Topic: fields[2], Event: "broadcast", Payload: phx.Payload{Data: payload},
	}, nil
}

func userBroadcastFrame(joinRef, ref, topic, event, payload string) []byte {
	b := []byte{3, byte(len(joinRef)), byte(len(ref)), byte(len(topic)), byte(len(event)), 0, 1}
	return append(b, joinRef+ref+topic+event+payload...)
}

func TestCustomSerializerBinaryKind(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, &phx.Options{Serializers: []phx.VersionedSerializer{
		{Version: "~> 2.0.0", Serializer: userBroadcastSerializer{phx.V2JSONSerializer()}},
	}}, func(s *phx.Server) {
		s.Channel("room:*", func() phx.Channel { return echoChannel{} })
	})
	c := dial(t, ts.url, "vsn=2.0.0", nil)
	c.join("room:u", "1", map[string]any{})
	// The channel replies to every event with its payload: a frame of the
	// new kind and a plain V2 frame both arrive.
	c.sendBinary(userBroadcastFrame("1", "2", "room:u", "typing", `{"who":"ann"}`))
	c.expect(`["1","2","room:u","phx_reply",{"status":"ok","response":{"event":"typing","payload":{"who":"ann"}}}]`)
	c.send("1", "3", "room:u", "echo", map[string]int{"n": 1})
	c.expect(`["1","3","room:u","phx_reply",{"status":"ok","response":{"n":1}}]`)
	// A malformed frame of the new kind closes the connection with 1007.
	c.sendBinary([]byte{3, 9, 9, 9, 9, 9, 1})
	if code := c.expectClose(); code != 1007 {
		t.Fatalf("close code %d, want 1007", code)
	}
}

// echoChannel replies to every event with the event's payload.
type echoChannel struct{}

func (echoChannel) Join(*phx.Socket, phx.Payload) (any, error) { return nil, nil }

func (echoChannel) HandleIn(_ *phx.Socket, _ string, p phx.Payload) (any, error) {
	return json.RawMessage(p.Data), nil
}

// A client asking for a version no entry matches is refused.
func TestSerializersRefuseUnmatchedVsn(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, &phx.Options{Serializers: []phx.VersionedSerializer{
		{Version: "~> 2.0", Serializer: phx.V2JSONSerializer()},
	}})
	c := dial(t, ts.url, "user=u&vsn=2.3.0", nil) // ~> 2.0 takes any 2.x
	c.join("room:a", "1", map[string]any{})
	_, err := tryDial(t, ts.url, "user=u", nil) // no vsn means 1.0.0
	var de *dialError
	if !errors.As(err, &de) || de.status != 403 {
		t.Fatalf("dial without vsn: %v, want 403", err)
	}
}

func TestSerializersInvalidOptions(t *testing.T) {
	t.Parallel()
	for _, list := range [][]phx.VersionedSerializer{
		{{Version: ">= 2.0.0", Serializer: phx.V2JSONSerializer()}},
		{{Version: "~> 2.0.0"}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewServer(Serializers: %v) did not panic", list)
				}
			}()
			phx.NewServer(&phx.Options{Serializers: list})
		}()
	}
}
