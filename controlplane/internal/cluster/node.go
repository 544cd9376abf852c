package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Node is one control plane server's membership in the Raft cluster: it
// owns the raft instance, its log, stable and snapshot stores, and the
// cluster listener. All methods are safe for concurrent use.
type Node struct {
	cfg  Config
	id   string
	addr string // advertised cluster address
	log  *slog.Logger

	stores *stores
	mux    *mux
	dialer *dialer
	trans  *raft.NetworkTransport
	fsm    *fsmAdapter
	raft   *raft.Raft

	// restoredOnStart reports whether raft had to restore the latest
	// snapshot into the FSM when the node started (tests read it).
	restoredOnStart bool
	// bootstrapped: this process bootstrapped the cluster (tests read it).
	bootstrapped atomic.Bool

	notifyCh   chan bool
	shutdownCh chan struct{}
	ctx        context.Context // cancelled by Shutdown
	cancel     context.CancelFunc
	once       sync.Once
	err        error
	wg         sync.WaitGroup

	disc discovery
}

// New opens the node's stores under cfg.DataDir/raft, binds the cluster
// listener and starts raft. A fresh node (nothing on disk) then bootstraps
// or joins as Config.BootstrapExpect and Config.Join say, in the
// background; a node with state resumes from it and never bootstraps. The
// FSM must already hold its persistent state: New reads its AppliedIndex.
// Call Shutdown to stop the node.
func New(cfg Config, fsm FSM) (_ *Node, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:        cfg,
		id:         cfg.NodeID,
		log:        cfg.Logger.With("node", cfg.NodeID),
		notifyCh:   make(chan bool, 1),
		shutdownCh: make(chan struct{}),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	hlog := newHCLog(n.log, "raft")
	cleanup := []func() error{func() error { n.cancel(); return nil }}
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				_ = cleanup[i]()
			}
		}
	}()

	n.stores, err = openStores(filepath.Join(cfg.DataDir, "raft"), cfg.logStore, cfg.LogSegmentSize, cfg.SnapshotRetain, hlog)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, n.stores.Close)

	// Replay only what the FSM lacks: if it already holds every command in
	// the newest snapshot, raft must not restore that snapshot over it, and
	// the commands raft replays from the log that the FSM already has are
	// skipped by the adapter.
	applied, err := fsm.AppliedIndex()
	if err != nil {
		return nil, fmt.Errorf("read the FSM's applied index: %w", err)
	}
	snapIndex, haveSnap, err := latestSnapshotIndex(n.stores.snaps)
	if err != nil {
		return nil, err
	}
	skipRestore := haveSnap && snapIndex != unknownIndex && applied >= snapIndex
	n.restoredOnStart = haveSnap && !skipRestore
	n.fsm = &fsmAdapter{fsm: fsm, skipThrough: applied, lastCommand: applied}

	hasState, err := raft.HasExistingState(n.stores.logs, n.stores.stable, n.stores.snaps)
	if err != nil {
		return nil, fmt.Errorf("read raft state: %w", err)
	}

	if !hasState && applied > 0 {
		// Raft would number new commands from 1 and the adapter would skip
		// them as already applied.
		return nil, fmt.Errorf("cluster: the FSM holds state up to log index %d but the raft directory %s is empty: restore the raft directory, or start from an empty FSM and use RestoreState", applied, filepath.Join(cfg.DataDir, "raft"))
	}
	serverTLS, clientTLS, err := tlsConfigs(cfg.TLS)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on cluster address %s: %w", cfg.BindAddr, err)
	}
	advertise, err := advertiseAddr(cfg.AdvertiseAddr, ln.Addr())
	if err != nil {
		ln.Close()
		return nil, err
	}
	n.addr = advertise.String()
	n.mux = newMux(ln, advertise, serverTLS, n.log, connRaft, connRPC, connAPI)
	cleanup = append(cleanup, n.mux.Close)
	n.dialer = &dialer{dial: cfg.Dial, clientTLS: clientTLS}
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  &streamLayer{subListener: n.mux.listener(connRaft), d: n.dialer},
		MaxPool: 3,
		Timeout: cfg.RPCTimeout,
		Logger:  hlog.Named("transport"),
	})
	cleanup = append(cleanup, func() error { n.trans.CloseStreams(); return n.trans.Close() })

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.MaxAppendEntries = cfg.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.NoSnapshotRestoreOnStart = skipRestore
	// A removed server stays up as a follower outside the configuration:
	// its owner decides when to stop it.
	rc.ShutdownOnRemove = false
	rc.NotifyCh = n.notifyCh
	rc.NoLegacyTelemetry = true
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}

	n.raft, err = raft.NewRaft(rc, n.fsm, n.stores.logs, n.stores.stable, n.stores.snaps, n.trans)
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	cleanup = append(cleanup, func() error { return n.raft.Shutdown().Error() })

	n.log.Info("cluster node started", "address", n.addr, "existing_state", hasState,
		"fsm_applied_index", applied, "snapshot_restored", n.restoredOnStart)

	if hasState {
		for _, srv := range n.raft.GetConfiguration().Configuration().Servers {
			if string(srv.ID) == n.id && string(srv.Address) != n.addr {
				n.log.Warn("this server's address in the cluster configuration differs from its advertise address: peers will dial the old one; restart on the old address, or remove this server and let it join again with an empty data directory",
					"configured", srv.Address, "advertised", n.addr)
			}
		}
	}
	fresh := !hasState
	if fresh && cfg.BootstrapExpect == 1 {
		if err := n.bootstrap([]Server{{ID: n.id, Address: n.addr}}); err != nil {
			return nil, err
		}
		fresh = false
	}
	n.wg.Add(2)
	go n.monitorLeadership()
	go n.serveRPC()
	if fresh {
		// Find the other servers, then bootstrap with them or join them.
		n.wg.Add(1)
		go n.discover()
	}
	return n, nil
}

func advertiseAddr(advertise string, bound net.Addr) (net.Addr, error) {
	if advertise == "" {
		tcp, ok := bound.(*net.TCPAddr)
		if !ok || tcp.IP.IsUnspecified() {
			return nil, fmt.Errorf("cluster: listening on %s, which peers cannot dial: set an advertise address", bound)
		}
		return bound, nil
	}
	host, port, err := net.SplitHostPort(advertise)
	if err != nil {
		return nil, fmt.Errorf("cluster: advertise address %q: %w", advertise, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) || port == "" || port == "0" {
		return nil, fmt.Errorf("cluster: advertise address %q must name a host and port peers can dial", advertise)
	}
	// Kept as written: a host name stays a host name, which TLS verifies.
	return advertisedAddr(advertise), nil
}

// advertisedAddr is an advertised host:port as configured.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// bootstrap writes the first configuration. Every server that bootstraps
// passes the same sorted list, which raft allows.
func (n *Node) bootstrap(servers []Server) error {
	sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
	conf := raft.Configuration{}
	for _, s := range servers {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address)})
	}
	err := n.raft.BootstrapCluster(conf).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		// Raft already has state: a leader reached us first.
		return nil
	}
	if err != nil {
		return fmt.Errorf("bootstrap cluster: %w", err)
	}
	n.bootstrapped.Store(true)
	n.log.Info("cluster bootstrapped", "servers", servers)
	return nil
}

// ID is this node's id.
func (n *Node) ID() string { return n.id }

// Addr is this node's advertised cluster address.
func (n *Node) Addr() string { return n.addr }

// APIListener accepts the connections other servers open with DialAPI: the
// server serves its gRPC API on it, without its own transport security
// (the cluster port's mutual TLS, when on, already wraps them). It closes
// with the node.
func (n *Node) APIListener() net.Listener { return n.mux.listener(connAPI) }

// DialAPI opens a connection to the gRPC API of the server at the cluster
// address (its APIListener), with the cluster's TLS when on. gRPC clients
// use it as their dialer.
func (n *Node) DialAPI(ctx context.Context, address string) (net.Conn, error) {
	return n.dialer.dialKind(ctx, address, connAPI)
}

// Shutdown stops the leader routine, raft, the listener and the stores. It
// is safe to call more than once and returns the first result.
func (n *Node) Shutdown() error {
	n.once.Do(func() {
		close(n.shutdownCh)
		n.cancel()
		errs := []error{n.raft.Shutdown().Error()}
		n.trans.CloseStreams()
		errs = append(errs, n.trans.Close(), n.mux.Close())
		n.wg.Wait()
		errs = append(errs, n.stores.Close())
		n.err = errors.Join(errs...)
		n.log.Info("cluster node stopped")
	})
	return n.err
}

// timeoutFrom turns ctx's deadline into raft's enqueue timeout (0: none).
func timeoutFrom(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		if t := time.Until(d); t > 0 {
			return t
		}
		return time.Nanosecond
	}
	return 0
}

// wait waits for a raft future, ctx, or the node's shutdown. A future left
// behind resolves when raft finishes with it, ending its goroutine; one
// raft had queued but not started when it shut down never resolves, and
// its goroutine stays until the process exits (one per write in flight at
// that moment).
func (n *Node) wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.shutdownCh:
		select {
		case err := <-done:
			return err
		default:
			return ErrShutdown
		}
	}
}

// Apply proposes cmd and returns the FSM's response once the entry is
// committed by a quorum and applied on this node. Only the leader accepts
// writes: elsewhere it returns a *NotLeaderError naming the leader. When
// ctx ends first the write may still be applied later. A response that is
// an error is returned as the error.
func (n *Node) Apply(ctx context.Context, cmd []byte) (any, error) {
	if n.raft.State() != raft.Leader {
		return nil, n.notLeader()
	}
	f := n.raft.Apply(cmd, timeoutFrom(ctx))
	if err := n.wait(ctx, f); err != nil {
		return nil, n.translate(err)
	}
	resp := f.Response()
	if err, ok := resp.(error); ok {
		return nil, err
	}
	return resp, nil
}

// Barrier returns once every entry committed before it has been applied to
// this node's FSM. Leader only.
func (n *Node) Barrier(ctx context.Context) error {
	return n.translate(n.wait(ctx, n.raft.Barrier(timeoutFrom(ctx))))
}

// VerifyLeader confirms with a quorum that this node still leads: a read
// served after it is linearizable. Leader only.
func (n *Node) VerifyLeader(ctx context.Context) error {
	return n.translate(n.wait(ctx, n.raft.VerifyLeader()))
}

// IsLeader reports whether raft believes this node leads right now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// LeaderInfo names the current leader as this node knows it; ok is false
// while there is none (an election, or no quorum reachable).
func (n *Node) LeaderInfo() (leader Server, ok bool) {
	addr, id := n.raft.LeaderWithID()
	if id == "" {
		return Server{}, false
	}
	return Server{ID: string(id), Address: string(addr)}, true
}

// Peer is one server of the latest raft configuration.
type Peer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
}

// Peers lists the servers of the latest configuration this node knows
// (operator raft list-peers), sorted by id.
func (n *Node) Peers(ctx context.Context) ([]Peer, error) {
	f := n.raft.GetConfiguration()
	if err := n.wait(ctx, f); err != nil {
		return nil, n.translate(err)
	}
	_, leader := n.raft.LeaderWithID()
	var peers []Peer
	for _, s := range f.Configuration().Servers {
		peers = append(peers, Peer{
			ID:      string(s.ID),
			Address: string(s.Address),
			Voter:   s.Suffrage == raft.Voter,
			Leader:  s.ID == leader,
		})
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].ID < peers[j].ID })
	return peers, nil
}

// AddPeer adds a server to the configuration, as a voter or a non-voter
// (a non-voter receives the log but does not count for quorum). Adding an
// id that exists updates its address and suffrage. Leader only.
func (n *Node) AddPeer(ctx context.Context, p Peer) error {
	if p.ID == "" || p.Address == "" {
		return errors.New("a peer needs an id and an address")
	}
	var f raft.IndexFuture
	if p.Voter {
		f = n.raft.AddVoter(raft.ServerID(p.ID), raft.ServerAddress(p.Address), 0, timeoutFrom(ctx))
	} else {
		f = n.raft.AddNonvoter(raft.ServerID(p.ID), raft.ServerAddress(p.Address), 0, timeoutFrom(ctx))
	}
	if err := n.translate(n.wait(ctx, f)); err != nil {
		return fmt.Errorf("add peer %s at %s: %w", p.ID, p.Address, err)
	}
	return nil
}

// RemovePeer removes a server from the configuration (operator raft
// remove-peer). Removing the leader itself makes it step down once the
// change commits. Leader only.
func (n *Node) RemovePeer(ctx context.Context, id string) error {
	f := n.raft.RemoveServer(raft.ServerID(id), 0, timeoutFrom(ctx))
	if err := n.translate(n.wait(ctx, f)); err != nil {
		return fmt.Errorf("remove peer %s: %w", id, err)
	}
	return nil
}

// TransferLeadership asks raft to hand leadership to another voter (the
// most up to date) and step down: for a leader that finds it cannot serve.
// Leader only.
func (n *Node) TransferLeadership() error {
	return n.translate(n.raft.LeadershipTransfer().Error())
}

// isMember reports whether this node knows a cluster configuration:
// bootstrapped, added by a leader, or restarted with state.
func (n *Node) isMember() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	return len(f.Configuration().Servers) > 0
}

// Stats is this node's raft state for metrics and operator commands.
type Stats struct {
	ID                string `json:"id"`
	Address           string `json:"address"`
	State             string `json:"state"` // Follower, Candidate, Leader, Shutdown
	Term              uint64 `json:"term"`
	LastLogIndex      uint64 `json:"last_log_index"`
	CommitIndex       uint64 `json:"commit_index"`
	AppliedIndex      uint64 `json:"applied_index"`
	LastSnapshotIndex uint64 `json:"last_snapshot_index"`
	Leader            Server `json:"leader"`
	Voters            int    `json:"voters"`
	// LastContact is how long ago a follower last heard from the leader
	// (0 on the leader; -1 if never).
	LastContact time.Duration `json:"last_contact"`
	// Followers is filled on the leader: each other server's own indexes,
	// asked over the cluster port.
	Followers []FollowerStats `json:"followers,omitempty"`
}

// FollowerStats is one follower's progress as the leader sees it.
type FollowerStats struct {
	ID           string `json:"id"`
	Address      string `json:"address"`
	LastLogIndex uint64 `json:"last_log_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// Lag is how many entries the follower's log is behind the leader's.
	Lag uint64 `json:"lag"`
	// Error is why the follower could not be asked; the indexes are then 0.
	Error string `json:"error,omitempty"`
}

// localStats reads this node's raft state.
func (n *Node) localStats() Stats {
	rs := n.raft.Stats()
	num := func(k string) uint64 {
		v, _ := strconv.ParseUint(rs[k], 10, 64)
		return v
	}
	s := Stats{
		ID:                n.id,
		Address:           n.addr,
		State:             n.raft.State().String(),
		Term:              n.raft.CurrentTerm(),
		LastLogIndex:      n.raft.LastIndex(),
		CommitIndex:       n.raft.CommitIndex(),
		AppliedIndex:      n.raft.AppliedIndex(),
		LastSnapshotIndex: num("last_snapshot_index"),
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			if srv.Suffrage == raft.Voter {
				s.Voters++
			}
		}
	}
	s.Leader, _ = n.LeaderInfo()
	switch last := n.raft.LastContact(); {
	case s.State == raft.Leader.String():
	case last.IsZero():
		s.LastContact = -1
	default:
		s.LastContact = time.Since(last)
	}
	return s
}

// Stats reports this node's raft state; on the leader it also asks every
// other server for its indexes (bounded by ctx and the RPC timeout) to
// report per-follower lag.
func (n *Node) Stats(ctx context.Context) Stats {
	s := n.localStats()
	if s.State != raft.Leader.String() {
		return s
	}
	peers, err := n.Peers(ctx)
	if err != nil {
		return s
	}
	s.Followers = make([]FollowerStats, 0, len(peers))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, p := range peers {
		if p.ID == n.id {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fs := FollowerStats{ID: p.ID, Address: p.Address}
			resp, err := n.call(ctx, p.Address, rpcRequest{Op: opStatus})
			if err == nil && resp.Status == nil {
				err = errors.New("no status in reply")
			}
			if err != nil {
				fs.Error = err.Error()
			} else {
				fs.LastLogIndex, fs.AppliedIndex = resp.Status.LastLogIndex, resp.Status.AppliedIndex
				if s.LastLogIndex > fs.LastLogIndex {
					fs.Lag = s.LastLogIndex - fs.LastLogIndex
				}
			}
			mu.Lock()
			s.Followers = append(s.Followers, fs)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(s.Followers, func(i, j int) bool { return s.Followers[i].ID < s.Followers[j].ID })
	return s
}

// monitorLeadership runs Config.Leader for as long as this node leads,
// never two at once (Nomad's monitorLeadership).
func (n *Node) monitorLeadership() {
	defer n.wg.Done()
	type term struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	var current *term
	stop := func() {
		if current == nil {
			return
		}
		current.cancel()
		<-current.done
		current = nil
		n.log.Info("leadership revoked")
	}
	defer stop()
	for {
		select {
		case isLeader := <-n.notifyCh:
			if !isLeader {
				stop()
				continue
			}
			if current != nil {
				continue
			}
			ctx, cancel := context.WithCancel(n.ctx)
			current = &term{cancel: cancel, done: make(chan struct{})}
			go func(done chan struct{}) {
				defer close(done)
				n.lead(ctx)
			}(current.done)
		case <-n.shutdownCh:
			return
		}
	}
}

// lead establishes leadership: a barrier makes the FSM hold every entry
// earlier leaders committed, then Config.Leader runs.
func (n *Node) lead(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for {
		bctx, cancel := context.WithTimeout(ctx, n.cfg.RPCTimeout)
		err := n.Barrier(bctx)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil || errors.Is(err, ErrShutdown) {
			return
		}
		n.log.Warn("leader barrier failed; retrying", "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
	n.log.Info("leadership established", "term", n.raft.CurrentTerm())
	if n.cfg.Leader != nil {
		n.cfg.Leader(ctx)
	}
}
