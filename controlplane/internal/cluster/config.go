package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Defaults for a control plane on a LAN. Failover after a leader dies takes
// one follower heartbeat timeout (a random time between HeartbeatTimeout and
// twice that) plus one election round: about 0.5-1 s, and under 2 s with one
// split vote, against the 3 s the issue allows. The leader steps down when it
// has not heard from a quorum for LeaderLeaseTimeout.
const (
	DefaultHeartbeatTimeout   = 500 * time.Millisecond
	DefaultElectionTimeout    = 500 * time.Millisecond
	DefaultLeaderLeaseTimeout = 250 * time.Millisecond
	// DefaultCommitTimeout bounds how long followers wait to learn a new
	// commit index when the leader has nothing else to send.
	DefaultCommitTimeout = 20 * time.Millisecond
	// DefaultMaxAppendEntries is how many entries go into one append (and
	// one fsync) on the leader and one AppendEntries RPC: the control plane
	// writes many small entries, so batches are worth more than raft's 64.
	DefaultMaxAppendEntries = 256
	// DefaultSnapshotThreshold and DefaultSnapshotInterval: the FSM is
	// persistent, so snapshots only exist to truncate the log and to catch up
	// a node; every 32k entries (about 15 s at 2,000 writes/s) is enough.
	DefaultSnapshotThreshold = 32768
	DefaultSnapshotInterval  = 60 * time.Second
	// DefaultTrailingLogs is how many entries stay in the log after a
	// snapshot: a follower that falls fewer entries behind catches up from
	// the log instead of a full snapshot.
	DefaultTrailingLogs = 32768
	// DefaultSnapshotRetain is how many snapshots stay on disk.
	DefaultSnapshotRetain = 2
	// DefaultDiscoveryInterval is the pause between two rounds of the
	// bootstrap/join handshake while a fresh node looks for its peers.
	DefaultDiscoveryInterval = 250 * time.Millisecond
	// DefaultRPCTimeout bounds one cluster RPC (handshake, join, status)
	// and one raft transport I/O.
	DefaultRPCTimeout = 5 * time.Second
)

// Config configures one Node. NodeID, DataDir, BindAddr and FSM-side
// settings are required; everything else has a default.
type Config struct {
	// NodeID names this server for all time (raft's ServerID). It must be
	// unique in the cluster and must not change across restarts.
	NodeID string

	// DataDir is the node's data directory; the package keeps everything it
	// writes under DataDir/raft: the log and stable store (raft-wal, in
	// raft/wal) and the snapshots (raft/snapshots).
	DataDir string

	// BindAddr is the host:port the cluster listener binds ("127.0.0.1:0"
	// picks a free port). Raft, the join handshake and status RPCs share it.
	BindAddr string

	// AdvertiseAddr is the host:port other servers dial to reach this one.
	// It defaults to the bound address, which must then not be unspecified
	// (0.0.0.0 or ::). Raft stores it in the cluster configuration, so a
	// restarted node must come back on the same address.
	AdvertiseAddr string

	// BootstrapExpect is how many servers form the first cluster. A fresh
	// node (empty data dir) waits until it has found exactly this many
	// servers, itself included, all of them fresh, and then the cluster is
	// bootstrapped once with the servers sorted by id. 1 (the default
	// without Join) bootstraps alone. 0 with Join means "join an existing
	// cluster, never bootstrap". A node with existing state ignores it.
	BootstrapExpect int

	// Join lists cluster addresses of other servers (host:port) to contact
	// while this node is fresh: to find peers for BootstrapExpect, or to ask
	// the leader of an existing cluster to add this node as a voter.
	Join []string

	// TLS, if set, makes every cluster connection mutual TLS: the listener
	// requires a client certificate signed by ClientCAs (RootCAs if
	// ClientCAs is nil) and dialling presents Certificates (or
	// GetClientCertificate) and verifies the peer against RootCAs. The
	// node's certificate must be valid for its advertised host, and carry
	// both the serverAuth and clientAuth extended key usages unless
	// GetClientCertificate supplies a separate client certificate.
	TLS *tls.Config

	// Logger receives raft's and this package's logs. Nil discards them.
	Logger *slog.Logger

	// Leader, if set, runs in its own goroutine each time this node becomes
	// leader, after a barrier has applied every entry committed by earlier
	// leaders to the FSM. Its context is cancelled when leadership is lost
	// or the node shuts down, and it must return promptly then: the next
	// term's Leader does not start until the previous one has returned.
	// This is where the dispatcher starts and stops (Nomad's
	// establishLeadership / revokeLeadership).
	Leader func(ctx context.Context)

	// Raft timing and log management; zero means the default above.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	MaxAppendEntries   int
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64
	SnapshotRetain     int
	// LogSegmentSize is the size of the raft log's segment files in
	// bytes; zero: 64 MiB, or 1/64 of a smaller file system.
	LogSegmentSize    int
	DiscoveryInterval time.Duration
	RPCTimeout        time.Duration

	// Dial opens outgoing cluster connections. Nil uses a net.Dialer. Tests
	// route connections through a network they can partition.
	Dial func(ctx context.Context, address string) (net.Conn, error)

	// logStore, if set, opens the raft log and stable store in dir instead
	// of raft-wal. Only the log store benchmark sets it (raft-boltdb/v2).
	logStore func(dir string) (logStore, error)
}

func (c *Config) setDefaults() error {
	if c.NodeID == "" {
		return errors.New("cluster: a node id is required")
	}
	if c.DataDir == "" {
		return errors.New("cluster: a data directory is required")
	}
	if c.BindAddr == "" {
		return errors.New("cluster: a cluster bind address is required")
	}
	switch {
	case c.BootstrapExpect < 0:
		return fmt.Errorf("cluster: bootstrap-expect %d is negative", c.BootstrapExpect)
	case c.BootstrapExpect == 1 && len(c.Join) > 0:
		return errors.New("cluster: bootstrap-expect 1 bootstraps a one-server cluster, which cannot also join other servers: drop the join addresses, or set bootstrap-expect to the cluster size (or 0 to join an existing cluster)")
	case c.BootstrapExpect == 0 && len(c.Join) == 0:
		c.BootstrapExpect = 1
	}
	if c.LogSegmentSize < 0 || c.LogSegmentSize > maxConfigSegmentSize {
		return fmt.Errorf("cluster: raft log segment size %d MiB is out of range: give 1 to %d MiB (0: automatic)", c.LogSegmentSize>>20, maxConfigSegmentSize>>20)
	}
	if c.LogSegmentSize > 0 && c.LogSegmentSize < minSegmentSize {
		c.LogSegmentSize = minSegmentSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDur(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	setDur(&c.ElectionTimeout, DefaultElectionTimeout)
	setDur(&c.LeaderLeaseTimeout, DefaultLeaderLeaseTimeout)
	setDur(&c.CommitTimeout, DefaultCommitTimeout)
	setDur(&c.SnapshotInterval, DefaultSnapshotInterval)
	setDur(&c.DiscoveryInterval, DefaultDiscoveryInterval)
	setDur(&c.RPCTimeout, DefaultRPCTimeout)
	if c.MaxAppendEntries == 0 {
		c.MaxAppendEntries = DefaultMaxAppendEntries
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	if c.SnapshotRetain == 0 {
		c.SnapshotRetain = DefaultSnapshotRetain
	}
	if c.Dial == nil {
		var d net.Dialer
		// A node bound to one address dials from it too, so peers see its
		// connections come from the cluster interface (and a test on
		// loopback can tell the nodes apart by source address).
		if host, _, err := net.SplitHostPort(c.BindAddr); err == nil {
			if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
				d.LocalAddr = &net.TCPAddr{IP: ip}
			}
		}
		c.Dial = func(ctx context.Context, address string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", address)
		}
	}
	return nil
}
