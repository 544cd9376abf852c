package dispatch

import (
	"context"
	"strings"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/retry"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	"github.com/hookwire/hookwire/controlplane/internal/tracing"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Operational event types, published into the tenant's own stream.
const (
	EventDeliveryExhausted     = catalog.OperationalPrefix + "delivery.exhausted"
	EventSubscriptionDisabled  = catalog.OperationalPrefix + "subscription.disabled"
	EventSubscriptionRecovered = catalog.OperationalPrefix + "subscription.recovered"
	EventCircuitOpened         = catalog.OperationalPrefix + "circuit.opened"
	EventCircuitClosed         = catalog.OperationalPrefix + "circuit.closed"
)

type pendingResult struct {
	ack    *hookwirev1.ResultAck
	lease  *lease
	res    *hookwirev1.Result
	change *store.DeliveryChange
	v      retry.Verdict
}

// complete records results for leases and reports, per lease id, whether
// the result was accepted.
func (d *Dispatcher) complete(ctx context.Context, c *conn, results []*hookwirev1.Result) ([]*hookwirev1.ResultAck, error) {
	acks := make([]*hookwirev1.ResultAck, len(results))
	var work []*pendingResult
	d.mu.Lock()
	for i, r := range results {
		acks[i] = &hookwirev1.ResultAck{LeaseId: r.GetLeaseId()}
		l := d.leases[r.GetLeaseId()]
		if l == nil || l.token != r.GetLeaseToken() {
			continue // stale or unknown: rejected
		}
		delete(d.leases, l.id)
		work = append(work, &pendingResult{ack: acks[i], lease: l, res: r})
	}
	d.mu.Unlock()
	if len(work) == 0 {
		return acks, nil
	}
	now := d.cfg.Now()
	nowPB := timestamppb.New(now)
	changes := make([]*store.DeliveryChange, len(work))
	for i, w := range work {
		res := w.res.GetResult()
		if res == nil {
			res = &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_FAILED, Error: "agent reported no result"}
		}
		n := w.lease.item.attempt
		var sched retry.Schedule
		if sub := d.cfg.Catalog.Get(w.lease.item.subID); sub != nil {
			sched = sub.Retry
		}
		w.v = retry.Next(sched, n-w.lease.item.base, res, d.cfg.Retry)
		start := w.res.GetStartTime()
		if start == nil {
			start = timestamppb.New(w.lease.start)
		}
		attempt := &hookwirev1.Attempt{
			DeliveryId:      w.lease.item.idText,
			Number:          n,
			AgentId:         c.agentID,
			StartTime:       start,
			Latency:         res.GetLatency(),
			Outcome:         res.GetOutcome(),
			StatusCode:      res.GetStatusCode(),
			ResponseHeaders: res.GetResponseHeaders(),
			ResponseBody:    res.GetResponseBody(),
			Error:           res.GetError(),
		}
		v := w.v
		w.change = &store.DeliveryChange{DeliveryID: w.lease.item.id, Attempt: attempt, Apply: func(del *hookwirev1.Delivery) bool {
			if del.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING || del.GetAttemptCount() >= n {
				return false // cancelled meanwhile, or this attempt is already recorded
			}
			del.AttemptCount = n
			del.LastOutcome = res.GetOutcome()
			del.LastError = res.GetError()
			del.UpdateTime = nowPB
			switch {
			case v.Done:
				del.Status = hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
				del.NextAttemptTime = nil
			case v.Dead:
				del.Status = hookwirev1.DeliveryStatus_DELIVERY_STATUS_DEAD
				del.NextAttemptTime = nil
			default:
				del.NextAttemptTime = timestamppb.New(now.Add(v.Wait))
			}
			return true
		}}
		changes[i] = w.change
	}
	added, err := d.cfg.Store.ChangeDeliveries(ctx, changes)
	if err != nil {
		// Not durable: put the deliveries back so they are attempted again.
		d.mu.Lock()
		for _, w := range work {
			d.requeueLocked(w.lease, "recording the result failed: "+err.Error())
		}
		d.mu.Unlock()
		return nil, err
	}
	var after []func()
	d.mu.Lock()
	for _, w := range work {
		w.ack.Accepted = w.change.Applied
		if w.lease.span != nil {
			tracing.EndAttempt(w.lease.span, w.res.GetResult(), w.change.Applied)
		}
		s := w.lease.sub
		s.inFlight--
		delete(d.known, w.lease.item.id)
		if d.pumping {
			d.finished[w.lease.item.id] = struct{}{}
		}
		if !w.change.Applied {
			s.releaseProbe()
			continue
		}
		final := ""
		switch {
		case w.v.Done:
			final = "succeeded"
		case w.v.Dead:
			final = "dead"
		}
		d.cfg.Metrics.Attempt(w.res.GetResult().GetOutcome(), w.res.GetResult().GetLatency().AsDuration(), final)
		after = append(after, d.trackLocked(s, w, now)...)
	}
	for _, a := range added {
		d.noteDueLocked(d.stateLocked(a.SubID), a.At)
	}
	d.wakeTransportsLocked()
	d.mu.Unlock()
	d.noteAttempts(c.agentID, work, now)
	d.logAttempts(c.agentID, work)
	for _, f := range after {
		f()
	}
	return acks, nil
}

// trackLocked updates failure tracking and the circuit breaker after an
// applied result and returns the notifications to send once unlocked.
func (d *Dispatcher) trackLocked(s *subState, w *pendingResult, now time.Time) []func() {
	sub := d.cfg.Catalog.Get(s.id)
	if sub == nil {
		return nil
	}
	var out []func()
	hooks := d.cfg.Hooks
	failed := !w.v.Done
	internal := strings.HasPrefix(w.lease.item.eventType, catalog.OperationalPrefix)
	emit := func(eventType string, payload map[string]any) {
		if hooks.Emit == nil || internal {
			return // never raise operational events about operational events
		}
		payload["subscription_id"] = sub.IDText
		out = append(out, func() { hooks.Emit(sub.Tenant, eventType, payload) })
	}
	if sub.Breaker != nil {
		switch s.brk.record(sub.Breaker, now, failed) {
		case "opened":
			emit(EventCircuitOpened, map[string]any{"reopen_time": s.brk.reopen.UTC().Format(time.RFC3339Nano)})
			d.wakeLaterLocked(s.brk.reopen)
		case "closed":
			emit(EventCircuitClosed, map[string]any{})
		}
	}
	if failed {
		s.failures++
		if s.failingSince.IsZero() {
			s.failingSince = now
			if hooks.FailingSince != nil {
				out = append(out, func() { hooks.FailingSince(sub, now) })
			}
		}
	} else {
		if s.failures >= d.cfg.RecoveredAfter {
			emit(EventSubscriptionRecovered, map[string]any{"failed_attempts": s.failures, "failing_since": s.failingSince.UTC().Format(time.RFC3339Nano)})
		}
		if !s.failingSince.IsZero() && hooks.FailingSince != nil {
			out = append(out, func() { hooks.FailingSince(sub, time.Time{}) })
		}
		s.failures, s.failingSince = 0, time.Time{}
	}
	res := w.res.GetResult()
	if w.v.Dead {
		emit(EventDeliveryExhausted, map[string]any{
			"delivery_id": w.lease.item.idText, "event_id": w.change.Result.GetEventId(), "event_type": w.lease.item.eventType,
			"attempts": w.lease.item.attempt, "last_outcome": res.GetOutcome().String(), "last_status_code": res.GetStatusCode(), "last_error": res.GetError(),
		})
	}
	reason := ""
	switch {
	case w.v.Gone:
		reason = "target answered 410 Gone"
	case failed && d.cfg.DisableAfter > 0 && !s.failingSince.IsZero() && now.Sub(s.failingSince) >= d.cfg.DisableAfter:
		reason = "every attempt failed for " + d.cfg.DisableAfter.String() + " (since " + s.failingSince.UTC().Format(time.RFC3339) + ")"
	}
	if reason != "" && sub.Active() {
		emit(EventSubscriptionDisabled, map[string]any{"reason": reason})
		if hooks.Disable != nil {
			out = append(out, func() { hooks.Disable(sub, reason) })
		}
	}
	return out
}
