package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
)

// Cluster is the system under test for one scenario: locally, control
// plane servers (one, or a raft cluster of several on this machine) and
// agent processes, each server with its own data directory; in remote
// mode, just a client of the deployment.
type Cluster struct {
	b    *Bench
	name string
	dir  string
	// dataDir is the first server's data directory.
	dataDir string
	key     string
	// masterKey encrypts signing keys at rest (HOOKWIRE_MASTER_KEY: base64
	// of 32 random bytes), fresh per scenario like the data directory.
	masterKey string
	// grpcAddr and httpAddr are where the bench's own calls go: the first
	// server (any server answers any call), or the deployment.
	grpcAddr string
	httpAddr string
	servers  []*serverNode
	agents   []*Proc
	mon      *Monitor
	api      *API
	nlog     int
}

// serverNode is one local control plane server: the only one of a
// one-server cluster, or a member of a raft cluster.
type serverNode struct {
	id          string // raft node id (n1, n2, …) in a raft cluster
	role        string // process role: "server", or "server-n1", …
	dataDir     string
	grpcAddr    string // 127.0.0.1:0 before a one-server cluster first starts
	httpAddr    string
	clusterAddr string // "" in a one-server cluster
	proc        *Proc
	conn        *grpc.ClientConn // to grpcAddr, for its own cluster status
}

// newCluster starts a scenario's one-server control plane; prepare, if
// given, runs on the empty data directory before the control plane starts
// (the chaos scenario mounts a small tmpfs there).
func (b *Bench) newCluster(ctx context.Context, name string, prepare ...func(dataDir string) error) (*Cluster, error) {
	return b.newClusterOf(ctx, name, 1, prepare...)
}

// newClusterOf starts a scenario's control plane of n servers. One server
// picks its own ports. More form a raft cluster on loopback, on ports
// chosen up front so that each can be restarted on its own, and
// newClusterOf returns once all of them agree on a leader.
func (b *Bench) newClusterOf(ctx context.Context, name string, n int, prepare ...func(dataDir string) error) (*Cluster, error) {
	c := &Cluster{b: b, name: name}
	if b.cfg.remote() {
		c.key = b.cfg.APIKey
		c.grpcAddr = b.cfg.Server
		rest := strings.TrimSuffix(b.cfg.RESTURL, "/")
		var err error
		if c.api, err = newAPI(c.grpcAddr, []string{rest}, c.key, 4); err != nil {
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
	if n <= 1 {
		c.servers = []*serverNode{{role: "server", dataDir: filepath.Join(c.dir, "data"), grpcAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0"}}
	} else {
		addrs, err := freeAddrs(3 * n)
		if err != nil {
			return nil, err
		}
		for i := range n {
			id := fmt.Sprintf("n%d", i+1)
			c.servers = append(c.servers, &serverNode{id: id, role: "server-" + id, dataDir: filepath.Join(c.dir, "data-"+id),
				grpcAddr: addrs[3*i], httpAddr: addrs[3*i+1], clusterAddr: addrs[3*i+2]})
		}
	}
	c.dataDir = c.servers[0].dataDir
	for _, sn := range c.servers {
		if err := os.MkdirAll(sn.dataDir, 0o700); err != nil {
			return nil, err
		}
	}
	for _, p := range prepare {
		if err := p(c.dataDir); err != nil {
			return nil, err
		}
	}
	c.mon = newMonitor(250 * time.Millisecond)
	for _, sn := range c.servers {
		if _, err := c.startServer(ctx, sn); err != nil {
			c.close()
			return nil, err
		}
	}
	c.grpcAddr, c.httpAddr = c.servers[0].grpcAddr, c.servers[0].httpAddr
	// REST publishes go to every server in turn; gRPC calls to the first.
	var rest []string
	for _, sn := range c.servers {
		rest = append(rest, "http://"+sn.httpAddr)
	}
	var err error
	if c.api, err = newAPI(c.grpcAddr, rest, c.key, 4); err != nil {
		c.close()
		return nil, err
	}
	if n > 1 {
		if _, err := c.leader(ctx, 60*time.Second); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// freeAddrs returns n distinct loopback addresses whose ports are free
// just now.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

func (c *Cluster) local() bool { return c.mon != nil }

// server is the first control plane process.
func (c *Cluster) server() *Proc { return c.servers[0].proc }

func (c *Cluster) serverEnv() []string {
	return []string{"HOOKWIRE_ADMIN_KEY=" + c.key, "HOOKWIRE_MASTER_KEY=" + c.masterKey}
}

// serverArgs is server sn's command line, the same at every start.
func (c *Cluster) serverArgs(sn *serverNode) []string {
	args := []string{"server", "--data-dir", sn.dataDir, "--grpc-addr", sn.grpcAddr, "--http-addr", sn.httpAddr, "--log-level", "warn"}
	if sn.clusterAddr != "" {
		args = append(args, "--node-id", sn.id, "--cluster-addr", sn.clusterAddr, "--bootstrap-expect", strconv.Itoa(len(c.servers)))
		for _, o := range c.servers {
			if o != sn {
				args = append(args, "--join", o.clusterAddr)
			}
		}
	}
	// One admin address: the first server's (scenarios run one at a time).
	if a := c.b.cfg.ServerAdminAddr; a != "" && sn == c.servers[0] {
		args = append(args, "--admin-addr", a)
	}
	return args
}

func (c *Cluster) logPath(role string) string {
	c.nlog++
	return filepath.Join(c.dir, fmt.Sprintf("%02d-%s.log", c.nlog, role))
}

// spawn execs server sn.
func (c *Cluster) spawn(sn *serverNode) (*Proc, io.ReadCloser, error) {
	p, out, err := startProc(c.b.cfg.Exe, sn.role, c.logPath(sn.role), c.serverEnv(), c.serverArgs(sn), c.mon)
	if err != nil {
		return nil, nil, err
	}
	sn.proc = p
	return p, out, nil
}

// startServer starts server sn (first start, or again on its data
// directory and ports) and returns how long it took to print its
// addresses.
func (c *Cluster) startServer(ctx context.Context, sn *serverNode) (time.Duration, error) {
	start := time.Now()
	p, out, err := c.spawn(sn)
	if err != nil {
		return 0, err
	}
	g, h, err := awaitAddrs(ctx, p, out, 60*time.Second)
	if err != nil {
		p.Kill()
		return 0, err
	}
	sn.grpcAddr, sn.httpAddr = g, h
	if sn.conn == nil {
		if sn.conn, err = dial(g, c.key); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// restartServer stops the first control plane server (SIGTERM, or
// SIGKILL when kill) and starts it again on the same data directory and
// ports. It returns how long the old one took to exit and how long the new
// one took from exec to answering SERVING on the gRPC health service.
func (c *Cluster) restartServer(ctx context.Context, kill bool) (stop, serving time.Duration, err error) {
	if !c.local() {
		return 0, 0, errRemote
	}
	sn := c.servers[0]
	t0 := time.Now()
	if kill {
		sn.proc.Kill()
	} else {
		sn.proc.Stop(30 * time.Second)
	}
	stop = time.Since(t0)
	t1 := time.Now()
	p, out, err := c.spawn(sn)
	if err != nil {
		return stop, 0, err
	}
	go discard(out) // readiness comes from the health check
	if _, err := awaitServing(ctx, sn.grpcAddr, 60*time.Second); err != nil {
		return stop, 0, fmt.Errorf("%w: %s", err, p.logTail())
	}
	return stop, time.Since(t1), nil
}

// discard keeps a process's stdout pipe drained until it closes.
func discard(out io.Reader) { _, _ = io.Copy(io.Discard, out) }

func (c *Cluster) agentID(i int) string { return fmt.Sprintf("bench-agent-%d", i+1) }

func (c *Cluster) agentRole(i int) string { return "agent-" + strconv.Itoa(i+1) }

// agentServers is the agents' --server: every server's gRPC address.
func (c *Cluster) agentServers() string {
	addrs := make([]string, len(c.servers))
	for i, sn := range c.servers {
		addrs[i] = sn.grpcAddr
	}
	return strings.Join(addrs, ",")
}

// status asks server i for its own view of the cluster.
func (c *Cluster) status(ctx context.Context, i int) (*hookwirev1.ClusterStatus, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return hookwirev1.NewClusterServiceClient(c.servers[i].conn).GetClusterStatus(cctx, &hookwirev1.GetClusterStatusRequest{})
}

// leader waits until one of the servers in among (all when none is
// given) says it leads and the others in among name it, and returns its
// index.
func (c *Cluster) leader(ctx context.Context, within time.Duration, among ...int) (int, error) {
	if len(among) == 0 {
		for i := range c.servers {
			among = append(among, i)
		}
	}
	deadline := time.Now().Add(within)
	var last error
	for {
		lead, named := -1, map[string]int{}
		for _, i := range among {
			st, err := c.status(ctx, i)
			if err != nil {
				last = fmt.Errorf("%s: %w", c.servers[i].id, err)
				continue
			}
			if st.GetState() == "Leader" {
				lead = i
			}
			named[st.GetLeaderId()]++
		}
		if lead >= 0 && named[c.servers[lead].id] == len(among) {
			return lead, nil
		}
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		if time.Now().After(deadline) {
			return -1, c.failure(fmt.Errorf("no leader agreed on by %d servers within %s (last error: %v)", len(among), within, last))
		}
		time.Sleep(10 * time.Millisecond) // polling the servers' state
	}
}

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
		append([]string{"agent", "--server", c.agentServers(), "--id", c.agentID(i), "--max-in-flight", strconv.Itoa(c.b.cfg.MaxInFlight), "--log-level", "warn"},
			c.b.sink.egressFlags()...), c.mon)
	if err != nil {
		return nil, err
	}
	go discard(out)
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

// account adds per-process figures between two snapshots to s (after
// those of any other cluster of the scenario) and returns
// the CPU seconds of all hookwire processes.
func (c *Cluster) account(s *Scenario, from, to CPUSnapshot) float64 {
	if !c.local() {
		return 0
	}
	s.Processes = append(s.Processes, c.mon.Report(from, to)...)
	return c.mon.cpuDelta(from, to, "")
}

func (c *Cluster) close() {
	if c.api != nil {
		c.api.Close()
	}
	for _, a := range c.agents {
		a.Stop(3 * time.Second)
	}
	for _, sn := range c.servers {
		if sn.proc != nil {
			sn.proc.Stop(10 * time.Second)
		}
		if sn.conn != nil {
			_ = sn.conn.Close()
		}
	}
	if c.mon != nil {
		c.mon.close()
	}
	if c.dir != "" && !c.b.cfg.Keep {
		for _, sn := range c.servers {
			os.RemoveAll(sn.dataDir)
		}
	}
}

// failure adds the control plane's log tail to an error.
func (c *Cluster) failure(err error) error {
	if err == nil || !c.local() || c.server() == nil {
		return err
	}
	return fmt.Errorf("%w (server log: %.500s)", err, c.server().logTail())
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
