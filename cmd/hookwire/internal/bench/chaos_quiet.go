package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// The quiet fault (issue 11, item 1: due retries stalled on a quiet server
// until unrelated activity woke the dispatcher). Once the soak's
// deliveries are done, with no other load, one probe event goes to a
// subscription of its own (quietSubs), so there is exactly one delivery,
// and the sink fails it quietFails times (500): every retry must go out on
// its own, on time. A dispatcher that arms no timer for a retry due later
// than everything else shows here; other deliveries, even of other
// subscriptions, make activity that wakes it (a run with 4 probe
// subscriptions went out on time on the code that stalled with one), so
// the probe is alone.
const (
	quietSubs  = 1
	quietFails = 3
	quietType  = "bench.quiet"
	// quietMax bounds the quiet period: quietFails retries 1s apart (±20%)
	// take about 3.6s when every retry is on time.
	quietMax = 10 * time.Second
)

// quietTag is the sink path tag of the quiet subscriptions: the sink
// counts their webhooks as strays, so the soak's tally is not disturbed;
// quietProbe counts them instead.
func quietTag(tag string) string { return tag + "-quiet" }

// quietProbe is the sink's fault decision for the probe: fail each of its
// webhooks quietFails times, then accept it (and count it).
type quietProbe struct {
	seq   atomic.Int64 // the probe's seq, 0 before the quiet period
	mu    sync.Mutex
	fails map[string]int
	done  map[string]bool
}

func newQuietProbe() *quietProbe {
	return &quietProbe{fails: map[string]int{}, done: map[string]bool{}}
}

// fault decides for one request; ok is false for anything but the probe.
func (q *quietProbe) fault(id string, seq int64) (k faultKind, ok bool) {
	if p := q.seq.Load(); p == 0 || seq != p {
		return faultNone, false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fails[id] >= quietFails {
		q.done[id] = true
		return faultNone, true
	}
	q.fails[id]++
	return fault500, true
}

// arrived is the number of probe webhooks accepted.
func (q *quietProbe) arrived() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.done)
}

// createQuietSubs creates the quiet period's subscriptions like spec.
func (c *Cluster) createQuietSubs(ctx context.Context, tenant, tag string, spec subSpec) error {
	for i := range quietSubs {
		s := spec
		s.eventTypes = []string{quietType}
		s.url = c.b.sink.url(quietTag(tag), i)
		if _, err := c.api.createSub(ctx, tenant, s); err != nil {
			return c.failure(err)
		}
	}
	return nil
}

// quietResult is what the quiet period saw.
type quietResult struct {
	expected int           // probe deliveries (one per quiet subscription)
	arrived  int           // probe webhooks accepted by its end
	took     time.Duration // from the publish to the last arrival, or quietMax
	late     lateness
}

// chaosQuiet publishes the probe, waits until every probe webhook arrived
// (or quietMax), and measures the lateness of their retries. The probe is
// not acknowledged in sq: the soak's subscriptions do not get it.
func (b *Bench) chaosQuiet(ctx context.Context, c *Cluster, tag string, sq *seqs, q *quietProbe, retryDelay time.Duration) (quietResult, error) {
	var r quietResult
	seq := sq.take(1)
	q.seq.Store(seq)
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	resp, err := c.api.events().PublishEvent(pctx, &hookwirev1.PublishEventRequest{Tenant: tag, Event: &hookwirev1.Event{
		Type: quietType, Payload: makePayload(start.UnixNano(), seq, b.cfg.PayloadSize)}})
	cancel()
	if err != nil {
		return r, fmt.Errorf("quiet period: publish the probe: %w", err)
	}
	r.expected = int(resp.GetDeliveryCount())
	_, _ = pollFor(ctx, quietMax, func() (struct{}, bool) { return struct{}{}, q.arrived() >= r.expected })
	r.took = time.Since(start)
	r.arrived = q.arrived()
	if ctx.Err() != nil {
		return r, ctx.Err()
	}

	// A delivery stays pending until the agent's result for its last
	// attempt is recorded; only one still pending after that is overdue.
	list := func() ([]*hookwirev1.Delivery, error) {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return c.api.listDeliveries(lctx, tag, resp.GetId(), 100)
	}
	var dels []*hookwirev1.Delivery
	settled := func() (struct{}, bool) {
		dels, err = list()
		if err != nil {
			return struct{}{}, true
		}
		for _, d := range dels {
			if d.GetStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING {
				return struct{}{}, false
			}
		}
		return struct{}{}, true
	}
	if r.arrived >= r.expected {
		_, _ = pollFor(ctx, 5*time.Second, settled)
	} else {
		settled()
	}
	now := time.Now()
	if err != nil {
		return r, fmt.Errorf("quiet period: list the probe's deliveries: %w", err)
	}
	r.late = retryLateness(ctx, c.api, tag, dels, now, b.sink.retryHits(), retryDelay)
	return r, nil
}
