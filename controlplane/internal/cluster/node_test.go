package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSingleNodeBootstrapsAndApplies(t *testing.T) {
	c := newTestCluster(t)
	n := c.add("solo", nil) // bootstrap-expect defaults to 1
	c.waitLeader(n)
	if !n.node.bootstrapped.Load() {
		t.Fatal("a fresh single node did not bootstrap")
	}
	waitFor(t, 5*time.Second, "Config.Leader to run", func() bool {
		return slices.Equal(c.leadingNodes(), []string{"solo"})
	})

	if got := apply(t, n, setCmd("a", 1)); got != uint64(1) {
		t.Fatalf("first set of a answered %v, want 1", got)
	}
	if got := apply(t, n, setCmd("a", 2)); got != uint64(2) {
		t.Fatalf("second set of a answered %v, want 2", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.node.Apply(ctx, []byte("fail")); !errors.Is(err, errFailCommand) {
		t.Fatalf("an FSM error response came back as %v, want errFailCommand", err)
	}
	if v, _ := n.fsm.get("a"); v != "2" {
		t.Fatalf("a = %q, want 2", v)
	}
	if err := n.node.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.node.VerifyLeader(ctx); err != nil {
		t.Fatal(err)
	}
	peers, err := n.node.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Peer{{ID: "solo", Address: n.node.Addr(), Voter: true, Leader: true}}
	if !slices.Equal(peers, want) {
		t.Fatalf("peers = %+v, want %+v", peers, want)
	}
	s := n.node.Stats(ctx)
	if s.State != "Leader" || s.Voters != 1 || s.AppliedIndex < 4 || s.CommitIndex < s.AppliedIndex || s.Leader.ID != "solo" {
		t.Fatalf("unexpected stats %+v", s)
	}
}

func TestThreeNodesBootstrapExpectElectAndReplicate(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.startCluster(3, nil)
	leader := c.waitLeader(nodes...)

	// A follower learns the configuration from the leader's first
	// replicated entries, which may land after the election is visible.
	for _, n := range nodes {
		var ids []string
		waitFor(t, 5*time.Second, n.id+" to list n1 n2 n3 as voters", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			peers, err := n.node.Peers(ctx)
			if err != nil {
				return false
			}
			ids = ids[:0]
			for _, p := range peers {
				if p.Voter {
					ids = append(ids, p.ID)
				}
			}
			return len(peers) == 3 && slices.Equal(ids, []string{"n1", "n2", "n3"})
		})
	}
	want := map[string]string{}
	for i := range 50 {
		apply(t, leader, setCmd(keyN(i), i))
		want[keyN(i)] = fmt.Sprint(i)
	}
	waitConverged(t, want, nodes...)
	waitFor(t, 5*time.Second, "exactly the leader to run Config.Leader", func() bool {
		return slices.Equal(c.leadingNodes(), []string{leader.id})
	})
}

func TestApplyOnFollowerNamesTheLeader(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.startCluster(3, nil)
	leader := c.waitLeader(nodes...)
	f := followers(leader, nodes...)[0]

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := f.node.Apply(ctx, setCmd("x", 1))
	var nl *NotLeaderError
	if !errors.As(err, &nl) || !errors.Is(err, ErrNotLeader) {
		t.Fatalf("apply on a follower returned %v, want a NotLeaderError", err)
	}
	if nl.Leader.ID != leader.id || nl.Leader.Address != leader.node.Addr() {
		t.Fatalf("the error names %+v, want %s at %s", nl.Leader, leader.id, leader.node.Addr())
	}
	for name, op := range map[string]func() error{
		"Barrier":    func() error { return f.node.Barrier(ctx) },
		"RemovePeer": func() error { return f.node.RemovePeer(ctx, leader.id) },
		"AddPeer":    func() error { return f.node.AddPeer(ctx, Peer{ID: "x", Address: "127.0.0.1:1", Voter: true}) },
		"Restore":    func() error { _, err := f.node.SnapshotRestore(ctx, strings.NewReader("")); return err },
	} {
		if err := op(); !errors.Is(err, ErrNotLeader) {
			t.Errorf("%s on a follower returned %v, want ErrNotLeader", name, err)
		}
	}
}

// TestLeaderFailover kills the leader under a steady write load: a new
// leader must accept writes within 3 s and no acknowledged write is lost.
func TestLeaderFailover(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.startCluster(3, nil)
	old := c.waitLeader(nodes...)

	var (
		mu    sync.Mutex
		acked = map[string]string{}
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // writes to whichever node leads, like a forwarding client
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var target *testNode
			for _, n := range nodes {
				if n.running() && n.node.IsLeader() {
					target = n
				}
			}
			if target == nil {
				time.Sleep(5 * time.Millisecond) // no leader yet: poll again
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := target.node.Apply(ctx, setCmd(keyN(i), i))
			cancel()
			if err == nil {
				mu.Lock()
				acked[keyN(i)] = fmt.Sprint(i)
				mu.Unlock()
			}
		}
	}()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitFor(t, 5*time.Second, "writes before the failover", func() bool { return count() >= 50 })

	// The writer only touches running nodes, but reads node pointers: stop
	// it around the kill, then resume on the survivors.
	close(stop)
	<-done
	survivors := followers(old, nodes...)
	killed := time.Now()
	old.stop()
	before := count()
	stop, done = make(chan struct{}), make(chan struct{})
	nodes = survivors
	go func() {
		defer close(done)
		for i := 100000; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var target *testNode
			for _, n := range nodes {
				if n.node.IsLeader() {
					target = n
				}
			}
			if target == nil {
				time.Sleep(5 * time.Millisecond) // no leader yet: poll again
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := target.node.Apply(ctx, setCmd(keyN(i), i))
			cancel()
			if err == nil {
				mu.Lock()
				acked[keyN(i)] = fmt.Sprint(i)
				mu.Unlock()
			}
		}
	}()
	waitFor(t, 3*time.Second, "a write acknowledged by a new leader within 3 s", func() bool { return count() > before })
	t.Logf("failover: first write acknowledged %s after the leader stopped", time.Since(killed).Round(time.Millisecond))
	waitFor(t, 5*time.Second, "more writes after the failover", func() bool { return count() >= before+50 })
	close(stop)
	<-done

	newLeader := c.waitLeader(survivors...)
	if newLeader == old {
		t.Fatal("the stopped leader still leads")
	}
	waitFor(t, 5*time.Second, "Config.Leader to move to the new leader", func() bool {
		return slices.Equal(c.leadingNodes(), []string{newLeader.id})
	})
	mu.Lock()
	want := maps(acked)
	mu.Unlock()
	// Every acknowledged write is on both survivors; writes that failed
	// may or may not be there, so compare only what was acknowledged.
	for _, n := range survivors {
		waitFor(t, 10*time.Second, n.id+" to hold every acknowledged write", func() bool {
			got := n.fsm.dump()
			for k, v := range want {
				if got[k] != v {
					return false
				}
			}
			return true
		})
	}

	// The old leader comes back as a follower and catches up.
	old.start()
	waitFor(t, 10*time.Second, "the old leader to catch up", func() bool {
		got := old.fsm.dump()
		for k, v := range want {
			if got[k] != v {
				return false
			}
		}
		return true
	})
	if old.node.bootstrapped.Load() {
		t.Fatal("a restarted node bootstrapped again")
	}
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestFollowerCatchesUpBySnapshot: a follower down while the leader
// writes past a snapshot and truncates its log gets the snapshot.
func TestFollowerCatchesUpBySnapshot(t *testing.T) {
	// raft-wal drops a truncated head a segment file at a time (and still
	// reads entries of the file it keeps): small segments and 4 KiB values
	// fill a few files, so the entries the follower needs are gone.
	defer func(f func(string) int) { walSegmentSize = f }(walSegmentSize)
	walSegmentSize = func(string) int { return minSegmentSize }
	pad := strings.Repeat("x", 4<<10)
	c := newTestCluster(t)
	nodes := c.startCluster(3, func(cfg *Config) {
		cfg.SnapshotThreshold = 64
		cfg.TrailingLogs = 16
		cfg.SnapshotInterval = 20 * time.Millisecond
	})
	leader := c.waitLeader(nodes...)
	down := followers(leader, nodes...)[0]
	want := map[string]string{}
	for i := range 10 {
		apply(t, leader, setCmd(keyN(i), i))
		want[keyN(i)] = fmt.Sprint(i)
	}
	waitConverged(t, want, nodes...)
	downIndex := down.node.localStats().LastLogIndex
	down.stop()

	for i := 10; i < 600; i++ {
		v := fmt.Sprintf("%d-%s", i, pad)
		apply(t, leader, setCmd(keyN(i), v))
		want[keyN(i)] = v
	}
	// Wait until the leader's log no longer holds what the follower needs.
	waitFor(t, 10*time.Second, "the leader to snapshot and truncate its log", func() bool {
		s := leader.node.localStats()
		first, err := leader.node.stores.logs.FirstIndex()
		return err == nil && s.LastSnapshotIndex > downIndex+16 && first > downIndex+1
	})

	down.start()
	if down.node.bootstrapped.Load() {
		t.Fatal("a restarted node bootstrapped again")
	}
	waitConverged(t, want, down)
	if down.fsm.restores.Load() == 0 {
		t.Fatal("the follower caught up without installing a snapshot")
	}
	// And it keeps replicating afterwards.
	apply(t, leader, setCmd("after", 1))
	want["after"] = "1"
	waitConverged(t, want, nodes...)
}

// TestRestartResumesWithoutReplay: a node restarted from its data dir
// keeps its state, does not bootstrap again, does not restore a snapshot
// its FSM already holds and re-applies no command.
func TestRestartResumesWithoutReplay(t *testing.T) {
	c := newTestCluster(t)
	n := c.add("solo", nil)
	c.waitLeader(n)
	want := map[string]string{}
	for i := range 100 {
		apply(t, n, setCmd(keyN(i), i))
		want[keyN(i)] = fmt.Sprint(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.node.SnapshotSave(ctx, discard{}); err != nil { // takes a raft snapshot
		t.Fatal(err)
	}
	for i := 100; i < 150; i++ {
		apply(t, n, setCmd(keyN(i), i))
		want[keyN(i)] = fmt.Sprint(i)
	}

	n.restart()
	c.waitLeader(n)
	if n.node.bootstrapped.Load() {
		t.Fatal("the restarted node bootstrapped again")
	}
	if n.node.restoredOnStart {
		t.Fatal("raft restored a snapshot the FSM already held")
	}
	if err := n.node.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	if got := n.fsm.applied.Load(); got != 0 {
		t.Fatalf("the restarted node re-applied %d commands", got)
	}
	waitConverged(t, want, n)
	if got := apply(t, n, setCmd(keyN(0), "again")); got != uint64(2) {
		t.Fatalf("set count after restart = %v, want 2", got)
	}
	if got := n.fsm.applied.Load(); got != 1 {
		t.Fatalf("applied %d commands after one write", got)
	}
}

// TestRestartWithLostFSMRestoresAndReplays: when the FSM lost its state
// (a crash before bbolt reached the disk), the node restores the newest
// snapshot and replays the log after it.
func TestRestartWithLostFSMRestoresAndReplays(t *testing.T) {
	c := newTestCluster(t)
	n := c.add("solo", nil)
	c.waitLeader(n)
	want := map[string]string{}
	for i := range 100 {
		apply(t, n, setCmd(keyN(i), i))
		want[keyN(i)] = fmt.Sprint(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.node.SnapshotSave(ctx, discard{}); err != nil {
		t.Fatal(err)
	}
	for i := 100; i < 150; i++ {
		apply(t, n, setCmd(keyN(i), i))
		want[keyN(i)] = fmt.Sprint(i)
	}
	n.stop()
	if err := os.Remove(filepath.Join(n.dir, "fsm.db")); err != nil {
		t.Fatal(err)
	}
	n.start()
	if !n.node.restoredOnStart {
		t.Fatal("an empty FSM was not restored from the snapshot")
	}
	c.waitLeader(n)
	if err := n.node.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, want, n)
	if got := n.fsm.applied.Load(); got != 50 {
		t.Fatalf("replayed %d commands after the snapshot, want 50", got)
	}
}

// TestClusterNodeRestartRejoins: a follower restarted from its data dir
// rejoins from its own state and catches up from the log.
func TestClusterNodeRestartRejoins(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.startCluster(3, nil)
	leader := c.waitLeader(nodes...)
	f := followers(leader, nodes...)[0]
	want := map[string]string{}
	for i := range 20 {
		apply(t, leader, setCmd(keyN(i), i))
		want[keyN(i)] = fmt.Sprint(i)
	}
	waitConverged(t, want, nodes...)
	f.stop()
	for i := 20; i < 40; i++ {
		apply(t, leader, setCmd(keyN(i), i))
		want[keyN(i)] = fmt.Sprint(i)
	}
	f.start()
	waitConverged(t, want, nodes...)
	if f.node.bootstrapped.Load() {
		t.Fatal("the restarted follower bootstrapped again")
	}
	if f.fsm.restores.Load() != 0 {
		t.Fatal("a follower 20 entries behind needed a snapshot")
	}
	if got := f.fsm.applied.Load(); got != 20 {
		t.Fatalf("the restarted follower applied %d commands, want the 20 it missed", got)
	}

	// Stop every node and start them all again: state intact.
	for _, n := range nodes {
		n.stop()
	}
	for _, n := range nodes {
		n.start()
	}
	leader = c.waitLeader(nodes...)
	apply(t, leader, setCmd("after", 1))
	want["after"] = "1"
	waitConverged(t, want, nodes...)
}

func TestRemovePeer(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.startCluster(3, nil)
	leader := c.waitLeader(nodes...)
	gone := followers(leader, nodes...)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := leader.node.RemovePeer(ctx, gone.id); err != nil {
		t.Fatal(err)
	}
	peers, err := leader.node.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if p.ID == gone.id {
			t.Fatalf("%s is still a peer: %+v", gone.id, peers)
		}
	}
	if len(peers) != 2 {
		t.Fatalf("peers after removal: %+v", peers)
	}
	// Writes commit with the two left, and the removed node stops getting them.
	rest := followers(gone, nodes...)
	want := map[string]string{}
	for i := range 10 {
		apply(t, leader, setCmd(keyN(i), i))
		want[keyN(i)] = fmt.Sprint(i)
	}
	waitConverged(t, want, rest...)
	gone.stop() // a removed server is the operator's to stop
	apply(t, leader, setCmd("after", 1))
	want["after"] = "1"
	waitConverged(t, want, rest...)
	if s := leader.node.Stats(ctx); len(s.Followers) != 1 || s.Followers[0].Error != "" {
		t.Fatalf("follower stats after removal: %+v", s.Followers)
	}
}

// TestJoinExistingCluster: a fresh server with join addresses and no
// bootstrap-expect asks the leader to add it.
func TestJoinExistingCluster(t *testing.T) {
	c := newTestCluster(t)
	first := c.add("n1", nil)
	c.waitLeader(first)
	want := map[string]string{}
	for i := range 20 {
		apply(t, first, setCmd(keyN(i), i))
		want[keyN(i)] = fmt.Sprint(i)
	}
	joiner := c.add("n2", func(cfg *Config) { cfg.Join = []string{first.node.Addr()} })
	if joiner.node.bootstrapped.Load() {
		t.Fatal("a joining node bootstrapped")
	}
	waitConverged(t, want, joiner)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	peers, err := first.node.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 || peers[1].ID != "n2" || !peers[1].Voter || peers[1].Address != joiner.node.Addr() {
		t.Fatalf("peers after join: %+v", peers)
	}
}

func TestStatsReportFollowerLag(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.startCluster(3, nil)
	leader := c.waitLeader(nodes...)
	for i := range 10 {
		apply(t, leader, setCmd(keyN(i), i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	waitFor(t, 5*time.Second, "followers to report no lag", func() bool {
		s := leader.node.Stats(ctx)
		if len(s.Followers) != 2 {
			return false
		}
		for _, f := range s.Followers {
			if f.Error != "" || f.Lag != 0 || f.LastLogIndex != s.LastLogIndex {
				return false
			}
		}
		return true
	})
	f := followers(leader, nodes...)[0]
	if s := f.node.Stats(ctx); s.State != "Follower" || s.Leader.ID != leader.id || s.LastContact < 0 || s.Followers != nil {
		t.Fatalf("follower stats: %+v", s)
	}
	f.stop()
	apply(t, leader, setCmd("x", 1))
	s := leader.node.Stats(ctx)
	for _, fs := range s.Followers {
		if fs.ID == f.id && fs.Error == "" {
			t.Fatalf("a stopped follower reported no error: %+v", fs)
		}
	}
}

// TestPartitionedLeaderStepsDown cuts the leader off from both followers:
// it cannot commit, steps down, the majority elects a new leader, and
// after healing the old leader follows and drops its uncommitted write.
func TestPartitionedLeaderStepsDown(t *testing.T) {
	c := newTestCluster(t)
	nodes := c.startCluster(3, nil)
	old := c.waitLeader(nodes...)
	want := map[string]string{}
	for i := range 10 {
		apply(t, old, setCmd(keyN(i), i))
		want[keyN(i)] = fmt.Sprint(i)
	}
	waitConverged(t, want, nodes...)

	c.net.isolate(old.id)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := old.node.Apply(ctx, setCmd("lost", 1))
	cancel()
	if err == nil {
		t.Fatal("an isolated leader acknowledged a write")
	}
	t.Logf("write on the isolated leader: %v", err)
	waitFor(t, 3*time.Second, "the isolated leader to step down", func() bool { return !old.node.IsLeader() })
	waitFor(t, 5*time.Second, "Config.Leader to stop on the isolated node", func() bool {
		return !slices.Contains(c.leadingNodes(), old.id)
	})
	majority := followers(old, nodes...)
	newLeader := c.waitLeader(majority...)
	apply(t, newLeader, setCmd("majority", 1))
	want["majority"] = "1"

	c.net.heal(old.id)
	final := c.waitLeader(nodes...)
	if final == old {
		// It may win a later election; that is fine as long as the log agrees.
		t.Log("the healed node won a later election")
	}
	waitConverged(t, want, nodes...)
	if _, ok := old.fsm.get("lost"); ok {
		t.Fatal("the uncommitted write on the isolated leader was applied")
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no id", Config{DataDir: dir, BindAddr: "127.0.0.1:0"}, "node id"},
		{"no dir", Config{NodeID: "a", BindAddr: "127.0.0.1:0"}, "data directory"},
		{"no bind", Config{NodeID: "a", DataDir: dir}, "bind address"},
		{"expect 1 with join", Config{NodeID: "a", DataDir: dir, BindAddr: "127.0.0.1:0", BootstrapExpect: 1, Join: []string{"127.0.0.1:1"}}, "bootstrap-expect 1"},
		{"negative expect", Config{NodeID: "a", DataDir: dir, BindAddr: "127.0.0.1:0", BootstrapExpect: -1}, "negative"},
		{"unspecified advertise", Config{NodeID: "a", DataDir: dir, BindAddr: "0.0.0.0:0"}, "advertise address"},
		{"negative segment", Config{NodeID: "a", DataDir: dir, BindAddr: "127.0.0.1:0", LogSegmentSize: -1 << 20}, "segment size"},
		{"huge segment", Config{NodeID: "a", DataDir: dir, BindAddr: "127.0.0.1:0", LogSegmentSize: 4 << 30}, "give 1 to 1024 MiB"},
		{"bad timing", Config{NodeID: "a", DataDir: dir, BindAddr: "127.0.0.1:0", HeartbeatTimeout: time.Second, ElectionTimeout: 100 * time.Millisecond}, "ElectionTimeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsm := openKV(t, filepath.Join(t.TempDir(), "fsm.db"))
			defer fsm.Close()
			n, err := New(tc.cfg, fsm)
			if err == nil {
				n.Shutdown()
				t.Fatal("New accepted the configuration")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestDataDirInUse(t *testing.T) {
	c := newTestCluster(t)
	n := c.add("solo", nil)
	fsm := openKV(t, filepath.Join(t.TempDir(), "other.db"))
	defer fsm.Close()
	cfg := n.cfg
	cfg.BindAddr = "127.0.0.1:0"
	second, err := New(cfg, fsm)
	if err == nil {
		second.Shutdown()
		t.Fatal("a second node opened the same data directory")
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Fatalf("error %q does not say the directory is in use", err)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestAdvertiseAddressKeepsHostNames(t *testing.T) {
	c := newTestCluster(t)
	n := c.add("solo", func(cfg *Config) { cfg.AdvertiseAddr = "localhost:7071" })
	if n.node.Addr() != "localhost:7071" {
		t.Fatalf("advertised %q", n.node.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	peers, err := n.node.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 1 || peers[0].Address != "localhost:7071" {
		t.Fatalf("peers %+v", peers)
	}
}
