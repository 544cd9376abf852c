package agent

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
)

// tracerScope is the instrumentation scope of the agent's spans.
const tracerScope = "github.com/hookwire/hookwire/agent"

// agentTracer creates the agent's span around each plugin call. A nil
// *agentTracer means tracing is off.
type agentTracer struct {
	tracer trace.Tracer
	prop   propagation.TraceContext
}

func newAgentTracer(tp trace.TracerProvider) *agentTracer {
	if tp == nil {
		return nil
	}
	if _, ok := tp.(noop.TracerProvider); ok {
		return nil
	}
	return &agentTracer{tracer: tp.Tracer(tracerScope)}
}

// start begins the "send <event type>" span of an attempt, a child of the
// control plane's "deliver" span whose context came with the assignment
// (now in l.req), and hands the transport this span's context instead: in
// l.ctx for in-process transports, and in the request's traceparent and
// tracestate for plugins, which pass it on to the target.
func (t *agentTracer) start(l *lease, agentID string) trace.Span {
	parent := t.prop.Extract(context.Background(), requestCarrier{l.req})
	_, span := t.tracer.Start(parent, "send "+l.req.GetEventType(),
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("hookwire.delivery.id", l.req.GetDeliveryId()),
			attribute.String("hookwire.event.type", l.req.GetEventType()),
			attribute.String("hookwire.transport", l.transportName),
			attribute.String("hookwire.agent.id", agentID),
			attribute.String("hookwire.lease.id", l.id),
		))
	l.ctx = trace.ContextWithSpan(l.ctx, span)
	l.req.Traceparent, l.req.Tracestate = "", ""
	t.prop.Inject(l.ctx, requestCarrier{l.req})
	return span
}

// endSpan records what the transport reported and ends the span.
func endSpan(span trace.Span, res *transportv1.DeliveryResult) {
	span.SetAttributes(attribute.String("hookwire.outcome", res.GetOutcome().String()))
	if code := res.GetStatusCode(); code != 0 {
		span.SetAttributes(attribute.Int("hookwire.status_code", int(code)))
	}
	if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
		msg := res.GetError()
		if msg == "" {
			msg = res.GetOutcome().String()
		}
		span.SetStatus(otelcodes.Error, msg)
	}
	span.End()
}

// requestCarrier reads and writes the W3C trace context fields of a
// delivery request.
type requestCarrier struct{ req *transportv1.DeliveryRequest }

func (c requestCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.req.GetTraceparent()
	case "tracestate":
		return c.req.GetTracestate()
	}
	return ""
}

func (c requestCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		c.req.Traceparent = value
	case "tracestate":
		c.req.Tracestate = value
	}
}

func (c requestCarrier) Keys() []string { return []string{"traceparent", "tracestate"} }
