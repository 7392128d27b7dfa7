// Package downgate is the "down" state of the shared history stores of the
// PubSub adapters: once a call finds the broker not answering, every call
// fails at once until one background probe gets an answer.
package downgate

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Interval is how often a gate that is down probes the broker.
const Interval = 100 * time.Millisecond

// Gate is up until MarkDown, then down until its probe succeeds. The zero
// value is not usable: call New.
type Gate struct {
	probe   func(context.Context) error
	timeout time.Duration
	onUp    func()

	down atomic.Bool

	mu     sync.Mutex
	closed bool
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a gate whose probe is called every Interval, with a context
// bounded by timeout, while the gate is down; onUp (may be nil) runs when
// the probe succeeds.
func New(probe func(context.Context) error, timeout time.Duration, onUp func()) *Gate {
	g := &Gate{probe: probe, timeout: timeout, onUp: onUp}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	return g
}

// Down reports whether the broker is known not to answer.
func (g *Gate) Down() bool { return g.down.Load() }

// MarkDown makes the gate down and starts its probe; it reports whether
// this call did (false when it was down already, or closed).
func (g *Gate) MarkDown() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || !g.down.CompareAndSwap(false, true) {
		return false
	}
	g.wg.Add(1)
	go g.run()
	return true
}

func (g *Gate) run() {
	defer g.wg.Done()
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(g.ctx, g.timeout)
		err := g.probe(ctx)
		cancel()
		if err == nil {
			g.down.Store(false)
			if g.onUp != nil {
				g.onUp()
			}
			return
		}
	}
}

// Close stops the probe and waits for it; MarkDown does nothing after.
func (g *Gate) Close() {
	g.mu.Lock()
	g.closed = true
	g.cancel()
	g.mu.Unlock()
	g.wg.Wait()
}
