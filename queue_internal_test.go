package phx

import "testing"

// A negative MaxQueuedMessages or MaxQueuedBytes is no bound.
func TestOutQueueUnbounded(t *testing.T) {
	for _, lim := range [][2]int{{-1, 100}, {10, -1}, {-1, -1}} {
		var q outQueue
		q.init(lim[0], lim[1])
		bounded := lim[0] > 0 || lim[1] > 0
		full := false
		for range 1000 {
			if q.push(Frame{Data: []byte("0123456789")}) == pushFull {
				full = true
				break
			}
		}
		if full != bounded {
			t.Errorf("limits %v: queue full = %v, want %v", lim, full, bounded)
		}
	}
}

// After a burst, an idle queue keeps one array of at most maxIdleFrames
// frames; a connection sending a frame at a time then reuses it without
// allocating.
func TestOutQueueIdleKeepsOneSmallArray(t *testing.T) {
	var q outQueue
	q.init(0, 0)
	q.setWake(func() {})
	drain := func(done []Frame) []Frame {
		for {
			batch, ok := q.takeOrIdle(done)
			if !ok {
				return nil
			}
			done = batch
		}
	}
	f := Frame{Data: []byte("x")}
	for range 50 {
		q.push(f)
	}
	drain(nil)
	q.mu.Lock()
	frames, spare := cap(q.frames), cap(q.spare)
	q.mu.Unlock()
	if frames > maxIdleFrames || spare != 0 {
		t.Fatalf("idle after a burst of 50: arrays of %d and %d frames kept, want one of at most %d", frames, spare, maxIdleFrames)
	}
	allocs := testing.AllocsPerRun(100, func() {
		q.push(f)
		drain(nil)
	})
	if allocs != 0 {
		t.Errorf("one frame at a time: %.1f allocations per frame, want 0", allocs)
	}
}
