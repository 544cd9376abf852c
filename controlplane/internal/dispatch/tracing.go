package dispatch

import (
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/tracing"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"go.opentelemetry.io/otel/trace"
)

// traceAttempts starts the "deliver" span of each prepared assignment (a
// child of its event's publish span) and puts the span's context in the
// assignment. Only called when tracing is on. The items' stored trace
// contexts are loaded on first use (deliveries the pump brought back from
// the store); fresh ones came with Enqueue.
func (d *Dispatcher) traceAttempts(c *conn, leases []*lease, batch []*hookwirev1.Assignment) {
	var missing []ids.ID
	for _, l := range leases {
		if !l.item.traceLoaded {
			missing = append(missing, l.item.eventID)
		}
	}
	if len(missing) > 0 {
		traces, err := d.cfg.Store.EventTraces(missing)
		if err != nil {
			d.log.Warn("load event trace contexts; their attempts start new traces", "err", err)
		}
		i := 0
		for _, l := range leases {
			if l.item.traceLoaded {
				continue
			}
			if i < len(traces) {
				l.item.trace = traces[i]
			}
			l.item.traceLoaded = true
			i++
		}
	}
	spans := make([]trace.Span, len(leases))
	j := 0
	for i, l := range leases {
		// batch holds the assignments prepare built, in lease order; it
		// skips leases whose subscription or event disappeared.
		if j >= len(batch) || batch[j].GetLeaseId() != l.id {
			continue
		}
		as := batch[j]
		j++
		tenant, subID := "", ""
		if sub := d.cfg.Catalog.Get(l.item.subID); sub != nil {
			tenant, subID = sub.Tenant, sub.IDText
		}
		spans[i], as.Traceparent, as.Tracestate = d.cfg.Tracer.StartAttempt(tracing.Attempt{
			Parent:       l.item.trace,
			Tenant:       tenant,
			EventType:    l.item.eventType,
			DeliveryID:   l.item.idText,
			Subscription: subID,
			Number:       l.item.attempt,
			Transport:    as.GetTransport(),
			Agent:        c.agentID,
		})
	}
	// Leases are shared with the result and expiry paths: attach the spans
	// under the lock, and end at once a span whose lease is already gone.
	var gone []trace.Span
	d.mu.Lock()
	for i, l := range leases {
		if spans[i] == nil {
			continue
		}
		if d.leases[l.id] != l {
			gone = append(gone, spans[i])
			continue
		}
		l.span = spans[i]
	}
	d.mu.Unlock()
	for _, s := range gone {
		tracing.EndAttemptUnfinished(s, "lease ended before its assignment was sent")
	}
}
