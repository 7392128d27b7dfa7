package phx

import "sync"

// outQueue is a connection's bounded queue of outgoing frames.
type outQueue struct {
	mu          sync.Mutex
	frames      []Frame
	bytes       int
	maxMessages int
	maxBytes    int
	closed      bool
	ready       chan struct{} // signalled (capacity 1) when frames arrive

	// startWriter, when set (WebSocket), is called with mu held when
	// frames arrive and no writer is running: it starts a goroutine that
	// drains the queue with takeOrIdle, so that an idle connection has no
	// writer goroutine. Without it (long-poll, in-memory) push signals
	// ready instead.
	startWriter func()
	writing     bool
	spare       []Frame // the last written batch's array, reused
}

type pushResult int

const (
	pushOK pushResult = iota
	pushFull
	pushClosed
)

func (q *outQueue) init(maxMessages, maxBytes int) {
	q.maxMessages, q.maxBytes = maxMessages, maxBytes
	q.ready = make(chan struct{}, 1)
}

func (q *outQueue) push(f Frame) pushResult {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return pushClosed
	}
	if len(q.frames) >= q.maxMessages || q.bytes+len(f.Data) > q.maxBytes {
		q.mu.Unlock()
		return pushFull
	}
	q.frames = append(q.frames, f)
	q.bytes += len(f.Data)
	if q.startWriter != nil {
		if !q.writing {
			q.writing = true
			q.startWriter()
		}
		q.mu.Unlock()
		return pushOK
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return pushOK
}

// take moves every queued frame into buf (reset to length 0) and returns it.
func (q *outQueue) take(buf []Frame) []Frame {
	q.mu.Lock()
	buf = append(buf[:0], q.frames...)
	clear(q.frames)
	q.frames = q.frames[:0]
	q.bytes = 0
	q.mu.Unlock()
	return buf
}

// takeOrIdle hands the writer started by startWriter every queued frame,
// and takes back done, the batch it has written. When there is nothing to
// write, or the queue is closed, the writer is done: it must return, and
// the next push starts another.
func (q *outQueue) takeOrIdle(done []Frame) ([]Frame, bool) {
	clear(done)
	q.mu.Lock()
	defer q.mu.Unlock()
	if cap(done) > 0 && cap(done) <= maxSpareFrames {
		q.spare = done[:0]
	}
	if q.closed || len(q.frames) == 0 {
		q.writing = false
		return nil, false
	}
	batch := q.frames
	q.frames, q.spare = q.spare, nil
	q.bytes = 0
	return batch, true
}

// maxSpareFrames bounds the batch array an idle connection keeps for reuse.
const maxSpareFrames = 64

func (q *outQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}
