package phxprometheus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newCollector(t *testing.T, opts Options) (*Collector, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, reg
}

// The hooks, fed by hand, move the metrics their events describe.
func TestHooks(t *testing.T) {
	c, _ := newCollector(t, Options{Buckets: []float64{0.001, 0.01, 0.1}})
	tel := c.Telemetry()
	tel.SocketConnected(phx.SocketConnected{Transport: "websocket", Duration: 2 * time.Millisecond})
	tel.SocketConnected(phx.SocketConnected{Transport: "websocket", Duration: 500 * time.Microsecond})
	tel.SocketConnected(phx.SocketConnected{Transport: "longpoll", Duration: time.Millisecond / 2})
	tel.SocketConnected(phx.SocketConnected{Transport: "websocket", Err: &phx.RefusedError{Status: 403, Err: errors.New("bad token")}})
	tel.SocketConnected(phx.SocketConnected{Transport: "websocket", Err: phx.ErrServerClosed})
	tel.ChannelJoined(phx.ChannelJoined{Route: "room:*", Topic: "room:a", Transport: "websocket", Status: "ok", Duration: 5 * time.Millisecond})
	tel.ChannelJoined(phx.ChannelJoined{Route: "room:*", Topic: "room:b", Transport: "websocket", Status: "ok", Duration: 50 * time.Millisecond})
	tel.ChannelJoined(phx.ChannelJoined{Route: "room:*", Topic: "room:c", Transport: "websocket", Status: "error"})
	tel.ChannelHandledIn(phx.ChannelHandledIn{Route: "room:*", Topic: "room:a", Event: "new_msg", Status: "ok", Duration: time.Millisecond / 2})
	tel.ChannelHandledIn(phx.ChannelHandledIn{Route: "room:*", Topic: "room:b", Event: "new_msg", Status: "ok", Duration: 20 * time.Millisecond})
	tel.ChannelHandledIn(phx.ChannelHandledIn{Route: "room:*", Topic: "room:a", Event: "typing", Status: ""})
	tel.ChannelTerminated(phx.ChannelTerminated{Route: "room:*", Topic: "room:a", Reason: phx.ErrLeft})
	tel.SocketClosed(phx.SocketClosed{Transport: "websocket", Code: 1001, FramesIn: 7, FramesOut: 9})

	want := `
# HELP phx_channel_handle_in_duration_seconds Time taken by HandleIn, by route pattern, event and reply status (noreply for none, crash for a panic).
# TYPE phx_channel_handle_in_duration_seconds histogram
phx_channel_handle_in_duration_seconds_bucket{event="new_msg",route="room:*",status="ok",le="0.001"} 1
phx_channel_handle_in_duration_seconds_bucket{event="new_msg",route="room:*",status="ok",le="0.01"} 1
phx_channel_handle_in_duration_seconds_bucket{event="new_msg",route="room:*",status="ok",le="0.1"} 2
phx_channel_handle_in_duration_seconds_bucket{event="new_msg",route="room:*",status="ok",le="+Inf"} 2
phx_channel_handle_in_duration_seconds_sum{event="new_msg",route="room:*",status="ok"} 0.0205
phx_channel_handle_in_duration_seconds_count{event="new_msg",route="room:*",status="ok"} 2
phx_channel_handle_in_duration_seconds_bucket{event="typing",route="room:*",status="noreply",le="0.001"} 1
phx_channel_handle_in_duration_seconds_bucket{event="typing",route="room:*",status="noreply",le="0.01"} 1
phx_channel_handle_in_duration_seconds_bucket{event="typing",route="room:*",status="noreply",le="0.1"} 1
phx_channel_handle_in_duration_seconds_bucket{event="typing",route="room:*",status="noreply",le="+Inf"} 1
phx_channel_handle_in_duration_seconds_sum{event="typing",route="room:*",status="noreply"} 0
phx_channel_handle_in_duration_seconds_count{event="typing",route="room:*",status="noreply"} 1
# HELP phx_channel_joins_total Joins answered, by route pattern and status (ok, error, crash, timeout).
# TYPE phx_channel_joins_total counter
phx_channel_joins_total{route="room:*",status="error"} 1
phx_channel_joins_total{route="room:*",status="ok"} 2
# HELP phx_channels_open Channels joined now, by route pattern.
# TYPE phx_channels_open gauge
phx_channels_open{route="room:*"} 1
# HELP phx_channel_terminations_total Joined channels ended, by route pattern and reason (left, stopped, expired, closed, shutdown, duplicate_join, overloaded, crash, error).
# TYPE phx_channel_terminations_total counter
phx_channel_terminations_total{reason="left",route="room:*"} 1
# HELP phx_socket_closes_total Connections ended, by transport and the WebSocket close code sent (1001 when the client left).
# TYPE phx_socket_closes_total counter
phx_socket_closes_total{code="1001",transport="websocket"} 1
# HELP phx_socket_connects_total Connection attempts that reached Connect, by transport and outcome (ok, refused, shutdown).
# TYPE phx_socket_connects_total counter
phx_socket_connects_total{outcome="ok",transport="longpoll"} 1
phx_socket_connects_total{outcome="ok",transport="websocket"} 2
phx_socket_connects_total{outcome="refused",transport="websocket"} 1
phx_socket_connects_total{outcome="shutdown",transport="websocket"} 1
# HELP phx_socket_frames_in_total Frames received from clients, by transport; counted when their connection closes.
# TYPE phx_socket_frames_in_total counter
phx_socket_frames_in_total{transport="websocket"} 7
# HELP phx_socket_frames_out_total Frames queued for clients, by transport; counted when their connection closes.
# TYPE phx_socket_frames_out_total counter
phx_socket_frames_out_total{transport="websocket"} 9
# HELP phx_sockets_open Socket connections open now, by transport.
# TYPE phx_sockets_open gauge
phx_sockets_open{transport="longpoll"} 1
phx_sockets_open{transport="websocket"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"phx_channel_handle_in_duration_seconds", "phx_channel_joins_total", "phx_channels_open",
		"phx_channel_terminations_total", "phx_socket_closes_total", "phx_socket_connects_total",
		"phx_socket_frames_in_total", "phx_socket_frames_out_total", "phx_sockets_open"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "phx_socket_connect_duration_seconds"); n != 2 {
		t.Errorf("phx_socket_connect_duration_seconds has %d series, want 2 (websocket, longpoll)", n)
	}
}

// The histograms count every observation in its bucket, with the durations
// in seconds.
func TestHistogramSeconds(t *testing.T) {
	c, _ := newCollector(t, Options{Buckets: []float64{0.01, 1}})
	c.Telemetry().ChannelJoined(phx.ChannelJoined{Route: "r:*", Status: "timeout", Duration: 10 * time.Second})
	c.Telemetry().ChannelJoined(phx.ChannelJoined{Route: "r:*", Status: "ok", Duration: 5 * time.Millisecond})
	want := `
# HELP phx_channel_join_duration_seconds Time from a join to its reply, by route pattern.
# TYPE phx_channel_join_duration_seconds histogram
phx_channel_join_duration_seconds_bucket{route="r:*",le="0.01"} 1
phx_channel_join_duration_seconds_bucket{route="r:*",le="1"} 1
phx_channel_join_duration_seconds_bucket{route="r:*",le="+Inf"} 2
phx_channel_join_duration_seconds_sum{route="r:*"} 10.005
phx_channel_join_duration_seconds_count{route="r:*"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "phx_channel_join_duration_seconds"); err != nil {
		t.Error(err)
	}
}

// The metric names and help texts follow Prometheus's conventions, as
// client_golang's linter checks them.
func TestLint(t *testing.T) {
	c, _ := newCollector(t, Options{})
	feedAll(c.Telemetry())
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	if n := testutil.CollectAndCount(c); n != 11 {
		t.Errorf("%d series after one event of each kind, want 11", n)
	}
}

// feedAll sends one event of each kind.
func feedAll(tel *phx.Telemetry) {
	tel.SocketConnected(phx.SocketConnected{Transport: "websocket"})
	tel.ChannelJoined(phx.ChannelJoined{Route: "room:*", Status: "ok"})
	tel.ChannelHandledIn(phx.ChannelHandledIn{Route: "room:*", Event: "e", Status: "ok"})
	tel.ChannelTerminated(phx.ChannelTerminated{Route: "room:*", Reason: phx.ErrClosed})
	tel.SocketClosed(phx.SocketClosed{Transport: "websocket", Code: 1000, FramesIn: 1, FramesOut: 1})
}

// Past MaxEvents distinct events on a route, events are labelled "other";
// each route has its own allowance.
func TestEventCap(t *testing.T) {
	c, _ := newCollector(t, Options{MaxEvents: 2})
	tel := c.Telemetry()
	for _, ev := range []string{"a", "b", "c", "a", "d", "b"} {
		tel.ChannelHandledIn(phx.ChannelHandledIn{Route: "room:*", Event: ev, Status: "ok"})
	}
	tel.ChannelHandledIn(phx.ChannelHandledIn{Route: "user:*", Event: "c", Status: "ok"})
	counts := map[string]uint64{}
	for _, m := range gatherHistograms(t, c, "phx_channel_handle_in_duration_seconds") {
		counts[m.labels["route"]+" "+m.labels["event"]] = m.count
	}
	want := map[string]uint64{"room:* a": 2, "room:* b": 2, "room:* other": 2, "user:* c": 1}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("handle_in counts by route and event: %v, want %v", counts, want)
	}
}

// The default allowance is DefaultMaxEvents, and holds under concurrent
// events.
func TestEventCapDefaultConcurrent(t *testing.T) {
	c, _ := newCollector(t, Options{})
	tel := c.Telemetry()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				tel.ChannelHandledIn(phx.ChannelHandledIn{Route: "room:*", Event: fmt.Sprintf("ev%d", (i*4+g)%200), Status: "ok"})
			}
		})
	}
	wg.Wait()
	if n := testutil.CollectAndCount(c, "phx_channel_handle_in_duration_seconds"); n != DefaultMaxEvents+1 {
		t.Errorf("%d handle_in series, want %d events and %q", n, DefaultMaxEvents, OtherEvent)
	}
}

// EventLabel replaces the allowance.
func TestEventLabel(t *testing.T) {
	c, _ := newCollector(t, Options{
		MaxEvents: 1,
		EventLabel: func(route, event string) string {
			if strings.HasPrefix(event, "msg:") {
				return "msg"
			}
			return event
		},
	})
	tel := c.Telemetry()
	for _, ev := range []string{"msg:1", "msg:2", "typing"} {
		tel.ChannelHandledIn(phx.ChannelHandledIn{Route: "room:*", Event: ev, Status: "error"})
	}
	got := map[string]uint64{}
	for _, m := range gatherHistograms(t, c, "phx_channel_handle_in_duration_seconds") {
		got[m.labels["event"]+" "+m.labels["status"]] = m.count
	}
	if want := map[string]uint64{"msg error": 2, "typing error": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("handle_in counts %v, want %v", got, want)
	}
}

func TestTerminationReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{phx.ErrLeft, "left"},
		{phx.ErrStopped, "stopped"},
		{fmt.Errorf("kicked: %w", phx.ErrStopped), "stopped"},
		{phx.ErrClosed, "closed"},
		{phx.ErrServerClosed, "shutdown"},
		{phx.ErrDuplicateJoin, "duplicate_join"},
		{phx.ErrExpired, "expired"},
		{fmt.Errorf("connection ended: %w", phx.ErrExpired), "expired"},
		{phx.ErrChannelOverloaded, "overloaded"},
		{&phx.PanicError{Value: "boom"}, "crash"},
		{errors.New("app reason"), "error"},
		{nil, "error"},
	} {
		if got := terminationReason(tc.err); got != tc.want {
			t.Errorf("terminationReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Options{Registerer: reg, Buckets: []float64{1, 1}}); !errors.Is(err, ErrInvalidBuckets) {
		t.Errorf("New with buckets 1, 1: %v, want ErrInvalidBuckets", err)
	}
	if _, err := New(Options{Registerer: reg, Buckets: []float64{2, 1}}); !errors.Is(err, ErrInvalidBuckets) {
		t.Errorf("New with buckets 2, 1: %v, want ErrInvalidBuckets", err)
	}
	if _, err := New(Options{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{Registerer: reg})
	var dup prometheus.AlreadyRegisteredError
	if !errors.As(err, &dup) {
		t.Errorf("second New on one registry: %v, want an AlreadyRegisteredError", err)
	}
	// Two servers on one registry, told apart by a const label (which all
	// the collectors of a registry must then have).
	reg = prometheus.NewRegistry()
	for _, name := range []string{"a", "b"} {
		if _, err := New(Options{Registerer: reg, ConstLabels: prometheus.Labels{"server": name}}); err != nil {
			t.Errorf("New with server=%s: %v", name, err)
		}
	}
}

// New copies Buckets: changing the caller's slice later changes nothing.
func TestBucketsCopied(t *testing.T) {
	b := []float64{0.5, 1}
	c, _ := newCollector(t, Options{Buckets: b})
	b[0] = 5
	c.Telemetry().ChannelJoined(phx.ChannelJoined{Route: "r:*", Status: "ok", Duration: 700 * time.Millisecond})
	m := gatherHistograms(t, c, "phx_channel_join_duration_seconds")[0]
	if m.buckets[0.5] != 0 || m.buckets[1] != 1 {
		t.Errorf("buckets %v, want 0.5: 0, 1: 1", m.buckets)
	}
}

// A real server, a real WebSocket client: connect, join, push, leave, and
// close; then a refused connection.
func TestServer(t *testing.T) {
	c, _ := newCollector(t, Options{})
	srv := phx.NewServer(&phx.Options{
		Logger:    slog.New(slog.DiscardHandler),
		Telemetry: c.Telemetry(),
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			if info.Params.Get("token") != "good" {
				return nil, errors.New("bad token")
			}
			return phx.Assigns{}, nil
		},
	})
	srv.Channel("room:*", func() phx.Channel { return echoRoom{} })
	hs := httptest.NewServer(srv)
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket/websocket?vsn=2.0.0&token="
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ws, _, err := websocket.Dial(ctx, url+"good", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	waitFor(t, "the socket gauge at 1", func() bool {
		return testutil.ToFloat64(c.socketsOpen.WithLabelValues("websocket")) == 1
	})
	exchange := func(frame, wantIn string) {
		t.Helper()
		if err := ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		_, reply, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(reply), wantIn) {
			t.Fatalf("reply to %s: %s, want it to hold %s", frame, reply, wantIn)
		}
	}
	exchange(`["1","1","room:lobby","phx_join",{}]`, `"status":"ok"`)
	exchange(`["1","2","room:lobby","echo",{}]`, `"status":"ok"`)
	exchange(`["1","3","room:lobby","fail",{}]`, `"status":"error"`)
	waitFor(t, "a join and a channel open", func() bool {
		return testutil.ToFloat64(c.joins.WithLabelValues("room:*", "ok")) == 1 &&
			testutil.ToFloat64(c.channelsOpen.WithLabelValues("room:*")) == 1
	})
	exchange(`["1","4","room:lobby","phx_leave",{}]`, `"status":"ok"`)
	waitFor(t, "the channel gauge back at 0", func() bool {
		return testutil.ToFloat64(c.channelsOpen.WithLabelValues("room:*")) == 0 &&
			testutil.ToFloat64(c.terminations.WithLabelValues("room:*", "left")) == 1
	})
	ws.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "the socket closed", func() bool {
		return testutil.ToFloat64(c.socketsOpen.WithLabelValues("websocket")) == 0 &&
			testutil.ToFloat64(c.closes.WithLabelValues("websocket", "1001")) == 1
	})
	if in := testutil.ToFloat64(c.framesIn.WithLabelValues("websocket")); in != 4 {
		t.Errorf("frames in: %v, want 4", in)
	}
	if out := testutil.ToFloat64(c.framesOut.WithLabelValues("websocket")); out < 4 {
		t.Errorf("frames out: %v, want at least 4 replies", out)
	}
	handled := map[string]uint64{}
	for _, m := range gatherHistograms(t, c, "phx_channel_handle_in_duration_seconds") {
		handled[m.labels["event"]+" "+m.labels["status"]] = m.count
	}
	if want := map[string]uint64{"echo ok": 1, "fail error": 1}; fmt.Sprint(handled) != fmt.Sprint(want) {
		t.Errorf("handle_in counts %v, want %v", handled, want)
	}

	if _, _, err := websocket.Dial(ctx, url+"bad", nil); err == nil {
		t.Fatal("a bad token was accepted")
	}
	if got := testutil.ToFloat64(c.connects.WithLabelValues("websocket", "refused")); got != 1 {
		t.Errorf("refused connects: %v, want 1", got)
	}
	if got := testutil.ToFloat64(c.connects.WithLabelValues("websocket", "ok")); got != 1 {
		t.Errorf("accepted connects: %v, want 1", got)
	}
	if got := testutil.ToFloat64(c.socketsOpen.WithLabelValues("websocket")); got != 0 {
		t.Errorf("sockets open after a refusal: %v, want 0", got)
	}
}

type echoRoom struct{}

func (echoRoom) Join(*phx.Socket, phx.Payload) (any, error) { return nil, nil }

func (echoRoom) HandleIn(_ *phx.Socket, event string, _ phx.Payload) (any, error) {
	if event == "fail" {
		return nil, phx.Errorf("failed")
	}
	return nil, nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// histogram is one histogram series as gathered.
type histogram struct {
	labels  map[string]string
	count   uint64
	buckets map[float64]uint64 // upper bound -> cumulative count
}

func gatherHistograms(t *testing.T, c prometheus.Collector, name string) []histogram {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []histogram
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			h := histogram{labels: map[string]string{}, count: m.GetHistogram().GetSampleCount(), buckets: map[float64]uint64{}}
			for _, l := range m.GetLabel() {
				h.labels[l.GetName()] = l.GetValue()
			}
			for _, b := range m.GetHistogram().GetBucket() {
				h.buckets[b.GetUpperBound()] = b.GetCumulativeCount()
			}
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s series", name)
	}
	return out
}

// docs/observability.md and the package comment describe every metric.
func TestDocsListEveryMetric(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "observability.md"))
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := os.ReadFile("phxprometheus.go")
	if err != nil {
		t.Fatal(err)
	}
	c, reg := newCollector(t, Options{})
	feedAll(c.Telemetry())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 11 {
		t.Errorf("%d metric families, want 11", len(families))
	}
	for _, f := range families {
		if !strings.Contains(string(doc), "| `"+f.GetName()+"` |") {
			t.Errorf("docs/observability.md has no row for %s", f.GetName())
		}
		if !strings.Contains(string(pkg), "//\t"+f.GetName()+"{") {
			t.Errorf("the package comment does not list %s", f.GetName())
		}
	}
}
