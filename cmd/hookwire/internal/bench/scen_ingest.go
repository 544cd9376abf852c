package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// ingest: durable publish throughput while the one matching subscription
// is paused, so every publish writes its event and one pending delivery
// and nothing is dispatched. Three ways in: REST single events, gRPC single
// events, gRPC PublishEvents batches.
func (b *Bench) ingest(ctx context.Context, s *Scenario) error {
	cfg := b.cfg
	d := cfg.dur(10 * time.Second)
	warm := min(cfg.Warmup, time.Second)
	batchClients := max(1, cfg.IngestClients/4)
	s.Params = map[string]any{"duration_per_mode": d.String(), "clients": cfg.IngestClients, "batch_size": cfg.BatchSize,
		"batch_clients": batchClients, "payload_bytes": cfg.PayloadSize, "subscriptions": "1 (paused)"}
	tag := b.newTag("ingest")
	c, err := b.newCluster(ctx, tag)
	if err != nil {
		return err
	}
	defer c.close()
	ids, err := c.setup(ctx, tag, tag, 1, subSpec{eventTypes: []string{"bench.ingest"}})
	if err != nil {
		return err
	}
	if err := c.api.pause(ctx, tag, ids[0]); err != nil {
		return c.failure(fmt.Errorf("pause subscription: %w", err))
	}
	var seq atomic.Int64
	payload := func() []byte { return makePayload(time.Now().UnixNano(), seq.Add(1), cfg.PayloadSize) }
	type mode struct {
		key, name string
		clients   int
		batch     int
		target    *target
		call      func(ctx context.Context) error
	}
	modes := []mode{
		{"rest_single", "REST single event", cfg.IngestClients, 1, atLeast(8000), func(ctx context.Context) error {
			return c.api.publishREST(ctx, tag, "bench.ingest", "", payload())
		}},
		{"grpc_single", "gRPC PublishEvent", cfg.IngestClients, 1, nil, func(ctx context.Context) error {
			_, err := c.api.events().PublishEvent(ctx, &hookwirev1.PublishEventRequest{Tenant: tag, Event: &hookwirev1.Event{Type: "bench.ingest", Payload: payload()}})
			return err
		}},
		{"grpc_batch", fmt.Sprintf("gRPC PublishEvents (batches of %d)", cfg.BatchSize), batchClients, cfg.BatchSize, atLeast(50000), func(ctx context.Context) error {
			evs := make([]*hookwirev1.Event, cfg.BatchSize)
			for i := range evs {
				evs[i] = &hookwirev1.Event{Type: "bench.ingest", Payload: payload()}
			}
			_, err := c.api.events().PublishEvents(ctx, &hookwirev1.PublishEventsRequest{Tenant: tag, Events: evs})
			return err
		}},
	}
	errs := newErrTally()
	var total int64
	var firstCPU, lastCPU CPUSnapshot
	for _, m := range modes {
		if !c.api.hasREST() && m.key == "rest_single" {
			s.note("REST mode skipped: no --rest-url")
			continue
		}
		b.logf("ingest: %s, %d clients, %s", m.name, m.clients, d)
		var events atomic.Int64
		var mu sync.Mutex
		var lats []int64
		var measuring atomic.Bool
		runCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for range m.clients {
			wg.Go(func() {
				for runCtx.Err() == nil {
					st := time.Now()
					cctx, cancel := context.WithTimeout(runCtx, 30*time.Second)
					err := m.call(cctx)
					cancel()
					if err != nil {
						if runCtx.Err() == nil {
							errs.add(m.key+" "+errCode(err), 1)
							time.Sleep(10 * time.Millisecond)
						}
						continue
					}
					events.Add(int64(m.batch))
					if measuring.Load() {
						took := int64(time.Since(st))
						mu.Lock()
						lats = append(lats, took)
						mu.Unlock()
					}
				}
			})
		}
		if err := sleep(ctx, warm); err != nil {
			stop()
			return err
		}
		measuring.Store(true)
		t0, e0, cpu0 := time.Now(), events.Load(), c.snapshot()
		if firstCPU == nil {
			firstCPU = cpu0
		}
		err := sleep(ctx, d)
		t1, e1, cpu1 := time.Now(), events.Load(), c.snapshot()
		measuring.Store(false)
		stop()
		wg.Wait()
		if err != nil {
			return err
		}
		lastCPU = cpu1
		n := e1 - e0
		total += events.Load()
		s.add(m.key+"_rate", m.name+": events", rate(n, t1.Sub(t0)), "/s", m.target)
		p := percentiles(lats)
		s.add(m.key+"_p50", m.name+": call p50", p.P50, "ms", nil)
		s.add(m.key+"_p99", m.name+": call p99", p.P99, "ms", nil)
		if c.local() && n > 0 {
			s.add(m.key+"_cpu", m.name+": control-plane CPU per event", c.mon.cpuDelta(cpu0, cpu1, "server")/float64(n)*1000, "ms", nil)
		}
	}
	if firstCPU != nil {
		c.account(s, firstCPU, lastCPU)
	}
	s.add("events_total", "events durably published (all modes)", float64(total), "", nil)
	if c.local() {
		s.add("store_size", "store size (data dir)", float64(dirSize(c.dataDir)), "bytes", nil)
	}
	errs.into(s)
	return nil
}
