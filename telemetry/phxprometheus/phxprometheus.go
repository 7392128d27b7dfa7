// Package phxprometheus exports a phx server's telemetry as Prometheus
// metrics: connections and channels open, connects, closes, frames, joins,
// and how long Connect, Join and HandleIn take.
//
// Build a [Collector] with [New], which registers it, and set its hooks as
// the server's [phx.Options.Telemetry]:
//
//	reg := prometheus.NewRegistry()
//	m, err := phxprometheus.New(phxprometheus.Options{Registerer: reg})
//	if err != nil { ... }
//	srv := phx.NewServer(&phx.Options{Telemetry: m.Telemetry()})
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// An application with hooks of its own combines them with [Chain]:
//
//	Telemetry: phxprometheus.Chain(m.Telemetry(), &phx.Telemetry{ChannelJoined: audit})
//
// Every metric is named phx_..., durations are histograms in seconds, and
// every label has a bounded set of values: the transport's name, the route
// pattern a topic matched ("room:*", never the topic itself), statuses and
// close codes the server produces, and HandleIn events, kept to
// [Options.MaxEvents] names per route (see [Options.EventLabel]). The
// metrics are:
//
//	phx_sockets_open{transport}                             gauge
//	phx_socket_connects_total{transport,outcome}            counter: outcome ok, refused or shutdown
//	phx_socket_connect_duration_seconds{transport}          histogram: Connect and ID
//	phx_socket_closes_total{transport,code}                 counter: code is the WebSocket close code
//	phx_socket_frames_in_total{transport}                   counter: added when a connection closes
//	phx_socket_frames_out_total{transport}                  counter: added when a connection closes
//	phx_channels_open{route}                                gauge
//	phx_channel_joins_total{route,status}                   counter: status ok, error, crash or timeout
//	phx_channel_join_duration_seconds{route}                histogram
//	phx_channel_handle_in_duration_seconds{route,event,status} histogram: status ok, error, noreply, crash, ...
//	phx_channel_terminations_total{route,reason}            counter: reason left, closed, shutdown, crash, ...
//
// docs/observability.md in the repository describes each one, with alert
// rules.
package phxprometheus

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/phxgo/phx"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultBuckets are the upper bounds, in seconds, of the duration
// histograms when [Options.Buckets] is nil: from 100µs (a HandleIn that
// only replies) to 10s (a Join that waits on a slow database).
var DefaultBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// DefaultMaxEvents is how many distinct HandleIn event names a route keeps
// as label values when [Options.MaxEvents] is 0 or less.
const DefaultMaxEvents = 64

// OtherEvent is the event label of a HandleIn whose event is past a
// route's [Options.MaxEvents] distinct names.
const OtherEvent = "other"

// ErrInvalidBuckets is returned by [New] when [Options.Buckets] is not
// strictly increasing.
var ErrInvalidBuckets = errors.New("phxprometheus: histogram buckets must be strictly increasing")

// Options configures [New]. The zero value registers with
// prometheus.DefaultRegisterer and uses [DefaultBuckets].
type Options struct {
	// Registerer is where New registers the collector; nil means
	// prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
	// Buckets are the upper bounds, in seconds, of every duration
	// histogram; nil means DefaultBuckets.
	Buckets []float64
	// ConstLabels are added to every metric, for instance
	// {"server": "api"} to tell apart two phx servers registered with one
	// registry.
	ConstLabels prometheus.Labels
	// EventLabel, when set, turns a HandleIn's route and event into the
	// event label value; it must return few distinct values (return
	// OtherEvent for events you do not care about). When nil, each route
	// keeps the first MaxEvents distinct event names it sees and labels the
	// rest OtherEvent: events are chosen by the client, and a client
	// pushing made-up events would otherwise create series without bound.
	EventLabel func(route, event string) string
	// MaxEvents bounds the event names per route when EventLabel is nil;
	// 0 or less means DefaultMaxEvents.
	MaxEvents int
}

// Collector holds the metrics of one phx server. It is a
// prometheus.Collector, registered by [New]; feed it by setting
// [Collector.Telemetry] as the server's [phx.Options.Telemetry]. Its
// methods are safe for concurrent use.
type Collector struct {
	socketsOpen     *prometheus.GaugeVec
	connects        *prometheus.CounterVec
	connectDuration *prometheus.HistogramVec
	closes          *prometheus.CounterVec
	framesIn        *prometheus.CounterVec
	framesOut       *prometheus.CounterVec
	channelsOpen    *prometheus.GaugeVec
	joins           *prometheus.CounterVec
	joinDuration    *prometheus.HistogramVec
	handleIn        *prometheus.HistogramVec
	terminations    *prometheus.CounterVec

	eventLabel func(route, event string) string
	maxEvents  int
	eventsMu   sync.RWMutex
	events     map[string]map[string]struct{} // route -> event names kept

	telemetry *phx.Telemetry
}

// New builds a Collector and registers it with opts.Registerer. It returns
// [ErrInvalidBuckets] for buckets that do not increase, and the
// registerer's error (a prometheus.AlreadyRegisteredError when the metrics
// are already registered with the same const labels), wrapped.
func New(opts Options) (*Collector, error) {
	buckets := opts.Buckets
	if buckets == nil {
		buckets = DefaultBuckets
	}
	for i := 1; i < len(buckets); i++ {
		if !(buckets[i] > buckets[i-1]) {
			return nil, fmt.Errorf("%w: %v", ErrInvalidBuckets, buckets)
		}
	}
	buckets = slices.Clone(buckets)
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.DefaultRegisterer
	}
	cl := opts.ConstLabels
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "phx", Name: name, Help: help, ConstLabels: cl,
		}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "phx", Name: name, Help: help, ConstLabels: cl,
		}, labels)
	}
	histogram := func(name, help string, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "phx", Name: name, Help: help, ConstLabels: cl, Buckets: buckets,
		}, labels)
	}
	c := &Collector{
		socketsOpen: gauge("sockets_open",
			"Socket connections open now, by transport.", "transport"),
		connects: counter("socket_connects_total",
			"Connection attempts that reached Connect, by transport and outcome (ok, refused, shutdown).", "transport", "outcome"),
		connectDuration: histogram("socket_connect_duration_seconds",
			"Time taken by Connect and ID for a connection attempt, by transport.", "transport"),
		closes: counter("socket_closes_total",
			"Connections ended, by transport and the WebSocket close code sent (1001 when the client left).", "transport", "code"),
		framesIn: counter("socket_frames_in_total",
			"Frames received from clients, by transport; counted when their connection closes.", "transport"),
		framesOut: counter("socket_frames_out_total",
			"Frames queued for clients, by transport; counted when their connection closes.", "transport"),
		channelsOpen: gauge("channels_open",
			"Channels joined now, by route pattern.", "route"),
		joins: counter("channel_joins_total",
			"Joins answered, by route pattern and status (ok, error, crash, timeout).", "route", "status"),
		joinDuration: histogram("channel_join_duration_seconds",
			"Time from a join to its reply, by route pattern.", "route"),
		handleIn: histogram("channel_handle_in_duration_seconds",
			"Time taken by HandleIn, by route pattern, event and reply status (noreply for none, crash for a panic).", "route", "event", "status"),
		terminations: counter("channel_terminations_total",
			"Joined channels ended, by route pattern and reason (left, stopped, expired, closed, shutdown, duplicate_join, overloaded, crash, error).", "route", "reason"),
		eventLabel: opts.EventLabel,
		maxEvents:  opts.MaxEvents,
		events:     map[string]map[string]struct{}{},
	}
	if c.maxEvents <= 0 {
		c.maxEvents = DefaultMaxEvents
	}
	c.telemetry = &phx.Telemetry{
		SocketConnected:   c.socketConnected,
		SocketClosed:      c.socketClosed,
		ChannelJoined:     c.channelJoined,
		ChannelHandledIn:  c.channelHandledIn,
		ChannelTerminated: c.channelTerminated,
	}
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("phxprometheus: registering the collector: %w", err)
	}
	return c, nil
}

// Telemetry returns the hooks that feed the collector, for
// [phx.Options.Telemetry] (combine them with an application's own through
// [Chain]). It returns the same value on every call.
func (c *Collector) Telemetry() *phx.Telemetry { return c.telemetry }

func (c *Collector) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		c.socketsOpen, c.connects, c.connectDuration, c.closes, c.framesIn, c.framesOut,
		c.channelsOpen, c.joins, c.joinDuration, c.handleIn, c.terminations,
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.collectors() {
		m.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.collectors() {
		m.Collect(ch)
	}
}

func (c *Collector) socketConnected(e phx.SocketConnected) {
	outcome := "ok"
	switch {
	case errors.Is(e.Err, phx.ErrServerClosed):
		outcome = "shutdown"
	case e.Err != nil:
		outcome = "refused"
	}
	c.connects.WithLabelValues(e.Transport, outcome).Inc()
	c.connectDuration.WithLabelValues(e.Transport).Observe(e.Duration.Seconds())
	if e.Err == nil {
		c.socketsOpen.WithLabelValues(e.Transport).Inc()
	}
}

func (c *Collector) socketClosed(e phx.SocketClosed) {
	c.socketsOpen.WithLabelValues(e.Transport).Dec()
	c.closes.WithLabelValues(e.Transport, strconv.Itoa(e.Code)).Inc()
	if e.FramesIn > 0 {
		c.framesIn.WithLabelValues(e.Transport).Add(float64(e.FramesIn))
	}
	if e.FramesOut > 0 {
		c.framesOut.WithLabelValues(e.Transport).Add(float64(e.FramesOut))
	}
}

func (c *Collector) channelJoined(e phx.ChannelJoined) {
	c.joins.WithLabelValues(e.Route, e.Status).Inc()
	c.joinDuration.WithLabelValues(e.Route).Observe(e.Duration.Seconds())
	if e.Status == "ok" {
		c.channelsOpen.WithLabelValues(e.Route).Inc()
	}
}

func (c *Collector) channelHandledIn(e phx.ChannelHandledIn) {
	status := e.Status
	if status == "" {
		status = "noreply"
	}
	c.handleIn.WithLabelValues(e.Route, c.event(e.Route, e.Event), status).Observe(e.Duration.Seconds())
}

func (c *Collector) channelTerminated(e phx.ChannelTerminated) {
	c.channelsOpen.WithLabelValues(e.Route).Dec()
	c.terminations.WithLabelValues(e.Route, terminationReason(e.Reason)).Inc()
}

// event returns the event label for a HandleIn of event on route.
func (c *Collector) event(route, event string) string {
	if c.eventLabel != nil {
		return c.eventLabel(route, event)
	}
	c.eventsMu.RLock()
	_, ok := c.events[route][event]
	c.eventsMu.RUnlock()
	if ok {
		return event
	}
	c.eventsMu.Lock()
	defer c.eventsMu.Unlock()
	kept := c.events[route]
	if kept == nil {
		kept = map[string]struct{}{}
		c.events[route] = kept
	}
	if _, ok := kept[event]; ok {
		return event
	}
	if len(kept) >= c.maxEvents {
		return OtherEvent
	}
	kept[event] = struct{}{}
	return event
}

// terminationReason is the reason label of a channel's Terminate reason.
func terminationReason(err error) string {
	var panicked *phx.PanicError
	switch {
	case errors.Is(err, phx.ErrLeft):
		return "left"
	case errors.Is(err, phx.ErrStopped):
		return "stopped"
	case errors.Is(err, phx.ErrExpired):
		return "expired"
	case errors.Is(err, phx.ErrClosed):
		return "closed"
	case errors.Is(err, phx.ErrServerClosed):
		return "shutdown"
	case errors.Is(err, phx.ErrDuplicateJoin):
		return "duplicate_join"
	case errors.Is(err, phx.ErrChannelOverloaded):
		return "overloaded"
	case errors.As(err, &panicked):
		return "crash"
	default:
		return "error"
	}
}
