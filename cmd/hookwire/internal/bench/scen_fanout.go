package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// matchShape is how the subscriptions of the matching measurement select
// events: by event type (exact names, and patterns with "*" segments,
// matched by a scan), or by a CEL filter over the payload. Another way of
// selecting events gets its own shape here and is measured the same way.
type matchShape struct {
	name string
	// sub returns subscription i of n, targeting url.
	sub func(i, n int, url string) subSpec
	// publishType is the event type published (with a payload whose seq
	// is 1); it must match subscription 0 and no other.
	publishType string
}

func matchShapes(wildShare float64) []matchShape {
	return []matchShape{{
		name: "event-type",
		sub: func(i, n int, url string) subSpec {
			t := fmt.Sprintf("bench.match.e%d", i)
			if i > 0 && float64(i%1000) < wildShare*1000 {
				t = fmt.Sprintf("bench.match.w%d.*", i)
			}
			return subSpec{eventTypes: []string{t}, url: url}
		},
		publishType: "bench.match.e0",
	}, {
		// Every subscription takes the type; its filter picks one seq.
		name: "cel-filter",
		sub: func(i, n int, url string) subSpec {
			return subSpec{eventTypes: []string{"bench.match.cel"}, filter: fmt.Sprintf("payload.seq == %d", i+1), url: url}
		},
		publishType: "bench.match.cel",
	}}
}

// createSubs creates n subscriptions with 32 concurrent calls and returns
// their ids.
func createSubs(ctx context.Context, c *Cluster, tenant string, n int, spec func(i int) subSpec) ([]string, time.Duration, error) {
	ids := make([]string, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	start := time.Now()
	var wg sync.WaitGroup
	for range min(32, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				id, err := c.api.createSub(ctx, tenant, spec(i))
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, 0, c.failure(firstErr)
	}
	return ids, time.Since(start), ctx.Err()
}

// fanout: one event type, N subscriptions: how fast a publish creates its
// deliveries (no agent running, so delivery does not compete), then how
// fast agents deliver them; and the cost of matching an event against a
// tenant with many subscriptions.
func (b *Bench) fanout(ctx context.Context, s *Scenario) error {
	cfg := b.cfg
	n, events, m := cfg.FanoutSubs, cfg.FanoutEvents, cfg.MatchSubs
	const rounds, singles = 5, 100
	s.Params = map[string]any{"subscriptions": n, "events": events, "match_subscriptions": m, "match_wildcard_share": cfg.MatchWild,
		"agents": 1, "payload_bytes": cfg.PayloadSize}
	tag := b.newTag("fanout")
	c, err := b.newCluster(ctx, tag)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.api.createTenant(ctx, tag); err != nil {
		return c.failure(err)
	}
	b.logf("fanout: creating %d subscriptions", n)
	_, took, err := createSubs(ctx, c, tag, n, func(i int) subSpec {
		return subSpec{eventTypes: []string{"bench.fanout"}, url: b.sink.url(tag, i)}
	})
	if err != nil {
		return err
	}
	s.add("subs_create_rate", "subscriptions created", rate(int64(n), took), "/s", nil)

	// Deliveries created per second: sequential single-event publishes.
	sq := newSeqs(false)
	var pubLat []int64
	cpu0 := c.snapshot()
	start := time.Now()
	for range events {
		st := time.Now()
		if err := publishBatch(ctx, c.api, tag, "bench.fanout", sq, 1, st, cfg.PayloadSize); err != nil {
			return c.failure(fmt.Errorf("publish: %w", err))
		}
		pubLat = append(pubLat, int64(time.Since(st)))
	}
	created := int64(events * n)
	createdRate := rate(created, time.Since(start))
	cpu1 := c.snapshot()
	p := percentiles(pubLat)
	s.add("created_rate", fmt.Sprintf("deliveries created (1 event → %d deliveries, sequential publishes)", n), createdRate, "/s", atLeast(20000))
	s.add("publish_p50", fmt.Sprintf("publish of one event with %d matches p50", n), p.P50, "ms", nil)
	if c.local() {
		s.add("created_cpu", "control-plane CPU per delivery created", c.mon.cpuDelta(cpu0, cpu1, "server")/float64(created)*1000, "ms", nil)
	}

	// Matching cost: a tenant with m subscriptions vs one with 1; the
	// published type matches exactly one subscription in each (paused, so
	// nothing is delivered).
	for _, shape := range matchShapes(cfg.MatchWild) {
		if err := b.matchCost(ctx, c, s, tag, shape, m, rounds, singles); err != nil {
			return err
		}
	}

	// Delivery of the fan-out by one agent.
	b.logf("fanout: delivering %d deliveries", created)
	cpu2 := c.snapshot()
	agentsStart := time.Now()
	if err := c.startAgents(1); err != nil {
		return err
	}
	deadline := time.Now().Add(max(2*time.Minute, time.Duration(created)*time.Millisecond))
	for b.sink.Count() < created && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	cpu3 := c.snapshot()
	c.account(s, cpu2, cpu3)
	// First to last arrival as the sink recorded them (polling would see a
	// small fan-out arrive all at once).
	first, last := b.sink.arrivalSpan(agentsStart)
	if b.sink.Count() >= created && last.After(first) {
		s.add("delivered_rate", "fan-out delivered by 1 agent (first to last arrival)", rate(created, last.Sub(first)), "/s", nil)
	} else {
		s.note("fan-out not fully delivered within the deadline: %d of %d", b.sink.Count(), created)
	}
	t := b.sink.tally(n, sq.max(), sq.acked)
	s.add("duplicates", "duplicates", float64(t.Duplicates), "", nil)
	s.add("lost", "lost", float64(t.Lost), "", atMost(0))
	s.note("matching: [event-type] %.0f%% of the %d subscriptions are \"*\" patterns, the rest exact types; [cel-filter] all %d take the event type and each has a CEL filter on payload.seq", cfg.MatchWild*100, m, m)
	return nil
}

func (b *Bench) matchCost(ctx context.Context, c *Cluster, s *Scenario, tag string, shape matchShape, m, rounds, singles int) error {
	big, small := tag+"-"+shape.name+"-big", tag+"-"+shape.name+"-one"
	key := "match_" + strings.ReplaceAll(shape.name, "-", "_")
	for _, t := range []string{big, small} {
		if err := c.api.createTenant(ctx, t); err != nil {
			return c.failure(err)
		}
	}
	b.logf("fanout: creating %d subscriptions for matching (%s)", m, shape.name)
	url := b.sink.url(tag+"-match", 0)
	bigIDs, took, err := createSubs(ctx, c, big, m, func(i int) subSpec { return shape.sub(i, m, url) })
	if err != nil {
		return err
	}
	s.add(key+"_subs_create_rate", fmt.Sprintf("[%s] subscriptions created (%d in one tenant)", shape.name, m), rate(int64(m), took), "/s", nil)
	smallIDs, _, err := createSubs(ctx, c, small, 1, func(i int) subSpec { return shape.sub(i, 1, url) })
	if err != nil {
		return err
	}
	for _, x := range [][2]string{{big, bigIDs[0]}, {small, smallIDs[0]}} {
		if err := c.api.pause(ctx, x[0], x[1]); err != nil {
			return c.failure(err)
		}
	}
	payload := makePayload(time.Now().UnixNano(), 1, b.cfg.PayloadSize)
	batch := func(tenant string) (time.Duration, error) {
		evs := make([]*hookwirev1.Event, 1000)
		for i := range evs {
			evs[i] = &hookwirev1.Event{Type: shape.publishType, Payload: payload}
		}
		st := time.Now()
		resp, err := c.api.events().PublishEvents(ctx, &hookwirev1.PublishEventsRequest{Tenant: tenant, Events: evs})
		if err == nil && resp.GetResults()[0].GetDeliveryCount() != 1 {
			err = fmt.Errorf("event type %q matched %d subscriptions in tenant %s, want 1", shape.publishType, resp.GetResults()[0].GetDeliveryCount(), tenant)
		}
		return time.Since(st), err
	}
	single := func(tenant string) (time.Duration, error) {
		st := time.Now()
		_, err := c.api.events().PublishEvent(ctx, &hookwirev1.PublishEventRequest{Tenant: tenant, Event: &hookwirev1.Event{Type: shape.publishType, Payload: payload}})
		return time.Since(st), err
	}
	var bigBatch, smallBatch []float64
	var bigSingle, smallSingle []int64
	for range rounds {
		for _, x := range []struct {
			t   string
			out *[]float64
		}{{big, &bigBatch}, {small, &smallBatch}} {
			d, err := batch(x.t)
			if err != nil {
				return c.failure(err)
			}
			*x.out = append(*x.out, float64(d)/1000/float64(time.Millisecond))
		}
	}
	for range singles {
		for _, x := range []struct {
			t   string
			out *[]int64
		}{{big, &bigSingle}, {small, &smallSingle}} {
			d, err := single(x.t)
			if err != nil {
				return c.failure(err)
			}
			*x.out = append(*x.out, int64(d))
		}
	}
	bb, sb := median(bigBatch), median(smallBatch)
	s.add(key+"_batch_event_big", fmt.Sprintf("[%s] publish cost per event, %d subs (batches of 1000, median of %d)", shape.name, m, rounds), bb, "ms", atMost(1))
	s.add(key+"_batch_event_one", fmt.Sprintf("[%s] publish cost per event, 1 sub", shape.name), sb, "ms", nil)
	s.add(key+"_cost", fmt.Sprintf("[%s] matching cost per event (%d subs minus 1 sub)", shape.name, m), bb-sb, "ms", nil)
	ps, p1 := percentiles(bigSingle), percentiles(smallSingle)
	s.add(key+"_single_big_p50", fmt.Sprintf("[%s] single publish latency p50, %d subs", shape.name, m), ps.P50, "ms", nil)
	s.add(key+"_single_one_p50", fmt.Sprintf("[%s] single publish latency p50, 1 sub", shape.name), p1.P50, "ms", nil)
	return nil
}
