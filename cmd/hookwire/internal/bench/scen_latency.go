package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// latency: a fixed offered rate, paced open loop (each event is due at
// start + i/rate whether or not earlier publishes have returned), one event
// per gRPC PublishEvent. The payload carries the due time, so a late
// publisher counts as latency.
func (b *Bench) latency(ctx context.Context, s *Scenario) error {
	cfg := b.cfg
	d := cfg.dur(20 * time.Second)
	r := cfg.Rate
	const workers = 64
	s.Params = map[string]any{"rate": r, "duration": d.String(), "warmup": cfg.Warmup.String(), "agents": 1, "payload_bytes": cfg.PayloadSize,
		"publish": fmt.Sprintf("gRPC PublishEvent, open loop, %d workers", workers)}

	bl := b.openLoopBaseline(ctx, r, min(d, 5*time.Second), workers)

	tag := b.newTag("latency")
	c, err := b.newCluster(ctx, tag)
	if err != nil {
		return err
	}
	defer c.close()
	if _, err := c.setup(ctx, tag, tag, 1, subSpec{eventTypes: []string{"bench.latency"}}); err != nil {
		return err
	}
	if err := c.startAgents(1); err != nil {
		return err
	}
	sq := newSeqs(false)
	if err := b.probe(ctx, c, tag, "bench.latency", sq, 1); err != nil {
		return err
	}
	errs := newErrTally()
	var mu sync.Mutex
	var acks []int64
	measuring := false
	publish := func(sched time.Time) {
		seq := sq.take(1)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		resp, err := c.api.events().PublishEvent(pctx, &hookwirev1.PublishEventRequest{Tenant: tag, Event: &hookwirev1.Event{
			Type: "bench.latency", Payload: makePayload(sched.UnixNano(), seq, cfg.PayloadSize)}})
		if err != nil {
			errs.add("publish "+errCode(err), 1)
			return
		}
		took := time.Since(sched)
		sq.ack(seq, resp.GetId())
		mu.Lock()
		if measuring {
			acks = append(acks, int64(took))
		}
		mu.Unlock()
	}
	if cfg.Warmup > 0 {
		paced(ctx, r, cfg.Warmup, workers, publish)
	}
	mu.Lock()
	measuring = true
	mu.Unlock()
	t0, cpu0 := time.Now(), c.snapshot()
	pc := paced(ctx, r, d, workers, publish)
	t1, cpu1 := time.Now(), c.snapshot()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	drained := b.sink.awaitAcked(ctx, 1, sq.max(), sq.acked, 30*time.Second)
	inWindow := func(a arrival) bool { return a.sent >= t0.UnixNano() && a.sent < t0.Add(d).UnixNano() }
	samples := b.sink.latencies(inWindow)
	delivered := int64(len(samples))
	lat := percentiles(samples)
	t := b.sink.tally(1, sq.max(), sq.acked)

	s.add("offered", "offered", float64(r), "/s", nil)
	achieved := rate(b.sink.arrivalsBetween(t0, t1), t1.Sub(t0))
	s.add("achieved", "achieved (arrivals during the window)", achieved, "/s", nil)
	if achieved < 0.95*float64(r) {
		s.note("the offered rate is above what delivery sustained here (%.0f/s): events queue and latency grows for as long as the run lasts", achieved)
	}
	addLatency(s, "latency", "publish→arrival", lat, atMost(5), atMost(25))
	if bl.Latency.P50 > 0 {
		s.add("baseline_p50", fmt.Sprintf("baseline p50 (plain client, open loop %d/s)", r), bl.Latency.P50, "ms", nil)
		s.add("baseline_p99", "baseline p99", bl.Latency.P99, "ms", nil)
		s.add("ratio_p50", "p50 ratio to baseline", lat.P50/bl.Latency.P50, "ratio", nil)
	}
	ack := percentiles(acks)
	s.add("publish_ack_p50", "publish acknowledged (due→ack) p50", ack.P50, "ms", nil)
	s.add("publish_ack_p99", "publish acknowledged p99", ack.P99, "ms", nil)
	s.add("pacing_max_lag", "pacing: worst hand-off delay", float64(pc.maxLag)/float64(time.Millisecond), "ms", nil)
	cpu := c.account(s, cpu0, cpu1)
	if c.local() && delivered > 0 {
		s.add("cpu_cores", "CPU used by hookwire processes", cpu/t1.Sub(t0).Seconds()*100, "%", nil)
		// The 0.2 ms target is for saturation (the e2e scenario): at a fixed
		// low rate every publish and result pays its own fsync and stream
		// message, so this figure is reported without a target.
		s.add("cpu_per_delivery", "CPU per delivered event (at this rate, not saturated)", cpu/float64(delivered)*1000, "ms", nil)
	}
	s.add("duplicates", "duplicates", float64(t.Duplicates), "", nil)
	s.add("lost", "lost", float64(t.Lost), "", atMost(0))
	if !drained {
		s.note("not every acknowledged event arrived within 30s after the run")
	}
	errs.into(s)
	return nil
}
