package dispatch

import (
	"context"
	"errors"
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

// resultPendingHold is the least time a lease whose result could not be
// recorded stays held after each try: longer than the agent's longest wait
// before it sends the result again, so a connected agent's lease does not
// expire while the store cannot write.
const resultPendingHold = 30 * time.Second

// onlyPending is the precondition of a change that applies only to a
// delivery still pending.
var onlyPending = []hookwirev1.DeliveryStatus{hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING}

// resultFields are the delivery fields an attempt's result sets.
var resultFields = []string{"status", "attempt_count", "last_outcome", "last_error", "update_time", "next_attempt_time"}

// complete records results for leases and reports, per lease id, whether
// the result was accepted. A result with not_attempted_reason puts its
// delivery back without counting an attempt (see handedBackLocked).
//
// When the results cannot be recorded (the store cannot write) their leases
// stay held, marked by a refreshed deadline: the deliveries are not
// assigned again while the agent holds their results, and the acks say
// retry, so the agent sends them again later. held is the error that
// prevented recording (nil when the results were recorded).
func (d *Dispatcher) complete(ctx context.Context, c *conn, results []*hookwirev1.Result) (acks []*hookwirev1.ResultAck, held error) {
	acks = make([]*hookwirev1.ResultAck, len(results))
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
	if ok, why, _ := d.cfg.Store.Writable(); !ok {
		d.hold(work, why)
		return acks, why
	}
	now := d.cfg.Now()
	nowPB := timestamppb.New(now)
	changes := make([]*store.DeliveryChange, len(work))
	for i, w := range work {
		n := w.lease.item.attempt
		if reason := w.res.GetNotAttemptedReason(); reason != "" {
			lastErr := "not attempted: agent " + c.agentID + " handed it back: " + reason
			// Unless cancelled meanwhile, or attempted by someone else.
			w.change = &store.DeliveryChange{DeliveryID: w.lease.item.id, IfStatus: onlyPending, IfAttemptCountBelow: n,
				Fields: []string{"last_error", "update_time"}, Set: &hookwirev1.Delivery{LastError: lastErr, UpdateTime: nowPB}}
			changes[i] = w.change
			continue
		}
		res := w.res.GetResult()
		if res == nil {
			res = &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_FAILED, Error: "agent reported no result"}
		}
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
			DueTime:         w.lease.item.dueTime(),
			RequestHeaders:  w.lease.sent,
		}
		set := &hookwirev1.Delivery{
			Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING, AttemptCount: n,
			LastOutcome: res.GetOutcome(), LastError: res.GetError(), UpdateTime: nowPB,
		}
		switch {
		case w.v.Done:
			set.Status = hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
		case w.v.Dead:
			set.Status = hookwirev1.DeliveryStatus_DELIVERY_STATUS_DEAD
		default:
			set.NextAttemptTime = timestamppb.New(now.Add(w.v.Wait))
		}
		// Unless cancelled meanwhile, or this attempt is already recorded.
		w.change = &store.DeliveryChange{DeliveryID: w.lease.item.id, Attempt: attempt, IfStatus: onlyPending, IfAttemptCountBelow: n,
			Fields: resultFields, Set: set}
		changes[i] = w.change
	}
	added, err := d.cfg.Store.ChangeDeliveries(ctx, changes)
	if err != nil {
		// Not durable. Putting the deliveries back would assign them again
		// while the agent still holds their results (each one delivered
		// once more per try); hold the leases instead until the agent
		// resends. Errors other than store.ErrUnavailable (the stream
		// ending mid-commit, say) are held the same way: whether the write
		// landed is unknown, and a resend settles it either way.
		if !errors.Is(err, store.ErrUnavailable) {
			d.log.Error("record results", "agent", c.agentID, "results", len(work), "err", err)
		}
		d.hold(work, err)
		return acks, err
	}
	var after []func()
	var handedBack []*pendingResult
	d.mu.Lock()
	for _, w := range work {
		w.ack.Accepted = w.change.Applied
		notAttempted := w.res.GetNotAttemptedReason()
		if notAttempted != "" && w.change.Applied {
			d.handedBackLocked(c.agentID, w)
			handedBack = append(handedBack, w)
			continue
		}
		switch {
		case w.lease.span == nil:
		case notAttempted != "":
			tracing.EndAttemptUnfinished(w.lease.span, "not attempted: "+notAttempted)
		default:
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
		final, verdict := "", AttemptRetrying
		switch {
		case w.v.Done:
			final, verdict = "succeeded", AttemptSucceeded
		case w.v.Dead:
			final, verdict = "dead", AttemptDead
		}
		outcome, latency := w.change.Attempt.GetOutcome(), w.change.Attempt.GetLatency().AsDuration()
		d.cfg.Metrics.Attempt(w.res.GetResult().GetOutcome(), w.res.GetResult().GetLatency().AsDuration(), final)
		d.countAttempt(now, w.change.Result.GetTenant(), w.lease.item.subID, outcome, latency, verdict)
		after = append(after, d.trackLocked(s, w, now)...)
	}
	for _, a := range added {
		d.noteDueLocked(d.stateLocked(a.SubID), a.At)
	}
	d.wakeTransportsLocked()
	d.mu.Unlock()
	d.noteHandedBack(c.agentID, handedBack, now)
	d.noteAttempts(c.agentID, work, now)
	d.logAttempts(c.agentID, work)
	for _, f := range after {
		f()
	}
	return acks, nil
}

// hold keeps the leases of results that could not be recorded: back in
// the lease table with a deadline far enough out for the agent to resend,
// and acknowledged with retry.
func (d *Dispatcher) hold(work []*pendingResult, why error) {
	until := d.cfg.Now().Add(max(d.cfg.LeaseGrace, resultPendingHold))
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, w := range work {
		l := w.lease
		if l.deadline.Before(until) {
			l.deadline = until
		}
		d.leases[l.id] = l
		w.ack.Accepted, w.ack.Retry = false, true
	}
	d.log.Debug("results held for a resend", "results", len(work), "err", why)
}

// handedBackLocked puts a delivery the agent handed back without attempting
// it at the front of its queue. Its attempt count is unchanged (the next
// try has the same number), and the agent has already told us the transport
// is unavailable, so the delivery goes to another agent or waits until the
// transport is back. Caller holds d.mu.
func (d *Dispatcher) handedBackLocked(agentID string, w *pendingResult) {
	l := w.lease
	reason := w.res.GetNotAttemptedReason()
	d.requeueLocked(l, "not attempted: "+reason)
	transport := l.sub.transport
	d.cfg.Metrics.NotAttempted(transport)
	d.log.Info("delivery handed back without an attempt; requeued without counting one",
		"delivery", l.item.idText, "attempt", l.item.attempt, "agent", agentID, "transport", transport, "reason", reason)
}

// noteHandedBack reports deliveries put back after an agent handed them
// back (tail item REQUEUED, naming the agent and why).
func (d *Dispatcher) noteHandedBack(agentID string, work []*pendingResult, now time.Time) {
	if len(work) == 0 || !d.watch.active() {
		return
	}
	at := timestamppb.New(now)
	for _, w := range work {
		del := w.change.Result
		if del == nil {
			continue
		}
		it := itemOf(del, hookwirev1.TailEventKind_TAIL_EVENT_KIND_REQUEUED, at)
		it.AgentId = agentID
		it.Error = capError(del.GetLastError())
		d.watch.publish(del.GetTenant(), it)
	}
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
