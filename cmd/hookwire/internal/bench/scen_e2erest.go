package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// e2e-rest is the workload webhook services are usually compared with
// (Svix, Convoy, Hookdeck publish their figures this way): single-event
// REST publishes, one event per POST /v1/tenants/{t}/events, a small JSON
// payload, many concurrent clients, one http subscription, one agent.
//
// One control plane and one agent serve three phases:
//   - saturation: --rest-clients clients publish closed loop (each sends its
//     next event when the previous one is acknowledged) with at most
//     restWindow events published and not yet arrived; delivered/s comes
//     from the sink's arrival times over the measured window and is set
//     against a plain-client baseline measured just before with the same
//     clients, payloads and sink;
//   - one steady open-loop phase per --rest-rates entry (50 and 1,000
//     events/s by default), after the saturation backlog has arrived: CPU
//     per event and publish-acknowledged latency at a rate well below the
//     ceiling, next to the bench's own CPU per event in the same window
//     (a plain client and receiver handling the same events).
//
// CPU is summed over every hookwire process (control plane, agent, and the
// agent's plugin subprocesses), from /proc, over each measured window.

const (
	restEventType = "bench.rest"
	// restWindow bounds events published but not yet arrived, so that
	// delivered/s is what delivery sustains while ingest runs, not the
	// drain of a queue that grows for as long as the run lasts.
	restWindow = 2000
)

// Targets from issue 13, for the default sizes.
var (
	restRatioTarget  = atLeast(0.25)
	restCPUTarget    = atMost(0.25) // ms per delivered event at saturation
	restRateTargets  = map[int]restRateTarget{50: {cpu: atMost(1)}, 1000: {ackP50: atMost(3)}}
	errRESTNeedsREST = errors.New("e2e-rest publishes through REST: give --rest-url with --server")
)

type restRateTarget struct{ cpu, ackP50 *target }

// restPayload is an e2e-rest event: the two leading fields the sink reads
// and a pad of exactly pad bytes: {"sent":…,"seq":…,"pad":"xxxx"}.
func restPayload(sentNanos, seq int64, pad int) []byte {
	b := make([]byte, 0, 56+pad)
	b = append(b, prefixSent...)
	b = strconv.AppendInt(b, sentNanos, 10)
	b = append(b, fieldSeq...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"pad":"`...)
	for range pad {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// selfCPU is the CPU seconds of the bench process itself (its publishers,
// sink and monitor), which compete with hookwire for the same cores.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

// machineBusy is the CPU seconds all CPUs of the machine have spent busy
// since boot (/proc/stat: user, nice, system, irq, softirq, steal).
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseUint(f[i], 10, 64)
		ticks += v
	}
	return float64(ticks) / clockTicks
}

// otherLoad adds the CPU that processes other than hookwire's and the
// bench's used during a window (busy is machineBusy at its edges), so a
// reader can tell a quiet run from a disturbed one.
func otherLoad(s *Scenario, key, name string, busy0, busy1, hookwire, self float64, el time.Duration) {
	if busy1 <= busy0 || el <= 0 {
		return
	}
	s.add(key, name, max(0, busy1-busy0-hookwire-self)/el.Seconds()*100, "%", nil)
}

// restErrKind names a failed REST publish for the error tally: its HTTP
// status, or the kind of transport error.
func restErrKind(err error) string {
	if rest, ok := strings.CutPrefix(err.Error(), "REST publish: HTTP "); ok {
		code, _, _ := strings.Cut(rest, ":")
		return "publish HTTP " + code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "publish deadline exceeded"
	}
	return "publish error"
}

func (b *Bench) e2eREST(ctx context.Context, s *Scenario) error {
	cfg := b.cfg
	d := cfg.dur(15 * time.Second)
	dLow := cfg.dur(10 * time.Second)
	clients := max(cfg.RESTClients, 1)
	var rates []int
	for _, r := range cfg.RESTRates {
		if r > 0 {
			rates = append(rates, r)
		}
	}
	s.Params = map[string]any{"clients": clients, "pad_bytes": cfg.RESTPad, "payload_bytes": len(restPayload(time.Now().UnixNano(), 1, cfg.RESTPad)),
		"agents": 1, "max_in_flight": cfg.MaxInFlight, "subscriptions": 1, "duration": d.String(), "warmup": cfg.Warmup.String(),
		"publish": "REST POST /v1/tenants/{t}/events, one event per request", "max_outstanding": restWindow,
		"steady_rates": rates, "steady_duration": dLow.String(), "steady_workers": max(64, clients)}
	if cfg.remote() && cfg.RESTURL == "" {
		return errRESTNeedsREST
	}

	bl, err := b.restBaseline(ctx, clients)
	if err != nil {
		return err
	}
	tag := b.newTag("e2e-rest")
	c, err := b.newCluster(ctx, tag)
	if err != nil {
		return err
	}
	defer c.close()
	errs := newErrTally()
	rig, err := b.newRESTRig(ctx, c, tag, errs)
	if err != nil {
		return err
	}
	if _, err := b.restSaturation(ctx, s, rig, restPhase{baseline: bl, cpu: restCPUTarget}, clients, d); err != nil {
		return err
	}
	// The steady phases' workers only carry the schedule: as many as the
	// latency scenario, so that a slow acknowledgement rarely delays the
	// next due event (which would then count as its latency anyway).
	for _, r := range rates {
		if err := b.restSteady(ctx, s, rig, r, max(64, clients), dLow); err != nil {
			return err
		}
	}

	sq := rig.sq
	t := b.sink.tally(1, sq.max(), sq.acked)
	s.add("delivered_total", "deliveries checked (all phases)", float64(t.Arrived), "", nil)
	s.add("duplicates", "duplicates", float64(t.Duplicates), "", nil)
	s.add("lost", "lost (acknowledged, never arrived)", float64(t.Lost), "", atMost(0))
	errs.into(s)
	return nil
}

// restRig is what a phase publishing e2e-rest events needs: a cluster
// with the tenant, one http subscription to the sink and one agent; the
// seqs of its publishes and the scenario's error tally.
type restRig struct {
	c    *Cluster
	tag  string
	pad  int
	sq   *seqs
	errs *errTally
}

// newRESTRig sets c up for e2e-rest publishes (tenant and subscription
// named tag) and sends a probe event through, so that the agent and its
// plugin are connected and warm before anything is measured.
func (b *Bench) newRESTRig(ctx context.Context, c *Cluster, tag string, errs *errTally) (*restRig, error) {
	if _, err := c.setup(ctx, tag, tag, 1, subSpec{eventTypes: []string{restEventType}}); err != nil {
		return nil, err
	}
	if err := c.startAgents(1); err != nil {
		return nil, err
	}
	r := &restRig{c: c, tag: tag, pad: b.cfg.RESTPad, sq: newSeqs(false), errs: errs}
	seq := r.sq.take(1)
	if err := c.api.publishREST(ctx, tag, restEventType, "", restPayload(time.Now().UnixNano(), seq, r.pad)); err != nil {
		return nil, c.failure(fmt.Errorf("probe publish: %w", err))
	}
	r.sq.ack(seq, "")
	if !b.sink.await(ctx, 1, 60*time.Second) {
		return nil, c.failure(errors.New("probe event did not reach the sink within 60s (agent not delivering?)"))
	}
	return r, nil
}

// publish publishes one event stamped sent, once, and reports whether it
// was acknowledged.
func (r *restRig) publish(ctx context.Context, sent time.Time) bool {
	seq := r.sq.take(1)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.c.api.publishREST(pctx, r.tag, restEventType, "", restPayload(sent.UnixNano(), seq, r.pad)); err != nil {
		r.errs.add(restErrKind(err), 1)
		return false
	}
	r.sq.ack(seq, "")
	return true
}

// restPhase names the figures of a saturation phase: prefixes of their
// keys and names ("" in e2e-rest), the plain-client baseline to compare
// with (none when its Rate is 0), and the CPU target.
type restPhase struct {
	key, name string
	baseline  BaselineResult
	cpu       *target
}

// restSaturation is the closed-loop phase; it returns delivered/s.
func (b *Bench) restSaturation(ctx context.Context, s *Scenario, rig *restRig, ph restPhase, clients int, d time.Duration) (float64, error) {
	c, sq, publish := rig.c, rig.sq, rig.publish
	b.logf("%s: %s%d REST clients, closed loop, %s warm-up + %s", s.Name, ph.name, clients, b.cfg.Warmup, d)
	var (
		stopped   atomic.Bool // clients finish the request they are in, so every publish is acknowledged or failed
		published atomic.Int64
		held      atomic.Int64 // nanoseconds clients spent held back by the window
		measuring atomic.Bool
		mu        sync.Mutex
		acks      []int64
	)
	published.Store(sq.count())
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for !stopped.Load() && ctx.Err() == nil {
				if published.Load()-b.sink.Count() > restWindow {
					// Delivery is behind: poll the sink's count until it
					// catches up (the sink has no arrival notification).
					st := time.Now()
					for published.Load()-b.sink.Count() > restWindow && !stopped.Load() && ctx.Err() == nil {
						time.Sleep(time.Millisecond)
					}
					if measuring.Load() {
						held.Add(int64(time.Since(st)))
					}
					continue
				}
				st := time.Now()
				if !publish(ctx, st) {
					if ctx.Err() == nil {
						time.Sleep(10 * time.Millisecond) // back off after an error
					}
					continue
				}
				published.Add(1)
				if measuring.Load() {
					took := int64(time.Since(st))
					mu.Lock()
					acks = append(acks, took)
					mu.Unlock()
				}
			}
		})
	}
	err := sleep(ctx, b.cfg.Warmup)
	var t0, t1 time.Time
	var p0, p1 int64
	var cpu0, cpu1 CPUSnapshot
	var self0, self1, busy0, busy1 float64
	if err == nil {
		measuring.Store(true)
		t0, p0, cpu0, self0, busy0 = time.Now(), published.Load(), c.snapshot(), selfCPU(), machineBusy()
		err = sleep(ctx, d)
		t1, p1, cpu1, self1, busy1 = time.Now(), published.Load(), c.snapshot(), selfCPU(), machineBusy()
		measuring.Store(false)
	}
	stopped.Store(true)
	wg.Wait()
	if err != nil {
		return 0, err
	}
	el := t1.Sub(t0)
	delivered := b.sink.arrivalsBetween(t0, t1)
	achieved := rate(delivered, el)

	s.add(ph.key+"offered", ph.name+"publishes acknowledged", rate(p1-p0, el), "/s", nil)
	s.add(ph.key+"delivered", ph.name+"delivered (sink arrivals in the window)", achieved, "/s", nil)
	if bl := ph.baseline; bl.Rate > 0 {
		s.add(ph.key+"baseline", ph.name+fmt.Sprintf("baseline just before (plain client, %d clients, single POSTs)", clients), bl.Rate, "/s", nil)
		s.add(ph.key+"ratio_to_baseline", ph.name+"ratio to baseline", achieved/bl.Rate, "ratio", restRatioTarget)
	}
	if c.local() && delivered > 0 {
		cpu := c.account(s, cpu0, cpu1)
		s.add(ph.key+"cpu_per_delivery", ph.name+"CPU per delivered event (all hookwire processes)", cpu/float64(delivered)*1000, "ms", ph.cpu)
		addCPUSplit(s, c, cpu0, cpu1, float64(delivered), ph.key, "  "+ph.name, "per_delivery")
		s.add(ph.key+"cpu_cores", ph.name+"CPU used by hookwire processes", cpu/el.Seconds()*100, "%", nil)
		s.add(ph.key+"cpu_ceiling", ph.name+fmt.Sprintf("CPU-bound ceiling on %d CPUs (CPUs / CPU per event)", runtime.NumCPU()), float64(runtime.NumCPU())*float64(delivered)/cpu, "/s", nil)
		s.add(ph.key+"bench_cpu_cores", ph.name+"CPU used by the bench itself (clients, sink)", (self1-self0)/el.Seconds()*100, "%", nil)
		addCPUVersusBench(s, ph.key, ph.name, cpu, self1-self0, float64(delivered), "per_delivery")
		otherLoad(s, ph.key+"other_cpu_cores", ph.name+"CPU used outside hookwire and the bench (other processes, interrupts)", busy0, busy1, cpu, self1-self0, el)
	}
	if h := float64(held.Load()) / float64(time.Duration(clients)*el); h > 0.01 {
		s.note("%spublishers were held back by the %d-event outstanding window %.0f%% of the time: delivery, not ingest, set the pace", ph.name, restWindow, h*100)
	}

	// Everything acknowledged arrives before the next phase starts, so the
	// latencies below are complete and the steady phases start idle.
	if !b.sink.awaitAcked(ctx, 1, sq.max(), sq.acked, 60*time.Second) {
		s.note("%snot every acknowledged event of the saturation phase arrived within 60s after it", ph.name)
	}
	ack := percentiles(acks)
	s.add(ph.key+"publish_ack_p50", ph.name+"publish acknowledged (POST → 200) p50", ack.P50, "ms", nil)
	s.add(ph.key+"publish_ack_p99", ph.name+"publish acknowledged p99", ack.P99, "ms", nil)
	lat := percentiles(b.sink.latencies(func(a arrival) bool { return a.sent >= t0.UnixNano() && a.sent < t1.UnixNano() }))
	s.add(ph.key+"latency_p50", ph.name+"publish→arrival p50", lat.P50, "ms", nil)
	s.add(ph.key+"latency_p99", ph.name+"publish→arrival p99", lat.P99, "ms", nil)
	return achieved, nil
}

// restSteady is one open-loop phase at r events/s: event i is due at
// start + i/r whatever earlier publishes did, and its latencies count from
// that due time.
func (b *Bench) restSteady(ctx context.Context, s *Scenario, rig *restRig, r, workers int, d time.Duration) error {
	c, sq, publish := rig.c, rig.sq, rig.publish
	warm := min(b.cfg.Warmup, 2*time.Second)
	b.logf("e2e-rest: steady %d/s, open loop, %s warm-up + %s", r, warm, d)
	var (
		mu        sync.Mutex
		acks      []int64
		measuring atomic.Bool
	)
	pub := func(due time.Time) {
		if publish(ctx, due) && measuring.Load() {
			took := int64(time.Since(due))
			mu.Lock()
			acks = append(acks, took)
			mu.Unlock()
		}
	}
	if warm > 0 {
		paced(ctx, r, warm, workers, pub)
	}
	measuring.Store(true)
	t0, cpu0, self0, busy0 := time.Now(), c.snapshot(), selfCPU(), machineBusy()
	pc := paced(ctx, r, d, workers, pub)
	t1, cpu1, self1, busy1 := time.Now(), c.snapshot(), selfCPU(), machineBusy()
	measuring.Store(false)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !b.sink.awaitAcked(ctx, 1, sq.max(), sq.acked, 30*time.Second) {
		s.note("not every acknowledged event of the %d/s phase arrived within 30s after it", r)
	}
	k := fmt.Sprintf("at%d_", r)
	name := fmt.Sprintf("at %s/s: ", withCommas(float64(r)))
	tg := restRateTargets[r]
	samples := b.sink.latencies(func(a arrival) bool { return a.sent >= t0.UnixNano() && a.sent < t0.Add(d).UnixNano() })
	delivered := int64(len(samples))
	s.add(k+"achieved", name+"delivered (arrivals in the window)", rate(b.sink.arrivalsBetween(t0, t1), t1.Sub(t0)), "/s", nil)
	if c.local() && delivered > 0 {
		cpu := c.mon.cpuDelta(cpu0, cpu1, "")
		s.add(k+"cpu_per_event", name+"CPU per delivered event (all hookwire processes)", cpu/float64(delivered)*1000, "ms", tg.cpu)
		addCPUSplit(s, c, cpu0, cpu1, float64(delivered), k, name+"  ", "per_event")
		// The bench's own CPU in the same window is a plain Go HTTP client
		// (the publishes) and a plain receiver (the sink) handling the same
		// events at the same rate: what one POST out and one POST in cost
		// on this machine at this rate, which Hookwire's path includes.
		addCPUVersusBench(s, k, name, cpu, self1-self0, float64(delivered), "per_event")
		otherLoad(s, k+"other_cpu_cores", name+"CPU used outside hookwire and the bench", busy0, busy1, cpu, self1-self0, t1.Sub(t0))
	}
	ack := percentiles(acks)
	s.add(k+"publish_ack_p50", name+"publish acknowledged (due → 200) p50", ack.P50, "ms", tg.ackP50)
	s.add(k+"publish_ack_p99", name+"publish acknowledged p99", ack.P99, "ms", nil)
	lat := percentiles(samples)
	s.add(k+"latency_p50", name+"publish→arrival p50", lat.P50, "ms", nil)
	s.add(k+"latency_p99", name+"publish→arrival p99", lat.P99, "ms", nil)
	if lag := float64(pc.maxLag) / float64(time.Millisecond); lag > 10 {
		s.note("at %d/s the pacer handed an event over up to %.0f ms late (all %d workers busy, or the bench starved of CPU); that lag counts as latency", r, lag, workers)
	}
	return nil
}

// addCPUVersusBench adds the bench's own CPU per delivered event in a
// window (its REST clients and its sink: a plain POST out and a plain POST
// in for each event, at the same rate, on the same CPUs) and hookwire's
// CPU per event divided by it. The quotient moves far less than either
// figure when this machine's speed drifts (the host's share of the CPUs
// varies by up to 40% within an hour, and both sides slow alike), so it is
// the figure to compare two builds by.
func addCPUVersusBench(s *Scenario, key, label string, hookwire, bench, delivered float64, per string) {
	s.add(key+"bench_cpu_"+per, label+"CPU of the bench itself per event (its REST client and its sink: one plain POST out and one in)", bench/delivered*1000, "ms", nil)
	if bench > 0 {
		s.add(key+"cpu_vs_bench", label+"hookwire's CPU per event ÷ the bench's (the figure to compare builds by)", hookwire/bench, "ratio", nil)
	}
}

// addCPUSplit adds the control plane's, the agent's and its plugins' parts
// of a window's CPU per delivered event (keys key+"cpu_server_"+per, …).
func addCPUSplit(s *Scenario, c *Cluster, cpu0, cpu1 CPUSnapshot, delivered float64, key, label, per string) {
	ms := func(prefix string) float64 { return c.mon.cpuDelta(cpu0, cpu1, prefix) / delivered * 1000 }
	s.add(key+"cpu_server_"+per, label+"of which control plane", ms("server"), "ms", nil)
	s.add(key+"cpu_agent_"+per, label+"of which agent (without plugins)", ms("agent-1")-ms("agent-1/"), "ms", nil)
	s.add(key+"cpu_plugin_"+per, label+"of which plugins", ms("agent-1/"), "ms", nil)
}

// restBaseline is the e2e-rest baseline: conc plain clients, closed loop,
// posting e2e-rest payloads one per request straight to the sink (measured
// again when stalled, as every baseline).
func (b *Bench) restBaseline(ctx context.Context, conc int) (BaselineResult, error) {
	return b.baselineOf(ctx, fmt.Sprintf("e2e-rest clients=%d", conc), conc,
		func(sent, seq int64) []byte { return restPayload(sent, seq, b.cfg.RESTPad) })
}
