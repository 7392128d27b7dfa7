// Package phxotel reports a phx.Server's lifecycle to OpenTelemetry: spans
// for connects, joins and HandleIn calls, children of the span of the HTTP
// request that opened the connection (an otelhttp handler, or any
// middleware that puts a span in the request's context), and the same
// figures as metrics through the OpenTelemetry metrics API.
//
//	obs, err := phxotel.New(phxotel.Options{})  // global providers
//	srv := phx.NewServer(&phx.Options{Telemetry: obs.Telemetry()})
//
// It is built on [phx.Telemetry] only, and lives in a module of its own so
// that the core module never requires OpenTelemetry.
package phxotel

import (
	"context"
	"time"

	"github.com/phxgo/phx"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// instrumentation is the scope name of the tracer and meter.
const instrumentation = "github.com/phxgo/phx/telemetry/phxotel"

// Options configures an Observer. The zero value uses the global providers.
type Options struct {
	// TracerProvider makes the spans; nil means otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MeterProvider makes the instruments; nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// Observer turns a server's telemetry events into spans and metrics.
type Observer struct {
	tracer trace.Tracer

	connections  metric.Int64UpDownCounter
	connects     metric.Int64Counter
	connectTime  metric.Float64Histogram
	closes       metric.Int64Counter
	joins        metric.Int64Counter
	joinTime     metric.Float64Histogram
	handleInTime metric.Float64Histogram
	terminations metric.Int64Counter
	framesIn     metric.Int64Counter
	framesOut    metric.Int64Counter
}

// New makes an Observer, creating its instruments.
func New(opts Options) (*Observer, error) {
	tp, mp := opts.TracerProvider, opts.MeterProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(instrumentation)
	o := &Observer{tracer: tp.Tracer(instrumentation)}
	var err error
	counter := func(name, desc string) metric.Int64Counter {
		var c metric.Int64Counter
		if err == nil {
			c, err = m.Int64Counter(name, metric.WithDescription(desc))
		}
		return c
	}
	seconds := func(name, desc string) metric.Float64Histogram {
		var h metric.Float64Histogram
		if err == nil {
			h, err = m.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"))
		}
		return h
	}
	if o.connections, err = m.Int64UpDownCounter("phx.connections", metric.WithDescription("Open connections.")); err != nil {
		return nil, err
	}
	o.connects = counter("phx.connects", "Connection attempts that reached Connect, by outcome.")
	o.connectTime = seconds("phx.connect.duration", "Time Connect and ID took.")
	o.closes = counter("phx.closes", "Connections ended, by close code.")
	o.joins = counter("phx.joins", "Joins answered, by route and status.")
	o.joinTime = seconds("phx.join.duration", "Time from a join's arrival to its answer.")
	o.handleInTime = seconds("phx.handle_in.duration", "Time HandleIn took, by route, event and reply status.")
	o.terminations = counter("phx.channel.terminations", "Joined channels ended, by route.")
	o.framesIn = counter("phx.frames.in", "Frames clients sent.")
	o.framesOut = counter("phx.frames.out", "Frames queued for clients.")
	if err != nil {
		return nil, err
	}
	return o, nil
}

// Telemetry returns the hooks to set as phx.Options.Telemetry.
func (o *Observer) Telemetry() *phx.Telemetry {
	return &phx.Telemetry{
		SocketConnected:   o.socketConnected,
		SocketClosed:      o.socketClosed,
		ChannelJoined:     o.channelJoined,
		ChannelHandledIn:  o.channelHandledIn,
		ChannelTerminated: o.channelTerminated,
	}
}

// span records an operation that took d and has just finished, as a child
// of the span in ctx.
func (o *Observer) span(ctx context.Context, name string, d time.Duration, attrs []attribute.KeyValue, failed string) {
	if ctx == nil {
		ctx = context.Background()
	}
	end := time.Now()
	_, sp := o.tracer.Start(ctx, name,
		trace.WithTimestamp(end.Add(-d)), trace.WithAttributes(attrs...), trace.WithSpanKind(trace.SpanKindServer))
	if failed != "" {
		sp.SetStatus(codes.Error, failed)
	}
	sp.End(trace.WithTimestamp(end))
}

func (o *Observer) socketConnected(e phx.SocketConnected) {
	ctx := background(e.Context)
	outcome, failed := "ok", ""
	if e.Err != nil {
		outcome, failed = "refused", e.Err.Error()
	}
	attrs := []attribute.KeyValue{
		attribute.String("phx.transport", e.Transport),
		attribute.String("phx.vsn", e.Vsn),
		attribute.String("phx.outcome", outcome),
	}
	o.span(ctx, "phx.connect", e.Duration, attrs, failed)
	set := metric.WithAttributes(attrs[0], attrs[2])
	o.connects.Add(ctx, 1, set)
	o.connectTime.Record(ctx, e.Duration.Seconds(), set)
	if e.Err == nil {
		o.connections.Add(ctx, 1, metric.WithAttributes(attrs[0]))
	}
}

func (o *Observer) socketClosed(e phx.SocketClosed) {
	ctx := context.WithoutCancel(background(e.Context))
	transport := attribute.String("phx.transport", e.Transport)
	o.connections.Add(ctx, -1, metric.WithAttributes(transport))
	o.closes.Add(ctx, 1, metric.WithAttributes(transport, attribute.Int("phx.close_code", e.Code)))
	o.framesIn.Add(ctx, e.FramesIn, metric.WithAttributes(transport))
	o.framesOut.Add(ctx, e.FramesOut, metric.WithAttributes(transport))
}

func (o *Observer) channelJoined(e phx.ChannelJoined) {
	ctx := background(e.Context)
	attrs := []attribute.KeyValue{
		attribute.String("phx.route", e.Route),
		attribute.String("phx.status", e.Status),
	}
	failed := ""
	if e.Status != "ok" {
		failed = "join " + e.Status
	}
	o.span(ctx, "phx.join "+e.Route, e.Duration,
		append(attrs, attribute.String("phx.topic", e.Topic), attribute.String("phx.transport", e.Transport)), failed)
	set := metric.WithAttributes(attrs...)
	o.joins.Add(ctx, 1, set)
	o.joinTime.Record(ctx, e.Duration.Seconds(), set)
}

func (o *Observer) channelHandledIn(e phx.ChannelHandledIn) {
	ctx := background(e.Context)
	attrs := []attribute.KeyValue{
		attribute.String("phx.route", e.Route),
		attribute.String("phx.event", e.Event),
		attribute.String("phx.status", e.Status),
	}
	failed := ""
	if e.Status == "crash" || e.Status == "error" {
		failed = "handle_in " + e.Status
	}
	o.span(ctx, "phx.handle_in "+e.Event, e.Duration, append(attrs, attribute.String("phx.topic", e.Topic)), failed)
	o.handleInTime.Record(ctx, e.Duration.Seconds(), metric.WithAttributes(attrs...))
}

func (o *Observer) channelTerminated(e phx.ChannelTerminated) {
	ctx := context.WithoutCancel(background(e.Context))
	o.terminations.Add(ctx, 1, metric.WithAttributes(attribute.String("phx.route", e.Route)))
}

func background(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}
