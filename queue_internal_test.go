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
