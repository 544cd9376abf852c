package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// backlog: N pending deliveries for a subscription that is paused (its
// target "down" without spending retries: a closed port would push every
// delivery onto the 5s, 5m, 30m... schedule and the drain would measure
// the schedule, not the system). Measures the control plane's memory and
// store size with the backlog, restart-to-serving time, and the drain rate
// once the subscription is resumed.
func (b *Bench) backlog(ctx context.Context, s *Scenario) error {
	cfg := b.cfg
	n := cfg.BacklogSize
	const fillers, batch = 4, 1000
	s.Params = map[string]any{"backlog": n, "agents": 1, "payload_bytes": cfg.PayloadSize, "target_down": "subscription paused",
		"fill": fmt.Sprintf("gRPC PublishEvents x%d, %d clients", batch, fillers)}
	tag := b.newTag("backlog")
	c, err := b.newCluster(ctx, tag)
	if err != nil {
		return err
	}
	defer c.close()
	ids, err := c.setup(ctx, tag, tag, 1, subSpec{eventTypes: []string{"bench.backlog"}})
	if err != nil {
		return err
	}
	if err := c.api.pause(ctx, tag, ids[0]); err != nil {
		return c.failure(fmt.Errorf("pause subscription: %w", err))
	}

	b.logf("backlog: publishing %d events to a paused subscription", n)
	sq := newSeqs(false)
	fillCtx, stop := context.WithCancel(ctx)
	defer stop()
	var mu sync.Mutex
	left := n
	var fillErr error
	start := time.Now()
	var wg sync.WaitGroup
	for range fillers {
		wg.Go(func() {
			for fillCtx.Err() == nil {
				mu.Lock()
				k := min(batch, left)
				left -= k
				mu.Unlock()
				if k == 0 {
					return
				}
				var err error
				for try := 0; try < 5; try++ {
					if err = publishBatch(fillCtx, c.api, tag, "bench.backlog", sq, k, time.Now(), cfg.PayloadSize); err == nil {
						break
					}
				}
				if err != nil {
					mu.Lock()
					fillErr = err
					mu.Unlock()
					stop()
					return
				}
			}
		})
	}
	wg.Wait()
	if fillErr != nil {
		return c.failure(fmt.Errorf("fill backlog: %w", fillErr))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.add("fill_rate", "backlog filled (durable publishes)", rate(int64(n), time.Since(start)), "/s", nil)

	if c.local() {
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
		mi := c.mon.mem(c.server())
		s.add("rss_with_backlog", "control-plane RSS with the backlog", float64(mi.rss), "bytes", atMost(300<<20))
		s.add("anon_rss_with_backlog", "  of which anonymous (heap, stacks; the rest is bbolt's mmap)", float64(mi.anon), "bytes", nil)
		s.add("peak_rss_fill", "control-plane peak RSS while filling", float64(mi.hwm), "bytes", nil)
		s.add("store_size", "store size (data dir)", float64(dirSize(c.dataDir)), "bytes", nil)
		if n > 0 {
			s.add("store_bytes_per_delivery", "store bytes per pending delivery", float64(dirSize(c.dataDir))/float64(n), "", nil)
		}

		b.logf("backlog: restarting the control plane")
		stopTook, serving, err := c.restartServer(ctx, false)
		if err != nil {
			return err
		}
		s.add("stop_time", "SIGTERM to exit", stopTook.Seconds(), "s", nil)
		s.add("restart_time", "start to gRPC health SERVING", serving.Seconds(), "s", atMost(2))
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
		mi = c.mon.mem(c.server())
		s.add("rss_after_restart", "control-plane RSS 1s after restart (backlog on disk)", float64(mi.rss), "bytes", nil)
		s.add("anon_rss_after_restart", "  of which anonymous", float64(mi.anon), "bytes", nil)
	} else {
		s.note("remote mode: memory, store size and restart are not measured")
	}

	b.logf("backlog: draining")
	if err := c.startAgents(1); err != nil {
		return err
	}
	cpu0 := c.snapshot()
	t0 := time.Now()
	if err := c.api.resume(ctx, tag, ids[0]); err != nil {
		return c.failure(fmt.Errorf("resume subscription: %w", err))
	}
	want := sq.count()
	drainWithin := cfg.DrainTimeout
	if drainWithin <= 0 {
		drainWithin = 90*time.Second + time.Duration(want)*500*time.Microsecond
	}
	drained := b.sink.await(ctx, want, drainWithin)
	el := time.Since(t0)
	cpu1 := c.snapshot()
	c.account(s, cpu0, cpu1)
	got := b.sink.Count()
	var driftTarget *target
	if r, ok := b.e2eRates[1]; ok && r > 0 {
		driftTarget = atLeast(r)
	}
	s.add("drain_rate", "drain rate after resume (1 agent)", rate(got, el), "/s", driftTarget)
	if driftTarget == nil {
		s.note("drain target is the e2e rate with 1 agent; run e2e in the same invocation to compare")
	}
	if c.local() {
		mi := c.mon.mem(c.server())
		s.add("peak_rss_drain", "control-plane peak RSS after restart, through the drain", float64(mi.hwm), "bytes", atMost(300<<20))
		s.add("peak_anon_rss_drain", "  peak anonymous RSS (sampled)", float64(mi.peakAnon), "bytes", nil)
	}
	t := b.sink.tally(1, sq.max(), sq.acked)
	s.add("drained", "deliveries drained", float64(got), "", nil)
	s.add("duplicates", "duplicates", float64(t.Duplicates), "", nil)
	if drained {
		s.add("lost", "lost", float64(t.Lost), "", atMost(0))
	} else {
		// Not drained in time: what is missing is lost only if it is no
		// longer pending. Pause first so the count does not race the drain.
		if err := c.api.pause(ctx, tag, ids[0]); err != nil {
			return c.failure(fmt.Errorf("pause subscription: %w", err))
		}
		if err := sleep(ctx, 3*time.Second); err != nil {
			return err
		}
		t = b.sink.tally(1, sq.max(), sq.acked)
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		pending, err := c.api.pendingCount(pctx, tag, n+1)
		cancel()
		s.add("not_drained", "not delivered by the deadline", float64(t.Lost), "", nil)
		if err == nil {
			s.add("pending_at_deadline", "still pending at the deadline (per the API)", float64(pending), "", nil)
			s.add("lost", "lost (missing and not pending)", float64(max(0, t.Lost-int64(pending))), "", atMost(0))
		}
		s.note("the backlog did not fully drain within the deadline (%s)", drainWithin)
	}
	if n < 1000000 {
		s.note("targets are for 1,000,000 pending deliveries; this run had %d (use --backlog-size 1000000)", n)
	}
	return nil
}
