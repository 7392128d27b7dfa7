// Command bench runs the same phxbench scenario, with the same parameters,
// against several servers in one run, and prints the figures side by side
// with ratios:
//
//	chat        examples/chat (tokens, message store, presence on every join)
//	phxmin      the library alone: bench/phxmin, the README's quickstart channel
//	floor       bench/floor: the smallest coder/websocket server speaking the
//	            same protocol subset; what any server of this shape costs
//	centrifuge  an equivalent fan-out on github.com/centrifugal/centrifuge,
//	            through a driver binary given with -centrifuge-bin (see
//	            README.md: the module cannot be fetched from the Go module
//	            proxy here, so it is not part of this module)
//
// Every server runs as its own process on 127.0.0.1 with a random port, one
// at a time, started fresh for each measurement, so that its RSS and CPU
// time are its own; the load (cmd/phxbench, built from this repository)
// runs on the same machine, sharing its cores.
//
//	cd bench && go run . -idle 2000,10000 -fanout 1000,10000
//
// Two presence scenarios run against the servers that keep a presence
// (chat, and the floor started with -presence): -presence N, N idle clients
// in -presence-rooms rooms, and -bigroom N, N members of one room, then a
// fan-out to them (joins time, p99, KiB per connection after):
//
//	cd bench && go run . -targets chat,floor -idle "" -fanout "" -presence 10000
//	cd bench && go run . -targets chat,floor -idle "" -fanout "" -bigroom 5000
//
// It is a separate module so that `go test ./...` at the repository root
// never runs it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	targets       []string
	repeat        int // -repeat: how many times everything is measured
	idle          []int
	fanout        []int
	messages      int
	rates         []float64
	size          int
	settle        time.Duration
	drain         time.Duration
	runTimeout    time.Duration
	centrifugeBin string
	out           string
	markdown      bool
	concurrency   int
	quiet         bool
	chatFanoutMax int
	presence      []int // presence scenario sizes
	presenceRooms int
	bigroom       []int // bigroom scenario sizes
	bigMessages   int
	bigRate       float64
}

// presenceTargets are the servers the presence scenarios run against:
// those that keep a presence (the floor with -presence).
var presenceTargets = map[string]bool{"chat": true, "floor": true}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad size %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(ctx context.Context, args []string) error {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	targets := fs.String("targets", "chat,phxmin,floor,centrifuge", "servers to measure, in order (centrifuge is skipped without -centrifuge-bin)")
	idle := fs.String("idle", "2000", "idle scenario sizes (connections), comma-separated; empty for none")
	fanout := fs.String("fanout", "1000", "fanout scenario sizes (subscribers), comma-separated; empty for none")
	fs.IntVar(&o.messages, "messages", 100, "fanout: messages published")
	rates := fs.String("rate", "20", "fanout: messages/s, comma-separated for several runs (examples/chat, like every phx server by default, closes a connection sending over 100/s)")
	fs.IntVar(&o.size, "size", 64, "fanout: message body size in bytes")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "wait after connecting, before measuring RSS or publishing")
	fs.DurationVar(&o.drain, "drain", 15*time.Second, "fanout: wait this long at most for the last deliveries")
	fs.DurationVar(&o.runTimeout, "run-timeout", 5*time.Minute, "limit of one measurement")
	fs.StringVar(&o.centrifugeBin, "centrifuge-bin", os.Getenv("CENTRIFUGE_DRIVER"), "centrifuge driver `binary` (subcommands server and load); default $CENTRIFUGE_DRIVER")
	fs.StringVar(&o.out, "out", "", "write every result as JSON to this `file`")
	fs.BoolVar(&o.markdown, "markdown", true, "print the tables as Markdown")
	fs.IntVar(&o.concurrency, "concurrency", 100, "connects in flight at once")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines from phxbench")
	fs.IntVar(&o.chatFanoutMax, "chat-fanout-max", 5000, "skip chat fanout above this many subscribers: every join in examples/chat pushes the room's whole presence_state and broadcasts a presence_diff, so joining N clients to one room costs O(N²) (10,000 joins took about 3 minutes and 230 s of server CPU here)")
	presence := fs.String("presence", "", "presence scenario sizes, comma-separated: N idle clients in rooms of N/-presence-rooms, presence tracked on every join (chat and floor -presence only)")
	fs.IntVar(&o.presenceRooms, "presence-rooms", 100, "presence scenario: number of rooms")
	bigroom := fs.String("bigroom", "", "big-room scenario sizes, comma-separated: N members join one room with presence, then fan-out (chat and floor -presence only)")
	fs.IntVar(&o.bigMessages, "bigroom-messages", 50, "big-room scenario: messages published")
	fs.Float64Var(&o.bigRate, "bigroom-rate", 10, "big-room scenario: messages/s")
	fs.IntVar(&o.repeat, "repeat", 1, "measure everything this many times (each run's tables, then medians of the runs' figures and of their ratios)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.repeat < 1 {
		return fmt.Errorf("bad -repeat %d: want 1 or more", o.repeat)
	}
	var err error
	if o.presence, err = parseInts(*presence); err != nil {
		return err
	}
	if o.bigroom, err = parseInts(*bigroom); err != nil {
		return err
	}
	if o.idle, err = parseInts(*idle); err != nil {
		return err
	}
	if o.fanout, err = parseInts(*fanout); err != nil {
		return err
	}
	for _, f := range strings.Split(*rates, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r <= 0 || r > 100 {
			return fmt.Errorf("bad -rate %q: want messages/s in (0, 100]", f)
		}
		o.rates = append(o.rates, r)
	}
	for _, t := range strings.Split(*targets, ",") {
		switch t = strings.TrimSpace(t); t {
		case "chat", "phxmin", "floor":
			o.targets = append(o.targets, t)
		case "centrifuge":
			if o.centrifugeBin == "" {
				fmt.Fprintln(os.Stderr, "bench: centrifuge skipped: no -centrifuge-bin (github.com/centrifugal/centrifuge is not available from the Go module proxy here; see bench/README.md)")
				continue
			}
			o.targets = append(o.targets, t)
		case "":
		default:
			return fmt.Errorf("unknown target %q", t)
		}
	}

	work, err := os.MkdirTemp("", "phxbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bins, err := build(ctx, work)
	if err != nil {
		return err
	}
	m := machineInfo()
	fmt.Fprintf(os.Stderr, "bench: %s\n", m)

	var runs [][]measurement
	for rep := 1; rep <= o.repeat; rep++ {
		if o.repeat > 1 {
			fmt.Fprintf(os.Stderr, "bench: run %d of %d\n", rep, o.repeat)
		}
		runs = append(runs, measureAll(ctx, &o, bins))
	}
	m.LoadAfter = loadavg()
	var all []measurement
	for rep, run := range runs {
		if o.repeat > 1 {
			fmt.Fprintf(os.Stdout, "\n## Run %d of %d\n", rep+1, o.repeat)
		}
		report(os.Stdout, &o, m, run)
		for i := range run {
			run[i].Run = rep + 1
		}
		all = append(all, run...)
	}
	if o.repeat > 1 {
		summarize(os.Stdout, &o, runs)
	}
	if o.out != "" {
		b, _ := json.MarshalIndent(map[string]any{"machine": m, "options": optionsJSON(&o), "results": all}, "", "  ")
		if err := os.WriteFile(o.out, b, 0o644); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// measureAll measures every scenario of o against every target once,
// target after target for each size.
func measureAll(ctx context.Context, o *options, bins *bins) []measurement {
	var all []measurement
	for _, size := range o.idle {
		for _, t := range o.targets {
			r, err := measure(ctx, o, bins, t, "idle", size, 0)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: %s idle %d: %v\n", t, size, err)
			}
			all = append(all, r)
		}
	}
	for _, sc := range []struct {
		name  string
		sizes []int
		rate  float64
	}{{"presence", o.presence, 0}, {"bigroom", o.bigroom, o.bigRate}} {
		for _, size := range sc.sizes {
			for _, t := range o.targets {
				if !presenceTargets[t] {
					continue
				}
				r, err := measure(ctx, o, bins, t, sc.name, size, sc.rate)
				if err != nil {
					fmt.Fprintf(os.Stderr, "bench: %s %s %d: %v\n", t, sc.name, size, err)
				}
				all = append(all, r)
			}
		}
	}
	for _, size := range o.fanout {
		for _, rate := range o.rates {
			for _, t := range o.targets {
				if t == "chat" && size > o.chatFanoutMax {
					fmt.Fprintf(os.Stderr, "bench: chat fanout %d skipped (over -chat-fanout-max %d)\n", size, o.chatFanoutMax)
					continue
				}
				r, err := measure(ctx, o, bins, t, "fanout", size, rate)
				if err != nil {
					fmt.Fprintf(os.Stderr, "bench: %s fanout %d at %g/s: %v\n", t, size, rate, err)
				}
				all = append(all, r)
			}
		}
	}
	return all
}

func optionsJSON(o *options) map[string]any {
	return map[string]any{"targets": o.targets, "idle": o.idle, "fanout": o.fanout, "messages": o.messages,
		"rates": o.rates, "size": o.size, "settle": o.settle.String(), "drain": o.drain.String(),
		"presence": o.presence, "presence_rooms": o.presenceRooms, "bigroom": o.bigroom,
		"bigroom_messages": o.bigMessages, "bigroom_rate": o.bigRate, "repeat": o.repeat}
}

// bins are the programs built for the run.
type bins struct {
	phxbench, chat, phxmin, floor, assets string
}

// build compiles the load tool and the servers (the library and the chat
// example come from the parent directory, through the replace directive).
func build(ctx context.Context, dir string) (*bins, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	b := &bins{
		phxbench: filepath.Join(dir, "phxbench"),
		chat:     filepath.Join(dir, "chat"),
		phxmin:   filepath.Join(dir, "phxmin"),
		floor:    filepath.Join(dir, "floor"),
		assets:   filepath.Join(dir, "node_modules"),
	}
	// phxbench builds in the root module, the chat example in its own module
	// (it needs the adapters' dependencies); the servers of this harness
	// build here.
	for out, pkg := range map[string][2]string{
		b.phxbench: {"..", "./cmd/phxbench"},
		b.chat:     {"../examples/chat", "."},
		b.phxmin:   {".", "./phxmin"},
		b.floor:    {".", "./floor"},
	} {
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, pkg[1])
		cmd.Dir = pkg[0]
		if msg, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s in %s: %w\n%s", pkg[1], pkg[0], err, msg)
		}
	}
	// The chat page's phoenix.js is not needed under load: a stand-in
	// satisfies the example's check for it.
	mjs := filepath.Join(b.assets, "phoenix", "priv", "static", "phoenix.mjs")
	if err := os.MkdirAll(filepath.Dir(mjs), 0o755); err != nil {
		return nil, err
	}
	return b, os.WriteFile(mjs, []byte("// stand-in\n"), 0o644)
}

// measurement is one scenario at one size against one server.
type measurement struct {
	Target   string          `json:"target"`
	Scenario string          `json:"scenario"`
	Size     int             `json:"size"`
	Rate     float64         `json:"rate,omitempty"`
	Command  string          `json:"command"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	Run      int             `json:"run"` // 1 to -repeat
	parsed   *loadResult
}

// loadResult is the part of phxbench's -json output the report reads; the
// centrifuge driver writes the same fields.
type loadResult struct {
	Connect *struct {
		OK        int     `json:"ok"`
		Errors    int     `json:"errors"`
		DurationS float64 `json:"duration_s"`
		PerSecond float64 `json:"per_s"`
	} `json:"connect"`
	Server *struct {
		Before struct {
			RSSKiB int64 `json:"rss_kib"`
		} `json:"before"`
		After struct {
			RSSKiB int64 `json:"rss_kib"`
		} `json:"after"`
		PerConnKiB float64 `json:"per_conn_kib"`
		CPUS       float64 `json:"cpu_s"`
	} `json:"server"`
	Fanout *struct {
		Receivers      int     `json:"receivers"`
		Sent           int     `json:"sent"`
		Expected       int64   `json:"expected"`
		Delivered      int64   `json:"delivered"`
		Lost           int64   `json:"lost"`
		LossPct        float64 `json:"loss_pct"`
		DurationS      float64 `json:"duration_s"`
		DeliveriesPerS float64 `json:"deliveries_per_s"`
		PerServerCPUS  float64 `json:"deliveries_per_server_cpu_s"`
		RateAchieved   float64 `json:"rate_achieved"`
		Latency        struct {
			P50 float64 `json:"p50_ms"`
			P90 float64 `json:"p90_ms"`
			P99 float64 `json:"p99_ms"`
			Max float64 `json:"max_ms"`
		} `json:"latency"`
	} `json:"fanout"`
	LoadCPUS float64 `json:"load_cpu_s"`
}

var listenRE = regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/`)

// server is a running server process.
type server struct {
	cmd  *exec.Cmd
	addr string
}

func startServer(ctx context.Context, o *options, b *bins, target, scenario string) (*server, error) {
	var cmd *exec.Cmd
	switch target {
	case "chat":
		cmd = exec.Command(b.chat, "-addr", "127.0.0.1:0", "-assets", b.assets)
		cmd.Env = append(os.Environ(), "CHAT_SECRET=phxbench-harness-secret-0123456789abcdef")
	case "phxmin":
		cmd = exec.Command(b.phxmin, "-addr", "127.0.0.1:0")
	case "floor":
		cmd = exec.Command(b.floor, "-addr", "127.0.0.1:0")
		if scenario == "presence" || scenario == "bigroom" {
			cmd.Args = append(cmd.Args, "-presence")
		}
	case "centrifuge":
		cmd = exec.Command(o.centrifugeBin, "server", "-addr", "127.0.0.1:0")
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
				continue
			}
			if !strings.Contains(line, "level=INFO") {
				fmt.Fprintf(os.Stderr, "  [%s] %s\n", target, line)
			}
		}
	}()
	select {
	case s.addr = <-found:
		return s, nil
	case <-time.After(20 * time.Second):
	case <-ctx.Done():
	}
	s.stop()
	return nil, errors.New("server did not log its address")
}

func (s *server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

func loadArgs(o *options, target, scenario string, size int, rate float64, addr string, pid int) (bin string, args []string) {
	common := []string{
		"-scenario", scenario, "-clients", strconv.Itoa(size), "-pid", strconv.Itoa(pid),
		"-settle", o.settle.String(), "-concurrency", strconv.Itoa(o.concurrency), "-json",
		"-duration", o.runTimeout.String(),
	}
	if o.quiet {
		common = append(common, "-quiet")
	}
	// Idle clients join a room each: examples/chat tracks presence on
	// join, and a single room would make the idle figure the cost of
	// presence_state pushes (O(N²)), not of connections. The presence
	// scenario is idle clients in -presence-rooms rooms; the big room is a
	// fan-out to one room whose members all have presence.
	topic, channel := "room:bench", "bench"
	switch scenario {
	case "fanout":
		common = append(common, "-messages", strconv.Itoa(o.messages), "-rate", fmt.Sprint(rate),
			"-size", strconv.Itoa(o.size), "-drain", o.drain.String())
	case "bigroom":
		common[1] = "fanout"
		common = append(common, "-messages", strconv.Itoa(o.bigMessages), "-rate", fmt.Sprint(rate),
			"-size", strconv.Itoa(o.size), "-drain", o.drain.String())
	case "idle":
		topic, channel = "room:idle{i}", "idle{i}"
	case "presence":
		common[1] = "idle"
		topic = fmt.Sprintf("room:p{i%%%d}", o.presenceRooms)
	}
	if target == "centrifuge" {
		return o.centrifugeBin, append([]string{"load", "-url", "ws://" + addr + "/connection/websocket", "-channel", channel}, common...)
	}
	args = []string{"-url", "ws://" + addr + "/socket", "-topic", topic}
	if target == "chat" {
		args = append(args, "-token-url", "http://"+addr+"/api/token?user={user}", "-param", "token={token}")
	}
	return "phxbench", append(args, common...)
}

func measure(ctx context.Context, o *options, b *bins, target, scenario string, size int, rate float64) (measurement, error) {
	m := measurement{Target: target, Scenario: scenario, Size: size, Rate: rate}
	fmt.Fprintf(os.Stderr, "bench: == %s %s %d %g\n", target, scenario, size, rate)
	srv, err := startServer(ctx, o, b, target, scenario)
	if err != nil {
		m.Error = err.Error()
		return m, err
	}
	defer srv.stop()
	name, args := loadArgs(o, target, scenario, size, rate, srv.addr, srv.cmd.Process.Pid)
	m.Command = name + " " + shellJoin(args)
	bin := b.phxbench
	if name != "phxbench" {
		bin = name
	}
	rctx, cancel := context.WithTimeout(ctx, o.runTimeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(rctx, bin, args...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = prefixWriter{w: os.Stderr, prefix: "  "}
	runErr := cmd.Run()
	if stdout.Len() > 0 {
		m.Result = json.RawMessage(bytes.TrimSpace(stdout.Bytes()))
		var lr loadResult
		if err := json.Unmarshal(m.Result, &lr); err == nil {
			m.parsed = &lr
		}
	}
	if runErr != nil {
		m.Error = runErr.Error()
	}
	return m, runErr
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			io.WriteString(p.w, p.prefix+line)
		}
	}
	return len(b), nil
}

func shellJoin(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if strings.ContainsAny(a, " {}?&*'\"$") {
			b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}

// machine describes where the run happened.
type machine struct {
	Date       string `json:"date"`
	NProc      int    `json:"nproc"`
	CPU        string `json:"cpu"`
	MemTotal   string `json:"mem_total"`
	LoadBefore string `json:"loadavg_before"`
	LoadAfter  string `json:"loadavg_after"`
	Go         string `json:"go"`
	FDLimit    string `json:"fd_limit"`
}

func (m machine) String() string {
	return fmt.Sprintf("%s, %d cores (%s), %s, load average %s, %s, fd limit %s", m.Date, m.NProc, m.CPU, m.MemTotal, m.LoadBefore, m.Go, m.FDLimit)
}

func machineInfo() machine {
	m := machine{Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), NProc: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: loadavg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		m.MemTotal = strings.Join(strings.Fields(line)[1:], " ")
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		m.FDLimit = fmt.Sprintf("%d (hard %d)", rl.Cur, rl.Max)
	}
	return m
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// report prints the tables: one per scenario and size, a row per server,
// with ratios to the floor and to centrifuge.
func report(w io.Writer, o *options, m machine, all []measurement) {
	fmt.Fprintf(w, "\nMachine: %s; load average after %s. Servers and load share the machine's cores.\n", m, m.LoadAfter)
	find := func(target, scenario string, size int, rate float64) *loadResult {
		return resultOf(all, target, scenario, size, rate)
	}
	ratio := func(a, b float64) string {
		if a == 0 || b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	for _, size := range o.idle {
		fmt.Fprintf(w, "\n### idle, %d connections\n\n", size)
		fmt.Fprintln(w, "| server | connected | connect+join/s | server RSS before → after | KiB per connection | vs floor | vs centrifuge |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
		floor := find("floor", "idle", size, 0)
		cf := find("centrifuge", "idle", size, 0)
		for _, t := range o.targets {
			r := find(t, "idle", size, 0)
			if r == nil || r.Connect == nil {
				fmt.Fprintf(w, "| %s | failed | | | | | |\n", t)
				continue
			}
			row := fmt.Sprintf("| %s | %d/%d | %.0f |", t, r.Connect.OK, size, r.Connect.PerSecond)
			if r.Server != nil {
				row += fmt.Sprintf(" %.1f → %.1f MiB | %.1f |", float64(r.Server.Before.RSSKiB)/1024, float64(r.Server.After.RSSKiB)/1024, r.Server.PerConnKiB)
				var vf, vc string
				if floor != nil && floor.Server != nil && t != "floor" {
					vf = ratio(r.Server.PerConnKiB, floor.Server.PerConnKiB)
				}
				if cf != nil && cf.Server != nil && t != "centrifuge" {
					vc = ratio(r.Server.PerConnKiB, cf.Server.PerConnKiB)
				}
				row += fmt.Sprintf(" %s | %s |", vf, vc)
			} else {
				row += " | | | |"
			}
			fmt.Fprintln(w, row)
		}
	}
	for _, size := range o.presence {
		fmt.Fprintf(w, "\n### presence, %d idle connections in %d rooms of %d, presence tracked on every join\n\n", size, o.presenceRooms, size/o.presenceRooms)
		fmt.Fprintln(w, "| server | connected | connect+join/s | server RSS before → after | KiB per connection | vs floor |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|")
		floor := find("floor", "presence", size, 0)
		for _, t := range o.targets {
			if !presenceTargets[t] {
				continue
			}
			r := find(t, "presence", size, 0)
			if r == nil || r.Connect == nil || r.Server == nil {
				fmt.Fprintf(w, "| %s | failed | | | | |\n", t)
				continue
			}
			var vf string
			if floor != nil && floor.Server != nil && t != "floor" {
				vf = ratio(r.Server.PerConnKiB, floor.Server.PerConnKiB)
			}
			fmt.Fprintf(w, "| %s | %d/%d | %.0f | %.1f → %.1f MiB | %.1f | %s |\n", t, r.Connect.OK, size, r.Connect.PerSecond,
				float64(r.Server.Before.RSSKiB)/1024, float64(r.Server.After.RSSKiB)/1024, r.Server.PerConnKiB, vf)
		}
	}
	for _, size := range o.bigroom {
		fmt.Fprintf(w, "\n### big room, %d members of one room with presence, then %d messages of %d bytes at %g/s\n\n", size, o.bigMessages, o.size, o.bigRate)
		fmt.Fprintln(w, "| server | joined | joins took s | deliveries | lost | p50 ms | p99 ms | server CPU s | KiB per connection (after) | joins time vs floor | p99 vs floor | KiB vs floor |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
		floor := find("floor", "bigroom", size, o.bigRate)
		for _, t := range o.targets {
			if !presenceTargets[t] {
				continue
			}
			r := find(t, "bigroom", size, o.bigRate)
			if r == nil || r.Connect == nil || r.Fanout == nil || r.Server == nil {
				fmt.Fprintf(w, "| %s | failed | | | | | | | | | | |\n", t)
				continue
			}
			f := r.Fanout
			var vj, vp, vk string
			if floor != nil && floor.Connect != nil && floor.Fanout != nil && floor.Server != nil && t != "floor" {
				vj = ratio(r.Connect.DurationS, floor.Connect.DurationS)
				vp = ratio(f.Latency.P99, floor.Fanout.Latency.P99)
				vk = ratio(r.Server.PerConnKiB, floor.Server.PerConnKiB)
			}
			fmt.Fprintf(w, "| %s | %d/%d | %.1f | %d/%d | %d | %.1f | %.1f | %.2f | %.1f | %s | %s | %s |\n",
				t, r.Connect.OK, size+1, r.Connect.DurationS, f.Delivered, f.Expected, f.Lost, f.Latency.P50, f.Latency.P99,
				r.Server.CPUS, r.Server.PerConnKiB, vj, vp, vk)
		}
	}
	for _, fr := range fanoutRuns(o) {
		size, rate := fr.size, fr.rate
		fmt.Fprintf(w, "\n### fanout, %d subscribers, %d messages of %d bytes at %g/s\n\n", size, o.messages, o.size, rate)
		fmt.Fprintln(w, "| server | deliveries | lost | deliveries/s | p50 ms | p90 ms | p99 ms | max ms | server CPU s | deliveries per server CPU-s | deliveries/s vs floor | vs centrifuge | p99 vs floor |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		floor := find("floor", "fanout", size, rate)
		cf := find("centrifuge", "fanout", size, rate)
		for _, t := range o.targets {
			r := find(t, "fanout", size, rate)
			if t == "chat" && size > o.chatFanoutMax {
				fmt.Fprintf(w, "| %s | skipped (over -chat-fanout-max: O(N²) presence on join) | | | | | | | | | | | |\n", t)
				continue
			}
			if r == nil || r.Fanout == nil {
				fmt.Fprintf(w, "| %s | failed | | | | | | | | | | | |\n", t)
				continue
			}
			f := r.Fanout
			cpu := 0.0
			if r.Server != nil {
				cpu = r.Server.CPUS
			}
			var vf, vc, pf string
			if floor != nil && floor.Fanout != nil && t != "floor" {
				vf = ratio(f.DeliveriesPerS, floor.Fanout.DeliveriesPerS)
				pf = ratio(f.Latency.P99, floor.Fanout.Latency.P99)
			}
			if cf != nil && cf.Fanout != nil && t != "centrifuge" {
				vc = ratio(f.DeliveriesPerS, cf.Fanout.DeliveriesPerS)
			}
			fmt.Fprintf(w, "| %s | %d/%d | %d | %.0f | %.1f | %.1f | %.1f | %.1f | %.2f | %.0f | %s | %s | %s |\n",
				t, f.Delivered, f.Expected, f.Lost, f.DeliveriesPerS, f.Latency.P50, f.Latency.P90, f.Latency.P99, f.Latency.Max,
				cpu, f.PerServerCPUS, vf, vc, pf)
		}
	}
	fmt.Fprintln(w, "\nCommands (the address and pid are those the server had in this run):")
	for _, x := range all {
		status := ""
		if x.Error != "" {
			status = "  # " + x.Error
		}
		fmt.Fprintf(w, "  %s%s\n", x.Command, status)
	}
}

type fanoutRun struct {
	size int
	rate float64
}

func fanoutRuns(o *options) []fanoutRun {
	var out []fanoutRun
	for _, size := range o.fanout {
		for _, rate := range o.rates {
			out = append(out, fanoutRun{size, rate})
		}
	}
	return out
}
