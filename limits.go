package phx

import (
	"sync"
	"time"
)

// protocolErrorWindow is the period MaxProtocolErrors counts over.
const protocolErrorWindow = 5 * time.Second

// inboundLimits is a connection's token bucket for incoming messages and
// its protocol-error counter.
type inboundLimits struct {
	mu          sync.Mutex
	tokens      float64
	last        time.Time
	errors      int
	errorsSince time.Time
}

// allow takes one token; false when the bucket is empty. rate < 0 allows
// everything.
func (l *inboundLimits) allow(now time.Time, rate float64, burst int) bool {
	if rate < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens = float64(burst)
	} else {
		l.tokens += now.Sub(l.last).Seconds() * rate
		if l.tokens > float64(burst) {
			l.tokens = float64(burst)
		}
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// protocolError records an error and returns the count in the current
// window.
func (l *inboundLimits) protocolError(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.errorsSince) > protocolErrorWindow {
		l.errors, l.errorsSince = 0, now
	}
	l.errors++
	return l.errors
}
