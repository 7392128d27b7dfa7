package phx

import (
	"math"
	"time"
)

// Closing idle connections (Options.HeartbeatTimeout).
//
// One timer per server, not one per connection (a timer and its function
// value are 0.13 KiB, kept by every connection for life): it is armed for
// the earliest moment any watched connection could have been silent for
// HeartbeatTimeout. When it fires, one pass over the connections closes
// those that have been, and arms it again for the earliest deadline of the
// rest. A deadline (the last frame's time plus the timeout) only moves
// later as frames arrive, so the timer never fires late; a connection that
// keeps sending costs nothing but its place in the pass, about one pass
// per half timeout with phoenix.js's heartbeats every 30 s and the 60 s
// default. Connections close exactly at their deadline, as with a timer
// each.

// watchIdle starts watching c, as its transport does not judge liveness
// itself. The server's mu guards the watch.
func (s *Server) watchIdle(c *conn) {
	timeout := s.opts.HeartbeatTimeout
	s.mu.Lock()
	defer s.mu.Unlock()
	c.idleWatched = true
	s.idleWatching++
	s.armIdle(c.lastRead.Load() + int64(timeout))
}

// unwatchIdle stops watching c, torn down; the timer stops with the last
// watched connection. s.mu must be held.
func (s *Server) unwatchIdle(c *conn) {
	if !c.idleWatched {
		return
	}
	c.idleWatched = false
	if s.idleWatching--; s.idleWatching == 0 && s.idleTimer != nil {
		s.idleTimer.Stop()
		s.idleArmed = false
	}
}

// armIdle makes the idle timer fire at deadline (Unix nanoseconds) unless
// it fires earlier already. s.mu must be held.
func (s *Server) armIdle(deadline int64) {
	if s.idleArmed && s.idleAt <= deadline {
		return
	}
	s.idleAt, s.idleArmed = deadline, true
	d := time.Duration(deadline - time.Now().UnixNano())
	if s.idleTimer == nil {
		s.idleTimer = time.AfterFunc(d, s.closeIdle)
		return
	}
	s.idleTimer.Reset(d)
}

// closeIdle is the idle timer's function: it closes the watched connections
// silent for HeartbeatTimeout and arms the timer for the next deadline.
func (s *Server) closeIdle() {
	timeout := int64(s.opts.HeartbeatTimeout)
	type silent struct {
		c    *conn
		last int64
	}
	var idle []silent
	s.mu.Lock()
	now := time.Now().UnixNano()
	next := int64(math.MaxInt64)
	for c := range s.conns {
		if !c.idleWatched || c.ctx.Err() != nil {
			continue
		}
		if last := c.lastRead.Load(); last+timeout <= now {
			idle = append(idle, silent{c, last})
		} else {
			next = min(next, last+timeout)
		}
	}
	s.idleArmed = false
	if next != math.MaxInt64 {
		s.armIdle(next)
	}
	s.mu.Unlock()
	for _, x := range idle {
		x.c.logger().Info("phx: closing idle connection", "idle", time.Duration(now-x.last).Round(time.Millisecond))
		x.c.close(closeGoingAway, "heartbeat timeout", ErrClosed)
	}
}
