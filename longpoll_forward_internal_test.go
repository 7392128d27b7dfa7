package phx

import (
	"bytes"
	"errors"
	"testing"
)

func TestLPFwdMsgRoundTrip(t *testing.T) {
	for _, m := range []lpFwdMsg{
		{Kind: lpFwdGet, ID: "abc.1", From: "abc", Token: "v1.tok"},
		{Kind: lpFwdPost, Flags: lpFwdNDJSON | lpFwdTooBig, ID: "abc.2", From: "abc", Token: "t", Body: []byte("[1]\n[2]")},
		{Kind: lpFwdAnswer, ID: "x", Status: 413},
		{Kind: lpFwdAnswer, ID: "x", Status: 200, Body: bytes.Repeat([]byte("é"), 300)},
		{Kind: lpFwdCancel},
	} {
		enc := m.encode()
		got, err := decodeLPFwdMsg(enc)
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if got.Kind != m.Kind || got.Flags != m.Flags || got.Status != m.Status || got.ID != m.ID ||
			got.From != m.From || got.Token != m.Token || !bytes.Equal(got.Body, m.Body) {
			t.Fatalf("round trip: got %+v, want %+v", got, m)
		}
		enc[len(enc)-1] ^= 0xff // the decoded body does not alias the message
		if len(m.Body) > 0 && !bytes.Equal(got.Body, m.Body) {
			t.Fatal("decoded body aliases the message")
		}
		// Every truncation is refused, none panics.
		for i := range len(enc) - len(m.Body) {
			if _, err := decodeLPFwdMsg(enc[:i]); !errors.Is(err, errLPMalformed) {
				t.Fatalf("%d of %d bytes: %v", i, len(enc), err)
			}
		}
	}
	if _, err := decodeLPFwdMsg([]byte{9, 'G', 0, 0, 0, 0, 0, 0}); !errors.Is(err, errLPMalformed) {
		t.Fatalf("unknown version: %v", err)
	}
}

func FuzzLPFwdMsg(f *testing.F) {
	f.Add((&lpFwdMsg{Kind: lpFwdPost, ID: "a.1", From: "a", Token: "t", Body: []byte("x")}).encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeLPFwdMsg(data)
		if err != nil {
			return
		}
		if again, err := decodeLPFwdMsg(m.encode()); err != nil || again.ID != m.ID || !bytes.Equal(again.Body, m.Body) {
			t.Fatalf("re-encoding %+v: %+v, %v", m, again, err)
		}
	})
}

// Forwarding topics are not computable without the secret, and differ by
// instance.
func TestLPFwdTopic(t *testing.T) {
	k1, k2 := lpTopicKey(bytes.Repeat([]byte{1}, 32)), lpTopicKey(bytes.Repeat([]byte{2}, 32))
	if lpFwdTopic(k1, "a") == lpFwdTopic(k2, "a") || lpFwdTopic(k1, "a") == lpFwdTopic(k1, "b") {
		t.Fatal("topics collide")
	}
	if lpFwdTopic(k1, "a") != lpFwdTopic(lpTopicKey(bytes.Repeat([]byte{1}, 32)), "a") {
		t.Fatal("the same secret and instance must name the same topic on every node")
	}
}
