package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Cluster is the system under test for one scenario: locally, a control
// plane process and agent processes with their own data directory; in
// remote mode, just a client of the deployment.
type Cluster struct {
	b       *Bench
	name    string
	dir     string
	dataDir string
	key     string
	// masterKey encrypts signing keys at rest (HOOKWIRE_MASTER_KEY: base64
	// of 32 random bytes), fresh per scenario like the data directory.
	masterKey string
	grpcAddr  string
	httpAddr  string
	server    *Proc
	agents    []*Proc
	mon       *Monitor
	api       *API
	starts    int
	nlog      int
}

// newCluster starts a scenario's control plane; prepare, if given, runs on
// the empty data directory before the control plane starts (the chaos
// scenario mounts a small tmpfs there).
func (b *Bench) newCluster(ctx context.Context, name string, prepare ...func(dataDir string) error) (*Cluster, error) {
	c := &Cluster{b: b, name: name}
	if b.cfg.remote() {
		c.key = b.cfg.APIKey
		c.grpcAddr = b.cfg.Server
		rest := strings.TrimSuffix(b.cfg.RESTURL, "/")
		var err error
		if c.api, err = newAPI(c.grpcAddr, rest, c.key, 4); err != nil {
			return nil, err
		}
		return c, nil
	}
	kb := make([]byte, 16)
	_, _ = rand.Read(kb)
	c.key = "bench-admin-" + hex.EncodeToString(kb)
	mk := make([]byte, 32)
	_, _ = rand.Read(mk)
	c.masterKey = base64.StdEncoding.EncodeToString(mk)
	c.dir = filepath.Join(b.dir, fmt.Sprintf("%s-%d", name, b.seq))
	c.dataDir = filepath.Join(c.dir, "data")
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return nil, err
	}
	for _, p := range prepare {
		if err := p(c.dataDir); err != nil {
			return nil, err
		}
	}
	c.mon = newMonitor(250 * time.Millisecond)
	if _, err := c.startServer(ctx, "127.0.0.1:0", "127.0.0.1:0"); err != nil {
		c.close()
		return nil, err
	}
	var err error
	if c.api, err = newAPI(c.grpcAddr, "http://"+c.httpAddr, c.key, 4); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) local() bool { return c.mon != nil }

func (c *Cluster) serverEnv() []string {
	return []string{"HOOKWIRE_ADMIN_KEY=" + c.key, "HOOKWIRE_MASTER_KEY=" + c.masterKey}
}

// serverArgs is the control plane's command line.
func (c *Cluster) serverArgs(grpcAddr, httpAddr string) []string {
	args := []string{"server", "--data-dir", c.dataDir, "--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--log-level", "warn"}
	if a := c.b.cfg.ServerAdminAddr; a != "" {
		args = append(args, "--admin-addr", a)
	}
	return args
}

func (c *Cluster) logPath(role string) string {
	c.nlog++
	return filepath.Join(c.dir, fmt.Sprintf("%02d-%s.log", c.nlog, role))
}

// startServer starts the control plane and returns how long it took to
// print its addresses.
func (c *Cluster) startServer(ctx context.Context, grpcAddr, httpAddr string) (time.Duration, error) {
	start := time.Now()
	p, out, err := startProc(c.b.cfg.Exe, "server", c.logPath("server"),
		c.serverEnv(), c.serverArgs(grpcAddr, httpAddr), c.mon)
	if err != nil {
		return 0, err
	}
	g, h, err := awaitAddrs(ctx, p, out, 60*time.Second)
	if err != nil {
		p.Kill()
		return 0, err
	}
	c.server, c.grpcAddr, c.httpAddr = p, g, h
	c.starts++
	return time.Since(start), nil
}

// restartServer stops the control plane (SIGTERM, or SIGKILL when kill)
// and starts it again on the same data directory and ports. It returns
// how long the old one took to exit and how long the new one took from
// exec to answering SERVING on the gRPC health service.
func (c *Cluster) restartServer(ctx context.Context, kill bool) (stop, serving time.Duration, err error) {
	if !c.local() {
		return 0, 0, errRemote
	}
	t0 := time.Now()
	if kill {
		c.server.Kill()
	} else {
		c.server.Stop(30 * time.Second)
	}
	stop = time.Since(t0)
	t1 := time.Now()
	p, out, err := startProc(c.b.cfg.Exe, "server", c.logPath("server"),
		c.serverEnv(), c.serverArgs(c.grpcAddr, c.httpAddr), c.mon)
	if err != nil {
		return stop, 0, err
	}
	c.server = p
	c.starts++
	go func() { // keep the pipe drained; readiness comes from the health check
		buf := make([]byte, 4096)
		for {
			if _, err := out.Read(buf); err != nil {
				return
			}
		}
	}()
	if _, err := awaitServing(ctx, c.grpcAddr, 60*time.Second); err != nil {
		return stop, 0, fmt.Errorf("%w: %s", err, p.logTail())
	}
	return stop, time.Since(t1), nil
}

func (c *Cluster) agentID(i int) string { return fmt.Sprintf("bench-agent-%d", i+1) }

func (c *Cluster) agentRole(i int) string { return "agent-" + strconv.Itoa(i+1) }

// startAgents starts n more agent processes.
func (c *Cluster) startAgents(n int) error {
	if !c.local() {
		return nil
	}
	for range n {
		i := len(c.agents)
		p, err := c.startAgent(i)
		if err != nil {
			return err
		}
		c.agents = append(c.agents, p)
	}
	return nil
}

func (c *Cluster) startAgent(i int) (*Proc, error) {
	p, out, err := startProc(c.b.cfg.Exe, c.agentRole(i), c.logPath(c.agentRole(i)),
		[]string{"HOOKWIRE_API_KEY=" + c.key},
		append([]string{"agent", "--server", c.grpcAddr, "--id", c.agentID(i), "--max-in-flight", strconv.Itoa(c.b.cfg.MaxInFlight), "--log-level", "warn"},
			c.b.sink.egressFlags()...), c.mon)
	if err != nil {
		return nil, err
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := out.Read(buf); err != nil {
				return
			}
		}
	}()
	return p, nil
}

// restartAgent SIGKILLs agent i with its plugins and starts it again with
// the same id.
func (c *Cluster) restartAgent(i int, pause time.Duration) error {
	c.agents[i].Kill()
	time.Sleep(pause)
	p, err := c.startAgent(i)
	if err != nil {
		return err
	}
	c.agents[i] = p
	return nil
}

// snapshot is the CPU of every hookwire process so far (nil in remote mode).
func (c *Cluster) snapshot() CPUSnapshot {
	if !c.local() {
		return nil
	}
	return c.mon.Snapshot()
}

// account adds per-process figures between two snapshots to s and returns
// the CPU seconds of all hookwire processes.
func (c *Cluster) account(s *Scenario, from, to CPUSnapshot) float64 {
	if !c.local() {
		return 0
	}
	s.Processes = c.mon.Report(from, to)
	return c.mon.cpuDelta(from, to, "")
}

func (c *Cluster) close() {
	if c.api != nil {
		c.api.Close()
	}
	for _, a := range c.agents {
		a.Stop(3 * time.Second)
	}
	if c.server != nil {
		c.server.Stop(10 * time.Second)
	}
	if c.mon != nil {
		c.mon.close()
	}
	if c.dir != "" && !c.b.cfg.Keep {
		os.RemoveAll(c.dataDir)
	}
}

// failure adds the control plane's log tail to an error.
func (c *Cluster) failure(err error) error {
	if err == nil || !c.local() || c.server == nil {
		return err
	}
	return fmt.Errorf("%w (server log: %.500s)", err, c.server.logTail())
}

// setup creates the scenario's tenant and n subscriptions like spec, each
// to its own sink URL, returning their ids.
func (c *Cluster) setup(ctx context.Context, tenant, tag string, n int, spec subSpec) ([]string, error) {
	if err := c.api.createTenant(ctx, tenant); err != nil {
		return nil, c.failure(fmt.Errorf("create tenant: %w", err))
	}
	ids := make([]string, n)
	for i := range n {
		s := spec
		s.url = c.b.sink.url(tag, i)
		id, err := c.api.createSub(ctx, tenant, s)
		if err != nil {
			return nil, c.failure(err)
		}
		ids[i] = id
	}
	return ids, nil
}
