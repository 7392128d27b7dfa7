package main

// End-to-end tests against the real example binary: the official phoenix
// client under Node (e2e/*.mjs) and the page in a real headless Chromium
// (e2e/browser.mjs). `make test` installs what they need (node, npm ci in
// examples/chat, Debian's chromium); see requireNode for what happens when
// something is missing.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phxgo/phx/internal/nodetest"
)

// chromiumPath is Debian's chromium package.
const chromiumPath = "/usr/bin/chromium"

// missing fails t under CI=true and skips it otherwise.
func missing(t *testing.T, what string) {
	t.Helper()
	nodetest.Missing(t, "chat e2e test", what)
}

// requireNode returns node's path and the flags that give it a global
// WebSocket, checking that npm ci has run in examples/chat.
func requireNode(t *testing.T) (string, []string) {
	t.Helper()
	return nodetest.Require(t, "chat e2e test", filepath.Join("node_modules", "phoenix", "package.json"))
}

// requireChromium checks for Debian's chromium and playwright-core.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		missing(t, chromiumPath+" is missing (apt-get install chromium)")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "playwright-core", "package.json")); err != nil {
		missing(t, "examples/chat/node_modules/playwright-core is missing (npm ci in examples/chat)")
	}
}

// The example binary, built once for the package's tests.
var chatBin struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

func buildChat(t *testing.T) string {
	t.Helper()
	b := &chatBin
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "phx-chat-e2e-")
		if b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "chat")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goCmd); err != nil {
			goCmd = "go"
		}
		cmd := exec.CommandContext(ctx, goCmd, "build", "-o", b.path, ".")
		b.out, b.err = cmd.CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("go build ./examples/chat: %v\n%s", b.err, b.out)
	}
	return b.path
}

func cleanupBinary() {
	if chatBin.dir != "" {
		os.RemoveAll(chatBin.dir)
	}
}

// chatProcess is a running example binary.
type chatProcess struct {
	url    string // http://127.0.0.1:PORT (no trailing slash)
	secret string // its CHAT_SECRET
	logs   *syncBuffer
	cmd    *exec.Cmd
	killed bool // by kill: no clean stop expected
}

// kill ends the process with SIGKILL, as a crash would.
func (p *chatProcess) kill(t *testing.T) {
	t.Helper()
	p.killed = true
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
}

// startChat runs the example binary on a free port with a known
// CHAT_SECRET, waits for the URL it logs, and stops it with SIGTERM when the
// test ends, checking that it shuts down cleanly.
func startChat(t *testing.T, args ...string) *chatProcess {
	t.Helper()
	return startChatWithSecret(t, fmt.Sprintf("e2e-secret-%d-0123456789abcdef0123456789", time.Now().UnixNano()), args...)
}

// startChatWithSecret is startChat with a given CHAT_SECRET, for copies
// that must accept each other's tokens.
func startChatWithSecret(t *testing.T, secret string, args ...string) *chatProcess {
	t.Helper()
	bin := buildChat(t)
	modules, err := filepath.Abs("node_modules")
	if err != nil {
		t.Fatal(err)
	}
	p := &chatProcess{secret: secret, logs: &syncBuffer{}}
	cmd := exec.Command(bin, append([]string{"-addr", "127.0.0.1:0", "-assets", modules}, args...)...)
	cmd.Env = append(os.Environ(), "CHAT_SECRET="+p.secret)
	p.cmd = cmd
	cmd.Stdout = p.logs
	cmd.Stderr = p.logs
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if p.killed {
				return
			}
			if err != nil {
				t.Errorf("chat exited with %v after SIGTERM; logs:\n%s", err, p.logs)
			} else if !strings.Contains(p.logs.String(), "chat: stopped") {
				t.Errorf("chat did not log a clean stop; logs:\n%s", p.logs)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("chat still running 10 s after SIGTERM: killed; logs:\n%s", p.logs)
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("chat logs:\n%s", p.logs)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if m := urlLogRE.FindStringSubmatch(p.logs.String()); m != nil {
			p.url = strings.TrimSuffix(m[1], "/")
			return p
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("chat exited before listening: %v; logs:\n%s", err, p.logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("chat logged no URL within 15 s; logs:\n%s", p.logs)
		}
	}
}

// runNode runs a script with node and fails t if it exits non-zero or
// outlives timeout, logging its output.
func runNode(t *testing.T, timeout time.Duration, env []string, args ...string) {
	t.Helper()
	node, flags := requireNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append(slices.Clone(flags), args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	if ctx.Err() != nil {
		t.Fatalf("node %s killed after %v; output:\n%s", args[0], took, out.String())
	}
	if err != nil {
		t.Fatalf("node %s failed after %v: %v; output:\n%s", args[0], took, err, out.String())
	}
	if testing.Verbose() {
		t.Logf("node %s: ok in %v\n%s", args[0], took, out.String())
	}
}

// TestOfficialClient runs the e2e scenarios with the official phoenix client
// under Node against the real binary.
func TestOfficialClient(t *testing.T) {
	requireNode(t)
	p := startChat(t)
	// The subtests run in parallel: t.Run returns only when they are done,
	// before startChat's cleanup stops the server.
	t.Run("group", func(t *testing.T) {
		for _, scenario := range []string{"chat", "history", "errors", "typing", "bad_token", "invalid_room"} {
			t.Run(scenario, func(t *testing.T) {
				t.Parallel()
				runNode(t, 30*time.Second, []string{"CHAT_SECRET=" + p.secret},
					filepath.Join("e2e", scenario+".mjs"), p.url, scenario)
			})
		}
	})
}

// TestBrowser drives the page in headless Chromium: two users in one room.
// Screenshots go to testdata/artifacts/ at the repository root.
// TestBrowserLongPollFallback runs the chat page against a server that
// refuses WebSocket upgrades: the official client falls back to long-poll
// (longPollFallbackMs) and the chat works the same.
func TestBrowserLongPollFallback(t *testing.T) {
	requireNode(t)
	requireChromium(t)
	p := startChat(t, "-disable-websocket")
	artifacts, err := filepath.Abs(filepath.Join("..", "..", "testdata", "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	runNode(t, 50*time.Second, []string{"CHROMIUM=" + chromiumPath},
		filepath.Join("e2e", "browser_longpoll.mjs"), p.url, artifacts)
}

// The server compresses (-compress): the page runs over permessage-deflate,
// which the script checks Chromium negotiated.
func TestBrowser(t *testing.T) {
	requireNode(t)
	requireChromium(t)
	p := startChat(t, "-compress")
	artifacts, err := filepath.Abs(filepath.Join("..", "..", "testdata", "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	runNode(t, 50*time.Second, []string{"CHROMIUM=" + chromiumPath, "EXPECT_DEFLATE=1"},
		filepath.Join("e2e", "browser.mjs"), p.url, artifacts)
	for _, name := range []string{"chat-ann.png", "chat-bob.png"} {
		if fi, err := os.Stat(filepath.Join(artifacts, name)); err != nil || fi.Size() < 10_000 {
			t.Errorf("screenshot %s missing or tiny: %v", name, err)
		}
	}
}

// TestBrowserRestart: the page in Chromium across a server restart on the
// same port (SIGKILL, so the in-memory history is gone): it reconnects,
// says "history was reset", and chats on (e2e/browser_restart.mjs, which
// runs the server itself).
func TestBrowserRestart(t *testing.T) {
	requireNode(t)
	requireChromium(t)
	bin := buildChat(t)
	modules, err := filepath.Abs("node_modules")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	artifacts, err := filepath.Abs(filepath.Join("..", "..", "testdata", "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	runNode(t, 50*time.Second, []string{"CHROMIUM=" + chromiumPath, "CHAT_BIN=" + bin, "CHAT_ASSETS=" + modules,
		"CHAT_ADDR=" + addr, "CHAT_SECRET=e2e-restart-secret-0123456789abcdef0123456789"},
		filepath.Join("e2e", "browser_restart.mjs"), artifacts)
}
