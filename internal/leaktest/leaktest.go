// Package leaktest finds goroutines a test left running.
package leaktest

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// ignored are stacks of goroutines that belong to the runtime or the
// testing package, not to the code under test.
var ignored = []string{
	"testing.Main(",
	"testing.tRunner(",
	"testing.(*M).",
	"testing.(*F).",
	"testing.runFuzzing(",
	"testing.runFuzzTests(",
	"runtime.goexit",
	"created by runtime.gc",
	"created by testing.RunTests",
	"runtime.MHeap_Scavenger",
	"signal.signal_recv",
	"sigterm.handler",
	"runtime_mcall",
	"goroutine in C code",
	"os/signal.loop",
	"internal/poll.runtime_pollWait", // idle network reads outside phx (test clients, HTTP keep-alive)
}

// interesting returns the stacks of goroutines other than the current one
// that are not runtime or testing machinery.
func interesting() []string {
	buf := make([]byte, 2<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		sl := strings.SplitN(g, "\n", 2)
		if len(sl) != 2 {
			continue
		}
		stack := strings.TrimSpace(sl[1])
		if stack == "" || strings.Contains(stack, "leaktest.interesting") {
			continue
		}
		skip := false
		for _, ig := range ignored {
			if strings.Contains(stack, ig) && !strings.Contains(stack, "phxgo/phx") {
				skip = true
				break
			}
		}
		if !skip {
			out = append(out, g)
		}
	}
	sort.Strings(out)
	return out
}

// Check waits up to d for stray goroutines to end and returns an error
// listing those still running.
func Check(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		gs := interesting()
		if len(gs) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d goroutine(s) leaked:\n\n%s", len(gs), strings.Join(gs, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Main runs the tests and then fails the binary if goroutines leaked. Use
// it from TestMain: func TestMain(m *testing.M) { leaktest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := Check(5 * time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "leaktest:", err)
			code = 1
		}
	}
	os.Exit(code)
}
