package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// slowReceiver holds every request for hold (or until the sender gives
// up) and then answers 204; it counts the requests it holds.
type slowReceiver struct {
	lis     net.Listener
	srv     *http.Server
	hold    time.Duration
	holding atomic.Int64
	total   atomic.Int64
}

func startSlowReceiver(hold time.Duration) (*slowReceiver, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &slowReceiver{lis: lis, hold: hold}
	r.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// Read the body first: only then does the server notice (through
		// the request's context) that the sender gave up.
		_, _ = io.Copy(io.Discard, req.Body)
		r.total.Add(1)
		r.holding.Add(1)
		defer r.holding.Add(-1)
		t := time.NewTimer(r.hold)
		defer t.Stop()
		select {
		case <-t.C:
			w.WriteHeader(http.StatusNoContent)
		case <-req.Context().Done():
		}
	})}
	go func() { _ = r.srv.Serve(lis) }()
	return r, nil
}

func (r *slowReceiver) url() string { return "http://" + r.lis.Addr().String() + "/slow" }

func (r *slowReceiver) close() { _ = r.srv.Close() }

// fairness: one agent, two subscriptions. A healthy one receives a steady
// modest rate; its publish→arrival latency is measured alone, then again
// while a second subscription, whose receiver holds every request for 20s
// (attempt timeout 3s), is offered far more than it can drain, so it
// would hold every slot of the agent if it were allowed to. The healthy
// p99 under that load should stay within 2x of its unloaded p99. The
// control plane's own count of the agent's in-flight leases is sampled
// throughout: it must never exceed the agent's --max-in-flight.
func (b *Bench) fairness(ctx context.Context, s *Scenario) error {
	cfg := b.cfg
	if cfg.remote() {
		return errors.New("fairness starts its own slow receiver and agent: local mode only")
	}
	const (
		healthyRate    = 50
		slowRate       = 100
		slowHold       = 20 * time.Second
		attemptTimeout = 3 * time.Second
		workers        = 16
	)
	d := cfg.dur(10 * time.Second)
	settle := 2 * attemptTimeout
	s.Params = map[string]any{"agents": 1, "max_in_flight": cfg.MaxInFlight, "healthy_rate": healthyRate, "slow_rate": slowRate,
		"slow_receiver_holds": slowHold.String(), "slow_attempt_timeout": attemptTimeout.String(), "window": d.String(),
		"settle": settle.String(), "payload_bytes": cfg.PayloadSize}

	slow, err := startSlowReceiver(slowHold)
	if err != nil {
		return fmt.Errorf("start the slow receiver: %w", err)
	}
	defer slow.close()

	tag := b.newTag("fairness")
	c, err := b.newCluster(ctx, tag)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.api.createTenant(ctx, tag); err != nil {
		return c.failure(fmt.Errorf("create tenant: %w", err))
	}
	if _, err := c.api.createSub(ctx, tag, subSpec{eventTypes: []string{"bench.healthy"}, url: b.sink.url(tag, 0)}); err != nil {
		return c.failure(err)
	}
	// No retries: every slow attempt times out and the delivery is dead,
	// so the slow subscription's load is what is published to it.
	if _, err := c.api.createSub(ctx, tag, subSpec{eventTypes: []string{"bench.slow"}, url: slow.url(), timeout: attemptTimeout, retryDelays: []time.Duration{}}); err != nil {
		return c.failure(err)
	}
	if err := c.startAgents(1); err != nil {
		return err
	}
	sq := newSeqs(false)
	if err := b.probe(ctx, c, tag, "bench.healthy", sq, 1); err != nil {
		return err
	}

	// The control plane's view of the agent, sampled all along.
	var maxLeases, maxHeld atomic.Int64
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	sampling.Go(func() {
		agents := hookwirev1.NewAgentAdminServiceClient(c.api.conns[0])
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
			if h := slow.holding.Load(); h > maxHeld.Load() {
				maxHeld.Store(h)
			}
			qctx, cancel := context.WithTimeout(sampleCtx, time.Second)
			resp, err := agents.ListAgents(qctx, &hookwirev1.ListAgentsRequest{})
			cancel()
			if err != nil {
				continue
			}
			for _, a := range resp.GetAgents() {
				if n := int64(a.GetInFlight()); n > maxLeases.Load() {
					maxLeases.Store(n)
				}
			}
		}
	})
	defer func() { stopSampling(); sampling.Wait() }()

	errs := newErrTally()
	publish := func(typ string, track bool) func(time.Time) {
		return func(sched time.Time) {
			seq := sq.take(1)
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			resp, err := c.api.events().PublishEvent(pctx, &hookwirev1.PublishEventRequest{Tenant: tag, Event: &hookwirev1.Event{
				Type: typ, Payload: makePayload(sched.UnixNano(), seq, cfg.PayloadSize)}})
			if err != nil {
				errs.add(typ+" publish "+errCode(err), 1)
				return
			}
			if track {
				sq.ack(seq, resp.GetId())
			}
		}
	}
	window := func(t0 time.Time) func(a arrival) bool {
		return func(a arrival) bool { return a.sent >= t0.UnixNano() && a.sent < t0.Add(d).UnixNano() }
	}

	// 1. The healthy subscription alone.
	t0 := time.Now()
	paced(ctx, healthyRate, d, workers, publish("bench.healthy", true))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	b.sink.awaitAcked(ctx, 1, sq.max(), sq.acked, 30*time.Second)
	alone := percentiles(b.sink.latencies(window(t0)))

	// 2. The slow subscription saturates the agent; after it has had time
	// to take every slot it may, the healthy one is measured again.
	slowCtx, stopSlow := context.WithCancel(ctx)
	var slowDone sync.WaitGroup
	slowDone.Go(func() { paced(slowCtx, slowRate, settle+d+5*time.Second, workers, publish("bench.slow", false)) })
	defer func() { stopSlow(); slowDone.Wait() }()
	if err := sleep(ctx, settle); err != nil {
		return err
	}
	heldAtStart := slow.holding.Load()
	t1, cpu0 := time.Now(), c.snapshot()
	paced(ctx, healthyRate, d, workers, publish("bench.healthy", true))
	heldAtEnd, cpu1 := slow.holding.Load(), c.snapshot()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	drained := b.sink.awaitAcked(ctx, 1, sq.max(), sq.acked, 60*time.Second)
	loaded := percentiles(b.sink.latencies(window(t1)))
	stopSlow()
	slowDone.Wait()
	stopSampling()
	sampling.Wait()
	t := b.sink.tally(1, sq.max(), sq.acked)

	addLatency(s, "alone", "healthy publish→arrival, alone", alone, nil, nil)
	addLatency(s, "loaded", "healthy publish→arrival, slow subscription saturated", loaded, nil, nil)
	if alone.P99 > 0 {
		s.add("ratio_p99", "healthy p99 loaded / alone", loaded.P99/alone.P99, "ratio", atMost(2))
	}
	s.add("slow_held", "slow receiver's open requests when the loaded window began / ended (max)", float64(max(heldAtStart, heldAtEnd)), "", nil)
	s.add("slow_held_max", "slow receiver's open requests, max sampled", float64(maxHeld.Load()), "", nil)
	s.add("slow_attempts", "slow attempts made", float64(slow.total.Load()), "", nil)
	s.add("leases_max", "control plane's in-flight leases for the agent, max sampled", float64(maxLeases.Load()), "", atMost(float64(cfg.MaxInFlight)))
	s.add("lost", "healthy lost (acknowledged, never arrived)", float64(t.Lost), "", atMost(0))
	c.account(s, cpu0, cpu1)
	if !drained {
		s.note("not every acknowledged healthy event arrived within 60s")
	}
	s.note("ratio target: with fair share the slow subscription holds at most its share of the agent while the healthy one is active, so healthy deliveries find a free slot at once")
	errs.into(s)
	return nil
}
