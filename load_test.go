package phx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
)

// TestLoadPRTier is the load test run on every change (the pull-request
// tier), scaled to a 2-core
// machine under the race detector: WebSocket and long-poll clients joined
// to several topics each, a publisher broadcasting sequence-numbered
// messages into every topic, and clients pushing requests that must all be
// answered. Every subscriber must receive every message of its topics
// exactly once and in order, every push must get its reply, and the
// goroutines must return to their baseline afterwards.
func TestLoadPRTier(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: skipped with -short")
	}
	const (
		wsClients    = 200
		lpClients    = 20
		topics       = 20
		topicsPer    = 5
		broadcasts   = 1000 // 50 per topic
		publishRate  = 200  // broadcasts per second
		pushesPerWS  = 5
		waitDelivery = 30 * time.Second
	)
	baseline := runtime.NumGoroutine()
	srv := phx.NewServer(&phx.Options{
		Logger:   quietLogger(),
		LongPoll: phx.LongPollOptions{Window: 2 * time.Second},
	})
	srv.Channel("load:*", func() phx.Channel { return loadRoom{} })
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	httpSrv := httptest.NewServer(mux)
	defer httpSrv.Close()
	hs := httpSrv.URL
	lpTransport := &http.Transport{MaxIdleConnsPerHost: lpClients}
	lpHTTP := &http.Client{Transport: lpTransport}

	topicOf := func(client, k int) string { return fmt.Sprintf("load:%d", (client*7+k*3)%topics) }
	var subscribers [topics]int
	type result struct {
		name string
		err  error
	}
	results := make(chan result, wsClients+lpClients)
	var ready sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// A receiver checks one client's stream: per topic, seq must be
	// exactly the previous one plus one; it ends when every topic reached
	// its final seq and every push was answered.
	type checker struct {
		name    string
		seq     map[string]int64
		fin     map[string]bool // topics whose "fin" (after the last tick) arrived
		pending map[string]bool
	}
	check := func(c *checker, frame string) error {
		var f []json.RawMessage
		if err := json.Unmarshal([]byte(frame), &f); err != nil || len(f) != 5 {
			return fmt.Errorf("bad frame %s", frame)
		}
		var topic, event string
		json.Unmarshal(f[2], &topic)
		json.Unmarshal(f[3], &event)
		switch event {
		case "tick":
			var p struct{ Seq int64 }
			json.Unmarshal(f[4], &p)
			if want := c.seq[topic] + 1; p.Seq != want {
				return fmt.Errorf("%s on %s: got seq %d, want %d (lost, duplicated or reordered)", c.name, topic, p.Seq, want)
			}
			c.seq[topic] = p.Seq
		case "fin":
			var p struct{ Last int64 }
			json.Unmarshal(f[4], &p)
			if c.seq[topic] != p.Last {
				return fmt.Errorf("%s on %s: fin after seq %d, want %d", c.name, topic, c.seq[topic], p.Last)
			}
			c.fin[topic] = true
		case "phx_reply":
			var ref string
			json.Unmarshal(f[1], &ref)
			if c.pending[ref] {
				delete(c.pending, ref)
			}
		}
		return nil
	}
	done := func(c *checker, myTopics []string) bool {
		if len(c.pending) > 0 {
			return false
		}
		for _, tp := range myTopics {
			if !c.fin[tp] {
				return false
			}
		}
		return true
	}

	// WebSocket clients.
	for i := 0; i < wsClients; i++ {
		var myTopics []string
		for k := 0; k < topicsPer; k++ {
			tp := topicOf(i, k)
			myTopics = append(myTopics, tp)
			var n int
			fmt.Sscanf(tp, "load:%d", &n)
			subscribers[n]++
		}
		ready.Add(1)
		go func(i int, myTopics []string) {
			name := fmt.Sprintf("ws%d", i)
			err := func() error {
				conn, _, err := websocket.Dial(ctx, strings.Replace(hs, "http", "ws", 1)+"/socket/websocket?vsn=2.0.0", nil)
				if err != nil {
					ready.Done()
					return err
				}
				defer conn.CloseNow()
				conn.SetReadLimit(-1)
				c := &checker{name: name, seq: map[string]int64{}, fin: map[string]bool{}, pending: map[string]bool{}}
				write := func(s string) error { return conn.Write(ctx, websocket.MessageText, []byte(s)) }
				for k, tp := range myTopics {
					ref := fmt.Sprint(k + 1)
					if err := write(fmt.Sprintf(`[%q,%q,%q,"phx_join",{}]`, ref, ref, tp)); err != nil {
						ready.Done()
						return err
					}
					c.pending[ref] = true
				}
				// Wait for the join replies before the publisher starts.
				for len(c.pending) > 0 {
					_, data, err := conn.Read(ctx)
					if err != nil {
						ready.Done()
						return err
					}
					if err := check(c, string(data)); err != nil {
						ready.Done()
						return err
					}
				}
				ready.Done()
				// Pushes with replies, spread over the run.
				go func() {
					for p := 0; p < pushesPerWS; p++ {
						time.Sleep(500 * time.Millisecond)
						ref := fmt.Sprintf("p%d", p)
						write(fmt.Sprintf(`["1",%q,%q,"echo",{"n":%d}]`, ref, myTopics[0], p))
					}
				}()
				for p := 0; p < pushesPerWS; p++ {
					c.pending[fmt.Sprintf("p%d", p)] = true
				}
				for !done(c, myTopics) {
					_, data, err := conn.Read(ctx)
					if err != nil {
						return fmt.Errorf("read: %w (seq %v, pending %v)", err, c.seq, c.pending)
					}
					if err := check(c, string(data)); err != nil {
						return err
					}
				}
				return nil
			}()
			results <- result{name, err}
		}(i, myTopics)
	}

	// Long-poll clients.
	for i := 0; i < lpClients; i++ {
		id := wsClients + i
		var myTopics []string
		for k := 0; k < topicsPer; k++ {
			tp := topicOf(id, k)
			myTopics = append(myTopics, tp)
			var n int
			fmt.Sscanf(tp, "load:%d", &n)
			subscribers[n]++
		}
		ready.Add(1)
		go func(name string, myTopics []string) {
			err := func() error {
				lp := &lpLoadClient{http: lpHTTP, base: hs + "/socket/longpoll?vsn=2.0.0"}
				if err := lp.open(ctx); err != nil {
					ready.Done()
					return err
				}
				c := &checker{name: name, seq: map[string]int64{}, fin: map[string]bool{}, pending: map[string]bool{}}
				var lines []string
				for k, tp := range myTopics {
					ref := fmt.Sprint(k + 1)
					lines = append(lines, fmt.Sprintf(`[%q,%q,%q,"phx_join",{}]`, ref, ref, tp))
					c.pending[ref] = true
				}
				if err := lp.post(ctx, strings.Join(lines, "\n")); err != nil {
					ready.Done()
					return err
				}
				for len(c.pending) > 0 {
					msgs, err := lp.poll(ctx)
					if err != nil {
						ready.Done()
						return err
					}
					for _, m := range msgs {
						if err := check(c, m); err != nil {
							ready.Done()
							return err
						}
					}
				}
				ready.Done()
				for !done(c, myTopics) {
					msgs, err := lp.poll(ctx)
					if err != nil {
						return fmt.Errorf("poll: %w (seq %v)", err, c.seq)
					}
					for _, m := range msgs {
						if err := check(c, m); err != nil {
							return err
						}
					}
				}
				return nil
			}()
			results <- result{name, err}
		}(fmt.Sprintf("lp%d", i), myTopics)
	}

	ready.Wait()
	// Publish: round-robin over the topics at publishRate.
	start := time.Now()
	var seq [topics]int64
	tick := time.NewTicker(time.Second / publishRate)
	for b := 0; b < broadcasts; b++ {
		<-tick.C
		n := b % topics
		seq[n]++
		if err := srv.Broadcast(fmt.Sprintf("load:%d", n), "tick", map[string]int64{"seq": seq[n]}); err != nil {
			t.Fatal(err)
		}
	}
	tick.Stop()
	for n := range seq {
		if err := srv.Broadcast(fmt.Sprintf("load:%d", n), "fin", map[string]int64{"last": seq[n]}); err != nil {
			t.Fatal(err)
		}
	}
	publishTime := time.Since(start)

	deadline := time.After(waitDelivery)
	for i := 0; i < wsClients+lpClients; i++ {
		select {
		case r := <-results:
			if r.err != nil {
				t.Errorf("%s: %v", r.name, r.err)
			}
		case <-deadline:
			t.Fatalf("only %d of %d clients received everything within %v", i, wsClients+lpClients, waitDelivery)
		}
	}
	deliveries := 0
	for n := range seq {
		deliveries += int(seq[n]) * subscribers[n]
	}
	t.Logf("%d broadcasts in %v, %d deliveries to %d WebSocket and %d long-poll clients, %d pushes answered; all in order, none lost or duplicated; slow clients dropped: %d",
		broadcasts, publishTime.Round(time.Millisecond), deliveries, wsClients, lpClients, wsClients*pushesPerWS, srv.Stats().SlowClientsClosed)
	if st := srv.Stats(); st.SlowClientsClosed != 0 || st.PolicyClosed != 0 {
		t.Errorf("clients were dropped: %+v", st)
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	lpTransport.CloseIdleConnections()
	httpSrv.Close()
	interopNoGoroutineLeak(t, baseline)
}

// loadRoom accepts every join and answers "echo" pushes.
type loadRoom struct{}

func (loadRoom) Join(*phx.Socket, phx.Payload) (any, error) { return nil, nil }

func (loadRoom) HandleIn(s *phx.Socket, event string, p phx.Payload) (any, error) {
	return json.RawMessage(p.Data), nil
}

// lpLoadClient is a minimal long-poll client for the load test; errors are
// returned, not reported, so it can run on any goroutine.
type lpLoadClient struct {
	http  *http.Client
	base  string
	token string
}

func (c *lpLoadClient) do(ctx context.Context, method, body string) (status int, token string, msgs []string, err error) {
	u := c.base
	if c.token != "" {
		u += "&token=" + url.QueryEscape(c.token)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		return 0, "", nil, err
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-ndjson")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", nil, err
	}
	var r struct {
		Status   int      `json:"status"`
		Token    string   `json:"token"`
		Messages []string `json:"messages"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, "", nil, fmt.Errorf("bad long-poll body %s", b)
	}
	return r.Status, r.Token, r.Messages, nil
}

func (c *lpLoadClient) open(ctx context.Context) error {
	status, token, _, err := c.do(ctx, http.MethodGet, "")
	if err != nil {
		return err
	}
	if status != 410 || token == "" {
		return fmt.Errorf("open: status %d", status)
	}
	c.token = token
	return nil
}

func (c *lpLoadClient) post(ctx context.Context, body string) error {
	status, _, _, err := c.do(ctx, http.MethodPost, body)
	if err == nil && status != 200 {
		err = fmt.Errorf("POST: status %d", status)
	}
	return err
}

func (c *lpLoadClient) poll(ctx context.Context) ([]string, error) {
	status, _, msgs, err := c.do(ctx, http.MethodGet, "")
	if err != nil {
		return nil, err
	}
	switch status {
	case 200, 204:
		return msgs, nil
	}
	return nil, fmt.Errorf("poll: status %d", status)
}
