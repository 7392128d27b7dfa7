package downgate

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestGate(t *testing.T) {
	var answering atomic.Bool
	var ups atomic.Int32
	g := New(func(context.Context) error {
		if answering.Load() {
			return nil
		}
		return errors.New("no answer")
	}, time.Second, func() { ups.Add(1) })
	defer g.Close()
	if g.Down() {
		t.Fatal("a new gate is down")
	}
	if !g.MarkDown() || g.MarkDown() || !g.Down() {
		t.Fatal("MarkDown: want true once, then false while down")
	}
	time.Sleep(3 * Interval)
	if !g.Down() {
		t.Fatal("up while the probe fails")
	}
	answering.Store(true)
	deadline := time.Now().Add(2 * time.Second)
	for g.Down() {
		if time.Now().After(deadline) {
			t.Fatal("still down 2 s after the probe started succeeding")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ups.Load() != 1 {
		t.Fatalf("onUp ran %d times, want 1", ups.Load())
	}
	g.Close()
	if g.MarkDown() || g.Down() {
		t.Fatal("MarkDown after Close took effect")
	}
}
