package phx_test

import (
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// cutProxy is a TCP proxy in front of a test server. cut drops every
// connection going through it and holds new ones for a while, then carries
// them on: a network outage, as a client sees one (its socket fails, its
// next connection attempt hangs until the network is back). Holding rather
// than refusing stands for TCP's retransmissions of a real outage, and is
// needed under Node 20, whose WebSocket never fires close for a refused
// attempt, so phoenix.js would never try again.
type cutProxy struct {
	ln     net.Listener
	target string // host:port of the server
	done   chan struct{}

	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	downUntil time.Time
	wg        sync.WaitGroup
	closeOnce sync.Once
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close) // in case the test ends before closing it
	return p
}

// url is the WebSocket mount point through the proxy.
func (p *cutProxy) url() string { return "ws://" + p.ln.Addr().String() + "/socket" }

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		wait := time.Until(p.downUntil)
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			if wait > 0 { // the network is down: hold the attempt
				select {
				case <-time.After(wait):
				case <-p.done:
					c.Close()
					p.wg.Done()
					return
				}
			}
			p.pipe(c)
		}()
	}
}

// pipe carries one connection to the server and back until either side
// ends or a cut closes both.
func (p *cutProxy) pipe(client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	p.conns[client], p.conns[server] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(server, client); done <- struct{}{} }()
	go func() { io.Copy(client, server); done <- struct{}{} }()
	<-done
	client.Close()
	server.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// cut drops every open connection and holds new ones for d; it returns
// how many client connections it dropped.
func (p *cutProxy) cut(d time.Duration) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.downUntil = time.Now().Add(d)
	for c := range p.conns {
		c.Close()
	}
	return len(p.conns) / 2
}

// close stops the proxy and waits for its goroutines.
func (p *cutProxy) close() {
	p.closeOnce.Do(func() {
		close(p.done)
		p.ln.Close()
		p.cut(0)
		p.wg.Wait()
	})
}

// TestInteropRateLimitOutage is issue 15's scenario with the official
// clients, on the default limits (100 messages/s, bursts of 200): an app
// moving a live cursor at ~90 pushes a second loses its network for 2.5 s
// (the proxy cuts it). phoenix.js buffers the pushes made meanwhile,
// reconnects with its own default backoff, rejoins and sends the whole
// buffer at once, beyond the burst. The script (cursor_outage.mjs) checks
// that no close is 1008, that every buffered push is answered (ok, or
// refused with "rate limited"), that the client stays joined, and that the
// live pushes pass again afterwards. Here: one reconnection (no loop) and
// no policy close. Each client gets its own server, one after the other
// (the goroutine leak check needs the process to itself).
func TestInteropRateLimitOutage(t *testing.T) {
	requireInteropNode(t)
	for _, c := range interopClients {
		c.label = "phoenix-" + interopVersion(t, c)
		t.Run(c.label, func(t *testing.T) {
			baseline := runtime.NumGoroutine()
			e := newInteropEnv(t, nil) // the default limits
			defer e.close(t, baseline)
			proxy := newCutProxy(t, strings.TrimPrefix(e.base, "http://"))
			defer proxy.close() // before e.close counts goroutines
			e.mu.Lock()
			e.proxy = proxy
			e.mu.Unlock()
			id := c.short + "_cursor"
			runInteropScript(t, e.base, "cursor_outage", c, id)
			if n := len(e.connectsFor(id + "_a")); n != 2 {
				t.Errorf("the client connected %d times, want 2 (once, and once after the outage)", n)
			}
			if n := e.srv.Stats().PolicyClosed; n != 0 {
				t.Errorf("PolicyClosed = %d, want 0", n)
			}
			e.wantTerminated(t, "room:"+id, "closed", "closed")
		})
	}
}
