package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// Chaos fault names (--chaos-faults).
const (
	chaosKillServer = "kill-server"
	chaosKillAgent  = "kill-agent"
	chaosKillPlugin = "kill-plugin"
	chaosQuiet      = "quiet"
	chaosDiskFull   = "disk-full"
)

var sinkFaultByName = map[string]faultKind{"500": fault500, "429": fault429, "hang": faultHang, "reset": faultReset}

// ChaosFaultNames lists what --chaos-faults accepts.
var ChaosFaultNames = []string{"500", "reset", "429", "hang", chaosKillServer, chaosKillAgent, chaosKillPlugin, chaosQuiet, chaosDiskFull}

type killEvent struct {
	at     time.Duration
	server bool
	plugin bool
	agent  int
}

// chaos: a bounded soak under steady open-loop load while the control
// plane, agents and the agents' transport plugins are SIGKILLed (and
// restarted) at random moments and the sink fails, hangs, throttles and
// resets connections; then a disk-full phase (the control plane's data
// directory is a small tmpfs, filled and freed under load); then wait until
// every delivery has succeeded and check, from the sink's records, that
// every acknowledged publish reached every subscription and how often one
// webhook reached the sink at most; then a quiet period on the idle server
// in which retries must go out on their own; and last, how late every
// retry of the run went out.
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
	const retryDelay = time.Second
	retryDelays := slices.Repeat([]time.Duration{retryDelay}, 20)
	diskHold := min(max(d/12, time.Second), 5*time.Second)
	var sinkKinds, earlyKinds []faultKind
	killServer, killAgent, killPlugins, quiet, diskFull := false, false, false, false, false
	for _, f := range cfg.ChaosFaults {
		switch f {
		case chaosKillServer:
			killServer = true
		case chaosKillAgent:
			killAgent = true
		case chaosKillPlugin:
			killPlugins = true
		case chaosQuiet:
			quiet = true
		case chaosDiskFull:
			diskFull = true
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
	if quiet {
		s.Params["quiet_probe"] = fmt.Sprintf("1 event to %d subscription(s) of its own, failed %d times (500), at most %s", quietSubs, quietFails, quietMax)
	}
	if !cfg.remote() && cfg.ChaosAgents < 1 {
		return fmt.Errorf("chaos needs at least one agent")
	}
	faults := map[string]int{}
	skip := func(fault, why string) {
		s.note("%s skipped: %s", fault, why)
		b.logf("chaos: %s skipped: %s", fault, why)
		if s.Extra == nil {
			s.Extra = map[string]any{}
		}
		skipped, _ := s.Extra["skipped_faults"].(map[string]string)
		if skipped == nil {
			skipped = map[string]string{}
			s.Extra["skipped_faults"] = skipped
		}
		skipped[fault] = why
	}
	if cfg.remote() {
		for _, f := range []struct {
			name string
			on   *bool
		}{{chaosKillServer, &killServer}, {chaosKillAgent, &killAgent}, {chaosKillPlugin, &killPlugins}, {chaosDiskFull, &diskFull}} {
			if *f.on {
				skip(f.name, "remote mode: needs processes started by the bench")
				*f.on = false
			}
		}
	}

	tag := b.newTag("chaos")
	b.sink.trackRetries()

	// The disk-full fault needs the data directory on a small tmpfs,
	// mounted before the control plane starts and unmounted after it
	// stopped (defers run in reverse: this one after c.close).
	var fs *tmpfs
	defer func() {
		if err := fs.unmount(cfg.Keep); err != nil {
			b.logf("chaos: %v", err)
			s.note("%v", err)
		}
	}()
	var prepare []func(string) error
	if diskFull {
		size := chaosTmpfsSize(cfg, d)
		prepare = append(prepare, func(dir string) error {
			var err error
			if fs, err = mountTmpfs(dir, size); err != nil {
				skip(chaosDiskFull, err.Error())
			} else {
				s.Params["disk_tmpfs"] = fmt.Sprintf("%d MiB", size>>20)
				s.Params["disk_hold"] = diskHold.String()
			}
			return nil
		})
	}
	c, err := b.newCluster(ctx, tag, prepare...)
	if err != nil {
		return err
	}
	defer c.close()
	spec := subSpec{eventTypes: []string{"bench.chaos"}, timeout: attemptTimeout, retryDelays: retryDelays}
	if _, err := c.setup(ctx, tag, tag, cfg.ChaosSubs, spec); err != nil {
		return err
	}
	if quiet {
		if err := c.createQuietSubs(ctx, tag, tag, spec); err != nil {
			return err
		}
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
		if killPlugins {
			for range cfg.ChaosKills {
				kills = append(kills, killEvent{at: pick(), plugin: true, agent: rng.IntN(cfg.ChaosAgents)})
			}
		}
		sort.Slice(kills, func(i, j int) bool { return kills[i].at < kills[j].at })
	}

	// The sink fails a webhook at most maxFailsPerWebhook times, at random,
	// during the soak; the quiet period's probe quietFails times each.
	frng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x73696e6b))
	var fmu sync.Mutex
	failed := map[string]int{}
	probes := newQuietProbe()
	soakStart := time.Now()
	b.sink.setFaultSeq(func(id string, seq int64) faultKind {
		if k, ok := probes.fault(id, seq); ok {
			return k
		}
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

	// Kills run on their own schedule, one at a time.
	var restarts, pluginRestarts []int64
	// An agent that exits by itself is a finding: say why, count it, and
	// start it again so the run goes on.
	agentExits := 0
	revive := func() {
		if !c.local() {
			return
		}
		for _, why := range c.reviveAgents() {
			b.logf("chaos: %s; restarted it", why)
			s.note("%s (restarted by the bench)", why)
			agentExits++
		}
	}
	var killErr error
	killsDone := make(chan struct{})
	go func() {
		defer close(killsDone)
		for _, k := range kills {
			if sleep(ctx, time.Until(soakStart.Add(k.at))) != nil {
				return
			}
			switch {
			case k.server:
				b.logf("chaos: SIGKILL control plane at %s", k.at.Round(time.Millisecond))
				_, serving, err := c.restartServer(ctx, true)
				if err != nil {
					killErr = err
					return
				}
				faults[chaosKillServer]++
				restarts = append(restarts, int64(serving))
			case k.plugin:
				b.logf("chaos: SIGKILL %s plugin of agent %d at %s", benchTransport, k.agent+1, k.at.Round(time.Millisecond))
				a := c.agents[k.agent]
				back, err := killPlugin(ctx, a.Pid(), a.Exited(), benchTransport, 10*time.Second)
				if errors.Is(err, errAgentExited) {
					faults[chaosKillPlugin]++ // revive says why
					break
				}
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					b.logf("chaos: %v", err)
					s.note("plugin kill at %s not done: %v", k.at.Round(time.Millisecond), err)
					continue
				}
				faults[chaosKillPlugin]++
				if back < 0 {
					s.note("the agent did not start its %s plugin again within 10s of a kill", benchTransport)
					back = 10 * time.Second
				}
				pluginRestarts = append(pluginRestarts, int64(back))
			default:
				b.logf("chaos: SIGKILL agent %d at %s", k.agent+1, k.at.Round(time.Millisecond))
				if err := c.restartAgent(k.agent, 200*time.Millisecond); err != nil {
					killErr = err
					return
				}
				faults[chaosKillAgent]++
			}
			revive()
		}
	}()

	errs := newErrTally()
	cpu0 := c.snapshot()
	b.logf("chaos: soak %s at %d/s", d, cfg.ChaosRate)
	paced(ctx, cfg.ChaosRate, d, 32, func(sched time.Time) {
		if err := b.chaosPublish(ctx, c, tag, sq, sched, cfg.PayloadSize); err != nil {
			errs.add("publish "+errCode(err), 1)
		}
	})
	<-killsDone
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if killErr != nil {
		return fmt.Errorf("restart after kill: %w", killErr)
	}
	revive()
	// Phases, for retry lateness by when each retry was due.
	phaseNames := []string{"soak"}
	phaseEnds := []int64{time.Now().UnixNano()}

	var dr diskResult
	if fs != nil {
		b.logf("chaos: disk phase at %d/s with %d-byte events", cfg.ChaosRate, diskPayload)
		if dr, err = b.chaosDisk(ctx, c, fs, tag, sq, errs, diskHold); err != nil {
			return fmt.Errorf("disk phase: %w", err)
		}
		faults[chaosDiskFull]++
		phaseNames, phaseEnds = append(phaseNames, "disk"), append(phaseEnds, time.Now().UnixNano())
		revive()
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

	// The quiet period comes last, on an idle server: any pending retry
	// would arm the dispatcher's timer and wake the probe's retries too.
	phaseNames, phaseEnds = append(phaseNames, "settle"), append(phaseEnds, time.Now().UnixNano())
	revive()
	var qr quietResult
	if quiet {
		phaseNames = append(phaseNames, "quiet")
		b.logf("chaos: quiet period: 1 probe event to %d subscription(s), failed %d times, no other load (at most %s)", quietSubs, quietFails, quietMax)
		if qr, err = b.chaosQuiet(ctx, c, tag, sq, probes, retryDelay); err != nil {
			return err
		}
		faults[chaosQuiet]++
		if pending > 0 {
			s.note("quiet period: the server was not idle (%d deliveries still pending from the soak)", pending)
		}
	}

	// Every retry of the run, through the attempts API.
	b.logf("chaos: measuring retry lateness")
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	listedAt := time.Now()
	dels, err := c.api.listDeliveries(lctx, tag, "", 10_000_000)
	cancel()
	if err != nil {
		s.note("listing deliveries for retry lateness failed: %v", err)
	}
	late := retryLateness(ctx, c.api, tag, dels, listedAt, b.sink.retryHits(), retryDelay)
	dead := 0
	for _, d := range dels {
		if d.GetStatus() == hookwirev1.DeliveryStatus_DELIVERY_STATUS_DEAD {
			dead++
		}
	}

	s.add("published", "publishes acknowledged", float64(sq.count()), "", nil)
	s.add("publish_errors", "publishes not acknowledged (errors, not retried)", float64(errs.total()), "", nil)
	s.add("expected", "deliveries expected (acknowledged × subscriptions)", float64(t.Expected), "", nil)
	s.add("arrived", "deliveries accepted by the sink (with duplicates)", float64(t.Arrived), "", nil)
	s.add("duplicates", "duplicates (same webhook-id)", float64(t.Duplicates-t.OtherIDs), "", nil)
	s.add("max_deliveries_per_webhook", "most deliveries of one webhook-id (re-delivery storm)", float64(t.MaxPerID), "", atMost(3))
	s.add("duplicates_other_id", "duplicates with a different webhook-id", float64(t.OtherIDs), "", atMost(0))
	s.add("unacked_delivered", "deliveries of unacknowledged publishes", float64(t.Unexpected), "", nil)
	s.add("lost", "lost (acknowledged, never arrived)", float64(t.Lost), "", atMost(0))
	s.add("dead", "dead deliveries (retries exhausted)", float64(dead), "", atMost(0))
	s.add("quiesced", "quiesced (1 = no pending delivery, all arrived)", map[bool]float64{true: 1, false: 0}[quiesced], "", atLeast(1))
	s.add("settle_time", "time from end of load to quiescence", settle.Seconds(), "s", nil)
	s.add("pending_at_end", "pending deliveries at the end", float64(pending), "", nil)

	s.add("retries_measured", "retries measured for lateness", float64(late.retries), "", nil)
	s.addLateness("retry_lateness", "retry lateness, whole run", late, nil)
	byPhase := late.byPhase(phaseNames, phaseEnds)
	var parts []string
	for _, name := range phaseNames {
		if p, ok := byPhase[name]; ok {
			s.Latencies["retry_lateness_"+name] = p
			parts = append(parts, fmt.Sprintf("%s %d retries, p99 %.1f ms, max %.1f ms", name, p.N, p.P99, p.Max))
		}
	}
	if len(parts) > 0 {
		s.note("retry lateness by the phase the retry was due in: %s", strings.Join(parts, "; "))
	}
	if quiet {
		s.add("quiet_arrived", fmt.Sprintf("quiet period: probe webhooks arrived within %s", quietMax), float64(qr.arrived), "", atLeast(float64(qr.expected)))
		s.add("quiet_time", "quiet period: probe publish to last arrival", qr.took.Seconds(), "s", nil)
		s.add("quiet_overdue", "quiet period: retries past due, not sent at its end", float64(qr.late.overdue), "", atMost(0))
		s.addLateness("quiet_retry_lateness", "quiet period retry lateness", qr.late, atMost(100))
	}

	s.add("server_kills", "control-plane SIGKILLs", float64(faults[chaosKillServer]), "", nil)
	s.add("agent_kills", "agent SIGKILLs", float64(faults[chaosKillAgent]), "", nil)
	s.add("plugin_kills", "transport plugin SIGKILLs", float64(faults[chaosKillPlugin]), "", nil)
	if c.local() {
		s.add("agent_exits", "agents that exited by themselves (restarted by the bench)", float64(agentExits), "", atMost(0))
	}
	if len(restarts) > 0 {
		p := percentiles(restarts)
		s.add("restart_max", "control-plane restart to SERVING, max", p.Max, "ms", nil)
	}
	if len(pluginRestarts) > 0 {
		p := percentiles(pluginRestarts)
		s.add("plugin_restart_max", "plugin kill to a new plugin process, max", p.Max, "ms", nil)
	}
	s.add("disk_fills", "disk filled (tmpfs data directory)", float64(faults[chaosDiskFull]), "", nil)
	if faults[chaosDiskFull] > 0 {
		s.add("disk_refused", "publishes refused from disk full to recovery", float64(dr.refused), "", nil)
		s.add("disk_unacked_delivered", "disk phase: publishes not acknowledged that were delivered anyway", float64(b.sink.unackedArrived(dr.seqLo, dr.seqHi, cfg.ChaosSubs, sq.acked)), "", nil)
		if dr.firstRefusal >= 0 {
			s.add("disk_first_refusal", "disk full to the first refused publish", dr.firstRefusal.Seconds(), "s", nil)
		}
		s.add("disk_not_serving", "gRPC health NOT_SERVING while the store could not write (1 = yes)", b2f(dr.notServing), "", atLeast(1))
		s.add("disk_recovered", "recovered by itself once space was freed (1 = yes)", b2f(dr.recovered), "", atLeast(1))
		if dr.recovered {
			s.add("disk_recovery_time", "space freed to the first acknowledged publish", dr.recovery.Seconds(), "s", nil)
		}
		if dr.servingAgain >= 0 {
			s.add("disk_serving_again", "space freed to gRPC health SERVING", dr.servingAgain.Seconds(), "s", nil)
		}
		if dr.restarted != "" {
			s.note("disk full: %s; the bench restarted the control plane to go on", dr.restarted)
		}
		if dr.firstRefusal < 0 {
			s.note("disk full: no publish was refused within %s (the store had free pages in its file)", diskRefuseMax)
		}
	}

	sinkFaults := b.sink.faultCounts()
	for k, v := range sinkFaults {
		s.add("fault_"+k, "sink faults injected: "+k, float64(v), "", nil)
		faults[k] = v
	}
	if s.Extra == nil {
		s.Extra = map[string]any{}
	}
	s.Extra["sink_faults_injected"] = sinkFaults
	s.Extra["faults_injected"] = faults
	s.Extra["retry_lateness_source"] = late.source
	s.Extra["attempt_outcomes_of_retried_deliveries"] = late.outcomes
	if len(late.lateAfter) > 0 {
		s.Extra["retries_late_over_1s_by_previous_outcome"] = late.lateAfter
		s.note("retries more than %s late, by the outcome of the attempt before: %v", lateSlow, late.lateAfter)
	}
	if quiet {
		s.Extra["quiet_retry_lateness_source"] = qr.late.source
	}
	s.note("retry lateness from the %s", late.source)
	if late.sampled {
		s.note("retry lateness: %d retried deliveries sampled evenly", maxAttemptLookups)
	}
	if late.noDue > 0 && late.source == latenessFromAPI {
		s.note("retry lateness: %d retries recorded without a due time were left out", late.noDue)
	}
	if late.overdue > 0 {
		s.note("retry lateness includes %d pending deliveries already past due at the end (time past due)", late.overdue)
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

// chaosPublish publishes one event of size bytes whose payload carries
// sched and a fresh seq, and records the acknowledgement.
func (b *Bench) chaosPublish(ctx context.Context, c *Cluster, tenant string, sq *seqs, sched time.Time, size int) error {
	seq := sq.take(1)
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := c.api.events().PublishEvent(pctx, &hookwirev1.PublishEventRequest{Tenant: tenant, Event: &hookwirev1.Event{
		Type: "bench.chaos", Payload: makePayload(sched.UnixNano(), seq, size)}})
	if err != nil {
		return err
	}
	sq.ack(seq, resp.GetId())
	return nil
}

func b2f(v bool) float64 {
	if v {
		return 1
	}
	return 0
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
