package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// result is what a run reports (the -json output).
type result struct {
	Label       string         `json:"label,omitempty"`
	Scenario    string         `json:"scenario"`
	URL         string         `json:"url"`
	Transport   string         `json:"transport"`
	Vsn         string         `json:"vsn"`
	Clients     int            `json:"clients"`
	Sources     int            `json:"source_addresses"`
	Started     time.Time      `json:"started"`
	ElapsedS    float64        `json:"elapsed_s"`
	Connect     *connectResult `json:"connect,omitempty"`
	Server      *serverResult  `json:"server,omitempty"`
	Fanout      *fanoutResult  `json:"fanout,omitempty"`
	Echo        *echoResult    `json:"echo,omitempty"`
	Churn       *churnResult   `json:"churn,omitempty"`
	Counters    countersOut    `json:"counters"`
	LoadCPUS    float64        `json:"load_cpu_s"` // this process's CPU time
	LastError   string         `json:"last_error,omitempty"`
	Interrupted bool           `json:"interrupted,omitempty"`
}

type connectResult struct {
	OK        int     `json:"ok"`
	Errors    int     `json:"errors"`
	DurationS float64 `json:"duration_s"`
	PerSecond float64 `json:"per_s"`
	Latency   latency `json:"latency"` // connect + join
}

type serverResult struct {
	PID        int     `json:"pid"`
	Before     memInfo `json:"before"`
	After      memInfo `json:"after"`
	PerConnKiB float64 `json:"per_conn_kib"`
	// CPUS is the server's CPU time (user+system) during the measured
	// phase: publishing and draining for fanout, the whole run otherwise.
	CPUS float64 `json:"cpu_s"`
}

type fanoutResult struct {
	Receivers       int     `json:"receivers"`
	Messages        int     `json:"messages"`
	Sent            int     `json:"sent"`
	SendErrors      int     `json:"send_errors"`
	ErrorReplies    int     `json:"error_replies"`
	Expected        int64   `json:"expected"`
	Delivered       int64   `json:"delivered"`
	Duplicates      int64   `json:"duplicates"`
	Lost            int64   `json:"lost"`
	LossPct         float64 `json:"loss_pct"`
	RateTarget      float64 `json:"rate_target"`
	RateAchieved    float64 `json:"rate_achieved"`
	DurationS       float64 `json:"duration_s"` // first publish to last delivery
	DeliveriesPerS  float64 `json:"deliveries_per_s"`
	PerServerCPUS   float64 `json:"deliveries_per_server_cpu_s,omitempty"`
	Latency         latency `json:"latency"`
	PublishReplyLat latency `json:"publish_reply_latency"`
}

type echoResult struct {
	Requests  int64   `json:"requests"`
	Replies   int64   `json:"replies"`
	Errors    int64   `json:"errors"`
	DurationS float64 `json:"duration_s"`
	PerSecond float64 `json:"replies_per_s"`
	Latency   latency `json:"latency"`
}

type churnResult struct {
	Cycles    int64   `json:"cycles"`
	OK        int64   `json:"ok"`
	Errors    int64   `json:"errors"`
	DurationS float64 `json:"duration_s"`
	PerSecond float64 `json:"cycles_per_s"`
	Latency   latency `json:"latency"` // connect + join + leave + close
}

type countersOut struct {
	Connects       int64 `json:"connects"`
	ConnectErrors  int64 `json:"connect_errors"`
	Joins          int64 `json:"joins"`
	JoinErrors     int64 `json:"join_errors"`
	Leaves         int64 `json:"leaves"`
	Heartbeats     int64 `json:"heartbeats"`
	HeartbeatMiss  int64 `json:"heartbeats_unanswered"`
	FramesIn       int64 `json:"frames_in"`
	BytesIn        int64 `json:"bytes_in"`
	OtherFrames    int64 `json:"other_frames"`
	ServerCloses   int64 `json:"connections_lost"`
	ChannelErrors  int64 `json:"channel_errors"`
	MalformedInput int64 `json:"malformed_frames"`
}

func (c *counters) out() countersOut {
	return countersOut{
		Connects: c.connects.Load(), ConnectErrors: c.connectErrors.Load(),
		Joins: c.joins.Load(), JoinErrors: c.joinErrors.Load(), Leaves: c.leaves.Load(),
		Heartbeats: c.heartbeats.Load(), HeartbeatMiss: c.heartbeatMiss.Load(),
		FramesIn: c.framesIn.Load(), BytesIn: c.bytesIn.Load(), OtherFrames: c.otherFrames.Load(),
		ServerCloses: c.serverCloses.Load(), ChannelErrors: c.channelErrors.Load(),
		MalformedInput: c.malformedInput.Load(),
	}
}

// runner holds one run's state.
type runner struct {
	cfg      *config
	ccfg     *clientConfig
	cn       *counters
	stderr   io.Writer
	phase    atomic.Pointer[string]
	progress func() string // extra progress text of the current phase
	pmu      sync.Mutex
}

func (r *runner) setPhase(p string, extra func() string) {
	r.phase.Store(&p)
	r.pmu.Lock()
	r.progress = extra
	r.pmu.Unlock()
}

func run(ctx context.Context, cfg *config, stderr io.Writer) (*result, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	if err := cfg.checkTargets(ctx); err != nil {
		return nil, err
	}
	endpoint, err := socketURLs(cfg.url, cfg.transport)
	if err != nil {
		return nil, err
	}
	nconn := cfg.clients
	if cfg.scenario == "fanout" {
		nconn++
	}
	if cfg.scenario == "churn" {
		nconn = cfg.concurrency
	}
	// Source addresses 127.0.0.x reach only loopback targets: with
	// -allow-remote, only an explicit -sources spreads them.
	sources := cfg.sources
	if sources == 0 && !cfg.allowRemote {
		sources = autoSources(nconn)
	}
	d := &dialer{srcs: sourceAddrs(sources), timeout: cfg.timeout}
	ht := &http.Transport{
		DialContext:         d.dialContext,
		MaxIdleConnsPerHost: max(nconn*2, 100),
		MaxIdleConns:        max(nconn*2, 100),
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	defer ht.CloseIdleConnections()
	cn := &counters{}
	var runID [4]byte
	rand.Read(runID[:])
	r := &runner{
		cfg: cfg,
		cn:  cn,
		ccfg: &clientConfig{
			endpoint:    endpoint,
			transport:   cfg.transport,
			vsn:         cfg.vsn,
			params:      cfg.params,
			userTmpl:    cfg.user,
			topicTmpl:   cfg.topic,
			joinPayload: cfg.joinPayload,
			heartbeat:   cfg.heartbeat,
			timeout:     cfg.timeout,
			readLimit:   cfg.readLimit,
			httpClient:  &http.Client{Transport: ht},
			run:         hex.EncodeToString(runID[:]),
			event:       cfg.event,
			counters:    cn,
		},
		stderr: stderr,
	}
	if cfg.tokenURL != "" {
		r.ccfg.tokens = &tokenSource{tmpl: cfg.tokenURL, field: cfg.tokenField, client: r.ccfg.httpClient}
	}
	res := &result{
		Label: cfg.label, Scenario: cfg.scenario, URL: endpoint.String(), Transport: cfg.transport,
		Vsn: cfg.vsn, Clients: cfg.clients, Sources: max(sources, 1), Started: time.Now().UTC().Truncate(time.Second),
	}
	cpu0 := selfCPU()
	start := time.Now()
	if !cfg.quiet {
		stopProgress := r.startProgress(start)
		defer stopProgress()
	}

	switch cfg.scenario {
	case "idle":
		err = r.idle(ctx, res)
	case "fanout":
		err = r.fanout(ctx, res)
	case "echo":
		err = r.echo(ctx, res)
	case "churn":
		err = r.churn(ctx, res)
	}
	res.ElapsedS = round2(time.Since(start).Seconds())
	res.Counters = cn.out()
	res.LoadCPUS = round2(selfCPU() - cpu0)
	if p := cn.lastErr.Load(); p != nil {
		res.LastError = *p
	}
	if ctx.Err() != nil && err == nil {
		res.Interrupted = true
		err = fmt.Errorf("stopped before the end: %w (see -duration)", context.Cause(ctx))
	}
	return res, err
}

// startProgress prints a status line to stderr once a second.
func (r *runner) startProgress(start time.Time) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			phase := ""
			if p := r.phase.Load(); p != nil {
				phase = *p
			}
			r.pmu.Lock()
			extra := r.progress
			r.pmu.Unlock()
			line := fmt.Sprintf("phxbench %5.0fs %-8s joined %d", time.Since(start).Seconds(), phase,
				r.cn.joins.Load()-r.cn.leaves.Load())
			if e := r.cn.connectErrors.Load() + r.cn.joinErrors.Load(); e > 0 {
				line += fmt.Sprintf(", connect/join errors %d", e)
			}
			if l := r.cn.serverCloses.Load(); l > 0 {
				line += fmt.Sprintf(", lost %d", l)
			}
			if extra != nil {
				line += ", " + extra()
			}
			fmt.Fprintln(r.stderr, line)
		}
	}()
	return func() { close(done); wg.Wait() }
}

// connectAll connects and joins clients first..first+n-1, -concurrency at
// a time and at most -connect-rate per second. Failed clients are nil.
func (r *runner) connectAll(ctx context.Context, first, n int, setup func(*client)) ([]*client, *connectResult) {
	clients := make([]*client, n)
	var h hist
	var ok, fail atomic.Int64
	start := time.Now()
	paced(ctx, n, r.cfg.connectRate, r.cfg.concurrency, func(k int) {
		c := newClient(r.ccfg, first+k)
		if setup != nil {
			setup(c)
		}
		t0 := time.Now()
		if err := r.open(ctx, c); err != nil {
			fail.Add(1)
			return
		}
		h.record(time.Since(t0))
		ok.Add(1)
		clients[k] = c
	})
	el := time.Since(start).Seconds()
	res := &connectResult{OK: int(ok.Load()), Errors: int(fail.Load()), DurationS: round2(el), Latency: h.summary()}
	if el > 0 {
		res.PerSecond = round2(float64(res.OK) / el)
	}
	return clients, res
}

// open connects and joins c, counting.
func (r *runner) open(ctx context.Context, c *client) error {
	if err := c.connect(ctx); err != nil {
		r.cn.connectErrors.Add(1)
		r.cn.noteErr(fmt.Errorf("client %d: connect: %w", c.i, err))
		return err
	}
	r.cn.connects.Add(1)
	if err := c.join(ctx); err != nil {
		r.cn.joinErrors.Add(1)
		r.cn.noteErr(fmt.Errorf("client %d: %w", c.i, err))
		c.close()
		return err
	}
	r.cn.joins.Add(1)
	return nil
}

// closeAll closes the clients, many at a time, giving up after a few
// seconds (the process is about to exit anyway).
func closeAll(clients []*client) {
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for _, c := range clients {
		if c == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.close()
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

func (r *runner) serverMem(res *result) (before memInfo, ok bool) {
	if r.cfg.pid == 0 {
		return memInfo{}, false
	}
	mi, err := readMem(r.cfg.pid)
	if err != nil {
		r.cn.noteErr(fmt.Errorf("server memory: %w", err))
		return memInfo{}, false
	}
	return mi, true
}

// ---- idle ----

func (r *runner) idle(ctx context.Context, res *result) error {
	before, haveMem := r.serverMem(res)
	cpu0 := procCPU(r.cfg.pid)
	r.setPhase("connect", nil)
	clients, cres := r.connectAll(ctx, 0, r.cfg.clients, nil)
	defer closeAll(clients)
	res.Connect = cres
	r.setPhase("settle", nil)
	sleepCtx(ctx, r.cfg.settle)
	if haveMem {
		after, err := readMem(r.cfg.pid)
		if err == nil {
			s := &serverResult{PID: r.cfg.pid, Before: before, After: after, CPUS: round2(procCPU(r.cfg.pid) - cpu0)}
			if cres.OK > 0 {
				s.PerConnKiB = round2(float64(after.RSSKiB-before.RSSKiB) / float64(cres.OK))
			}
			res.Server = s
		}
	}
	if r.cfg.hold > 0 {
		r.setPhase("hold", nil)
		sleepCtx(ctx, r.cfg.hold)
	}
	r.setPhase("close", nil)
	if cres.OK < r.cfg.clients {
		return fmt.Errorf("%d of %d clients failed to connect and join", r.cfg.clients-cres.OK, r.cfg.clients)
	}
	return nil
}

// ---- fanout ----

// receiver bookkeeping: which seqs one client has seen.
type seen struct {
	bits []uint64
}

func (r *runner) fanout(ctx context.Context, res *result) error {
	cfg := r.cfg
	m := cfg.messages
	var lat hist
	var delivered, dups atomic.Int64
	var lastAt atomic.Int64
	seenBy := make([]seen, cfg.clients)
	setup := func(c *client) {
		if c.i >= cfg.clients {
			return // the publisher
		}
		s := &seenBy[c.i]
		s.bits = make([]uint64, (m+63)/64)
		c.onDeliver = func(seq int, sent int64, at time.Time) {
			if seq < 0 || seq >= m {
				dups.Add(1)
				return
			}
			w, b := seq/64, uint64(1)<<(seq%64)
			if s.bits[w]&b != 0 {
				dups.Add(1)
				return
			}
			s.bits[w] |= b
			delivered.Add(1)
			lat.record(at.Sub(time.Unix(0, sent)))
			an := at.UnixNano()
			for {
				v := lastAt.Load()
				if an <= v || lastAt.CompareAndSwap(v, an) {
					break
				}
			}
		}
	}
	before, haveMem := r.serverMem(res)
	r.setPhase("connect", nil)
	clients, cres := r.connectAll(ctx, 0, cfg.clients+1, setup)
	defer closeAll(clients)
	res.Connect = cres
	pub := clients[cfg.clients]
	if pub == nil {
		return errors.New("the publisher failed to connect and join")
	}
	receivers := 0
	for _, c := range clients[:cfg.clients] {
		if c != nil {
			receivers++
		}
	}
	r.setPhase("settle", nil)
	sleepCtx(ctx, cfg.settle)

	fr := &fanoutResult{Receivers: receivers, Messages: m, RateTarget: cfg.rate}
	res.Fanout = fr
	var sent, sendErrs, errReplies atomic.Int64
	var pubLat hist
	r.setPhase("publish", func() string {
		exp := sent.Load() * int64(receivers)
		return fmt.Sprintf("sent %d/%d, delivered %d/%d, p99 %.1f ms", sent.Load(), m, delivered.Load(), exp, lat.quantile(0.99)/1000)
	})
	cpu0 := procCPU(cfg.pid)
	start := time.Now()
	replies := make(chan struct {
		t  time.Time
		ch <-chan reply
	}, m)
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() { // collect the publisher's replies, in order
		defer rwg.Done()
		for p := range replies {
			tm := time.NewTimer(cfg.timeout)
			select {
			case rp, ok := <-p.ch:
				if ok {
					pubLat.record(rp.at.Sub(p.t))
					if rp.status != "ok" {
						errReplies.Add(1)
						r.cn.noteErr(fmt.Errorf("publish refused: %s %s", rp.status, rp.response))
					}
				}
			case <-tm.C:
			case <-ctx.Done():
			}
			tm.Stop()
		}
	}()
	for seq := 0; seq < m; seq++ {
		if cfg.rate > 0 && !sleepUntil(ctx, start.Add(time.Duration(float64(seq)/cfg.rate*float64(time.Second)))) {
			break
		}
		if ctx.Err() != nil {
			break
		}
		now := time.Now()
		stamp := makeStamp(r.ccfg.run, seq, now.UnixNano(), cfg.size)
		ch, err := pub.push(ctx, pub.topic, pub.joinRefNow(), cfg.event, payloadWithStamp(cfg.payload, stamp))
		if err != nil {
			sendErrs.Add(1)
			r.cn.noteErr(fmt.Errorf("publish: %w", err))
			continue
		}
		sent.Add(1)
		replies <- struct {
			t  time.Time
			ch <-chan reply
		}{now, ch}
	}
	close(replies)
	sendEnd := time.Now()
	r.setPhase("drain", r.progress)
	rwg.Wait()
	expected := (sent.Load() - errReplies.Load()) * int64(receivers)
	deadline := time.Now().Add(cfg.drain)
	for delivered.Load() < expected && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if delivered.Load() < expected {
		// Whatever is still in flight after the drain counts as lost.
		time.Sleep(50 * time.Millisecond)
	}
	cpuUsed := procCPU(cfg.pid) - cpu0
	end := time.Unix(0, lastAt.Load())
	if end.Before(sendEnd) {
		end = sendEnd
	}
	fr.Sent = int(sent.Load())
	fr.SendErrors = int(sendErrs.Load())
	fr.ErrorReplies = int(errReplies.Load())
	fr.Expected = expected
	fr.Delivered = delivered.Load()
	fr.Duplicates = dups.Load()
	fr.Lost = max(expected-fr.Delivered, 0)
	if expected > 0 {
		fr.LossPct = round2(100 * float64(fr.Lost) / float64(expected))
	}
	if el := sendEnd.Sub(start).Seconds(); el > 0 && fr.Sent > 1 {
		fr.RateAchieved = round2(float64(fr.Sent-1) / el)
	}
	fr.DurationS = round2(end.Sub(start).Seconds())
	if d := end.Sub(start).Seconds(); d > 0 {
		fr.DeliveriesPerS = round2(float64(fr.Delivered) / d)
	}
	fr.Latency = lat.summary()
	fr.PublishReplyLat = pubLat.summary()
	if haveMem {
		after, _ := readMem(cfg.pid)
		res.Server = &serverResult{PID: cfg.pid, Before: before, After: after, CPUS: round2(cpuUsed)}
		if cres.OK > 0 {
			res.Server.PerConnKiB = round2(float64(after.RSSKiB-before.RSSKiB) / float64(cres.OK))
		}
		if cpuUsed > 0 {
			fr.PerServerCPUS = round2(float64(fr.Delivered) / cpuUsed)
		}
	}
	r.setPhase("close", nil)
	switch {
	case pub == nil:
	case receivers < cfg.clients:
		return fmt.Errorf("%d of %d receivers failed to connect and join", cfg.clients-receivers, cfg.clients)
	}
	return nil
}

func (c *client) joinRefNow() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joinRef
}

// ---- echo ----

func (r *runner) echo(ctx context.Context, res *result) error {
	cfg := r.cfg
	r.setPhase("connect", nil)
	clients, cres := r.connectAll(ctx, 0, cfg.clients, nil)
	defer closeAll(clients)
	res.Connect = cres
	cpu0 := procCPU(cfg.pid)
	var lat hist
	var reqs, reps, errs atomic.Int64
	r.setPhase("echo", func() string {
		return fmt.Sprintf("replies %d/%d, errors %d, p99 %.1f ms", reps.Load(), int64(cfg.messages)*int64(cres.OK), errs.Load(), lat.quantile(0.99)/1000)
	})
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range clients {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the clients' first requests over one period.
			var offset time.Duration
			if cfg.rate > 0 {
				offset = time.Duration(float64(c.i%1000) / 1000 / cfg.rate * float64(time.Second))
			}
			for k := 0; k < cfg.messages; k++ {
				if cfg.rate > 0 && !sleepUntil(ctx, start.Add(offset+time.Duration(float64(k)/cfg.rate*float64(time.Second)))) {
					return
				}
				if ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				stamp := makeStamp(r.ccfg.run, k, t0.UnixNano(), cfg.size)
				reqs.Add(1)
				rp, err := c.request(ctx, c.topic, c.joinRefNow(), cfg.event, payloadWithStamp(cfg.payload, stamp))
				if err != nil || rp.status != "ok" {
					errs.Add(1)
					if err == nil {
						err = fmt.Errorf("reply %s %s", rp.status, rp.response)
					}
					r.cn.noteErr(fmt.Errorf("client %d: %w", c.i, err))
					if !c.joined.Load() || c.closingOrLost() {
						return
					}
					continue
				}
				reps.Add(1)
				lat.record(rp.at.Sub(t0))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	res.Echo = &echoResult{Requests: reqs.Load(), Replies: reps.Load(), Errors: errs.Load(), DurationS: round2(el), Latency: lat.summary()}
	if el > 0 {
		res.Echo.PerSecond = round2(float64(reps.Load()) / el)
	}
	if cfg.pid != 0 {
		mi, _ := readMem(cfg.pid)
		res.Server = &serverResult{PID: cfg.pid, After: mi, CPUS: round2(procCPU(cfg.pid) - cpu0)}
	}
	r.setPhase("close", nil)
	if errs.Load() > 0 {
		return fmt.Errorf("%d requests failed", errs.Load())
	}
	return nil
}

func (c *client) closingOrLost() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// ---- churn ----

func (r *runner) churn(ctx context.Context, res *result) error {
	cfg := r.cfg
	cpu0 := procCPU(cfg.pid)
	var lat hist
	var cycles, okc, errc atomic.Int64
	r.setPhase("churn", func() string {
		return fmt.Sprintf("cycles %d/%d, errors %d", cycles.Load(), cfg.cycles, errc.Load())
	})
	start := time.Now()
	paced(ctx, cfg.cycles, cfg.rate, cfg.concurrency, func(k int) {
		cycles.Add(1)
		t0 := time.Now()
		c := newClient(r.ccfg, k)
		if err := r.open(ctx, c); err != nil {
			errc.Add(1)
			return
		}
		err := c.leave(ctx)
		c.close()
		if err != nil {
			errc.Add(1)
			r.cn.noteErr(fmt.Errorf("client %d: leave: %w", k, err))
			return
		}
		r.cn.leaves.Add(1)
		okc.Add(1)
		lat.record(time.Since(t0))
	})
	el := time.Since(start).Seconds()
	res.Churn = &churnResult{Cycles: cycles.Load(), OK: okc.Load(), Errors: errc.Load(), DurationS: round2(el), Latency: lat.summary()}
	if el > 0 {
		res.Churn.PerSecond = round2(float64(okc.Load()) / el)
	}
	if cfg.pid != 0 {
		mi, _ := readMem(cfg.pid)
		res.Server = &serverResult{PID: cfg.pid, After: mi, CPUS: round2(procCPU(cfg.pid) - cpu0)}
	}
	if errc.Load() > 0 {
		return fmt.Errorf("%d of %d cycles failed", errc.Load(), cycles.Load())
	}
	return nil
}

// ---- helpers ----

// paced runs work(0..n-1), each on its own goroutine, at most concurrency
// at a time and, when rate > 0, starting at most rate per second; it stops
// starting new ones when ctx ends and returns once all started ones are
// done.
func paced(ctx context.Context, n int, rate float64, concurrency int, work func(k int)) {
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for k := 0; k < n; k++ {
		if rate > 0 && !sleepUntil(ctx, start.Add(time.Duration(float64(k)/rate*float64(time.Second)))) {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			defer func() { <-sem }()
			work(k)
		}(k)
	}
	wg.Wait()
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	return sleepCtx(ctx, d)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// selfCPU is this process's CPU time (user+system) in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// procCPU is pid's CPU time (utime+stime from /proc/PID/stat) in seconds;
// 0 when pid is 0 or unreadable.
func procCPU(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	return parseStatCPU(string(b))
}

// parseStatCPU takes utime and stime (fields 14 and 15, in clock ticks of
// 1/100 s) from a /proc/PID/stat line, whose second field (the command)
// may hold spaces and parentheses.
func parseStatCPU(stat string) float64 {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is field 14 = f[11], stime f[12].
	if len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return (u + s) / 100
}

// print writes the human-readable result.
func (res *result) print(w io.Writer) {
	fmt.Fprintf(w, "phxbench %s: %d clients, %s %s vsn %s, %d source address(es), %.1f s\n",
		res.Scenario, res.Clients, res.Transport, res.URL, res.Vsn, res.Sources, res.ElapsedS)
	if c := res.Connect; c != nil {
		fmt.Fprintf(w, "  connect+join: %d ok, %d errors in %.2f s (%.0f/s); %s\n", c.OK, c.Errors, c.DurationS, c.PerSecond, c.Latency)
	}
	if s := res.Server; s != nil {
		if s.Before.RSSKiB > 0 {
			fmt.Fprintf(w, "  server pid %d: RSS %.1f MiB -> %.1f MiB, %.2f KiB per connection; peak %.1f MiB; %d threads; CPU %.2f s\n",
				s.PID, float64(s.Before.RSSKiB)/1024, float64(s.After.RSSKiB)/1024, s.PerConnKiB, float64(s.After.HWMKiB)/1024, s.After.Threads, s.CPUS)
		} else {
			fmt.Fprintf(w, "  server pid %d: RSS %.1f MiB; CPU %.2f s\n", s.PID, float64(s.After.RSSKiB)/1024, s.CPUS)
		}
	}
	if f := res.Fanout; f != nil {
		fmt.Fprintf(w, "  fanout: %d receivers, %d/%d messages sent at %.1f/s (target %.1f), %d send errors, %d error replies\n",
			f.Receivers, f.Sent, f.Messages, f.RateAchieved, f.RateTarget, f.SendErrors, f.ErrorReplies)
		fmt.Fprintf(w, "  deliveries: %d of %d (lost %d = %.2f%%, duplicates %d) in %.2f s: %.0f/s", f.Delivered, f.Expected, f.Lost, f.LossPct, f.Duplicates, f.DurationS, f.DeliveriesPerS)
		if f.PerServerCPUS > 0 {
			fmt.Fprintf(w, ", %.0f per server CPU-second", f.PerServerCPUS)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  delivery latency: %s\n", f.Latency)
		fmt.Fprintf(w, "  publish reply latency: %s\n", f.PublishReplyLat)
	}
	if e := res.Echo; e != nil {
		fmt.Fprintf(w, "  echo: %d requests, %d replies, %d errors in %.2f s: %.0f replies/s; %s\n", e.Requests, e.Replies, e.Errors, e.DurationS, e.PerSecond, e.Latency)
	}
	if c := res.Churn; c != nil {
		fmt.Fprintf(w, "  churn: %d cycles, %d ok, %d errors in %.2f s: %.0f cycles/s; %s\n", c.Cycles, c.OK, c.Errors, c.DurationS, c.PerSecond, c.Latency)
	}
	k := res.Counters
	fmt.Fprintf(w, "  frames in %d (%.1f MiB), other frames %d, heartbeats %d (unanswered %d), connections lost %d, channel errors %d; load CPU %.2f s\n",
		k.FramesIn, float64(k.BytesIn)/(1<<20), k.OtherFrames, k.Heartbeats, k.HeartbeatMiss, k.ServerCloses, k.ChannelErrors, res.LoadCPUS)
	if res.LastError != "" {
		fmt.Fprintf(w, "  last error: %s\n", res.LastError)
	}
}
