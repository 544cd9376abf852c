package sdk

import transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"

// W3C trace context header names (https://www.w3.org/TR/trace-context/).
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// TraceHeaders calls set with the attempt's W3C trace context, the
// "traceparent" header and, when there is one, "tracestate", so a
// transport can pass them on in its native headers (HTTP headers, NATS
// headers, AMQP header table, ...) and the target's own tracing joins the
// publisher's trace. With tracing on in the agent, the context is that of
// the agent's span around this attempt. It calls nothing when the request
// carries no trace context (tracing off) or when a value is not printable
// ASCII, so what it hands over is always safe to put in a header.
//
//	sdk.TraceHeaders(req, httpReq.Header.Set)
func TraceHeaders(req *transportv1.DeliveryRequest, set func(name, value string)) {
	tp := req.GetTraceparent()
	if tp == "" || !headerSafe(tp, false) {
		return
	}
	set(HeaderTraceparent, tp)
	if ts := req.GetTracestate(); ts != "" && headerSafe(ts, true) {
		set(HeaderTracestate, ts)
	}
}

// headerSafe reports whether v is visible ASCII (and spaces, if allowed).
func headerSafe(v string, spaces bool) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' && spaces {
			continue
		}
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}
