package phx

import (
	"runtime"
	"sync"
)

// writePool runs the WebSocket writers of a server's connections on a few
// goroutines instead of one per connection with frames to send.
//
// A broadcast to a room wakes the writer of every member at once. With a
// goroutine per woken writer, a presence diff to 100 rooms of 100 created
// thousands of goroutines before the first of them ran (5,000 runnable at
// once with 2 cores), and the runtime keeps every goroutine descriptor it
// ever made, with the stack memory they grew at that peak. Here a woken
// connection joins a FIFO queue, and at most max workers take turns from
// it; none run while there is nothing to write.
//
// A turn never waits on a socket: it writes what the socket takes now
// (batchWriter in its non-blocking mode), and a connection whose socket is
// full leaves the pool for a goroutine of its own (wsTransport.writeTurn),
// so a slow client never holds a worker.
type writePool struct {
	mu      sync.Mutex
	queue   []writeTurner // FIFO from head
	head    int
	running int // workers started and not yet returned
	max     int
	work    func() // p.run as a func value, made once: "go p.run()" allocates a closure per start
}

// newWritePool returns a pool of at most max workers.
func newWritePool(max int) *writePool {
	p := &writePool{max: max}
	p.work = p.run
	return p
}

// writeTurner is what writePool runs: a connection's writer taking one
// turn. more is true when it has frames left and is to be queued again.
type writeTurner interface {
	writeTurn() (more bool)
}

// defaultWriteWorkers is the pool's size: enough to keep every processor
// busy writing, with a spare worker each for one held up by a lock.
func defaultWriteWorkers() int {
	return max(4, 2*runtime.GOMAXPROCS(0))
}

// submit queues w for a turn, starting a worker if fewer than max run.
func (p *writePool) submit(w writeTurner) {
	p.mu.Lock()
	p.queue = append(p.queue, w)
	start := p.running < p.max
	if start {
		p.running++
	}
	p.mu.Unlock()
	if start {
		go p.work()
	}
}

// run runs turns until the queue is empty, then returns: an idle server
// has no writer goroutines.
func (p *writePool) run() {
	for {
		p.mu.Lock()
		if p.head == len(p.queue) {
			p.running--
			p.releaseQueueLocked()
			p.mu.Unlock()
			return
		}
		w := p.queue[p.head]
		p.queue[p.head] = nil
		p.head++
		if p.head >= maxIdleQueue && 2*p.head >= len(p.queue) {
			// A queue that never empties: move the rest down, or the
			// array would grow by what was already taken.
			n := copy(p.queue, p.queue[p.head:])
			clear(p.queue[n:])
			p.queue, p.head = p.queue[:n], 0
		}
		p.mu.Unlock()
		if w.writeTurn() {
			p.mu.Lock()
			p.queue = append(p.queue, w)
			p.mu.Unlock()
		}
	}
}

// maxIdleQueue bounds the queue array an empty pool keeps (32 KiB per
// server): a broadcast to up to this many connections reuses it instead of
// growing a new one, a burst to 100,000 connections does not leave its
// 0.8 MB array for the server's life.
const maxIdleQueue = 4096

// releaseQueueLocked resets the empty queue, keeping a small array.
func (p *writePool) releaseQueueLocked() {
	if cap(p.queue) > maxIdleQueue {
		p.queue = nil
	} else {
		p.queue = p.queue[:0]
	}
	p.head = 0
}
