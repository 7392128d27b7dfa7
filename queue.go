package phx

import "sync"

// outQueue is a connection's bounded queue of outgoing frames. A bound of
// zero or less is no bound (a negative MaxQueuedMessages or MaxQueuedBytes).
type outQueue struct {
	mu          sync.Mutex
	frames      []Frame
	bytes       int
	maxMessages int
	maxBytes    int
	closed      bool

	// wake is the transport's Wake, called with mu held when frames arrive
	// and the transport's writer is idle (writing false): the writer then
	// drains the queue with takeOrIdle until it reports false. An idle
	// connection needs no writer goroutine. Until the transport is
	// attached, wake is nil and frames wait.
	wake    func()
	writing bool
	spare   []Frame // the last written batch's array, reused
}

type pushResult int

const (
	pushOK pushResult = iota
	pushFull
	pushClosed
)

func (q *outQueue) init(maxMessages, maxBytes int) {
	q.maxMessages, q.maxBytes = maxMessages, maxBytes
}

// setWake installs the transport's wake, and wakes it if frames are
// already waiting.
func (q *outQueue) setWake(wake func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.wake = wake
	if len(q.frames) > 0 && !q.writing && !q.closed {
		q.writing = true
		wake()
	}
}

// load reports how many frames and bytes are queued.
func (q *outQueue) load() (frames, bytes int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.frames), q.bytes
}

func (q *outQueue) push(f Frame) pushResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return pushClosed
	}
	if (q.maxMessages > 0 && len(q.frames) >= q.maxMessages) || (q.maxBytes > 0 && q.bytes+f.size() > q.maxBytes) {
		return pushFull
	}
	q.frames = append(q.frames, f)
	q.bytes += f.size()
	if !q.writing && q.wake != nil {
		q.writing = true
		q.wake()
	}
	return pushOK
}

// takeOrIdle hands the transport's writer every queued frame, and takes
// back done, the batch it has written. When there is nothing to write, or
// the queue is closed, the writer is done: it must stop, and the next push
// wakes it again.
func (q *outQueue) takeOrIdle(done []Frame) ([]Frame, bool) {
	clear(done)
	q.mu.Lock()
	defer q.mu.Unlock()
	if cap(done) > 0 && cap(done) <= maxSpareFrames {
		q.spare = done[:0]
	}
	if q.closed || len(q.frames) == 0 {
		q.writing = false
		q.keepIdleArray()
		return nil, false
	}
	batch := q.frames
	q.frames, q.spare = q.spare, nil
	q.bytes = 0
	return batch, true
}

// recycle hands back a batch array that takeOrIdle gave, for a writer that
// stops taking before the queue is empty (its turn in the write pool ends).
func (q *outQueue) recycle(done []Frame) {
	clear(done)
	if cap(done) == 0 || cap(done) > maxSpareFrames {
		return
	}
	q.mu.Lock()
	if q.spare == nil {
		q.spare = done[:0]
	}
	q.mu.Unlock()
}

// maxSpareFrames bounds the batch array a busy connection keeps for reuse.
const maxSpareFrames = 64

// maxIdleFrames bounds the one array an idle connection keeps: a burst (a
// join's presence diffs) leaves arrays of up to maxSpareFrames behind,
// 2.5 KiB each, on connections that then wait for minutes.
const maxIdleFrames = 4

// keepIdleArray keeps one small array for the next frames, and no spare:
// a connection that pushes a frame now and then reuses it without
// allocating, one that pushes many grows it again. mu must be held.
func (q *outQueue) keepIdleArray() {
	keep := q.frames
	if cap(keep) == 0 || cap(keep) > maxIdleFrames {
		keep = q.spare
	}
	if cap(keep) > maxIdleFrames {
		keep = nil
	}
	q.frames, q.spare = keep[:0], nil
}

func (q *outQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}
