package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var urlLogRE = regexp.MustCompile(`url=(http://\S+)`)

// fakeNodeModules makes a node_modules directory holding a stand-in
// phoenix.mjs with the given content.
func fakeNodeModules(t *testing.T, content string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node_modules")
	p := filepath.Join(dir, phoenixModule)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startRun runs the program in-process until the test ends, and returns
// the URL it logged.
func startRun(t *testing.T, args []string, env map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v after shutdown; logs:\n%s", err, logs)
			}
			if !strings.Contains(logs.String(), "chat: stopped") {
				t.Errorf("no clean stop in the logs:\n%s", logs)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("run did not return after its context ended")
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if m := urlLogRE.FindStringSubmatch(logs.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("run ended early: %v; logs:\n%s", err, logs)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("no URL logged; logs:\n%s", logs)
	return ""
}

func httpGet(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestRunServesThePage(t *testing.T) {
	modules := fakeNodeModules(t, "// the phoenix client\n")
	base := startRun(t, []string{"-addr", "127.0.0.1:0", "-assets", modules}, nil)
	if !regexp.MustCompile(`^http://127\.0\.0\.1:[1-9][0-9]*/$`).MatchString(base) {
		t.Fatalf("logged URL %q, want http://127.0.0.1:PORT/ with the actual port", base)
	}

	for _, tc := range []struct {
		path, ctype, contains string
	}{
		{"", "text/html; charset=utf-8", `src="/static/app.js"`},
		{"static/app.js", "text/javascript; charset=utf-8", `from "/assets/phoenix.mjs"`},
		{"static/style.css", "text/css; charset=utf-8", ".sidebar"},
		{"assets/phoenix.mjs", "text/javascript; charset=utf-8", "// the phoenix client"},
	} {
		resp, body := httpGet(t, base+tc.path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.ctype || !strings.Contains(body, tc.contains) {
			t.Errorf("GET /%s: %d %q, body contains %q: %v", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.contains, strings.Contains(body, tc.contains))
		}
	}
	if resp, _ := httpGet(t, base+"nope"); resp.StatusCode != 404 {
		t.Errorf("GET /nope: %d, want 404", resp.StatusCode)
	}
	if resp, body := httpGet(t, base+"api/token?user=ann"); resp.StatusCode != 200 || !strings.Contains(body, `"token":"v1.`) {
		t.Errorf("GET /api/token: %d %s", resp.StatusCode, body)
	}
}

func TestRunPortEnv(t *testing.T) {
	modules := fakeNodeModules(t, "x")
	base := startRun(t, []string{"-assets", modules}, map[string]string{"PORT": "0", "CHAT_SECRET": strings.Repeat("k", 32)})
	if !strings.HasPrefix(base, "http://127.0.0.1:") || strings.HasSuffix(base, ":0/") {
		t.Fatalf("with PORT=0 the URL is %q, want 127.0.0.1 and the actual port", base)
	}
}

func TestRunStartupErrors(t *testing.T) {
	modules := fakeNodeModules(t, "x")
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"missing phoenix package", []string{"-assets", t.TempDir()}, nil, "make chat"},
		{"short secret", []string{"-assets", modules}, map[string]string{"CHAT_SECRET": "too short"}, "at least 32"},
		{"bad flag", []string{"-nope"}, nil, "not defined"},
		{"bad address", []string{"-assets", modules, "-addr", "127.0.0.1:notaport"}, nil, "notaport"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		logs := &syncBuffer{}
		err := run(ctx, tc.args, func(k string) string { return tc.env[k] }, logs)
		cancel()
		if err == nil || !strings.Contains(err.Error()+logs.String(), tc.want) {
			t.Errorf("%s: err %v, logs %q; want an error mentioning %q", tc.name, err, logs, tc.want)
		}
	}
}

func TestFindPhoenixJSDefault(t *testing.T) {
	// From this package's directory (go test's working directory), the
	// default finds examples/chat/node_modules when npm ci has run, and
	// otherwise tells how to install it.
	p, err := findPhoenixJS("")
	if err != nil {
		if !strings.Contains(err.Error(), "npm ci") {
			t.Fatalf("error %q does not say how to install the client", err)
		}
		return
	}
	want, _ := filepath.Abs(filepath.Join("node_modules", phoenixModule))
	if p != want {
		t.Errorf("found %s, want %s", p, want)
	}
}

// The chat bound to loopback accepts only the loopback names: a page on a
// hostile name that resolves to 127.0.0.1 (DNS rebinding) is refused, on
// the page, the API and the socket.
func TestRunRefusesForeignHosts(t *testing.T) {
	base := startRun(t, []string{"-addr", "127.0.0.1:0"}, nil)
	for _, tc := range []struct {
		host, path string
		want       int
	}{
		{"", "", 200},
		{"localhost", "", 200},
		{"evil.test", "", 403},
		{"evil.test", "api/token?user=ann", 403},
		{"evil.test", "socket/longpoll?vsn=2.0.0", 403},
	} {
		req, _ := http.NewRequest("GET", base+tc.path, nil)
		if tc.host != "" {
			req.Host = tc.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Host %q GET /%s: HTTP %d, want %d", tc.host, tc.path, resp.StatusCode, tc.want)
		}
	}
	for _, tc := range []struct {
		flag, addr string
		want       []string
	}{
		{"", "127.0.0.1:4000", []string{"127.0.0.1", "localhost", "[::1]"}},
		{"", "[::1]:4000", []string{"127.0.0.1", "localhost", "[::1]"}},
		{"", "0.0.0.0:4000", nil},
		{"chat.example.com, www.example.com", "0.0.0.0:4000", []string{"chat.example.com", "www.example.com"}},
	} {
		if got := hostList(tc.flag, tc.addr); !slices.Equal(got, tc.want) {
			t.Errorf("hostList(%q, %q) = %q, want %q", tc.flag, tc.addr, got, tc.want)
		}
	}
}
