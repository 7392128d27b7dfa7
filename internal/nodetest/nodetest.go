// Package nodetest finds the Node.js that tests drive the official
// phoenix client with, and applies the project's rule for missing test
// dependencies: fail under CI=true, skip (pointing at `make test`)
// otherwise.
package nodetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var probe struct {
	once    sync.Once
	path    string
	flags   []string
	problem string
}

// find locates node and the flags that give it a global WebSocket: Node 20
// has it behind --experimental-websocket (on by default from Node 22);
// --disable-warning only quiets the ExperimentalWarning and exists from
// Node 20.11.
func find() (string, []string, string) {
	p := &probe
	p.once.Do(func() {
		path, err := exec.LookPath("node")
		if err != nil {
			p.problem = "node is not on PATH"
			return
		}
		p.path = path
		script := `process.exit(typeof WebSocket === "function" ? 0 : 3)`
		for _, flags := range [][]string{
			{"--experimental-websocket", "--disable-warning=ExperimentalWarning"},
			{"--experimental-websocket"},
			{},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := exec.CommandContext(ctx, path, append(slices.Clone(flags), "-e", script)...).Run()
			cancel()
			if err == nil {
				p.flags = flags
				return
			}
		}
		out, _ := exec.Command(path, "--version").Output()
		p.problem = fmt.Sprintf("node %s has no built-in WebSocket (need Node >= 20.10)", strings.TrimSpace(string(out)))
	})
	return p.path, p.flags, p.problem
}

// Require returns node's path and the flags to run it with, after checking
// that every file in required exists (npm packages' package.json files).
// When something is missing it fails t under CI=true and skips it
// otherwise; what names the tests in the message.
func Require(t testing.TB, what string, required ...string) (string, []string) {
	t.Helper()
	path, flags, problem := find()
	if problem == "" {
		for _, f := range required {
			if _, err := os.Stat(f); err != nil {
				problem = f + " is missing (npm packages not installed)"
				break
			}
		}
	}
	if problem != "" {
		Missing(t, what, problem)
	}
	return path, flags
}

// Missing reports a missing test dependency: t.Fatal under CI=true, t.Skip
// otherwise.
func Missing(t testing.TB, what, problem string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s cannot run under CI: %s; `make test` installs what it needs", what, problem)
	}
	t.Skipf("%s skipped: %s; run `make test` (or `make deps`) to install it", what, problem)
}
