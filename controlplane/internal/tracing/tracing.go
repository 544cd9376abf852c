// Package tracing is the control plane's OpenTelemetry instrumentation.
//
// It owns three things: the server span of every publish RPC (continuing
// a W3C traceparent/tracestate the caller sent in gRPC metadata, or as
// HTTP headers through the REST gateway); the trace context stored with
// each published event, so that its attempts join the publisher's trace
// after queueing, retries and restarts; and one "deliver <event type>"
// span per attempt, a child of that stored context, whose own context
// travels to the agent in the Assignment.
//
// It must cost nothing when tracing is off: New returns nil for a nil or
// no-op TracerProvider, callers skip their tracing work when the *Tracer
// is nil, and the package-level helpers return at once when the context
// carries no span. It creates no goroutines and knows nothing about
// exporters (cmd/hookwire builds the provider from OTEL_* variables).
package tracing

import (
	"context"
	"strconv"
	"strings"

	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ScopeName is the instrumentation scope of the control plane's spans.
const ScopeName = "github.com/hookwire/hookwire/controlplane"

// Header names of the W3C trace context, also the gRPC metadata keys.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// Attribute keys shared by the control plane's and the agent's spans.
const (
	AttrTenant       = attribute.Key("hookwire.tenant")
	AttrEventID      = attribute.Key("hookwire.event.id")
	AttrEventType    = attribute.Key("hookwire.event.type")
	AttrEvents       = attribute.Key("hookwire.events")
	AttrDeliveries   = attribute.Key("hookwire.deliveries")
	AttrDeliveryID   = attribute.Key("hookwire.delivery.id")
	AttrSubscription = attribute.Key("hookwire.subscription.id")
	AttrAttempt      = attribute.Key("hookwire.attempt")
	AttrTransport    = attribute.Key("hookwire.transport")
	AttrAgent        = attribute.Key("hookwire.agent.id")
	AttrOutcome      = attribute.Key("hookwire.outcome")
	AttrStatusCode   = attribute.Key("hookwire.status_code")
	AttrAccepted     = attribute.Key("hookwire.result.accepted")
)

var propagator = propagation.TraceContext{}

// Tracer creates the control plane's spans. A nil *Tracer means tracing is
// off; callers check for nil before doing any tracing work.
type Tracer struct {
	tracer trace.Tracer
}

// New returns a Tracer over tp, or nil when tp is nil or a no-op provider
// (tracing off).
func New(tp trace.TracerProvider) *Tracer {
	if tp == nil {
		return nil
	}
	if _, ok := tp.(noop.TracerProvider); ok {
		return nil
	}
	return &Tracer{tracer: tp.Tracer(ScopeName)}
}

// publishMethods are the RPCs that get a server span.
var publishMethods = map[string]bool{
	hookwirev1.EventService_PublishEvent_FullMethodName:    true,
	hookwirev1.EventService_PublishEvents_FullMethodName:   true,
	hookwirev1.EventService_PublishRawEvent_FullMethodName: true,
}

// UnaryInterceptor starts a server span named after the method for each
// publish RPC, as a child of the W3C trace context in the incoming
// metadata when there is one. Install it first, so the span also covers
// authentication and validation failures. Other RPCs pass untouched.
func (t *Tracer) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !publishMethods[info.FullMethod] {
			return handler(ctx, req)
		}
		md, _ := metadata.FromIncomingContext(ctx)
		ctx = propagator.Extract(ctx, mdCarrier(md))
		name := strings.TrimPrefix(info.FullMethod, "/")
		service, method, _ := strings.Cut(name, "/")
		attrs := []attribute.KeyValue{
			attribute.String("rpc.system", "grpc"),
			attribute.String("rpc.service", service),
			attribute.String("rpc.method", method),
		}
		if r, ok := req.(interface{ GetTenant() string }); ok {
			attrs = append(attrs, AttrTenant.String(r.GetTenant()))
		}
		ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
		defer span.End()
		resp, err := handler(ctx, req)
		st, _ := status.FromError(err)
		span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(st.Code())))
		if err != nil {
			span.SetStatus(otelcodes.Error, st.Message())
		}
		return resp, err
	}
}

// EventTrace is the trace context to store with events published under
// ctx: the publish span's, or nil when ctx carries no valid span (tracing
// off, or an operational event).
func EventTrace(ctx context.Context) *storev1.TraceContext {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return nil
	}
	tc := &storev1.TraceContext{}
	propagator.Inject(trace.ContextWithSpanContext(context.Background(), sc), storedCarrier{tc})
	return tc
}

// Published notes on the publish span what the publish stored.
func Published(ctx context.Context, resp []*hookwirev1.PublishEventResponse) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	deliveries := 0
	for _, r := range resp {
		deliveries += int(r.GetDeliveryCount())
	}
	span.SetAttributes(AttrEvents.Int(len(resp)), AttrDeliveries.Int(deliveries))
	if len(resp) == 1 {
		span.SetAttributes(AttrEventID.String(resp[0].GetId()), attribute.Bool("hookwire.duplicate", resp[0].GetDuplicate()))
	}
}

// Attempt describes an attempt whose span StartAttempt begins.
type Attempt struct {
	Parent       *storev1.TraceContext // the event's stored context; nil: a new trace
	Tenant       string
	EventType    string
	DeliveryID   string
	Subscription string
	Number       int32
	Transport    string
	Agent        string
}

// StartAttempt starts the "deliver <event type>" span of one attempt, a
// child of the publish span it was stored under, and returns it with the
// traceparent and tracestate to send in the Assignment.
func (t *Tracer) StartAttempt(a Attempt) (span trace.Span, traceparent, tracestate string) {
	ctx := context.Background()
	if a.Parent != nil {
		ctx = propagator.Extract(ctx, storedCarrier{a.Parent})
	}
	_, span = t.tracer.Start(ctx, "deliver "+a.EventType,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			AttrTenant.String(a.Tenant),
			AttrEventType.String(a.EventType),
			AttrDeliveryID.String(a.DeliveryID),
			AttrSubscription.String(a.Subscription),
			AttrAttempt.Int(int(a.Number)),
			AttrTransport.String(a.Transport),
			AttrAgent.String(a.Agent),
		))
	var tc storev1.TraceContext
	propagator.Inject(trace.ContextWithSpan(context.Background(), span), storedCarrier{&tc})
	return span, tc.GetTraceparent(), tc.GetTracestate()
}

// EndAttempt ends an attempt's span with what the agent reported; accepted
// is false when the result was refused (stale lease, already recorded).
func EndAttempt(span trace.Span, res *transportv1.DeliveryResult, accepted bool) {
	span.SetAttributes(
		AttrOutcome.String(outcomeName(res.GetOutcome())),
		AttrAccepted.Bool(accepted),
	)
	if res.GetStatusCode() != 0 {
		span.SetAttributes(AttrStatusCode.Int(int(res.GetStatusCode())))
	}
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		msg := res.GetError()
		if msg == "" {
			msg = outcomeName(res.GetOutcome())
		}
		span.SetStatus(otelcodes.Error, msg)
	}
	span.End()
}

// EndAttemptUnfinished ends an attempt's span that got no recorded result
// (its lease expired, or recording the result failed).
func EndAttemptUnfinished(span trace.Span, why string) {
	span.SetStatus(otelcodes.Error, why)
	span.End()
}

func outcomeName(o transportv1.Outcome) string {
	name := strings.TrimPrefix(o.String(), "OUTCOME_")
	if _, err := strconv.Atoi(name); err == nil {
		return "UNKNOWN_" + name
	}
	return strings.ToLower(name)
}

// mdCarrier reads a trace context from incoming gRPC metadata.
type mdCarrier metadata.MD

func (c mdCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c mdCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

func (c mdCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// storedCarrier reads and writes the two W3C fields of a TraceContext.
type storedCarrier struct{ tc *storev1.TraceContext }

func (c storedCarrier) Get(key string) string {
	switch key {
	case HeaderTraceparent:
		return c.tc.GetTraceparent()
	case HeaderTracestate:
		return c.tc.GetTracestate()
	}
	return ""
}

func (c storedCarrier) Set(key, value string) {
	switch key {
	case HeaderTraceparent:
		c.tc.Traceparent = value
	case HeaderTracestate:
		c.tc.Tracestate = value
	}
}

func (c storedCarrier) Keys() []string { return []string{HeaderTraceparent, HeaderTracestate} }
