package wire

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fmtServerMsg(m ServerMessage) string {
	return fmt.Sprintf("{JoinRef:%q Ref:%q Topic:%q Event:%q Payload:%q Binary:%v Status:%q Response:%q}",
		[]byte(m.JoinRef), []byte(m.Ref), m.Topic, m.Event, m.Payload.Data, m.Payload.Binary, m.Status, m.Response.Data)
}

// serverMsgEqual compares two decoded server frames, refs byte for byte.
func serverMsgEqual(a, b ServerMessage) bool {
	return msgEqual(Message{a.JoinRef, a.Ref, a.Topic, a.Event, a.Payload}, Message{b.JoinRef, b.Ref, b.Topic, b.Event, b.Payload}) &&
		a.Status == b.Status && bytes.Equal(a.Response.Data, b.Response.Data) && a.Response.Binary == b.Response.Binary
}

// readFrame returns a golden frame of testdata/frames/dir.
func readFrame(t *testing.T, dir, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "frames", dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// clientEncoder returns EncodeClientV1 or EncodeClientV2.
func clientEncoder(v1 bool) func(Message) ([]byte, error) {
	if v1 {
		return EncodeClientV1
	}
	return EncodeClientV2
}

// The client encoders reproduce the golden client frames byte for byte:
// those phoenix.js wrote and the hand-written V1 and nshafer ones.
func TestEncodeClientGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range clientGolden {
		got, err := clientEncoder(strings.HasPrefix(tc.file, "v1_"))(tc.want)
		if want := readFrame(t, "client", tc.file); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: encoded %q (%v), want %q", tc.file, got, err, want)
		}
	}
}

func replyMsg(joinRef, ref Ref, topic, status, response string) ServerMessage {
	return ServerMessage{JoinRef: joinRef, Ref: ref, Topic: topic, Event: "phx_reply",
		Payload: jp(`{"status":"` + status + `","response":` + response + `}`), Status: status, Response: jp(response)}
}

// Every golden server frame decodes, as a client, to the message it was
// encoded from (see serverGolden).
func TestDecodeServerGolden(t *testing.T) {
	t.Parallel()
	j, r := Ref(`"3"`), Ref(`"7"`)
	body := `{"body":"hi","user":{"id":1,"tags":["a","b"]}}`
	bin := bp(0x00, 0x01, 0xfe, 0xff)
	binReply := ServerMessage{JoinRef: j, Ref: r, Topic: "room:lobby", Event: "phx_reply", Payload: bin, Status: "ok", Response: bin}
	want := map[string]ServerMessage{
		"v2_push.json":              {JoinRef: j, Topic: "room:lobby", Event: "new_msg", Payload: jp(body)},
		"v2_push.bin":               {JoinRef: j, Topic: "room:lobby", Event: "new_msg", Payload: bin},
		"v2_join_reply.json":        replyMsg(j, j, "room:lobby", "ok", `{}`),
		"v2_reply.json":             replyMsg(j, r, "room:lobby", "ok", `{"id":42}`),
		"v2_reply.bin":              binReply,
		"v2_reply_error.json":       replyMsg(j, r, "room:lobby", "error", `{"reason":"unauthorized"}`),
		"v2_reply_number_ref.json":  replyMsg(Ref(`1`), Ref(`12`), "room:lobby", "ok", `{}`),
		"v2_heartbeat_reply.json":   replyMsg(nil, Ref(`"4"`), "phoenix", "ok", `{}`),
		"v2_unmatched_topic.json":   replyMsg(nil, r, "room:none", "error", `{"reason":"unmatched topic"}`),
		"v2_close.json":             {JoinRef: j, Ref: j, Topic: "room:lobby", Event: "phx_close", Payload: jp(`{}`)},
		"v2_error.json":             {JoinRef: j, Ref: j, Topic: "room:lobby", Event: "phx_error", Payload: jp(`{}`)},
		"v2_broadcast.json":         {Topic: "room:lobby", Event: "new_msg", Payload: jp(body)},
		"v2_broadcast.bin":          {Topic: "room:lobby", Event: "new_msg", Payload: bin},
		"v2_broadcast_unicode.json": {Topic: "room:é😀", Event: "msg\"quoted\"\n", Payload: jp(`{"s":"é"}`)},
		"v2_broadcast_unicode.bin":  {Topic: "room:é😀", Event: "é", Payload: bin},
		"v1_push.json":              {Topic: "room:lobby", Event: "new_msg", Payload: jp(body)},
		"v1_reply.json":             replyMsg(nil, r, "room:lobby", "ok", `{"id":42}`),
		"v1_heartbeat_reply.json":   replyMsg(nil, Ref(`"4"`), "phoenix", "ok", `{}`),
		"v1_close.json":             {Ref: j, Topic: "room:lobby", Event: "phx_close", Payload: jp(`{}`)},
		"v1_broadcast.json":         {Topic: "room:lobby", Event: "new_msg", Payload: jp(body)},
	}
	for _, tc := range serverGolden() {
		t.Run(tc.file, func(t *testing.T) {
			frame := readFrame(t, "server", tc.file)
			var got ServerMessage
			var err error
			if strings.HasPrefix(tc.file, "v1_") {
				got, err = DecodeServerV1(frame)
			} else {
				got, err = DecodeServerV2(frame, strings.HasSuffix(tc.file, ".bin"))
			}
			if err != nil {
				t.Fatal(err)
			}
			w, ok := want[tc.file]
			if !ok {
				t.Fatalf("no expected message for %s", tc.file)
			}
			if !serverMsgEqual(got, w) {
				t.Fatalf("\n got %s\nwant %s", fmtServerMsg(got), fmtServerMsg(w))
			}
		})
	}
}

// Client frames decode on the server to the message they were encoded from.
func TestClientToServerRoundTrip(t *testing.T) {
	t.Parallel()
	msgs := []Message{
		jsonMsg(`"3"`, `"3"`, "room:lobby", "phx_join", `{"token":"x"}`),
		jsonMsg("", `"4"`, "phoenix", "heartbeat", `{}`),
		jsonMsg(`12`, `1e3`, "room:é\n\"<>&\u2028", "😀", `{"a":[1,null,"\u0000"]}`),
		jsonMsg(`""`, `"5"`, "phoenix", "heartbeat", `null`),
		binMsg("1", "2", "t", "é", []byte{1, 2, 3}),
		binMsg("", "9", long255, "e", []byte{}),
	}
	for _, m := range msgs {
		frame := mustClientV2(t, m)
		got, err := V2.Decode(frame, m.Payload.Binary)
		if err != nil || !msgEqual(got, m) {
			t.Errorf("V2 %q decoded as %s (%v), want %s", frame, fmtMsg(got), err, fmtMsg(m))
		}
		if m.Payload.Binary {
			continue
		}
		frame, err = EncodeClientV1(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err = V1.Decode(frame, false)
		if err != nil || !msgEqual(got, m) {
			t.Errorf("V1 %q decoded as %s (%v), want %s", frame, fmtMsg(got), err, fmtMsg(m))
		}
	}
	// An empty JSON payload is sent as {}.
	if frame := mustClientV2(t, Message{Topic: "t", Event: "e"}); string(frame) != `[null,null,"t","e",{}]` {
		t.Errorf("zero message: %s", frame)
	}
}

// Server frames decode on the client to the fields they were encoded with.
func TestServerToClientRoundTrip(t *testing.T) {
	t.Parallel()
	j, r := Ref(`"3"`), Ref(`7`)
	for _, p := range []Payload{jp(`{"k":"v"}`), bp(9, 8)} {
		frame, err := V2.EncodeReply(j, r, "room:1", "ok", p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeServerV2(frame, p.Binary)
		if err != nil || got.Event != "phx_reply" || got.Status != "ok" || !bytes.Equal(got.Response.Data, p.Data) ||
			got.JoinRef.String() != "3" || got.Ref.String() != "7" || got.Topic != "room:1" {
			t.Errorf("reply %q decoded as %s (%v)", frame, fmtServerMsg(got), err)
		}
		frame, err = V2.EncodeMessage(j, nil, "room:1", "ev", p)
		if err != nil {
			t.Fatal(err)
		}
		got, err = DecodeServerV2(frame, p.Binary)
		if err != nil || got.Event != "ev" || got.Status != "" || !bytes.Equal(got.Payload.Data, p.Data) ||
			got.JoinRef.String() != "3" || got.Ref != nil {
			t.Errorf("push %q decoded as %s (%v)", frame, fmtServerMsg(got), err)
		}
	}
	frame, err := V1.EncodeReply(nil, r, "room:1", "error", jp(`{"reason":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeServerV1(frame); err != nil || !serverMsgEqual(got, replyMsg(nil, r, "room:1", "error", `{"reason":"x"}`)) {
		t.Errorf("V1 reply %q decoded as %s (%v)", frame, fmtServerMsg(got), err)
	}
}

func TestDecodeServerMalformed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		v1     bool
		binary bool
		frame  []byte
		want   string
	}{
		{"not json", false, false, []byte(`nope`), "not a JSON array"},
		{"object", false, false, []byte(`{}`), "not a JSON array"},
		{"four elements", false, false, []byte(`[null,null,"t","e"]`), "4 elements"},
		{"six elements", false, false, []byte(`[null,null,"t","e",{},1]`), "6 elements"},
		{"topic null", false, false, []byte(`[null,null,null,"e",{}]`), "topic must be a string, found null"},
		{"event number", false, false, []byte(`[null,null,"t",1,{}]`), "event must be a string, found a number"},
		{"ref object", false, false, []byte(`[null,{},"t","e",{}]`), "ref"},
		{"invalid UTF-8", false, false, []byte("[null,null,\"\xff\",\"e\",{}]"), "not valid UTF-8"},
		{"empty binary", false, true, nil, "empty binary frame"},
		{"kind 3", false, true, msgHex("03 00 00"), "unknown kind 3"},
		{"short reply header", false, true, msgHex("01 00 00 00"), "header is 4 bytes, want 5"},
		{"field past the end", false, true, msgHex("02 05 00 74"), "exceeds the frame"},
		{"V1 array", true, false, []byte(`[]`), "not a JSON object"},
		{"V1 null", true, false, []byte(`null`), "not a JSON object"},
		{"V1 no topic", true, false, []byte(`{"event":"e","payload":{},"ref":null}`), "no topic"},
		{"V1 no payload", true, false, []byte(`{"topic":"t","event":"e","ref":null}`), "no payload"},
		{"V1 upper-case key only", true, false, []byte(`{"Topic":"t","event":"e","payload":{},"ref":null}`), "no topic"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var m ServerMessage
			var err error
			if tc.v1 {
				m, err = DecodeServerV1(tc.frame)
			} else {
				m, err = DecodeServerV2(tc.frame, tc.binary)
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decode(%q) = %s, %v; want an ErrMalformed containing %q", tc.frame, fmtServerMsg(m), err, tc.want)
			}
		})
	}
	// A reply without a string status is still a message, with no Status.
	m, err := DecodeServerV2([]byte(`[null,"1","t","phx_reply",{"Status":"ok"}]`), false)
	if err != nil || m.Status != "" || m.Response.Data != nil {
		t.Errorf("reply without status: %s, %v", fmtServerMsg(m), err)
	}
}

func TestEncodeClientErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		v1   bool
		m    Message
		want error
	}{
		{"binary topic 256", false, binMsg("1", "2", long256, "e", nil), ErrMalformed},
		{"binary ref 256", false, binMsg("1", long256, "t", "e", nil), ErrMalformed},
		{"bare-word ref", false, Message{Ref: Ref(`abc`), Topic: "t", Event: "e"}, ErrMalformed},
		{"object join_ref", false, Message{JoinRef: Ref(`{}`), Topic: "t", Event: "e"}, ErrMalformed},
		{"V1 binary", true, binMsg("1", "2", "t", "e", []byte{1}), ErrBinaryUnsupported},
		{"V1 bad join_ref", true, Message{JoinRef: Ref(`"x`), Topic: "t", Event: "e"}, ErrMalformed},
	}
	for _, tc := range cases {
		if got, err := clientEncoder(tc.v1)(tc.m); !errors.Is(err, tc.want) {
			t.Errorf("%s: got (%q, %v), want error %v", tc.name, got, err, tc.want)
		}
	}
}
