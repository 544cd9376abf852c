package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// A raft future queued when its node shut down never resolves; the
// goroutine waiting for it is the one leak (*Node).wait accepts.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/hookwire/hookwire/controlplane/internal/cluster.(*Node).wait.func1"))
}

// testLogger shows cluster logs with -v when HOOKWIRE_TEST_LOG is set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("HOOKWIRE_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

// leaderEvent records Config.Leader starting and stopping.
type leaderEvent struct {
	node  string
	start bool
}

// testCluster is a set of in-process nodes on loopback.
type testCluster struct {
	t     testing.TB
	net   *testNet
	mu    sync.Mutex
	nodes []*testNode

	eventsMu sync.Mutex
	events   []leaderEvent
	leading  map[string]bool
}

type testNode struct {
	c    *testCluster
	id   string
	dir  string
	cfg  Config
	fsm  *kvFSM
	node *Node
}

func newTestCluster(t testing.TB) *testCluster {
	c := &testCluster{t: t, net: newTestNet(), leading: map[string]bool{}}
	t.Cleanup(func() {
		c.mu.Lock()
		nodes := slices.Clone(c.nodes)
		c.mu.Unlock()
		for _, n := range nodes {
			n.stop()
		}
	})
	return c
}

// add creates and starts a node; edit adjusts its Config.
func (c *testCluster) add(id string, edit func(*Config)) *testNode {
	c.t.Helper()
	n := &testNode{c: c, id: id, dir: filepath.Join(c.t.TempDir(), id)}
	n.cfg = Config{
		NodeID:            id,
		DataDir:           n.dir,
		BindAddr:          "127.0.0.1:0",
		Logger:            testLogger(c.t).With("test_node", id),
		DiscoveryInterval: 50 * time.Millisecond,
		Dial:              c.net.dialer(id),
		Leader: func(ctx context.Context) {
			c.record(id, true)
			<-ctx.Done()
			c.record(id, false)
		},
	}
	if edit != nil {
		edit(&n.cfg)
	}
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	n.start()
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n
}

func (c *testCluster) record(id string, start bool) {
	c.eventsMu.Lock()
	defer c.eventsMu.Unlock()
	if start && c.leading[id] {
		c.t.Errorf("Leader started twice on %s", id)
	}
	c.leading[id] = start
	c.events = append(c.events, leaderEvent{node: id, start: start})
}

// leadingNodes lists the nodes whose Config.Leader is running.
func (c *testCluster) leadingNodes() []string {
	c.eventsMu.Lock()
	defer c.eventsMu.Unlock()
	var ids []string
	for id, on := range c.leading {
		if on {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// start opens the node's FSM and node from its data dir.
func (n *testNode) start() {
	n.c.t.Helper()
	n.fsm = openKV(n.c.t, filepath.Join(n.dir, "fsm.db"))
	node, err := New(n.cfg, n.fsm)
	if err != nil {
		n.fsm.Close()
		n.fsm = nil
		n.c.t.Fatalf("start %s: %v", n.id, err)
	}
	n.node = node
	n.c.net.register(n.id, node.Addr())
	// A restart binds the same address: raft's configuration holds it.
	n.cfg.BindAddr = node.mux.ln.Addr().String()
}

// stop shuts the node down and closes its FSM, like a process exiting.
func (n *testNode) stop() {
	if n.node == nil {
		return
	}
	if err := n.node.Shutdown(); err != nil {
		n.c.t.Errorf("shutdown %s: %v", n.id, err)
	}
	if err := n.fsm.Close(); err != nil {
		n.c.t.Errorf("close FSM of %s: %v", n.id, err)
	}
	n.node = nil
}

func (n *testNode) restart() {
	n.c.t.Helper()
	n.stop()
	n.start()
}

func (n *testNode) running() bool { return n.node != nil }

// startCluster starts size nodes with bootstrap-expect size: n1 is the
// seed, the others join it.
func (c *testCluster) startCluster(size int, edit func(*Config)) []*testNode {
	c.t.Helper()
	var nodes []*testNode
	for i := 1; i <= size; i++ {
		nodes = append(nodes, c.add(fmt.Sprintf("n%d", i), func(cfg *Config) {
			cfg.BootstrapExpect = size
			if i > 1 {
				cfg.Join = []string{nodes[0].node.Addr()}
			}
			if edit != nil {
				edit(cfg)
			}
		}))
	}
	c.waitLeader(nodes...)
	return nodes
}

// waitLeader waits until one of the running nodes leads and every running
// node agrees on it, and returns it.
func (c *testCluster) waitLeader(nodes ...*testNode) *testNode {
	c.t.Helper()
	var leader *testNode
	waitFor(c.t, 10*time.Second, "a leader all nodes agree on", func() bool {
		leader = nil
		for _, n := range nodes {
			if n.running() && n.node.IsLeader() {
				leader = n
			}
		}
		if leader == nil {
			return false
		}
		for _, n := range nodes {
			if !n.running() {
				continue
			}
			if l, ok := n.node.LeaderInfo(); !ok || l.ID != leader.id {
				return false
			}
		}
		return true
	})
	return leader
}

func followers(leader *testNode, nodes ...*testNode) []*testNode {
	var out []*testNode
	for _, n := range nodes {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}

// apply writes on n and fails the test on error.
func apply(t testing.TB, n *testNode, cmd []byte) any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := n.node.Apply(ctx, cmd)
	if err != nil {
		t.Fatalf("apply %q on %s: %v", cmd, n.id, err)
	}
	return resp
}

// waitConverged waits until every running node's FSM equals want.
func waitConverged(t testing.TB, want map[string]string, nodes ...*testNode) {
	t.Helper()
	for _, n := range nodes {
		if !n.running() {
			continue
		}
		waitFor(t, 10*time.Second, n.id+" to hold the expected state", func() bool {
			got := n.fsm.dump()
			if len(got) != len(want) {
				return false
			}
			for k, v := range want {
				if got[k] != v {
					return false
				}
			}
			return true
		})
	}
}

// testNet routes cluster connections so tests can partition a node: every
// node dials through its own dialer, which refuses to connect an isolated
// node and tracks connections so isolating one cuts them.
type testNet struct {
	mu       sync.Mutex
	addrs    map[string]string // node id -> address
	isolated map[string]bool
	conns    map[*trackedConn]bool
}

func newTestNet() *testNet {
	return &testNet{addrs: map[string]string{}, isolated: map[string]bool{}, conns: map[*trackedConn]bool{}}
}

func (tn *testNet) register(id, addr string) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	tn.addrs[id] = addr
}

func (tn *testNet) idOf(addr string) string {
	for id, a := range tn.addrs {
		if a == addr {
			return id
		}
	}
	return ""
}

var errPartitioned = errors.New("test network: partitioned")

func (tn *testNet) dialer(from string) func(ctx context.Context, address string) (net.Conn, error) {
	return func(ctx context.Context, address string) (net.Conn, error) {
		tn.mu.Lock()
		to := tn.idOf(address)
		cut := tn.isolated[from] || tn.isolated[to]
		tn.mu.Unlock()
		if cut {
			return nil, errPartitioned
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", address)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: conn, from: from, to: to, net: tn}
		tn.mu.Lock()
		defer tn.mu.Unlock()
		if tn.isolated[from] || tn.isolated[to] {
			conn.Close()
			return nil, errPartitioned
		}
		tn.conns[tc] = true
		return tc, nil
	}
}

// isolate cuts id off from every other node, both ways.
func (tn *testNet) isolate(id string) {
	tn.mu.Lock()
	tn.isolated[id] = true
	var cut []*trackedConn
	for c := range tn.conns {
		if c.from == id || c.to == id {
			cut = append(cut, c)
		}
	}
	tn.mu.Unlock()
	for _, c := range cut {
		c.Close()
	}
}

func (tn *testNet) heal(id string) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	delete(tn.isolated, id)
}

type trackedConn struct {
	net.Conn
	from, to string
	net      *testNet
	once     sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.net.mu.Lock()
		delete(c.net.conns, c)
		c.net.mu.Unlock()
	})
	return c.Conn.Close()
}
