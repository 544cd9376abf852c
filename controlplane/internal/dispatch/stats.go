package dispatch

import (
	"context"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"google.golang.org/protobuf/proto"
)

// Delivery statistics (issue 14). The dispatcher counts, per subscription
// and minute of its clock, the deliveries created, the attempts by
// outcome and verdict, and a latency histogram, in memory (pending);
// FlushStats samples the queue and writes what was counted since the last
// flush to the store with one RecordStats command, which every server
// applies. So memory holds only the counts of one flush interval (a few
// seconds) of the subscriptions active in it, and a crash or a change of
// leader loses at most that much; the stored minutes are the record, and
// readers add the pending counts to them (PendingStats).

// Latency histogram: bucket i < LatencyBounds holds latencies up to
// LatencyBound(i) = 1ms * 2^(i/2) (1ms, 1.41ms, 2ms, ... 65.5s); the last
// bucket holds the longer ones.
const (
	LatencyBounds  = 33
	LatencyBuckets = LatencyBounds + 1
)

// LatencyBound is the upper bound of histogram bucket i (i < LatencyBounds).
func LatencyBound(i int) time.Duration {
	return time.Duration(math.Round(float64(time.Millisecond) * math.Pow(2, float64(i)/2)))
}

// latencyBounds caches LatencyBound.
var latencyBounds = func() [LatencyBounds]time.Duration {
	var b [LatencyBounds]time.Duration
	for i := range b {
		b[i] = LatencyBound(i)
	}
	return b
}()

// LatencyBucket is the histogram bucket of latency d.
func LatencyBucket(d time.Duration) int {
	for i, b := range latencyBounds {
		if d <= b {
			return i
		}
	}
	return LatencyBounds
}

// LatencyQuantile estimates the q-quantile (0 < q <= 1) of a histogram's
// latencies: the bucket holding the ceil(q*total)-th smallest latency,
// interpolated linearly within it (the last bucket answers its lower
// bound). ok is false for an empty histogram.
func LatencyQuantile(hist []int64, q float64) (d time.Duration, ok bool) {
	var total int64
	for _, n := range hist {
		total += n
	}
	if total == 0 {
		return 0, false
	}
	rank := int64(math.Ceil(q * float64(total)))
	rank = min(max(rank, 1), total)
	var cum int64
	for i, n := range hist {
		if n == 0 || cum+n < rank {
			cum += n
			continue
		}
		var lo time.Duration
		if i > 0 {
			lo = latencyBounds[min(i-1, LatencyBounds-1)]
		}
		if i >= LatencyBounds {
			return lo, true
		}
		hi := latencyBounds[i]
		frac := float64(rank-cum) / float64(n)
		return lo + time.Duration(frac*float64(hi-lo)), true
	}
	return 0, false
}

// Verdict classes of an attempt, for the statistics.
const (
	AttemptSucceeded = iota
	AttemptRetrying
	AttemptDead
)

// statsKey is a subscription's minute.
type statsKey struct {
	sub    ids.ID
	minute int64
}

// statsRecorder holds the counts not yet flushed.
type statsRecorder struct {
	// flushMu: a flush holds it from taking the pending counts until the
	// store has them, readers (PendingStats) hold it shared across their
	// store read and their read of pending, so nothing is counted twice
	// or missed.
	flushMu sync.RWMutex
	mu      sync.Mutex
	pending map[statsKey]*storev1.StatsMinute
	tenants map[ids.ID]string
	// sampled: the last queue sample recorded of each subscription whose
	// queue was not empty then.
	sampled map[ids.ID]queueSample
}

// queueSample is a subscription's queue as sampled in a minute.
type queueSample struct {
	minute, retry, agent int64
}

func newStatsRecorder() *statsRecorder {
	return &statsRecorder{pending: map[statsKey]*storev1.StatsMinute{}, tenants: map[ids.ID]string{}, sampled: map[ids.ID]queueSample{}}
}

// minuteOf is t's minute since the Unix epoch.
func minuteOf(t time.Time) int64 {
	sec := t.Unix()
	if sec < 0 {
		return (sec - 59) / 60
	}
	return sec / 60
}

// minuteLocked returns (creating) a subscription's pending minute.
func (r *statsRecorder) minuteLocked(tenant string, sub ids.ID, minute int64) *storev1.StatsMinute {
	k := statsKey{sub: sub, minute: minute}
	m := r.pending[k]
	if m == nil {
		m = &storev1.StatsMinute{}
		r.pending[k] = m
		r.tenants[sub] = tenant
	}
	return m
}

// countCreated counts deliveries created for subscriptions at now.
func (d *Dispatcher) countCreated(now time.Time, subs ...*catalog.Sub) {
	r := d.stats
	minute := minuteOf(now)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sub := range subs {
		if sub != nil {
			r.minuteLocked(sub.Tenant, sub.ID, minute).Created++
		}
	}
}

// countAttempt counts a recorded attempt of a subscription.
func (d *Dispatcher) countAttempt(now time.Time, tenant string, sub ids.ID, outcome transportv1.Outcome, latency time.Duration, verdict int) {
	r := d.stats
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.minuteLocked(tenant, sub, minuteOf(now))
	switch verdict {
	case AttemptSucceeded:
		m.Succeeded++
	case AttemptRetrying:
		m.Retrying++
	default:
		m.Dead++
	}
	if o := int(outcome); o >= 0 && o < 64 {
		for len(m.Outcomes) <= o {
			m.Outcomes = append(m.Outcomes, 0)
		}
		m.Outcomes[o]++
	}
	b := LatencyBucket(latency)
	for len(m.Latency) <= b {
		m.Latency = append(m.Latency, 0)
	}
	m.Latency[b]++
}

// QueueDepth is what waits of a subscription's pending deliveries.
type QueueDepth struct {
	Tenant string
	// WaitingRetry: scheduled for later (after a failed attempt).
	WaitingRetry int
	// WaitingAgent: due now, not with an agent.
	WaitingAgent int
}

// QueueDepths reports, per subscription with pending deliveries not with
// an agent, how many wait for a retry and how many are due now. It reads
// the store's in-memory due counts (never the file).
func (d *Dispatcher) QueueDepths() map[ids.ID]QueueDepth {
	due, later := d.cfg.Store.DueDepthBySub(d.cfg.Now())
	out := map[ids.ID]QueueDepth{}
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, n := range due {
		if s := d.subs[id]; s != nil {
			n -= s.inFlight // those are with an agent
		}
		if n > 0 {
			q := out[id]
			q.WaitingAgent = n
			out[id] = q
		}
	}
	for id, n := range later {
		if n > 0 {
			q := out[id]
			q.WaitingRetry = n
			out[id] = q
		}
	}
	for id, q := range out {
		sub := d.cfg.Catalog.Get(id)
		if sub == nil {
			delete(out, id) // deleted: its deliveries are being cancelled
			continue
		}
		q.Tenant = sub.Tenant
		out[id] = q
	}
	return out
}

// sampleQueue records the queue of every subscription with one in now's
// minute: once a minute while it stays the same, again when it changes,
// and a last zero when it empties (a minute without a sample reads as an
// empty queue).
func (d *Dispatcher) sampleQueue(now time.Time) {
	depths := d.QueueDepths()
	r := d.stats
	minute := minuteOf(now)
	r.mu.Lock()
	defer r.mu.Unlock()
	record := func(tenant string, id ids.ID, q queueSample) {
		if last, ok := r.sampled[id]; ok && last == q {
			return
		}
		m := r.minuteLocked(tenant, id, minute)
		m.QueueSampled, m.WaitingRetry, m.WaitingAgent = true, q.retry, q.agent
		r.sampled[id] = q
	}
	for id, q := range depths {
		record(q.Tenant, id, queueSample{minute: minute, retry: int64(q.WaitingRetry), agent: int64(q.WaitingAgent)})
	}
	for id := range r.sampled {
		if _, ok := depths[id]; ok {
			continue
		}
		if sub := d.cfg.Catalog.Get(id); sub != nil {
			record(sub.Tenant, id, queueSample{minute: minute})
		}
		delete(r.sampled, id)
	}
}

// FlushStats samples the queue and writes the statistics counted since
// the last flush to the store (one RecordStats command). When the store
// does not take them they stay pending for the next flush.
func (d *Dispatcher) FlushStats(ctx context.Context) error {
	d.sampleQueue(d.cfg.Now())
	r := d.stats
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	taken, tenants := r.pending, r.tenants
	r.pending, r.tenants = map[statsKey]*storev1.StatsMinute{}, map[ids.ID]string{}
	r.mu.Unlock()
	if len(taken) == 0 {
		return nil
	}
	deltas := make([]*storev1.StatsDelta, 0, len(taken))
	for k, m := range taken {
		sub := k.sub
		deltas = append(deltas, &storev1.StatsDelta{Tenant: tenants[k.sub], SubscriptionId: sub[:], Minute: k.minute, Add: m})
	}
	err := d.cfg.Store.RecordStats(ctx, deltas)
	if err == nil {
		return nil
	}
	// Put them back under what was counted meanwhile (whose queue
	// samples are newer).
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, m := range taken {
		if cur := r.pending[k]; cur != nil {
			store.MergeStatsMinute(m, cur)
		}
		r.pending[k] = m
		r.tenants[k.sub] = tenants[k.sub]
	}
	if dropped := r.trimLocked(statsPendingCap); dropped > 0 {
		d.log.Warn("delivery statistics: the store has not taken them for a while; dropped the oldest", "subscription_minutes", dropped)
	}
	return err
}

// statsPendingCap bounds the subscription-minutes held while the store
// does not take them (a few hundred bytes each).
const statsPendingCap = 100_000

// trimLocked drops the oldest pending minutes beyond max and returns how
// many it dropped.
func (r *statsRecorder) trimLocked(max int) int {
	if len(r.pending) <= max {
		return 0
	}
	keys := make([]statsKey, 0, len(r.pending))
	for k := range r.pending {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].minute < keys[j].minute })
	n := len(keys) - max
	for _, k := range keys[:n] {
		delete(r.pending, k)
	}
	return n
}

// ReadStats runs read (a read of the stored statistics) and then returns
// the counts not yet flushed of tenant's subscriptions (or of sub only)
// in the minutes [from, to), with no flush in between: together they
// count everything once.
func (d *Dispatcher) ReadStats(tenant string, sub *ids.ID, from, to int64, read func() error) (map[ids.ID]map[int64]*storev1.StatsMinute, error) {
	r := d.stats
	r.flushMu.RLock()
	defer r.flushMu.RUnlock()
	if err := read(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[ids.ID]map[int64]*storev1.StatsMinute{}
	for k, m := range r.pending {
		if r.tenants[k.sub] != tenant || (sub != nil && k.sub != *sub) || k.minute < from || k.minute >= to {
			continue
		}
		if out[k.sub] == nil {
			out[k.sub] = map[int64]*storev1.StatsMinute{}
		}
		out[k.sub][k.minute] = proto.Clone(m).(*storev1.StatsMinute)
	}
	return out, nil
}
