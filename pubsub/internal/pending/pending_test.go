package pending

import (
	"testing"
	"time"

	"github.com/phxgo/phx"
)

type sub struct{ name string }

func (*sub) Deliver(*phx.Broadcast) {}

func TestFroms(t *testing.T) {
	var f Froms
	a := &sub{"a"}
	f.Expect("t1", a)
	f.Expect("t2", nil)
	if got := f.Take("t1"); got != a {
		t.Fatalf("Take(t1) = %v, want a", got)
	}
	if got := f.Take("t1"); got != nil {
		t.Fatalf("second Take(t1) = %v, want nil", got)
	}
	if got := f.Take("other node's"); got != nil {
		t.Fatalf("unknown token: %v", got)
	}
	// Tokens whose broadcast never came back are dropped once many are kept.
	f.m["old"] = entry{from: a, at: time.Now().Add(-2 * maxAge)}
	for i := 0; i < maxKept; i++ {
		f.Expect(string(rune('A'+i%26))+string(rune(i)), nil)
	}
	if _, ok := f.m["old"]; ok {
		t.Fatal("a token older than maxAge survived past maxKept")
	}
}
