package agent

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/hookwire/hookwire/plugins/sdk"
)

// lease is one assignment from arrival until its result is acknowledged:
// first in the in-flight table, then in the outbox. Result and start time
// live inside it to keep allocations per delivery low.
type lease struct {
	id, token     string
	transportName string
	transport     sdk.Transport
	req           *transportv1.DeliveryRequest
	ctx           context.Context
	cancel        context.CancelFunc
	reject        string // non-empty: report OUTCOME_REJECTED without delivering
	notAttempted  string // non-empty: hand back without delivering (transport down)
	deliveryID    string // for the per-attempt debug log line
	attempt       int32

	// Set when finished; guarded by Agent.mu from then on.
	result hookwirev1.Result
	start  timestamppb.Timestamp
	size   int    // encoded size of result
	seq    uint64 // completion order
	acked  bool   // removed from the outbox
	// waiting: in retryWait, to be sent again after a backoff.
	waiting bool
}

func sortBySeq(ls []*lease) {
	slices.SortFunc(ls, func(x, y *lease) int {
		switch {
		case x.seq < y.seq:
			return -1
		case x.seq > y.seq:
			return 1
		}
		return 0
	})
}

// assign starts a batch of assignments.
func (a *Agent) assign(items []*hookwirev1.Assignment) {
	if len(items) == 0 {
		return
	}
	now := time.Now()
	offset := time.Duration(a.clockOffset.Load())
	leases := make([]lease, len(items)) // one allocation for the batch
	for i, as := range items {
		l := &leases[i]
		l.id, l.token, l.transportName, l.req = as.GetLeaseId(), as.GetLeaseToken(), as.GetTransport(), as.GetRequest()
		l.deliveryID, l.attempt = as.GetDeliveryId(), as.GetAttempt()
		tr, ok := a.cfg.Transports.Transport(l.transportName)
		switch {
		case !ok:
			l.reject = a.unknownTransport(l.transportName)
		case l.req == nil:
			l.reject = "assignment carries no delivery request"
		case a.downReason(l.transportName) != "":
			// Assigned before the control plane heard that the
			// transport is down: give it back untouched.
			l.notAttempted = a.downReason(l.transportName)
		default:
			l.transport = tr
			l.ctx, l.cancel = context.WithDeadline(a.work, attemptDeadline(now, offset, as))
			if tp := as.GetTraceparent(); tp != "" {
				// The control plane's attempt span; deliver replaces it
				// with the agent's own span when tracing is on.
				l.req.Traceparent, l.req.Tracestate = tp, as.GetTracestate()
			}
		}
	}

	var ignored []string
	a.mu.Lock()
	for i := range leases {
		l := &leases[i]
		_, running := a.inflight[l.id]
		_, finished := a.outbox[l.id]
		if l.id == "" || running || finished {
			// A control plane bug. The assignment still consumed credit,
			// so give it back.
			ignored = append(ignored, items[i].GetDeliveryId())
			a.freed++
			if l.cancel != nil {
				l.cancel()
			}
			l.id = "" // skipped below
			continue
		}
		if l.reject == "" && l.notAttempted == "" {
			a.inflight[l.id] = l
		}
	}
	a.mu.Unlock()
	if len(ignored) > 0 {
		a.cfg.Logger.Warn("ignored assignments with an empty or duplicate lease id",
			"delivery_ids", ignored)
		signal(a.sendSignal)
	}

	for i := range leases {
		l := &leases[i]
		switch {
		case l.id == "":
		case l.reject != "":
			a.finish(l, now, &transportv1.DeliveryResult{
				Outcome: transportv1.Outcome_OUTCOME_REJECTED,
				Error:   l.reject,
			})
		case l.notAttempted != "":
			a.handBack(l, l.notAttempted)
		default:
			a.startDelivery(l)
		}
	}
}

// attemptDeadline is the earlier of the request timeout and the lease
// deadline (converted to local time); defaultAttemptTimeout if neither is set.
func attemptDeadline(now time.Time, offset time.Duration, as *hookwirev1.Assignment) time.Time {
	var d time.Time
	if t := as.GetRequest().GetTimeout(); t != nil && t.AsDuration() > 0 {
		d = now.Add(t.AsDuration())
	}
	if dl := as.GetDeadline(); dl != nil && dl.IsValid() {
		local := dl.AsTime().Add(-offset)
		if d.IsZero() || local.Before(d) {
			d = local
		}
	}
	if d.IsZero() {
		d = now.Add(defaultAttemptTimeout)
	}
	return d
}

func (a *Agent) unknownTransport(name string) string {
	infos := a.cfg.Transports.Infos()
	names := make([]string, 0, len(infos))
	for _, in := range infos {
		names = append(names, in.Name)
	}
	slices.Sort(names)
	return fmt.Sprintf("agent %s does not host transport %q (it hosts: %s)",
		a.cfg.AgentID, name, strings.Join(names, ", "))
}

// deliver runs one attempt, on a delivery worker (see startDelivery). A
// delivery whose transport turns out not to be running is handed back
// instead: it never left the agent.
func (a *Agent) deliver(l *lease) {
	if why := a.downReason(l.transportName); why != "" {
		a.handBack(l, why)
		return
	}
	start := time.Now()
	var span trace.Span
	if a.tracer != nil {
		span = a.tracer.start(l, a.cfg.AgentID)
	}
	res, notAttempted := a.callTransport(l)
	l.cancel()
	if res == nil && notAttempted != "" {
		if span != nil {
			span.SetStatus(otelcodes.Error, "not attempted: "+notAttempted)
			span.End()
		}
		a.handBack(l, notAttempted)
		return
	}
	if res == nil {
		res = &transportv1.DeliveryResult{
			Outcome: transportv1.Outcome_OUTCOME_FAILED,
			Error:   fmt.Sprintf("transport %q returned no result", l.transportName),
		}
	}
	if span != nil {
		endSpan(span, res)
	}
	a.finish(l, start, res)
}

// callTransport runs the transport. notAttempted is set (and res nil) when
// the transport says the request never left the agent.
func (a *Agent) callTransport(l *lease) (res *transportv1.DeliveryResult, notAttempted string) {
	defer func() {
		if r := recover(); r != nil {
			a.cfg.Logger.Error("transport panicked", "transport", l.transportName,
				"lease_id", l.id, "panic", r, "stack", string(debug.Stack()))
			res = &transportv1.DeliveryResult{
				Outcome: transportv1.Outcome_OUTCOME_FAILED,
				Error:   fmt.Sprintf("transport %q panicked: %v", l.transportName, r),
			}
			notAttempted = ""
		}
	}()
	if ct, ok := l.transport.(CheckedTransport); ok {
		return ct.DeliverIfRunning(l.ctx, l.req)
	}
	return l.transport.Deliver(l.ctx, l.req), ""
}

// finish moves a lease from the in-flight table to the outbox.
func (a *Agent) finish(l *lease, start time.Time, res *transportv1.DeliveryResult) {
	l.start = timestamppb.Timestamp{Seconds: start.Unix(), Nanos: int32(start.Nanosecond())}
	l.result.LeaseId = l.id
	l.result.LeaseToken = l.token
	l.result.StartTime = &l.start
	l.result.Result = res
	l.size = proto.Size(&l.result)
	a.logAttempt(l, start, res)
	a.delivered.Add(1)
	a.toOutbox(l)
}

// toOutbox moves a finished or handed-back lease from the in-flight table
// to the outbox and wakes the sender.
func (a *Agent) toOutbox(l *lease) {
	l.req, l.transport, l.ctx = nil, nil, nil // not needed any more

	a.mu.Lock()
	delete(a.inflight, l.id)
	a.seq++
	l.seq = a.seq
	a.outbox[l.id] = l
	a.pending = append(a.pending, l)
	a.freed++
	a.mu.Unlock()

	signal(a.sendSignal)
	signal(a.progress)
	if h := a.hooks.finished; h != nil {
		h()
	}
}

// ack drops acknowledged results from the outbox. Results the control
// plane could not record (retry) stay, to be sent again after a backoff.
func (a *Agent) ack(items []*hookwirev1.ResultAck) {
	var stale []string
	debugOn := a.cfg.Logger.Enabled(context.Background(), slog.LevelDebug)
	var accepted, rejected uint64
	var retry []*lease
	a.mu.Lock()
	for _, ack := range items {
		l, ok := a.outbox[ack.GetLeaseId()]
		if !ok {
			continue
		}
		if ack.GetRetry() {
			retry = append(retry, l)
			continue
		}
		delete(a.outbox, l.id)
		l.acked = true
		if ack.GetAccepted() {
			accepted++
		} else {
			rejected++
			if debugOn {
				stale = append(stale, l.id)
			}
		}
	}
	if accepted > 0 {
		a.resultBackoff.Reset() // the control plane records results again
	}
	if len(retry) > 0 {
		a.retryResultsLocked(retry, time.Now())
	}
	a.mu.Unlock()
	if len(retry) > 0 {
		a.resultRetries.Add(uint64(len(retry)))
		a.cfg.Logger.Debug("control plane could not record results; keeping them to send again", "results", len(retry))
	}
	a.acked.Add(accepted)
	a.ackRejected.Add(rejected)
	if len(stale) > 0 {
		a.cfg.Logger.Debug("control plane rejected results for stale or unknown leases", "lease_ids", stale)
	}
	signal(a.progress)
}

// cancelLease cancels a running delivery; its result is still reported.
func (a *Agent) cancelLease(id string) {
	a.mu.Lock()
	l := a.inflight[id]
	a.mu.Unlock()
	if l == nil {
		a.cfg.Logger.Debug("cancel for a lease not in flight", "lease_id", id)
		return
	}
	l.cancel()
}
