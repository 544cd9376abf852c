package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
)

// simAgent is one simulated agent: its own gRPC connection and an
// AgentService.Connect stream that says Hello, then only heartbeats.
type simAgent struct {
	conn   *grpc.ClientConn
	cancel context.CancelFunc
}

// agents: K simulated agents connected to one control plane, idle: its
// memory and idle CPU.
func (b *Bench) agents(ctx context.Context, s *Scenario) error {
	cfg := b.cfg
	k := cfg.SimAgents
	w := cfg.dur(20 * time.Second)
	s.Params = map[string]any{"agents": k, "idle_window": w.String(), "agent": "raw AgentService.Connect stream per gRPC connection, Hello then heartbeats"}
	tag := b.newTag("agents")
	c, err := b.newCluster(ctx, tag)
	if err != nil {
		return err
	}
	defer c.close()
	var rss0 int64
	if c.local() {
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
		rss0 = c.mon.mem(c.server()).rss
		s.add("rss_before", "control-plane RSS before agents connect", float64(rss0), "bytes", nil)
	}

	var assigned atomic.Int64
	var dropped atomic.Int64
	sims := make([]*simAgent, k)
	defer func() {
		for _, a := range sims {
			if a != nil {
				a.cancel()
				_ = a.conn.Close()
			}
		}
	}()
	b.logf("agents: connecting %d simulated agents", k)
	errs := newErrTally()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(50, k) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= k || ctx.Err() != nil {
					return
				}
				a, err := connectSim(ctx, c.grpcAddr, c.key, fmt.Sprintf("sim-%s-%d", tag, i), cfg.MaxInFlight, &assigned, &dropped)
				if err != nil {
					errs.add("connect "+errCode(err), 1)
					continue
				}
				sims[i] = a
			}
		})
	}
	wg.Wait()
	connectTook := time.Since(start)
	connected := 0
	for _, a := range sims {
		if a != nil {
			connected++
		}
	}
	s.add("connected", "agents connected (Welcome received)", float64(connected), "", atLeast(float64(k)))
	s.add("connect_rate", "agents connected", rate(int64(connected), connectTook), "/s", nil)

	if err := sleep(ctx, min(2*time.Second, w)); err != nil { // let connection setup settle
		return err
	}
	b.logf("agents: idle window %s", w)
	cpu0 := c.snapshot()
	t0 := time.Now()
	if err := sleep(ctx, w); err != nil {
		return err
	}
	cpu1 := c.snapshot()
	el := time.Since(t0)
	c.account(s, cpu0, cpu1)
	if c.local() {
		mi := c.mon.mem(c.server())
		rss := mi.rss
		s.add("rss", fmt.Sprintf("control-plane RSS with %d agents", connected), float64(rss), "bytes", atMost(250<<20))
		s.add("peak_rss", "control-plane peak RSS", float64(mi.hwm), "bytes", nil)
		if connected > 0 {
			s.add("rss_per_agent", "RSS per connected agent", float64(rss-rss0)/float64(connected)/1024, "KiB", nil)
		}
		s.add("idle_cpu", "control-plane idle CPU (% of one core)", c.mon.cpuDelta(cpu0, cpu1, "server")/el.Seconds()*100, "%", atMost(5))
	} else {
		s.note("remote mode: control-plane memory and CPU are not measured")
	}
	if n := dropped.Load(); n > 0 {
		s.add("streams_lost", "agent streams that ended during the window", float64(n), "", atMost(0))
	}
	if n := assigned.Load(); n > 0 {
		s.note("%d assignments reached simulated agents (there should be no work)", n)
	}
	errs.into(s)
	return nil
}

// connectSim opens a simulated agent's stream and waits for Welcome.
func connectSim(ctx context.Context, addr, key, id string, credit int, assigned, dropped *atomic.Int64) (*simAgent, error) {
	conn, err := dial(addr, key)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	a := &simAgent{conn: conn, cancel: cancel}
	fail := func(err error) (*simAgent, error) {
		cancel()
		_ = conn.Close()
		return nil, err
	}
	stream, err := hookwirev1.NewAgentServiceClient(conn).Connect(sctx)
	if err != nil {
		return fail(err)
	}
	err = stream.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Hello{Hello: &hookwirev1.Hello{
		AgentId: id, Version: "bench", MaxInFlight: uint32(credit),
		Transports: []*hookwirev1.TransportInfo{{Name: "http", Version: "bench", ApiVersions: []uint32{1}}},
	}}})
	if err != nil {
		return fail(err)
	}
	m, err := stream.Recv()
	if err != nil {
		return fail(err)
	}
	wl := m.GetWelcome()
	if wl == nil {
		return fail(fmt.Errorf("first message was not Welcome"))
	}
	every := time.Duration(wl.GetHeartbeatIntervalMs()) * time.Millisecond
	if every <= 0 {
		every = 5 * time.Second
	}
	go func() { // heartbeats, as a real agent keeps them
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				if err := stream.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Heartbeat{Heartbeat: &hookwirev1.Heartbeat{}}}); err != nil {
					return
				}
			}
		}
	}()
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				if sctx.Err() == nil {
					dropped.Add(1)
				}
				return
			}
			if as := m.GetAssignments(); as != nil {
				assigned.Add(int64(len(as.GetItems())))
			}
		}
	}()
	return a, nil
}
