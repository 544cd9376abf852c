package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// Chaos fault names (--chaos-faults).
const (
	chaosKillServer = "kill-server"
	chaosKillAgent  = "kill-agent"
)

var sinkFaultByName = map[string]faultKind{"500": fault500, "429": fault429, "hang": faultHang, "reset": faultReset}

// ChaosFaultNames lists what --chaos-faults accepts.
var ChaosFaultNames = []string{"500", "reset", "429", "hang", chaosKillServer, chaosKillAgent}

type killEvent struct {
	at     time.Duration
	server bool
	agent  int
}

// chaos: a bounded soak under steady open-loop load while the control
// plane and agents are SIGKILLed and restarted at random moments and the
// sink fails, hangs, throttles and resets connections; then wait until
// every delivery has succeeded and check, from the sink's records, that
// every acknowledged publish reached every subscription.
//
// Retries make the run's length. The subscriptions carry a retry policy of
// 1s waits, so a failed attempt (500, reset) comes back within about a
// second, and the sink fails each webhook at most maxFailsPerWebhook times.
// A throttled or timed-out attempt waits at least 60s whatever the policy
// (the control plane's throttling minimum), so 429 and hangs are injected
// only in the first fifth of the soak; all faults stop at 3/4 of it.
func (b *Bench) chaos(ctx context.Context, s *Scenario) error {
	cfg := b.cfg
	d := cfg.dur(60 * time.Second)
	faultEnd := d * 3 / 4
	earlyEnd := d / 5
	const attemptTimeout = 2 * time.Second
	const maxFailsPerWebhook = 3
	retryDelays := slices.Repeat([]time.Duration{time.Second}, 20)
	var sinkKinds, earlyKinds []faultKind
	killServer, killAgent := false, false
	for _, f := range cfg.ChaosFaults {
		switch f {
		case chaosKillServer:
			killServer = true
		case chaosKillAgent:
			killAgent = true
		case "429", "hang":
			earlyKinds = append(earlyKinds, sinkFaultByName[f])
		default:
			k, ok := sinkFaultByName[f]
			if !ok {
				return fmt.Errorf("unknown chaos fault %q; choose from %v", f, ChaosFaultNames)
			}
			sinkKinds = append(sinkKinds, k)
		}
	}
	s.Params = map[string]any{"duration": d.String(), "rate": cfg.ChaosRate, "agents": cfg.ChaosAgents, "subscriptions": cfg.ChaosSubs,
		"faults": cfg.ChaosFaults, "fault_rate": cfg.ChaosFaultRate, "kills_each": cfg.ChaosKills, "seed": cfg.Seed,
		"attempt_timeout": attemptTimeout.String(), "retry_policy": "20 retries, 1s apart", "max_faults_per_webhook": maxFailsPerWebhook, "faults_until": faultEnd.String(), "throttle_hang_until": earlyEnd.String(), "settle_max": cfg.ChaosSettle.String()}
	if !cfg.remote() && cfg.ChaosAgents < 1 {
		return fmt.Errorf("chaos needs at least one agent")
	}

	tag := b.newTag("chaos")
	c, err := b.newCluster(ctx, tag)
	if err != nil {
		return err
	}
	defer c.close()
	if _, err := c.setup(ctx, tag, tag, cfg.ChaosSubs, subSpec{eventTypes: []string{"bench.chaos"}, timeout: attemptTimeout, retryDelays: retryDelays}); err != nil {
		return err
	}
	if err := c.startAgents(cfg.ChaosAgents); err != nil {
		return err
	}
	sq := newSeqs(true)
	if err := b.probe(ctx, c, tag, "bench.chaos", sq, cfg.ChaosSubs); err != nil {
		return err
	}

	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x686f6f6b))
	var kills []killEvent
	if c.local() {
		lo, hi := d/10, faultEnd
		pick := func() time.Duration { return lo + time.Duration(rng.Int64N(int64(max(hi-lo, 1)))) }
		if killServer {
			for range cfg.ChaosKills {
				kills = append(kills, killEvent{at: pick(), server: true})
			}
		}
		if killAgent {
			for range cfg.ChaosKills {
				kills = append(kills, killEvent{at: pick(), agent: rng.IntN(cfg.ChaosAgents)})
			}
		}
		sort.Slice(kills, func(i, j int) bool { return kills[i].at < kills[j].at })
	} else if killServer || killAgent {
		s.note("remote mode: process kills skipped; sink faults only")
	}

	// The sink fails a webhook at most maxFailsPerWebhook times, at random.
	frng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x73696e6b))
	var fmu sync.Mutex
	failed := map[string]int{}
	soakStart := time.Now()
	b.sink.setFault(func(id string) faultKind {
		el := time.Since(soakStart)
		if el >= faultEnd {
			return faultNone
		}
		fmu.Lock()
		defer fmu.Unlock()
		if failed[id] >= maxFailsPerWebhook || frng.Float64() >= cfg.ChaosFaultRate {
			return faultNone
		}
		kinds := sinkKinds
		if el < earlyEnd && failed[id] == 0 {
			kinds = append(slices.Clip(kinds), earlyKinds...)
		}
		if len(kinds) == 0 {
			return faultNone
		}
		failed[id]++
		return kinds[frng.IntN(len(kinds))]
	})
	defer b.sink.setFault(nil)

	// Kills run on their own schedule.
	var restarts []int64
	var killErr error
	killsDone := make(chan struct{})
	serverKills, agentKills := 0, 0
	go func() {
		defer close(killsDone)
		for _, k := range kills {
			if sleep(ctx, time.Until(soakStart.Add(k.at))) != nil {
				return
			}
			if k.server {
				b.logf("chaos: SIGKILL control plane at %s", k.at.Round(time.Millisecond))
				_, serving, err := c.restartServer(ctx, true)
				if err != nil {
					killErr = err
					return
				}
				serverKills++
				restarts = append(restarts, int64(serving))
			} else {
				b.logf("chaos: SIGKILL agent %d at %s", k.agent+1, k.at.Round(time.Millisecond))
				if err := c.restartAgent(k.agent, 200*time.Millisecond); err != nil {
					killErr = err
					return
				}
				agentKills++
			}
		}
	}()

	errs := newErrTally()
	cpu0 := c.snapshot()
	b.logf("chaos: soak %s at %d/s", d, cfg.ChaosRate)
	paced(ctx, cfg.ChaosRate, d, 32, func(sched time.Time) {
		seq := sq.take(1)
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		resp, err := c.api.events().PublishEvent(pctx, &hookwirev1.PublishEventRequest{Tenant: tag, Event: &hookwirev1.Event{
			Type: "bench.chaos", Payload: makePayload(sched.UnixNano(), seq, cfg.PayloadSize)}})
		if err != nil {
			errs.add("publish "+errCode(err), 1)
			return
		}
		sq.ack(seq, resp.GetId())
	})
	<-killsDone
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if killErr != nil {
		return fmt.Errorf("restart after kill: %w", killErr)
	}

	b.logf("chaos: waiting for quiescence (at most %s)", cfg.ChaosSettle)
	soakEnd := time.Now()
	quiesced := false
	var pending int
	for {
		t := b.sink.tally(cfg.ChaosSubs, sq.max(), sq.acked)
		if t.Lost == 0 {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			n, err := c.api.pendingCount(pctx, tag, 100000)
			cancel()
			pending = n
			if err == nil && n == 0 {
				quiesced = true
				break
			}
		}
		if time.Since(soakEnd) > cfg.ChaosSettle || ctx.Err() != nil {
			break
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	settle := time.Since(soakEnd)
	cpu1 := c.snapshot()
	c.account(s, cpu0, cpu1)
	t := b.sink.tally(cfg.ChaosSubs, sq.max(), sq.acked)
	if !quiesced {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		pending, _ = c.api.pendingCount(pctx, tag, 100000)
		cancel()
	}

	s.add("published", "publishes acknowledged", float64(sq.count()), "", nil)
	s.add("publish_errors", "publishes not acknowledged (errors, not retried)", float64(errs.total()), "", nil)
	s.add("expected", "deliveries expected (acknowledged × subscriptions)", float64(t.Expected), "", nil)
	s.add("arrived", "deliveries accepted by the sink (with duplicates)", float64(t.Arrived), "", nil)
	s.add("duplicates", "duplicates (same webhook-id)", float64(t.Duplicates-t.OtherIDs), "", nil)
	s.add("duplicates_other_id", "duplicates with a different webhook-id", float64(t.OtherIDs), "", atMost(0))
	s.add("unacked_delivered", "deliveries of unacknowledged publishes", float64(t.Unexpected), "", nil)
	s.add("lost", "lost (acknowledged, never arrived)", float64(t.Lost), "", atMost(0))
	s.add("quiesced", "quiesced (1 = no pending delivery, all arrived)", map[bool]float64{true: 1, false: 0}[quiesced], "", atLeast(1))
	s.add("settle_time", "time from end of load to quiescence", settle.Seconds(), "s", nil)
	s.add("pending_at_end", "pending deliveries at the end", float64(pending), "", nil)
	s.add("server_kills", "control-plane SIGKILLs", float64(serverKills), "", nil)
	s.add("agent_kills", "agent SIGKILLs", float64(agentKills), "", nil)
	if len(restarts) > 0 {
		p := percentiles(restarts)
		s.add("restart_max", "control-plane restart to SERVING, max", p.Max, "ms", nil)
	}
	s.Extra = map[string]any{"sink_faults_injected": b.sink.faultCounts()}
	for k, v := range b.sink.faultCounts() {
		s.add("fault_"+k, "sink faults injected: "+k, float64(v), "", nil)
	}
	if t.Lost > 0 {
		s.note("lost pairs by delivery status: %s", b.diagnoseLost(ctx, c, tag, sq, t.lostSamples))
	}
	if !quiesced {
		s.note("not quiesced within %s: throttled or timed-out attempts wait at least 60s, and a lease held by a killed agent expires only after the attempt timeout plus the lease grace", cfg.ChaosSettle)
	}
	errs.into(s)
	return nil
}

// diagnoseLost looks up, through the API, what became of some lost
// deliveries.
func (b *Bench) diagnoseLost(ctx context.Context, c *Cluster, tenant string, sq *seqs, keys []uint64) string {
	counts := map[string]int{}
	for i, k := range keys {
		if i >= 50 {
			break
		}
		seq := int64(k & (1<<40 - 1))
		eid := sq.eventID(seq)
		if eid == "" {
			counts["no event id"]++
			continue
		}
		resp, err := c.api.deliveries().ListDeliveries(ctx, &hookwirev1.ListDeliveriesRequest{Tenant: tenant, EventId: eid})
		if err != nil {
			counts["lookup failed"]++
			continue
		}
		if len(resp.GetDeliveries()) == 0 {
			counts["no delivery"]++
		}
		for _, d := range resp.GetDeliveries() {
			counts[d.GetStatus().String()]++
		}
	}
	return fmt.Sprint(counts)
}
