package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

// The fuzz targets check three things for every input:
//  1. decode never panics, and every error wraps ErrMalformed;
//  2. an accepted frame is also accepted by encoding/json with the same
//     fields (a differential check of the hand-written scanner);
//  3. re-encoding the message the way a client would and decoding it again
//     gives an equal Message, and the server encoders produce frames a
//     client parses back to the same topic, event and refs.
//
// Run with, for example:
//
//	go test -run='^$' -fuzz=FuzzDecodeV2Text -fuzztime=30s

func addSeeds(f *testing.F, binary bool, serName string) {
	for _, tc := range malformedCases {
		if tc.binary == binary && (tc.ser == V2) == (serName == "v2") {
			f.Add(tc.frame)
		}
	}
}

func FuzzDecodeV2Text(f *testing.F) {
	for _, tc := range v2TextCases {
		f.Add([]byte(tc.frame))
	}
	for _, tc := range clientGolden {
		if !bytes.HasSuffix([]byte(tc.file), []byte(".bin")) && tc.file[:3] == "v2_" {
			frame, err := EncodeClientV2(tc.want)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(frame)
		}
	}
	addSeeds(f, false, "v2")
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := V2.Decode(frame, false)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Differential: encoding/json agrees on the accepted frame.
		if !json.Valid(frame) || !utf8.Valid(frame) {
			t.Fatalf("accepted a frame encoding/json rejects: %q", frame)
		}
		var arr []json.RawMessage
		if err := json.Unmarshal(frame, &arr); err != nil || len(arr) < 5 {
			t.Fatalf("encoding/json: %v, %d elements", err, len(arr))
		}
		var topic, event string
		if json.Unmarshal(arr[2], &topic) != nil || json.Unmarshal(arr[3], &event) != nil {
			t.Fatalf("encoding/json could not read topic/event of %q", frame)
		}
		if topic != m.Topic || event != m.Event {
			t.Fatalf("topic/event %q/%q, encoding/json says %q/%q", m.Topic, m.Event, topic, event)
		}
		if !bytes.Equal(arr[4], m.Payload.Data) || m.Payload.Binary {
			t.Fatalf("payload %q, encoding/json says %q", m.Payload.Data, arr[4])
		}
		for i, r := range []Ref{m.JoinRef, m.Ref} {
			if !bytes.Equal(refJSON(r), arr[i]) {
				t.Fatalf("ref %d is %q, encoding/json says %q", i, []byte(r), arr[i])
			}
		}
		checkRoundTrip(t, m, V2, mustClientV2(t, m), false)
		checkServerEncoders(t, m)
	})
}

func FuzzDecodeV2Binary(f *testing.F) {
	for _, tc := range v2BinaryCases {
		f.Add(tc.frame)
	}
	addSeeds(f, true, "v2")
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := V2.Decode(frame, true)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !m.Payload.Binary {
			t.Fatal("payload of a binary frame is not binary")
		}
		if len(frame) != 5+len(m.JoinRef.String())+len(m.Ref.String())+len(m.Topic)+len(m.Event)+len(m.Payload.Data) {
			t.Fatalf("fields do not add up to the frame: %s", fmtMsg(m))
		}
		again := mustClientV2(t, m)
		if !bytes.Equal(again, frame) {
			t.Fatalf("client re-encoding differs:\n% x\n% x", again, frame)
		}
		checkRoundTrip(t, m, V2, again, true)
		checkServerEncoders(t, m)
	})
}

func FuzzDecodeV1JSON(f *testing.F) {
	for _, tc := range v1Cases {
		f.Add([]byte(tc.frame))
	}
	addSeeds(f, false, "v1")
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := V1.Decode(frame, false)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Differential: with duplicates rejected, a map decode sees the same
		// values under the exact (case-sensitive) keys.
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(frame, &obj); err != nil || !utf8.Valid(frame) {
			t.Fatalf("accepted a frame encoding/json rejects: %q: %v", frame, err)
		}
		var topic, event string
		if json.Unmarshal(obj["topic"], &topic) != nil || json.Unmarshal(obj["event"], &event) != nil {
			t.Fatalf("encoding/json could not read topic/event of %q", frame)
		}
		if topic != m.Topic || event != m.Event || !bytes.Equal(obj["payload"], m.Payload.Data) {
			t.Fatalf("decoded %s, encoding/json says %q/%q/%q", fmtMsg(m), topic, event, obj["payload"])
		}
		if !bytes.Equal(refJSON(m.Ref), obj["ref"]) {
			t.Fatalf("ref %q, encoding/json says %q", []byte(m.Ref), obj["ref"])
		}
		if jr, ok := obj["join_ref"]; ok && !bytes.Equal(refJSON(m.JoinRef), jr) || !ok && m.JoinRef != nil {
			t.Fatalf("join_ref %q, encoding/json says %q", []byte(m.JoinRef), jr)
		}
		again, err := EncodeClientV1(m)
		if err != nil {
			t.Fatal(err)
		}
		checkRoundTrip(t, m, V1, again, false)
		// The V1 server encoders keep the message readable.
		out, err := V1.EncodeReply(m.JoinRef, m.Ref, m.Topic, m.Event, Payload{})
		if err != nil {
			t.Fatal(err)
		}
		var reply struct {
			Topic   string          `json:"topic"`
			Ref     json.RawMessage `json:"ref"`
			Payload struct {
				Status string `json:"status"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(out, &reply); err != nil || reply.Topic != m.Topic || reply.Payload.Status != m.Event ||
			!bytes.Equal(reply.Ref, refJSON(m.Ref)) {
			t.Fatalf("V1 reply %q does not carry the message's fields (%v)", out, err)
		}
	})
}

// mustClientV2 is EncodeClientV2(m), failing the test on an error.
func mustClientV2(t *testing.T, m Message) []byte {
	t.Helper()
	frame, err := EncodeClientV2(m)
	if err != nil {
		t.Fatalf("EncodeClientV2(%s): %v", fmtMsg(m), err)
	}
	return frame
}

// checkRoundTrip decodes a client re-encoding of m and expects m back.
func checkRoundTrip(t *testing.T, m Message, ser Serializer, frame []byte, binary bool) {
	t.Helper()
	again, err := ser.Decode(frame, binary)
	if err != nil {
		t.Fatalf("re-encoded frame %q rejected: %v", frame, err)
	}
	if !msgEqual(again, m) {
		t.Fatalf("round trip changed the message:\n was %s\n now %s", fmtMsg(m), fmtMsg(again))
	}
}

// checkServerEncoders encodes a reply, a push and a broadcast carrying m's
// refs, topic and event, and decodes them back as a client.
func checkServerEncoders(t *testing.T, m Message) {
	t.Helper()
	payloads := []Payload{{}, {Data: []byte{0, 1, 2}, Binary: true}}
	if len(m.Payload.Data) > 0 && m.Payload.Data[0] == '{' && !m.Payload.Binary {
		payloads = append(payloads, m.Payload)
	}
	for _, p := range payloads {
		reply, err := V2.EncodeReply(m.JoinRef, m.Ref, m.Topic, m.Event, p)
		if p.Binary && (len(m.Topic) > 255 || len(m.Event) > 255) {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("binary reply with long fields: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("encodeReply: %v", err)
		}
		f, err := DecodeServerV2(reply, p.Binary)
		if err != nil {
			t.Fatalf("client cannot decode reply %q: %v", reply, err)
		}
		if f.Topic != m.Topic || f.Event != "phx_reply" || f.Status != m.Event || !bytes.Equal(f.Response.Data, p.JSON()) && !p.Binary {
			t.Fatalf("reply %q decoded as %+v", reply, f)
		}
		if p.Binary {
			if f.JoinRef.String() != m.JoinRef.String() || f.Ref.String() != m.Ref.String() || !bytes.Equal(f.Response.Data, p.Data) {
				t.Fatalf("binary reply % x decoded as %+v", reply, f)
			}
		} else {
			if !bytes.Equal(refJSON(f.JoinRef), refJSON(m.JoinRef)) || !bytes.Equal(refJSON(f.Ref), refJSON(m.Ref)) {
				t.Fatalf("reply %q decoded as %+v", reply, f)
			}
			// A reply decodes as a client message too (it is a 5-element
			// array); the response is one level deeper than the payload, so
			// only the empty one is sure to stay within the depth limit.
			back, err := V2.Decode(reply, false)
			if len(p.Data) == 0 && err != nil || err == nil && (back.Topic != m.Topic || !bytes.Equal(back.Ref, m.Ref) || !bytes.Equal(back.JoinRef, m.JoinRef)) {
				t.Fatalf("reply %q decoded as %s (%v)", reply, fmtMsg(back), err)
			}
		}
		push, err := V2.EncodeMessage(m.JoinRef, nil, m.Topic, m.Event, p)
		if err != nil {
			t.Fatalf("EncodeMessage (push): %v", err)
		}
		if f, err := DecodeServerV2(push, p.Binary); err != nil || f.Topic != m.Topic || f.Event != m.Event {
			t.Fatalf("push %q decoded as %+v (%v)", push, f, err)
		}
		bc, err := V2.EncodeBroadcast(m.Topic, m.Event, p)
		if err != nil {
			t.Fatalf("encodeBroadcast: %v", err)
		}
		if f, err := DecodeServerV2(bc, p.Binary); err != nil || f.Topic != m.Topic || f.Event != m.Event || !bytes.Equal(f.Payload.Data, p.JSON()) && !p.Binary {
			t.Fatalf("broadcast %q decoded as %+v (%v)", bc, f, err)
		}
	}
}
