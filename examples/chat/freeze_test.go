package main

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phxgo/phx/internal/clienttest"
)

// TestLocalDeliveryWhileBrokerFrozen: two copies of the chat on a real
// redis-server, which the test freezes (SIGSTOP) for 3 s while ann, on copy
// 1, sends a message every 50 ms to bob, on copy 1 too. Local members never
// wait on the broker: bob's delivery p99 and ann's reply p99 stay under
// 50 ms during the freeze, and zed, on copy 2, gets every message once the
// broker thaws.
func TestLocalDeliveryWhileBrokerFrozen(t *testing.T) {
	redisPath, err := exec.LookPath("redis-server")
	if err != nil {
		missing(t, "redis-server is not installed (apt-get install redis-server)")
	}
	redis := startRedis(t, redisPath)
	secret := fmt.Sprintf("freeze-secret-%d-0123456789abcdef0123456789", time.Now().UnixNano())
	n1 := startChatWithSecret(t, secret, "-pubsub", "redis://"+redis.addr, "-node", "1")
	n2 := startChatWithSecret(t, secret, "-pubsub", "redis://"+redis.addr, "-node", "2")
	ann, bob, zed := dialNode(t, n1, "ann_f"), dialNode(t, n1, "bob_f"), dialNode(t, n2, "zed_f")
	for _, c := range []*nodeClient{ann, bob, zed} {
		c.JoinOK("room:freeze", map[string]any{})
	}
	// The copies hear each other before the freeze.
	ann.send("room:freeze", "new_msg", map[string]any{"body": "warm-up"})
	zed.Next("warm-up on copy 2", isBody("warm-up"))

	const n = 60 // 3 s at one every 50 ms
	if err := redis.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	sent := make([]time.Time, n)
	refs := make([]string, n)
	for i := range n {
		sent[i] = time.Now()
		refs[i] = ann.Push("room:freeze", "new_msg", map[string]any{"body": fmt.Sprintf("m%d", i)})
		time.Sleep(50 * time.Millisecond)
	}
	var delivery, reply []time.Duration
	for i := range n {
		m := bob.Next(fmt.Sprintf("m%d at bob", i), isBody(fmt.Sprintf("m%d", i)))
		delivery = append(delivery, m.At.Sub(sent[i]))
		r := ann.Reply("room:freeze", refs[i])
		reply = append(reply, r.At.Sub(sent[i]))
	}
	if err := redis.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	thawed := time.Now()
	for i := range n {
		zed.Next(fmt.Sprintf("m%d at zed", i), isBody(fmt.Sprintf("m%d", i)))
	}
	p99 := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)*99/100]
	}
	t.Logf("broker frozen %v: local delivery p99 %v, push reply p99 %v; copy 2 had all %d messages %v after the thaw",
		thawed.Sub(frozen).Round(time.Millisecond), p99(delivery), p99(reply), n, time.Since(thawed).Round(time.Millisecond))
	if p99(delivery) > 50*time.Millisecond || p99(reply) > 50*time.Millisecond {
		t.Errorf("with the broker frozen: local delivery p99 %v, reply p99 %v, want both under 50 ms", p99(delivery), p99(reply))
	}
}

func isBody(body string) func(*clienttest.Message) bool {
	return func(m *clienttest.Message) bool {
		return m.Event == "new_msg" && strings.Contains(string(m.Payload), `"body":"`+body+`"`)
	}
}

type redisProcess struct {
	cmd  *exec.Cmd
	addr string
}

// startRedis runs redis-server on a free port, without persistence, until
// the test ends.
func startRedis(t *testing.T, path string) *redisProcess {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(path, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Ready to accept connections") {
				close(ready)
				for sc.Scan() {
				}
				return
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("redis-server not ready after 10 s")
	}
	return &redisProcess{cmd: cmd, addr: addr}
}
