package api

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// Filter failures.
//
// A subscription's filter that cannot be evaluated for an event (see
// filter.Filter.Evaluate) does not take the event. So that this never
// happens silently, each failure is
//   - listed in the publish answer (PublishEventResponse.filter_errors);
//   - counted in hookwire_filter_errors_total{reason="cost"|"error"};
//   - logged, at most once per subscription per FilterFailureInterval;
//   - raised as the operational event EventFilterFailed in the tenant's
//     stream, at most once per subscription per FilterFailureInterval,
//     with the number of failures not raised since the previous one.
//
// Operational events never raise further operational events: a failure
// on one is counted and logged only.

// EventFilterFailed is the operational event raised when a subscription's
// filter could not be evaluated for an event.
const EventFilterFailed = catalog.OperationalPrefix + "filter.failed"

// FilterFailureInterval is the least time between two log lines, and
// between two EventFilterFailed events, about one subscription.
const FilterFailureInterval = time.Minute

// maxFilterFailureStates bounds the per-subscription rate-limit state;
// past it, states older than the interval are dropped.
const maxFilterFailureStates = 10_000

// filterFailure is one subscription whose filter failed on one stored
// event.
type filterFailure struct {
	catalog.FilterFailure
	eventID, eventType string
}

// filterReports rate-limits the log lines and operational events of
// filter failures per subscription. The zero value is ready to use.
type filterReports struct {
	mu     sync.Mutex
	states map[ids.ID]*filterReportState
}

type filterReportState struct {
	last       time.Time // when the last report went out
	suppressed int       // failures since then that were not reported
}

// allow reports whether a failure of sub may be logged and raised at now;
// when it may, it also returns how many failures were not reported since
// the previous report.
func (r *filterReports) allow(sub ids.ID, now time.Time) (ok bool, suppressed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.states[sub]
	if st == nil {
		if r.states == nil {
			r.states = map[ids.ID]*filterReportState{}
		}
		if len(r.states) >= maxFilterFailureStates {
			r.pruneLocked(now)
		}
		r.states[sub] = &filterReportState{last: now}
		return true, 0
	}
	if now.Sub(st.last) < FilterFailureInterval {
		st.suppressed++
		return false, 0
	}
	suppressed, st.last, st.suppressed = st.suppressed, now, 0
	return true, suppressed
}

// pruneLocked drops the states whose interval is over. A dropped state's
// suppressed failures are counted in the metric and were listed in their
// publish answers; only the count in the next operational event is lost.
func (r *filterReports) pruneLocked(now time.Time) {
	for id, st := range r.states {
		if now.Sub(st.last) >= FilterFailureInterval {
			delete(r.states, id)
		}
	}
}

// filterErrors returns the publish answer's entries for failures.
func filterErrors(failed []catalog.FilterFailure) []*hookwirev1.FilterError {
	if len(failed) == 0 {
		return nil
	}
	out := make([]*hookwirev1.FilterError, len(failed))
	for i, f := range failed {
		out[i] = &hookwirev1.FilterError{SubscriptionId: f.Sub.IDText, Error: f.Err.Error()}
	}
	return out
}

// reportFilterFailures counts, logs and raises the filter failures of
// stored events of one tenant (see the notes above).
func (s *eventService) reportFilterFailures(tenant string, failures []filterFailure) {
	if len(failures) == 0 {
		return
	}
	now := s.cfg.Now()
	var raise []*hookwirev1.Event
	for _, f := range failures {
		s.cfg.Metrics.FilterFailed(f.Err.Reason)
		ok, suppressed := s.filterReports.allow(f.Sub.ID, now)
		if !ok {
			continue
		}
		s.cfg.Logger.Warn("subscription filter could not be evaluated; the event was not delivered to it",
			"tenant", tenant, "subscription", f.Sub.IDText, "event", f.eventID, "event_type", f.eventType,
			"reason", f.Err.Reason, "err", f.Err.Error(), "suppressed", suppressed)
		if strings.HasPrefix(f.eventType, catalog.OperationalPrefix) {
			continue // operational events raise no further operational events
		}
		payload, err := json.Marshal(map[string]any{
			"subscription_id": f.Sub.IDText,
			"event_id":        f.eventID,
			"event_type":      f.eventType,
			"reason":          f.Err.Reason,
			"error":           f.Err.Error(),
			"suppressed":      suppressed,
		})
		if err != nil {
			s.cfg.Logger.Error("encode operational event", "type", EventFilterFailed, "err", err)
			continue
		}
		raise = append(raise, &hookwirev1.Event{Type: EventFilterFailed, Payload: payload})
	}
	if len(raise) == 0 {
		return
	}
	// One write for all of them.
	if _, err := s.publishInternal(context.Background(), tenant, raise); err != nil {
		s.cfg.Logger.Error("publish operational event", "tenant", tenant, "type", EventFilterFailed, "events", len(raise), "err", err)
	}
}
