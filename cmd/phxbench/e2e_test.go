package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startChat builds examples/chat and runs it on 127.0.0.1:0, returning its
// base URL ("127.0.0.1:PORT") and pid. The page's phoenix.js is not needed
// for load, so a stand-in file satisfies the example's asset check.
func startChat(t *testing.T) (addr string, pid int) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "chat")
	// examples/chat is a module of its own: build it from its directory.
	build := exec.Command(goBin, "build", "-o", bin, ".")
	build.Dir = filepath.Join("..", "..", "examples", "chat")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build examples/chat: %v\n%s", err, out)
	}
	assets := filepath.Join(dir, "node_modules")
	mjs := filepath.Join(assets, "phoenix", "priv", "static", "phoenix.mjs")
	if err := os.MkdirAll(filepath.Dir(mjs), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mjs, []byte("// stand-in\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-assets", assets)
	cmd.Env = append(os.Environ(), "CHAT_SECRET=phxbench-e2e-secret-0123456789abcdefghij")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	urlRE := regexp.MustCompile(`url=http://(127\.0\.0\.1:\d+)/`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := urlRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case addr = <-found:
	case <-time.After(20 * time.Second):
		t.Fatal("chat example did not log its URL")
	}
	return addr, cmd.Process.Pid
}

func runJSON(t *testing.T, args ...string) *result {
	t.Helper()
	var out, errb strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := runMain(ctx, append(args, "-json", "-quiet"), &out, &errb)
	var res result
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		t.Fatalf("exit %d, output not JSON: %v\nstdout: %s\nstderr: %s", code, err, out.String(), errb.String())
	}
	if code != 0 {
		t.Fatalf("exit %d: %s\nresult: %s", code, errb.String(), out.String())
	}
	return &res
}

// TestEndToEndChat loads examples/chat with every scenario, small: a fanout
// of 50 messages to 20 clients must arrive whole, exactly once.
func TestEndToEndChat(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs examples/chat")
	}
	addr, pid := startChat(t)
	common := []string{
		"-url", "ws://" + addr + "/socket",
		"-token-url", "http://" + addr + "/api/token?user={user}",
		"-param", "token={token}",
		"-timeout", "5s", "-duration", "30s",
	}
	args := func(extra ...string) []string { return append(append([]string{}, common...), extra...) }

	t.Run("fanout", func(t *testing.T) {
		res := runJSON(t, args("-scenario", "fanout", "-clients", "20", "-messages", "50", "-rate", "100",
			"-topic", "room:e2e_fanout", "-settle", "200ms", "-drain", "5s", "-pid", strconv.Itoa(pid))...)
		f := res.Fanout
		if f == nil {
			t.Fatal("no fanout result")
		}
		if f.Receivers != 20 || f.Sent != 50 || f.ErrorReplies != 0 || f.Expected != 1000 {
			t.Fatalf("fanout setup: %+v", f)
		}
		if f.Delivered != 1000 || f.Lost != 0 || f.Duplicates != 0 {
			t.Errorf("deliveries: %d of 1000, lost %d, duplicates %d", f.Delivered, f.Lost, f.Duplicates)
		}
		l := f.Latency
		if l.Count != 1000 || l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max || l.Max > 5000 {
			t.Errorf("latency not sane: %+v", l)
		}
		if f.DeliveriesPerS <= 0 || f.PublishReplyLat.Count != 50 {
			t.Errorf("deliveries/s %v, publish replies %d", f.DeliveriesPerS, f.PublishReplyLat.Count)
		}
		if res.Server == nil || res.Server.After.RSSKiB <= 0 || res.Server.Before.RSSKiB <= 0 {
			t.Errorf("server memory not read: %+v", res.Server)
		}
		if res.Connect.OK != 21 || res.Counters.ServerCloses != 0 || res.Counters.ChannelErrors != 0 || res.Counters.MalformedInput != 0 {
			t.Errorf("connect %+v, counters %+v", res.Connect, res.Counters)
		}
	})

	t.Run("idle", func(t *testing.T) {
		res := runJSON(t, args("-scenario", "idle", "-clients", "30", "-settle", "100ms", "-sources", "3",
			"-topic", "room:e2e_idle", "-pid", strconv.Itoa(pid))...)
		if res.Connect.OK != 30 || res.Server == nil || res.Server.After.RSSKiB == 0 || res.Sources != 3 {
			t.Errorf("idle: %+v %+v", res.Connect, res.Server)
		}
	})

	t.Run("echo_longpoll_v1", func(t *testing.T) {
		res := runJSON(t, args("-scenario", "echo", "-transport", "longpoll", "-vsn", "1.0.0", "-clients", "3",
			"-messages", "5", "-rate", "0", "-topic", "room:e2e_echo{i}")...)
		if e := res.Echo; e == nil || e.Replies != 15 || e.Errors != 0 || e.Latency.Count != 15 {
			t.Errorf("echo: %+v", res.Echo)
		}
	})

	t.Run("churn", func(t *testing.T) {
		res := runJSON(t, args("-scenario", "churn", "-cycles", "20", "-rate", "0", "-concurrency", "5",
			"-topic", "room:e2e_churn")...)
		if c := res.Churn; c == nil || c.OK != 20 || c.Errors != 0 {
			t.Errorf("churn: %+v (last error %s)", res.Churn, res.LastError)
		}
	})

	t.Run("heartbeats", func(t *testing.T) {
		res := runJSON(t, args("-scenario", "idle", "-clients", "2", "-heartbeat", "100ms", "-settle", "550ms",
			"-topic", "room:e2e_hb")...)
		if k := res.Counters; k.Heartbeats < 6 || k.HeartbeatMiss != 0 {
			t.Errorf("heartbeats: %d sent, %d unanswered", k.Heartbeats, k.HeartbeatMiss)
		}
	})

	t.Run("refused_join_is_an_error", func(t *testing.T) {
		var out, errb strings.Builder
		code := runMain(context.Background(), args("-scenario", "idle", "-clients", "1", "-topic", "room:Bad Name!", "-quiet"), &out, &errb)
		if code == 0 || !strings.Contains(out.String()+errb.String(), "invalid room") {
			t.Errorf("exit %d\n%s\n%s", code, out.String(), errb.String())
		}
	})
}
