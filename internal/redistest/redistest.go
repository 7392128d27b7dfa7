// Package redistest runs a real redis-server for tests, on a free loopback
// port, without persistence, and lets them stop, restart, freeze and thaw
// it. A missing redis-server fails the test under CI=true and skips it
// otherwise, as every missing test dependency does in this repository.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phxgo/phx/internal/nodetest"
	"github.com/phxgo/phx/internal/proctest"
)

// Server is a redis-server process.
type Server struct {
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
}

// Binary finds redis-server: $REDIS_SERVER, else on PATH.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("REDIS_SERVER"); p != "" {
		return p
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		nodetest.Missing(t, t.Name(), "redis-server is not installed (apt-get install redis-server)")
	}
	return p
}

// Run runs redis-server until the test ends.
func Run(t testing.TB) *Server {
	t.Helper()
	s := &Server{bin: Binary(t), dir: t.TempDir()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.Start(t)
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Start starts the server again on the same port after Stop (without
// persistence: empty).
func (s *Server) Start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--daemonize", "no", "--loglevel", "warning")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond); err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			fmt.Fprint(c, "PING\r\n")
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return
			}
		}
		if time.Now().After(deadline) {
			s.Stop(t)
			t.Fatalf("redis-server not answering on %s after 5s:\n%s", s.Addr(), out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Freeze stops redis-server (SIGSTOP): connections stay open, nothing is
// answered, new connections wait in the listen backlog.
func (s *Server) Freeze(t testing.TB) {
	t.Helper()
	proctest.Freeze(t, s.cmd.Process)
}

// Thaw resumes a frozen redis-server (SIGCONT).
func (s *Server) Thaw(t testing.TB) {
	t.Helper()
	proctest.Thaw(t, s.cmd.Process)
}

// Stop kills redis-server (SIGKILL: no goodbye to its clients), frozen or
// not.
func (s *Server) Stop(testing.TB) {
	if s.cmd != nil {
		s.cmd.Process.Signal(syscall.SIGCONT)
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}
