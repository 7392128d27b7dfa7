package main

// The /metrics endpoint: in-process (TestMetricsEndpoint), and scraped by
// Debian's real prometheus server while the official phoenix client chats
// (TestPrometheusScrape). `make test` installs prometheus (make prometheus);
// without it TestPrometheusScrape fails under CI=true and skips otherwise.
// PROMETHEUS in the environment names another binary.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMetricsEndpoint: /metrics shows the phx metrics of what clients did.
func TestMetricsEndpoint(t *testing.T) {
	env := newTestEnv(t)
	ann := env.dial(t, "ann")
	ann.joinOK("room:lobby", map[string]any{})
	ann.say("room:lobby", "hello")
	if r := ann.push("room:lobby", "new_msg", map[string]string{"body": ""}); r.Status != "error" {
		t.Fatalf("empty body: %s, want error", r.Status)
	}
	want := []string{
		`phx_sockets_open{transport="websocket"} 1`,
		`phx_socket_connects_total{outcome="ok",transport="websocket"} 1`,
		`phx_channel_joins_total{route="room:*",status="ok"} 1`,
		`phx_channels_open{route="room:*"} 1`,
		`phx_channel_handle_in_duration_seconds_count{event="new_msg",route="room:*",status="ok"} 1`,
		`phx_channel_handle_in_duration_seconds_count{event="new_msg",route="room:*",status="error"} 1`,
		`# TYPE go_goroutines gauge`,
	}
	var body string
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(env.srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
		}
		body = string(b)
		missing := slices.DeleteFunc(slices.Clone(want), func(w string) bool { return strings.Contains(body, w+"\n") })
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) { // the hooks run just after the replies
			t.Fatalf("/metrics lacks %q; it shows:\n%s", missing, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(body, "room:lobby") {
		t.Error("/metrics shows a topic: labels must hold route patterns only")
	}
}

// requirePrometheus returns the prometheus server binary.
func requirePrometheus(t *testing.T) string {
	t.Helper()
	name := os.Getenv("PROMETHEUS")
	if name == "" {
		name = "prometheus"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		missing(t, name+" is not on PATH (make prometheus: apt-get install prometheus)")
	}
	return path
}

// promServer is a running prometheus server.
type promServer struct {
	url  string // http://127.0.0.1:PORT
	logs *syncBuffer
}

// startPrometheus runs prometheus scraping target (HOST:PORT) every second
// and evaluating the rules (a rule file's text) every second, with its data
// in a temporary directory, and stops it when the test ends.
func startPrometheus(t *testing.T, bin, target, rules string) *promServer {
	t.Helper()
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: chat
    static_configs:
      - targets: [%q]
`, target)
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	s := &promServer{url: "http://" + addr, logs: &syncBuffer{}}
	cmd := exec.Command(bin,
		"--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout = s.logs
	cmd.Stderr = s.logs
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("prometheus still running 10 s after SIGTERM: killed")
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("prometheus logs:\n%s", s.logs)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get(s.url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("prometheus exited before it was ready: %v; logs:\n%s", err, s.logs)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 20 s; logs:\n%s", s.logs)
		}
	}
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// docRules returns the alert rules of docs/observability.md: the YAML block
// of its "Alert rules" section.
func docRules(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "observability.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Alert rules\n")
	if ok {
		_, section, ok = strings.Cut(section, "```yaml\n")
	}
	if ok {
		section, _, ok = strings.Cut(section, "\n```")
	}
	if !ok {
		t.Fatal("docs/observability.md has no yaml block under ## Alert rules")
	}
	return section + "\n"
}

// rulesHealth returns the number of rules Prometheus loaded and those not
// healthy (not evaluated yet, or failing), with their error.
func (s *promServer) rulesHealth(t *testing.T) (int, []string) {
	t.Helper()
	resp, err := http.Get(s.url + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("/api/v1/rules: %v", err)
	}
	n := 0
	var bad []string
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			n++
			if rule.Health != "ok" {
				bad = append(bad, fmt.Sprintf("%s: %s %s", rule.Name, rule.Health, rule.LastError))
			}
		}
	}
	return n, bad
}

// query evaluates an instant PromQL query; ok is false unless it returned
// exactly one sample.
func (s *promServer) query(t *testing.T, q string) (v float64, ok bool) {
	t.Helper()
	resp, err := http.Get(s.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("query %s: %d, decoding the answer: %v", q, resp.StatusCode, err)
	}
	if r.Status != "success" {
		t.Fatalf("query %s: %s %s", q, r.Status, r.Error)
	}
	if r.Data.ResultType != "vector" || len(r.Data.Result) != 1 {
		return 0, false
	}
	str, _ := r.Data.Result[0].Value[1].(string)
	v, err = strconv.ParseFloat(str, 64)
	return v, err == nil
}

// waitQuery waits until every query has exactly one sample equal to its
// value (Prometheus scrapes every second), and fails t with the last
// values when that takes over timeout.
func (s *promServer) waitQuery(t *testing.T, timeout time.Duration, want map[string]float64) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var wrong []string
		for q, w := range want {
			if v, ok := s.query(t, q); !ok || v != w {
				got := "no single sample"
				if ok {
					got = strconv.FormatFloat(v, 'g', -1, 64)
				}
				wrong = append(wrong, fmt.Sprintf("%s = %s, want %v", q, got, w))
			}
		}
		if len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			slices.Sort(wrong)
			t.Fatalf("after %v:\n  %s", timeout, strings.Join(wrong, "\n  "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestPrometheusScrape runs Debian's prometheus server, scraping the real
// chat binary's /metrics every second, while the official phoenix client
// (e2e/metrics.mjs) joins a room, sends messages and then, told to, leaves;
// Prometheus's query API must show the connection gauge, the join counter
// and the handle_in histogram move.
func TestPrometheusScrape(t *testing.T) {
	nodeBin, flags := requireNode(t)
	promBin := requirePrometheus(t)
	p := startChat(t)
	u, err := url.Parse(p.url)
	if err != nil {
		t.Fatal(err)
	}
	prom := startPrometheus(t, promBin, u.Host, docRules(t))
	start := time.Now()
	// The target is up, and nothing has happened yet.
	prom.waitQuery(t, 10*time.Second, map[string]float64{
		`up{job="chat"}`:           1,
		`absent(phx_sockets_open)`: 1, // no series before the first connection
	})

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, append(slices.Clone(flags), filepath.Join("e2e", "metrics.mjs"), p.url, "prom")...)
	cmd.Env = append(os.Environ(), "CHAT_SECRET="+p.secret)
	cmd.WaitDelay = 2 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	holding := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		lines := bufio.NewScanner(stdout)
		seen := false
		for lines.Scan() {
			fmt.Fprintln(&out, lines.Text())
			if !seen && strings.Contains(lines.Text(), "HOLDING") {
				seen = true
				close(holding)
			}
		}
	}()
	wait := func() error {
		<-copied
		return cmd.Wait()
	}
	select {
	case <-holding:
	case <-copied:
		t.Fatalf("node e2e/metrics.mjs ended before holding: %v; output:\n%s", wait(), &out)
	}

	// Connected, joined, three messages and a typing event handled.
	prom.waitQuery(t, 10*time.Second, map[string]float64{
		`phx_sockets_open{job="chat",transport="websocket"}`:                                                  1,
		`phx_socket_connects_total{outcome="ok",transport="websocket"}`:                                       1,
		`phx_channel_joins_total{route="room:*",status="ok"}`:                                                 1,
		`phx_channels_open{route="room:*"}`:                                                                   1,
		`phx_channel_handle_in_duration_seconds_count{route="room:*",event="new_msg",status="ok"}`:            3,
		`phx_channel_handle_in_duration_seconds_bucket{route="room:*",event="new_msg",status="ok",le="+Inf"}`: 3,
		`phx_channel_handle_in_duration_seconds_count{route="room:*",event="typing",status="ok"}`:             1,
		`phx_channel_join_duration_seconds_count{route="room:*"}`:                                             1,
	})
	// The alert rules of docs/observability.md load and evaluate.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		n, bad := prom.rulesHealth(t)
		if n == 5 && len(bad) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("docs/observability.md's alert rules: %d loaded, want 5; unhealthy: %q", n, bad)
		}
	}
	// Prometheus's own graph page, screenshotted in Chromium while the
	// client is connected (testdata/artifacts/prometheus.png; the copy in
	// docs/ comes from a run of this test).
	if _, err := os.Stat(chromiumPath); err == nil {
		artifacts, err := filepath.Abs(filepath.Join("..", "..", "testdata", "artifacts"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(artifacts, 0o755); err != nil {
			t.Fatal(err)
		}
		shot := filepath.Join(artifacts, "prometheus.png")
		runNode(t, 40*time.Second, []string{"CHROMIUM=" + chromiumPath},
			filepath.Join("e2e", "prometheus_graph.mjs"), prom.url, shot)
		if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
			t.Errorf("screenshot %s missing or tiny: %v", shot, err)
		}
	} else {
		missing(t, chromiumPath+" is missing (apt-get install chromium)")
	}
	// A quantile is computable from the buckets: every new_msg took under 10s.
	if v, ok := prom.query(t, `histogram_quantile(0.99, sum by (le) (phx_channel_handle_in_duration_seconds_bucket{event="new_msg"}))`); !ok || !(v > 0 && v <= 10) {
		t.Errorf("p99 of new_msg: %v (ok %v), want a duration in (0, 10] s", v, ok)
	}

	// Leave and disconnect.
	fmt.Fprintln(stdin, "leave")
	stdin.Close()
	if err := wait(); err != nil {
		t.Fatalf("node e2e/metrics.mjs: %v; output:\n%s", err, &out)
	}
	prom.waitQuery(t, 10*time.Second, map[string]float64{
		`phx_sockets_open{transport="websocket"}`:                               0,
		`phx_channels_open{route="room:*"}`:                                     0,
		`phx_channel_terminations_total{route="room:*",reason="left"}`:          1,
		`sum(phx_socket_closes_total{transport="websocket"})`:                   1,
		`phx_socket_frames_in_total{transport="websocket"} > bool 5`:            1, // join, 3 messages, typing, leave, heartbeats
		`phx_channel_joins_total{route="room:*",status="ok"}`:                   1,
		`absent(phx_channel_handle_in_duration_seconds_count{route!="room:*"})`: 1,
	})
	if testing.Verbose() {
		t.Logf("node output:\n%s", &out)
	}
	t.Logf("scenario and scrapes took %v", time.Since(start).Round(time.Millisecond))
}
