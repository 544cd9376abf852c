package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

const e2eBatch = 50

// publishBatch publishes n events of type t with fresh seqs and the given
// send time, and acknowledges them in sq on success.
func publishBatch(ctx context.Context, api *API, tenant, t string, sq *seqs, n int, sent time.Time, size int) error {
	first := sq.take(n)
	evs := make([]*hookwirev1.Event, n)
	for i := range evs {
		evs[i] = &hookwirev1.Event{Type: t, Payload: makePayload(sent.UnixNano(), first+int64(i), size)}
	}
	resp, err := api.events().PublishEvents(ctx, &hookwirev1.PublishEventsRequest{Tenant: tenant, Events: evs})
	if err != nil {
		return err
	}
	for i, r := range resp.GetResults() {
		sq.ack(first+int64(i), r.GetId())
	}
	return nil
}

// probe publishes one event and waits until it arrives, so that agents
// and plugins are connected and warm before measuring.
func (b *Bench) probe(ctx context.Context, c *Cluster, tenant, t string, sq *seqs, expectPerEvent int) error {
	want := b.sink.Count() + int64(expectPerEvent)
	if err := publishBatch(ctx, c.api, tenant, t, sq, 1, time.Now(), b.cfg.PayloadSize); err != nil {
		return c.failure(fmt.Errorf("probe publish: %w", err))
	}
	if !b.sink.await(ctx, want, 60*time.Second) {
		return c.failure(fmt.Errorf("probe event did not reach the sink within 60s (agents not delivering?)"))
	}
	return nil
}

// e2e: maximum sustained deliveries/s through one subscription. Publishers
// keep a bounded number of events outstanding (published, not yet
// arrived), so the rate measured is what delivery sustains, not a burst
// into a growing queue.
func (b *Bench) e2e(ctx context.Context, s *Scenario, agents int) error {
	cfg := b.cfg
	d := cfg.dur(15 * time.Second)
	window := int64(max(2000, 8*max(agents, 1)*cfg.MaxInFlight))
	const publishers = 4
	s.Params = map[string]any{"agents": agents, "max_in_flight": cfg.MaxInFlight, "duration": d.String(), "warmup": cfg.Warmup.String(),
		"payload_bytes": cfg.PayloadSize, "publish": fmt.Sprintf("gRPC PublishEvents x%d, %d publishers", e2eBatch, publishers), "max_outstanding": window}
	conc := max(agents, 1) * cfg.MaxInFlight
	bl, err := b.baseline(ctx, fmt.Sprintf("e2e agents=%d", agents), conc)
	if err != nil {
		return err
	}
	tag := b.newTag("e2e")
	c, err := b.newCluster(ctx, tag)
	if err != nil {
		return err
	}
	defer c.close()
	if _, err := c.setup(ctx, tag, tag, 1, subSpec{eventTypes: []string{"bench.e2e"}}); err != nil {
		return err
	}
	if err := c.startAgents(agents); err != nil {
		return err
	}
	sq := newSeqs(false)
	if err := b.probe(ctx, c, tag, "bench.e2e", sq, 1); err != nil {
		return err
	}

	pubCtx, stop := context.WithCancel(ctx)
	defer stop()
	var published atomic.Int64
	published.Store(sq.count())
	errs := newErrTally()
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for pubCtx.Err() == nil {
				if published.Load()-b.sink.Count() > window {
					time.Sleep(time.Millisecond)
					continue
				}
				if err := publishBatch(pubCtx, c.api, tag, "bench.e2e", sq, e2eBatch, time.Now(), cfg.PayloadSize); err != nil {
					if pubCtx.Err() == nil {
						errs.add("publish "+errCode(err), 1)
						time.Sleep(10 * time.Millisecond)
					}
					continue
				}
				published.Add(e2eBatch)
			}
		})
	}
	if err := sleep(ctx, cfg.Warmup); err != nil {
		return err
	}
	t0, a0, p0, cpu0 := time.Now(), b.sink.Count(), published.Load(), c.snapshot()
	if err := sleep(ctx, d); err != nil {
		return err
	}
	t1, a1, p1, cpu1 := time.Now(), b.sink.Count(), published.Load(), c.snapshot()
	stop()
	wg.Wait()
	el := t1.Sub(t0)
	delivered := a1 - a0
	achieved := rate(delivered, el)
	b.e2eRates[agents] = achieved

	// Everything acknowledged must arrive once publishing stops.
	drained := b.sink.awaitAcked(ctx, 1, sq.max(), sq.acked, 60*time.Second)
	t := b.sink.tally(1, sq.max(), sq.acked)

	s.add("offered", "offered (acknowledged publishes)", rate(p1-p0, el), "/s", nil)
	s.add("achieved", "achieved deliveries", achieved, "/s", nil)
	if bl.Rate > 0 {
		s.add("baseline", fmt.Sprintf("baseline just before (plain client, concurrency %d)", conc), bl.Rate, "/s", nil)
		s.add("ratio_to_baseline", "ratio to baseline", achieved/bl.Rate, "ratio", atLeast(0.5))
	}
	lat := percentiles(b.sink.latencies(func(a arrival) bool { return a.at >= t0.UnixNano() && a.at < t1.UnixNano() }))
	addLatency(s, "latency", "publish→arrival under saturation", lat, nil, nil)
	cpu := c.account(s, cpu0, cpu1)
	if c.local() && delivered > 0 {
		perDelivery := cpu / float64(delivered) * 1000
		s.add("cpu_per_delivery", "CPU per delivered event (all hookwire processes)", perDelivery, "ms", atMost(0.2))
		s.add("cpu_ceiling", fmt.Sprintf("CPU-bound ceiling on %d CPUs (CPUs / CPU per event)", runtime.NumCPU()), float64(runtime.NumCPU())*1000/perDelivery, "/s", nil)
		s.add("cpu_cores", "CPU used by hookwire processes", cpu/el.Seconds()*100, "%", nil)
		s.add("cpu_server_per_delivery", "  of which control plane", c.mon.cpuDelta(cpu0, cpu1, "server")/float64(delivered)*1000, "ms", nil)
	}
	s.add("delivered_total", "deliveries checked after drain", float64(t.Arrived), "", nil)
	s.add("duplicates", "duplicates", float64(t.Duplicates), "", nil)
	s.add("lost", "lost (acknowledged, never arrived)", float64(t.Lost), "", atMost(0))
	if !drained {
		s.note("not every acknowledged event arrived within 60s after publishing stopped")
	}
	s.note("closed loop: at most %d events outstanding; latency here includes that queue, see the latency scenario for latency at a fixed rate", window)
	errs.into(s)
	return nil
}

func addLatency(s *Scenario, key, what string, p Percentiles, p50, p99 *target) {
	s.add(key+"_p50", what+" p50", p.P50, "ms", p50)
	s.add(key+"_p90", what+" p90", p.P90, "ms", nil)
	s.add(key+"_p99", what+" p99", p.P99, "ms", p99)
	s.add(key+"_max", what+" max", p.Max, "ms", nil)
}

// errTally counts errors by kind, concurrently.
type errTally struct {
	mu sync.Mutex
	m  map[string]int64
}

func newErrTally() *errTally { return &errTally{m: map[string]int64{}} }

func (e *errTally) add(kind string, n int64) {
	e.mu.Lock()
	e.m[kind] += n
	e.mu.Unlock()
}

func (e *errTally) total() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	for _, v := range e.m {
		n += v
	}
	return n
}

func (e *errTally) into(s *Scenario) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, v := range e.m {
		s.errorf(k, v)
	}
}
