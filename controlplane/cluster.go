package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/hookwire/hookwire/internal/tlsutil"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/api"
	"github.com/hookwire/hookwire/controlplane/internal/cluster"
	"github.com/hookwire/hookwire/controlplane/internal/dispatch"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// The control plane is always a Raft cluster (docs/CLUSTERING.md): a plain
// `hookwire server` or `hookwire dev` is a cluster of one, and the store is
// the state machine every server applies the log to. The leader runs the
// dispatcher and the background jobs (lead); followers forward the API to
// it (forward.go).

// ClusterConfig configures the server's membership of a cluster. The zero
// value is a one-server cluster on a free loopback port.
type ClusterConfig struct {
	// NodeID names this server for good. Default: the id kept in the data
	// directory (file node-id), created on first start.
	NodeID string
	// Addr is the cluster listener's host:port (raft, joins, forwarded
	// API calls). Default 127.0.0.1:0, which only a one-server cluster may
	// use. Advertise is the address other servers dial, if not Addr.
	Addr, Advertise string
	// BootstrapExpect and Join: see cluster.Config. Neither: one server.
	BootstrapExpect int
	Join            []string
	// CertFile, KeyFile and CAFile make every cluster connection mutual
	// TLS: each server presents its certificate (valid for its advertised
	// host, with server and client auth usages) and accepts peers whose
	// certificate the CA signed. Required when the cluster address is not
	// loopback.
	CertFile, KeyFile, CAFile string
	// Timing overrides (tests); zero: the cluster package's defaults.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	SnapshotThreshold, TrailingLogs                       uint64
	SnapshotInterval                                      time.Duration
	// LogSegmentSize: the raft log's segment files, in bytes (zero: 64
	// MiB, or 1/64 of a smaller file system).
	LogSegmentSize int
}

// alone reports whether this server forms a one-server cluster.
func (c ClusterConfig) alone() bool {
	return len(c.Join) == 0 && c.BootstrapExpect <= 1
}

const nodeIDFile = "node-id"

// missingDatabase reports whether dir's database file is missing or empty.
func missingDatabase(dir string) bool {
	info, err := os.Stat(filepath.Join(dir, store.FileName))
	return errors.Is(err, os.ErrNotExist) || (err == nil && info.Size() == 0)
}

// nodeID returns the configured id, or the one kept in dir (created once).
func (c ClusterConfig) nodeID(dir string) (string, error) {
	path := filepath.Join(dir, nodeIDFile)
	kept, err := os.ReadFile(path)
	switch {
	case err == nil && len(kept) > 0:
		id := string(kept)
		if c.NodeID != "" && c.NodeID != id {
			return "", fmt.Errorf("--node-id %q, but data directory %s belongs to node %q (file %s): a server keeps its id for good; start it with --node-id %s, or give the new id an empty data directory", c.NodeID, dir, id, path, id)
		}
		return id, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return "", err
	}
	id := c.NodeID
	if id == "" {
		id = ids.Format("nod", ids.New(time.Now()))
	}
	if err := os.WriteFile(path, []byte(id), 0o600); err != nil {
		return "", fmt.Errorf("record the node id: %w", err)
	}
	return id, nil
}

// tlsConfig loads the cluster's mutual TLS, or nil without it.
func (c ClusterConfig) tlsConfig(addr string) (*tls.Config, error) {
	if c.CertFile == "" && c.KeyFile == "" && c.CAFile == "" {
		if !loopback(addr) {
			return nil, fmt.Errorf("cluster address %s is not loopback: cluster traffic must be mutual TLS off loopback; give --cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca", addr)
		}
		return nil, nil
	}
	if c.CertFile == "" || c.KeyFile == "" || c.CAFile == "" {
		return nil, errors.New("cluster TLS needs all of --cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca")
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load cluster TLS certificate %s and key %s: %w", c.CertFile, c.KeyFile, err)
	}
	pool, err := tlsutil.LoadCAPool(c.CAFile, "cluster CA bundle")
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ClientCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// startNode starts this server's cluster node on the store.
func (s *Server) startNode() error {
	c := s.cfg.Cluster
	id, err := c.nodeID(s.cfg.DataDir)
	if err != nil {
		return err
	}
	addr := c.Addr
	if addr == "" {
		if !c.alone() {
			return errors.New("a server that joins or bootstraps a cluster needs --cluster-addr (host:port the other servers can reach)")
		}
		addr = "127.0.0.1:0"
	}
	tlsCfg, err := c.tlsConfig(addr)
	if err != nil {
		return err
	}
	s.node, err = cluster.New(cluster.Config{
		NodeID: id, DataDir: s.cfg.DataDir, BindAddr: addr, AdvertiseAddr: c.Advertise,
		BootstrapExpect: c.BootstrapExpect, Join: c.Join, TLS: tlsCfg,
		Logger: s.cfg.Logger.With("component", "cluster"), Leader: s.lead,
		HeartbeatTimeout: c.HeartbeatTimeout, ElectionTimeout: c.ElectionTimeout, LeaderLeaseTimeout: c.LeaderLeaseTimeout,
		SnapshotThreshold: c.SnapshotThreshold, TrailingLogs: c.TrailingLogs, SnapshotInterval: c.SnapshotInterval,
		LogSegmentSize: c.LogSegmentSize,
	}, s.store.FSM())
	if err != nil {
		return err
	}
	s.store.SetProposer(s.node)
	s.forward = newForwarder(s.node, func() bool { return s.disp.Load() != nil })
	return nil
}

// waitLeading waits until this server leads with its dispatcher running
// (a one-server cluster at start).
func (s *Server) waitLeading(ctx context.Context) error {
	select {
	case <-s.leadingOnce:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the one-server cluster did not elect itself: %w", ctx.Err())
	}
}

// waitLeader waits until raft has elected this server (before lead runs).
func (s *Server) waitLeader(ctx context.Context) error {
	for {
		bctx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.node.Barrier(bctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("the one-server cluster did not elect itself: %w", err)
		}
		t := time.NewTimer(20 * time.Millisecond) // polling an election
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// migrateLegacy hands a database written before clustering to raft as its
// state, so servers that join later receive it as a snapshot. Only a
// one-server cluster that has just bootstrapped does this.
func (s *Server) migrateLegacy(ctx context.Context) error {
	applied, err := s.store.FSM().AppliedIndex()
	if err != nil || applied > 0 || s.store.Empty() {
		return err
	}
	tmp, err := os.CreateTemp(s.cfg.DataDir, "migrate-*.db")
	if err != nil {
		return err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	snap, err := s.store.FSM().Snapshot()
	if err != nil {
		return err
	}
	_, err = snap.WriteTo(tmp)
	snap.Release()
	if err != nil {
		return fmt.Errorf("copy the database: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := s.node.RestoreState(ctx, tmp); err != nil {
		return err
	}
	s.cfg.Logger.Info("migrated a data directory from before clustering: its database is now the cluster's state", "data_dir", s.cfg.DataDir)
	return nil
}

// lead is the leader's work for one term: load the catalog, make sure the
// admin key exists, run a new dispatcher and the background jobs until
// leadership ends (and again from the store after a snapshot restore).
func (s *Server) lead(ctx context.Context) {
	select {
	case <-s.started:
	case <-ctx.Done():
		return
	}
	log := s.cfg.Logger.With("node", s.node.ID())
	if !s.cfg.Cluster.alone() {
		key, err := api.EnsureAdminKey(ctx, s.store, s.cfg.AdminKey, s.cfg.Now())
		switch {
		case err != nil:
			log.Error("leading: bootstrap the admin key", "err", err)
		case key != "":
			log.Warn("created the cluster's admin key; store it now, it is not shown again", "admin_key", key)
		}
	}
	for {
		if !s.catalogLoaded.Swap(false) {
			if err := s.svc.LoadCatalog(); err != nil {
				// Serving with subscriptions missing would publish events
				// without their deliveries: let a server that can lead.
				log.Error("cannot lead: loading the subscriptions failed (does this server have the same master keys as the others?); handing leadership to another server", "err", err)
				if terr := s.node.TransferLeadership(); terr != nil {
					log.Error("leadership transfer failed; this server answers Unavailable while it leads", "err", terr)
				}
				<-ctx.Done()
				return
			}
		}
		restored := s.leadTerm(ctx, log)
		if !restored {
			return
		}
		log.Info("the store was restored from a snapshot: restarting the dispatcher on it")
	}
}

// leadTerm runs a dispatcher and the background jobs until leadership ends
// (false) or a snapshot restore replaced the store (true).
func (s *Server) leadTerm(ctx context.Context, log *slog.Logger) (restored bool) {
	termCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := s.newDispatcher()
	s.disp.Store(d)
	s.svc.SetDispatcher(d)
	var wg sync.WaitGroup
	run := func(fn func()) {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	run(func() {
		if err := d.Run(termCtx); err != nil {
			log.Error("dispatcher stopped", "err", err)
		}
	})
	run(func() { s.purgeLoop(termCtx) })
	run(func() { s.statsLoop(termCtx, d) })
	run(func() { s.masterKeyLoop(termCtx) })
	run(func() { s.svc.RunTenantPurges(termCtx) })
	log.Info("leading the cluster: dispatcher running")
	s.leadOnce.Do(func() { close(s.leadingOnce) })
	select {
	case <-ctx.Done():
	case <-s.restored:
		restored = true
	}
	// Not leading (or about to lead again on a replaced store): the
	// forwarder answers Unavailable until the next term is ready.
	s.disp.Store(nil)
	s.svc.SetDispatcher(nil)
	d.Shutdown()
	if restored {
		// Still leading: the counts since the last flush go into the
		// restored store.
		fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
		if err := d.FlushStats(fctx); err != nil {
			log.Warn("write delivery statistics before restarting the dispatcher", "err", err)
		}
		fcancel()
	}
	cancel()
	wg.Wait()
	if !restored {
		log.Info("no longer leading: dispatcher stopped")
	}
	return restored
}

// noteRestored tells the leader's loop that the store was replaced.
func (s *Server) noteRestored() {
	select {
	case s.restored <- struct{}{}:
	default:
	}
}

// newDispatcher builds the dispatcher of one term of leadership.
func (s *Server) newDispatcher() *dispatch.Dispatcher {
	svc := s.svc
	return dispatch.New(dispatch.Config{
		Store: s.store, Catalog: s.catalog, Logger: s.cfg.Logger, Clock: s.cfg.Clock, Now: s.cfg.Now, LeaseGrace: s.cfg.LeaseGrace,
		FairShareWindow: s.cfg.FairShareWindow,
		Hooks: dispatch.Hooks{
			Disable:      svc.DisableSubscription,
			FailingSince: svc.SetFailingSince,
			Emit:         svc.Emit,
		},
		DisableAfter:      s.cfg.DisableAfter,
		Metrics:           s.metrics,
		Retry:             s.cfg.Retry,
		HeartbeatInterval: s.cfg.HeartbeatInterval,
		Tracer:            s.tracer,
	})
}

// registerClusterMetrics exports the node's raft state at scrape time.
func (s *Server) registerClusterMetrics(reg prometheus.Registerer) {
	reg.MustRegister(&clusterCollector{s: s})
}

// clusterGauge is one gauge of clusterCollector, read from the stats.
type clusterGauge struct {
	desc  *prometheus.Desc
	value func(cluster.Stats) float64
}

func newClusterGauge(name, help string, value func(cluster.Stats) float64) clusterGauge {
	return clusterGauge{prometheus.NewDesc(name, help, nil, nil), value}
}

var (
	clusterGauges = []clusterGauge{
		newClusterGauge("hookwire_cluster_leader", "1 while this server leads the cluster.", func(st cluster.Stats) float64 {
			if st.State == "Leader" {
				return 1
			}
			return 0
		}),
		newClusterGauge("hookwire_cluster_has_leader", "1 while this server knows a leader (readiness needs one).", func(st cluster.Stats) float64 {
			if st.Leader.ID != "" {
				return 1
			}
			return 0
		}),
		newClusterGauge("hookwire_cluster_term", "The current raft term.", func(st cluster.Stats) float64 { return float64(st.Term) }),
		newClusterGauge("hookwire_cluster_last_log_index", "The index of the last entry in this server's raft log.", func(st cluster.Stats) float64 { return float64(st.LastLogIndex) }),
		newClusterGauge("hookwire_cluster_commit_index", "The highest log index known committed.", func(st cluster.Stats) float64 { return float64(st.CommitIndex) }),
		newClusterGauge("hookwire_cluster_applied_index", "The highest log index handed to the store to apply.", func(st cluster.Stats) float64 { return float64(st.AppliedIndex) }),
		newClusterGauge("hookwire_cluster_last_snapshot_index", "The log index of the newest snapshot.", func(st cluster.Stats) float64 { return float64(st.LastSnapshotIndex) }),
		newClusterGauge("hookwire_cluster_voters", "Voting servers in the cluster configuration.", func(st cluster.Stats) float64 { return float64(st.Voters) }),
		newClusterGauge("hookwire_cluster_last_contact_seconds", "On a follower, seconds since it last heard from the leader (-1: never); 0 on the leader.", func(st cluster.Stats) float64 {
			if st.LastContact < 0 {
				return -1
			}
			return st.LastContact.Seconds()
		}),
	}
	followerLagDesc = prometheus.NewDesc("hookwire_cluster_follower_lag_entries", "On the leader: how many log entries each follower is behind.", []string{"follower"}, nil)
)

// clusterCollector reads the node's state once per scrape (on the leader
// that includes asking each follower for its indexes) and reports every
// cluster gauge from it.
type clusterCollector struct{ s *Server }

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, g := range clusterGauges {
		ch <- g.desc
	}
	ch <- followerLagDesc
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	if c.s.node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st := c.s.node.Stats(ctx)
	for _, g := range clusterGauges {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, g.value(st))
	}
	for _, fs := range st.Followers {
		if fs.Error == "" {
			ch <- prometheus.MustNewConstMetric(followerLagDesc, prometheus.GaugeValue, float64(fs.Lag), fs.ID)
		}
	}
}
