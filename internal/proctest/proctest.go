// Package proctest freezes and thaws the server processes tests run (a
// real redis-server, a NATS server in a child process).
package proctest

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Freeze stops p with SIGSTOP and returns once it is stopped: a signal is
// delivered when the process is next scheduled, so on a loaded machine it
// may otherwise still answer a request or two after Signal returned. Where
// /proc is missing it waits 50 ms instead.
func Freeze(t testing.TB, p *os.Process) {
	t.Helper()
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stat := "/proc/" + strconv.Itoa(p.Pid) + "/stat"
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(stat)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			return
		}
		// "pid (comm) S …": the state follows the last ')'.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
			return
		}
	}
	t.Fatalf("process %d not stopped 2 s after SIGSTOP", p.Pid)
}

// Thaw resumes a frozen process (SIGCONT).
func Thaw(t testing.TB, p *os.Process) {
	t.Helper()
	if err := p.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}
