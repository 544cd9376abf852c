// Package metrics defines the control plane's Prometheus metrics. It owns
// the metric names and the registry; the components report into it through
// nil-safe methods, so a component built without metrics (tests) needs no
// special case.
package metrics

import (
	"time"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// ControlPlane holds the control plane's metrics.
type ControlPlane struct {
	Registry *prometheus.Registry

	eventsPublished   prometheus.Counter
	deliveriesCreated prometheus.Counter
	attempts          *prometheus.CounterVec
	attemptLatency    prometheus.Histogram
	finished          *prometheus.CounterVec
	commitLatency     prometheus.Histogram
	proposeLatency    prometheus.Histogram
	commitBatch       prometheus.Histogram
	tailWatchers      prometheus.Gauge
	tailDropped       prometheus.Counter
	notAttempted      *prometheus.CounterVec
	filterErrors      *prometheus.CounterVec
}

// Queue reports the dispatcher's current state for the gauges.
type Queue func() (ready, inFlight, agents int)

// NewControlPlane registers the metrics, reading queue depth and store size
// from the given functions at scrape time.
func NewControlPlane(queue Queue, storeBytes func() int64) *ControlPlane {
	reg := prometheus.NewRegistry()
	m := &ControlPlane{
		Registry: reg,
		eventsPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookwire_events_published_total", Help: "Events accepted durably (duplicates by idempotency key excluded).",
		}),
		deliveriesCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookwire_deliveries_created_total", Help: "Deliveries created by fan-out, re-sends and replays.",
		}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookwire_attempts_total", Help: "Delivery attempts recorded, by outcome class.",
		}, []string{"outcome"}),
		attemptLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hookwire_attempt_duration_seconds", Help: "Time from sending an attempt to the target's answer, as measured by the transport.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookwire_deliveries_finished_total", Help: "Deliveries that reached a final state, by status.",
		}, []string{"status"}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hookwire_store_commit_duration_seconds", Help: "Time to apply one batch of committed raft log entries to the store (one bbolt transaction, without fsync: the raft log is durable).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		proposeLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hookwire_cluster_write_duration_seconds", Help: "Time from proposing a store write to the raft log until it is committed on a quorum and applied on the leader (what a publish waits for).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		commitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hookwire_store_commit_batch_writes", Help: "Writes that shared one group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13),
		}),
		tailWatchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookwire_tail_watchers", Help: "TailDeliveries streams open (hookwire tail, REST deliveries:tail).",
		}),
		tailDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookwire_tail_dropped_total", Help: "Tail items not sent because the client read too slowly (its buffer was full); the client is told with a DROPPED item.",
		}),
		notAttempted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookwire_deliveries_not_attempted_total", Help: "Deliveries an agent handed back without attempting them (the transport's plugin was down), by transport; they were put back without counting an attempt.",
		}, []string{"transport"}),
	}
	m.filterErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hookwire_filter_errors_total", Help: "Subscription filters that could not be evaluated for an event, which therefore did not go to them, by reason: cost (the cost budget or the evaluation deadline ran out) or error (type mismatch, division by zero, non-boolean result...). Missing fields are no match, not errors.",
	}, []string{"reason"})
	for _, reason := range []string{FilterReasonCost, FilterReasonError} {
		m.filterErrors.WithLabelValues(reason) // present from the start, at 0
	}
	reg.MustRegister(m.filterErrors)
	reg.MustRegister(m.eventsPublished, m.deliveriesCreated, m.attempts, m.attemptLatency, m.finished, m.commitLatency, m.proposeLatency, m.commitBatch,
		m.tailWatchers, m.tailDropped, m.notAttempted,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	if queue != nil {
		gauge("hookwire_queue_ready", "Deliveries in memory ready to be assigned.", func() float64 { r, _, _ := queue(); return float64(r) })
		gauge("hookwire_queue_in_flight", "Deliveries leased to agents.", func() float64 { _, f, _ := queue(); return float64(f) })
		gauge("hookwire_agents_connected", "Agent streams connected.", func() float64 { _, _, a := queue(); return float64(a) })
	}
	if storeBytes != nil {
		gauge("hookwire_store_bytes", "Size of the store file.", func() float64 { return float64(storeBytes()) })
	}
	return m
}

// BacklogCounts are the pending deliveries waiting for a retry, the due
// ones waiting for an agent by reason, and the due ones held by their
// subscription's status (paused, disabled).
type BacklogCounts struct {
	WaitingRetry int
	WaitingAgent map[string]int
	Held         map[string]int
}

// Backlog reports the BacklogCounts at scrape time.
type Backlog func() BacklogCounts

// WatchBacklog registers the waiting-for-retry, waiting-for-an-agent and
// held gauges, read from f once per scrape.
func (m *ControlPlane) WatchBacklog(f Backlog) {
	if m == nil || f == nil {
		return
	}
	m.Registry.MustRegister(&backlogCollector{
		f: f,
		retry: prometheus.NewDesc("hookwire_queue_waiting_retry",
			"Pending deliveries whose next attempt is scheduled later than the end of the current second: "+
				"waiting out a retry delay after a failed attempt. Counted from an in-memory tally of the store's due index that "+
				"every commit adjusts (a scrape never reads the store); deliveries queued behind the head of an ordered group are not included.",
			nil, nil),
		agent: prometheus.NewDesc("hookwire_queue_waiting_agent",
			"Due deliveries (next attempt time reached) of active subscriptions that no connected agent may take now, by reason: "+
				"no_transport (no connected agent, not draining, hosts the subscription's transport), selector (agents host it but none matches "+
				"its agent_selector), circuit_open (its circuit breaker is cooling down). "+
				"Leased deliveries are not counted; due deliveries already loaded in memory are, so this can overlap hookwire_queue_ready. "+
				"Deliveries held back only by a rate limit or max_in_flight are not counted, nor those of paused or disabled "+
				"subscriptions (hookwire_queue_held).",
			[]string{"reason"}, nil),
		held: prometheus.NewDesc("hookwire_queue_held",
			"Due deliveries (next attempt time reached) held by their subscription's status, by reason: paused or disabled. "+
				"They go out once the subscription is resumed.",
			[]string{"reason"}, nil),
	})
}

type backlogCollector struct {
	f                  Backlog
	retry, agent, held *prometheus.Desc
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.retry
	ch <- c.agent
	ch <- c.held
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.f()
	ch <- prometheus.MustNewConstMetric(c.retry, prometheus.GaugeValue, float64(b.WaitingRetry))
	for reason, n := range b.WaitingAgent {
		ch <- prometheus.MustNewConstMetric(c.agent, prometheus.GaugeValue, float64(n), reason)
	}
	for reason, n := range b.Held {
		ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, float64(n), reason)
	}
}

// NotAttempted counts a delivery handed back by an agent without an
// attempt.
func (m *ControlPlane) NotAttempted(transport string) {
	if m == nil {
		return
	}
	m.notAttempted.WithLabelValues(transport).Inc()
}

// Reasons of hookwire_filter_errors_total (filter.ReasonCost, ReasonError).
const (
	FilterReasonCost  = "cost"
	FilterReasonError = "error"
)

// FilterFailed counts a filter that could not be evaluated for an event.
func (m *ControlPlane) FilterFailed(reason string) {
	if m == nil {
		return
	}
	m.filterErrors.WithLabelValues(reason).Inc()
}

// Published counts events and the deliveries they created.
func (m *ControlPlane) Published(events, deliveries int) {
	if m == nil {
		return
	}
	m.eventsPublished.Add(float64(events))
	m.deliveriesCreated.Add(float64(deliveries))
}

// DeliveriesCreated counts deliveries created outside a publish.
func (m *ControlPlane) DeliveriesCreated(n int) {
	if m == nil {
		return
	}
	m.deliveriesCreated.Add(float64(n))
}

// Attempt records one attempt's outcome and latency, and the final status
// it led to ("" while the delivery is still pending).
func (m *ControlPlane) Attempt(outcome transportv1.Outcome, latency time.Duration, final string) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(outcomeLabel(outcome)).Inc()
	if latency > 0 {
		m.attemptLatency.Observe(latency.Seconds())
	}
	if final != "" {
		m.finished.WithLabelValues(final).Inc()
	}
}

// TailWatchers adds delta to the open tails.
func (m *ControlPlane) TailWatchers(delta int) {
	if m == nil {
		return
	}
	m.tailWatchers.Add(float64(delta))
}

// TailDropped counts tail items lost to a slow client.
func (m *ControlPlane) TailDropped(n int) {
	if m == nil {
		return
	}
	m.tailDropped.Add(float64(n))
}

// Commit records one group commit.
func (m *ControlPlane) Commit(writes int, took time.Duration) {
	if m == nil {
		return
	}
	m.commitLatency.Observe(took.Seconds())
	m.commitBatch.Observe(float64(writes))
}

// Proposed records one store write through the raft log that succeeded.
func (m *ControlPlane) Proposed(took time.Duration) {
	if m == nil {
		return
	}
	m.proposeLatency.Observe(took.Seconds())
}

func outcomeLabel(o transportv1.Outcome) string {
	switch o {
	case transportv1.Outcome_OUTCOME_SUCCESS:
		return "success"
	case transportv1.Outcome_OUTCOME_GONE:
		return "gone"
	case transportv1.Outcome_OUTCOME_THROTTLED:
		return "throttled"
	case transportv1.Outcome_OUTCOME_TIMEOUT:
		return "timeout"
	case transportv1.Outcome_OUTCOME_CONNECTION_ERROR:
		return "connection_error"
	case transportv1.Outcome_OUTCOME_FAILED:
		return "failed"
	case transportv1.Outcome_OUTCOME_REJECTED:
		return "rejected"
	}
	return "unspecified"
}
