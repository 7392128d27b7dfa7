package phx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"time"
)

// Two limits on a user's connections, past Connect: how many one socket ID
// may hold at once (Options.MaxConnectionsPerID), and how long a
// connection lives before its credentials are checked again
// (ConnectInfo.ExpiresAt and Options.Refresh).

// closeExpired is the close code of a connection whose expiry passed and
// was not extended. phoenix.js reconnects on any code but 1000, and so
// runs Connect again with fresh credentials (a params function).
const closeExpired = 4001

// ErrTooManyConnections is wrapped by the [*RefusedError] (status 429) for
// a connection over [Options.MaxConnectionsPerID].
var ErrTooManyConnections = errors.New("phx: too many connections for this socket ID")

// ErrExpired is the reason channels terminate with when their connection
// expired ([ConnectInfo.ExpiresAt]) and [Options.Refresh] did not extend it.
var ErrExpired = errors.New("phx: connection expired")

// reserveID counts a connection of id against MaxConnectionsPerID; false
// when id already has its maximum. Anonymous connections are not counted.
func (s *Server) reserveID(id string) bool {
	max := s.opts.MaxConnectionsPerID
	if id == "" || max <= 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perID[id] >= max {
		return false
	}
	if s.perID == nil {
		s.perID = make(map[string]int)
	}
	s.perID[id]++
	return true
}

// releaseID undoes reserveID once the connection is gone.
func (s *Server) releaseID(id string) {
	if id == "" || s.opts.MaxConnectionsPerID <= 0 {
		return
	}
	s.mu.Lock()
	if s.perID[id]--; s.perID[id] <= 0 {
		delete(s.perID, id)
	}
	s.mu.Unlock()
}

// refusedTooMany is the refusal of a connection over MaxConnectionsPerID.
func refusedTooMany(id string, max int) error {
	return &RefusedError{Status: http.StatusTooManyRequests,
		Err: fmt.Errorf("%w (%q holds %d)", ErrTooManyConnections, id, max)}
}

// armExpiry starts the connection's expiry timer, if Connect set one.
func (c *conn) armExpiry() {
	if c.expiresAt == 0 {
		return
	}
	c.expiryMu.Lock()
	defer c.expiryMu.Unlock()
	c.expiryTimer = time.AfterFunc(time.Until(time.Unix(0, c.expiresAt)), c.expire)
}

// stopExpiry stops the expiry timer, if there is one.
func (c *conn) stopExpiry() {
	c.expiryMu.Lock()
	defer c.expiryMu.Unlock()
	if c.expiryTimer != nil {
		c.expiryTimer.Stop()
	}
}

// expire runs when the connection's expiry passes: Refresh may extend it,
// otherwise the connection closes with 4001.
func (c *conn) expire() {
	if c.ctx.Err() != nil {
		return
	}
	next, err := c.refresh()
	if err == nil && time.Until(next) > 0 {
		c.debug("phx: connection expiry extended", "until", next)
		c.expiryMu.Lock()
		c.expiryTimer.Reset(time.Until(next))
		c.expiryMu.Unlock()
		return
	}
	c.logger().Info("phx: connection expired; closing", "err", err)
	c.close(closeExpired, "connection expired", ErrExpired)
}

// refresh asks Options.Refresh for a new expiry, containing its panics.
func (c *conn) refresh() (next time.Time, err error) {
	f := c.srv.opts.Refresh
	if f == nil {
		return time.Time{}, nil
	}
	defer func() {
		if v := recover(); v != nil {
			c.logger().Error("phx: Refresh panicked", "panic", v, "stack", string(debug.Stack()))
			next, err = time.Time{}, fmt.Errorf("phx: Refresh panicked: %v", v)
		}
	}()
	ctx, cancel := context.WithTimeout(c.ctx, refreshTimeout)
	defer cancel()
	return f(ctx, c.id, c.assigns.assigns())
}

// refreshTimeout bounds one Refresh call.
const refreshTimeout = 10 * time.Second
