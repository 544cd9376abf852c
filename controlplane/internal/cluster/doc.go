// Package cluster makes the control plane a replicated state machine: it
// owns one hashicorp/raft instance per server, its log, stable and
// snapshot stores, and the cluster port, and exposes what the server needs
// on top: Apply a command, wait for a Barrier, learn who leads, run leader
// work while leading, list, add and remove peers, save and restore
// snapshots, and report raft state for metrics.
//
// # What it must not do
//
// It does not implement consensus, election or replication (hashicorp/raft
// does), it does not interpret commands (the FSM does), and it never
// decides anything that needs a clock or a random number on behalf of the
// FSM: commands carry those decisions, made by the leader before it calls
// Apply. It does not forward requests: a follower's leader-only call
// returns a *NotLeaderError naming the leader, and the API layer forwards.
// Only the leader may write; every server applies the same log.
//
// # One code path
//
// A single server is a one-member cluster: with no join addresses,
// BootstrapExpect defaults to 1 and the node bootstraps alone. With
// BootstrapExpect N and Join addresses, fresh servers find each other with
// a small handshake on the cluster port (see discovery.go) and bootstrap
// once with the N servers sorted by id. A server restarted from its data
// directory resumes from its own raft state and never bootstraps again; a
// fresh server that finds an existing cluster asks its leader to add it.
//
// # Storage
//
// Under DataDir/raft: the log and raft's stable store in raft-wal (wal/:
// preallocated segment files, one write and one fsync per append; a
// raft-boltdb/v2 raft.db of an earlier version is moved into it at the
// first start, see logstore.go), snapshots in a raft.FileSnapshotStore,
// and a lock file. The leader batches concurrent
// Apply calls (BatchApplyCh, up to MaxAppendEntries entries per append),
// so many small writes share one fsync. A write is acknowledged once its
// entry is durable on a quorum and applied on the leader.
//
// # How the store plugs in
//
// The store implements FSM on bbolt:
//
//   - ApplyBatch applies the commands of one committed batch in one bbolt
//     write transaction, committed without fsync (DB.NoSync), and records
//     the last command's Index in the same transaction. The raft log is the
//     durable record: after a crash the node replays what bbolt lost.
//   - AppliedIndex returns that recorded index. Before starting raft the
//     node compares it with the index in the newest snapshot's header: if
//     the FSM already holds the snapshot's state, raft does not restore it
//     (raft.Config.NoSnapshotRestoreOnStart), and commands raft replays from
//     the log that the FSM already holds (Index <= AppliedIndex) are skipped
//     here, so the FSM sees each command once. If the FSM is behind the
//     snapshot (an empty or damaged database), raft restores the snapshot
//     and replays the log after it.
//   - Snapshot begins a read transaction; Snapshot.WriteTo is Tx.WriteTo,
//     which writes a consistent copy while applies continue; Release rolls
//     the transaction back.
//   - Restore writes the stream to a new file, fsyncs it, and swaps it in
//     for the open database (its applied index comes with it).
//
// Snapshots exist only to truncate the log and to catch up a server that
// fell behind or joined; every stored or exported snapshot starts with a
// 16-byte header (magic and the last command index it holds), which this
// package adds and strips. Operator backups (SnapshotSave / SnapshotRestore)
// are tar archives with a checksum file, verified before raft sees them.
// A database from before clustering is migrated with RestoreState on a
// fresh one-node cluster, so that every later server receives it as a
// snapshot.
//
// Leader-only work (the dispatcher, lease expiry, scheduled retries) runs
// in Config.Leader: it starts after a barrier has applied everything
// earlier leaders committed, so soft state rebuilt from the store is
// complete, and its context ends when leadership is lost.
//
// # Cluster port
//
// One TCP listener per server carries raft's transport and this package's
// handshake and status RPCs; the first byte of each connection names its
// kind. With Config.TLS every connection is mutual TLS: a peer without a
// certificate from the cluster CA is refused in the handshake.
package cluster
