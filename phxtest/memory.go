package phxtest

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/phxgo/phx"
)

// memoryConn is a client connection whose frames travel through Go
// channels instead of a network. It is a phx.Transport written against the
// public contract only, as a transport of any other package would be: the
// server runs the connection (channels, PubSub, Shutdown) as it runs a
// WebSocket one.
type memoryConn struct {
	conn    *phx.Conn
	sendMu  sync.Mutex // Receive takes one frame at a time
	frames  chan phx.Frame
	code    atomic.Int64
	writers sync.WaitGroup
	started chan struct{} // closed when Serve begins
	done    chan struct{} // closed when the connection is fully torn down
}

// dialMemory connects to srv as a client that has authenticated with
// assigns and id, speaking the V2 protocol.
func dialMemory(srv *phx.Server, assigns phx.Assigns, id string) (*memoryConn, error) {
	info := &phx.ConnectInfo{
		Context:   context.Background(),
		Params:    url.Values{"vsn": {"2.0.0"}},
		Transport: "memory",
	}
	conn, err := srv.AcceptAuthenticated(info, assigns, id)
	if err != nil {
		return nil, err
	}
	return serveMemory(conn)
}

// connectMemory connects to srv through its Connect hook with info.
func connectMemory(srv *phx.Server, info *phx.ConnectInfo) (*memoryConn, error) {
	conn, err := srv.Accept(info)
	if err != nil {
		return nil, err
	}
	return serveMemory(conn)
}

// serveMemory serves conn in memory until it closes.
func serveMemory(conn *phx.Conn) (*memoryConn, error) {
	m := &memoryConn{
		conn:    conn,
		frames:  make(chan phx.Frame, 256),
		started: make(chan struct{}),
		done:    make(chan struct{}),
	}
	served := make(chan error, 1)
	go func() {
		// OwnLiveness: a test socket sends no heartbeats, and a test on a
		// fake clock (testing/synctest) must not see it closed after
		// HeartbeatTimeout.
		served <- conn.Serve(m, phx.TransportFeatures{OwnLiveness: true})
		m.writers.Wait()
		close(m.frames)
		close(m.done)
	}()
	select {
	case <-m.started:
		return m, nil
	case err := <-served:
		return nil, err
	}
}

// Serve implements phx.Transport: the test's goroutine does the reading
// (send), so Serve only waits for the connection to close.
func (m *memoryConn) Serve(conn *phx.Conn) error {
	close(m.started)
	<-conn.Done()
	return nil
}

// Wake implements phx.Transport: it starts a writer.
func (m *memoryConn) Wake() {
	m.writers.Add(1)
	go m.write()
}

// write moves queued frames to the frames channel until none are left.
func (m *memoryConn) write() {
	defer m.writers.Done()
	var batch []phx.Frame
	for {
		var ok bool
		if batch, ok = m.conn.TakeFrames(batch); !ok {
			return
		}
		for _, f := range batch {
			select {
			case m.frames <- f:
			case <-m.conn.Done():
				return
			}
		}
	}
}

// Close implements phx.Transport: it records the close code.
func (m *memoryConn) Close(code int, reason string) { m.code.Store(int64(code)) }

// errConnClosed is returned by send once the connection has closed.
var errConnClosed = errors.New("phxtest: connection closed")

// send hands one client frame to the server.
func (m *memoryConn) send(f phx.Frame) error {
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	select {
	case <-m.conn.Done():
		return errConnClosed
	default:
	}
	return m.conn.Receive(f)
}

// closeCode returns the code the server closed with, 0 while open.
func (m *memoryConn) closeCode() int { return int(m.code.Load()) }

// close closes the connection from the client side and waits until every
// channel has terminated.
func (m *memoryConn) close() {
	m.conn.Close(1001, "client closed")
	<-m.done
}
