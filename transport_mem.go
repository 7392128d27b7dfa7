package phx

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/phxgo/phx/internal/bridge"
)

// The in-memory transport serves package phxtest: a connection whose frames
// travel through Go channels instead of a network, with the same conn,
// channels and PubSub as a real one.

func init() {
	bridge.Dial = func(server any, assigns map[string]any, id string) (bridge.Conn, error) {
		s, ok := server.(*Server)
		if !ok || s == nil {
			return nil, errors.New("phx: phxtest needs a *phx.Server")
		}
		return s.dialMemory(Assigns(assigns), id)
	}
}

type memConn struct {
	c         *conn
	sendMu    sync.Mutex
	frames    chan bridge.Frame
	code      atomic.Int64
	closeOnce sync.Once
	done      chan struct{} // closed when fully torn down
	writer    chan struct{} // closed when the writer has stopped
}

func (s *Server) dialMemory(assigns Assigns, id string) (*memConn, error) {
	if assigns == nil {
		assigns = Assigns{}
	}
	if id == "" && s.opts.ID != nil {
		id = s.opts.ID(assigns)
	}
	// phxtest speaks V2, through whatever serializer the server maps it to.
	cd, err := negotiateVsn(s.serializers, "2.0.0")
	if err != nil {
		return nil, err
	}
	c := newConn(s, cd, id, assigns, "memory")
	m := &memConn{c: c, frames: make(chan bridge.Frame, 256), done: make(chan struct{}), writer: make(chan struct{})}
	c.closeTransport = func(code int, _ string) {
		m.code.Store(int64(code))
		go m.shutdown()
	}
	if !s.register(c) {
		return nil, ErrServerClosed
	}
	c.start()
	go m.writeLoop()
	return m, nil
}

func (m *memConn) writeLoop() {
	defer close(m.writer)
	var batch []Frame
	for {
		select {
		case <-m.c.ctx.Done():
			return
		case <-m.c.out.ready:
		}
		batch = m.c.out.take(batch)
		for _, f := range batch {
			select {
			case m.frames <- bridge.Frame{Data: f.Data, Binary: f.Binary}:
			case <-m.c.ctx.Done():
				return
			}
		}
		clear(batch)
	}
}

// shutdown tears the connection down once, after the transport closed.
func (m *memConn) shutdown() {
	m.closeOnce.Do(func() {
		m.c.teardown()
		<-m.writer
		m.c.srv.unregister(m.c)
		close(m.frames)
		close(m.done)
	})
}

func (m *memConn) Send(f bridge.Frame) error {
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	if m.c.ctx.Err() != nil {
		return ErrClosed
	}
	if err := m.c.handleFrame(f.Data, f.Binary); err != nil {
		m.c.srv.metrics.badFrames.Add(1)
		m.c.close(closeInvalidData, "malformed message", ErrClosed)
		return err
	}
	return nil
}

func (m *memConn) Frames() <-chan bridge.Frame { return m.frames }

func (m *memConn) CloseCode() int { return int(m.code.Load()) }

func (m *memConn) Close() {
	m.c.close(closeGoingAway, "client closed", ErrClosed)
	<-m.done
}
