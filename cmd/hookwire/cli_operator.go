package main

// operator commands (ClusterService, admin key only): the Raft cluster's
// peers and leader, and hot snapshots for backup and restore.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/spf13/cobra"
)

func (c *cli) operatorCmd() *cobra.Command {
	raft := &cobra.Command{Use: "raft", Short: "Show and change the cluster's Raft peers",
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	raft.AddCommand(c.raftListPeersCmd(), c.raftRemovePeerCmd())
	snapshot := &cobra.Command{Use: "snapshot", Short: "Save and restore snapshots of the whole control plane state",
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	snapshot.AddCommand(c.snapshotSaveCmd(), c.snapshotRestoreCmd())
	return c.noun("operator", "Run the control plane cluster: peers, leader, snapshots (admin key)",
		`The control plane is a Raft cluster (a single server is a cluster of one;
see docs/CLUSTERING.md). 'operator raft list-peers' and 'operator leader'
show who is in it and who leads, 'operator raft remove-peer' removes a
server that is gone for good, and 'operator snapshot save|restore' take and
put back a consistent copy of everything (tenants, subscriptions and their
secrets, pending deliveries): the backup. Any server answers; these
commands need the admin key.`,
		nil, true, raft, c.operatorLeaderCmd(), snapshot)
}

func (c *cli) clusterStatus(cmd *cobra.Command) (*hookwirev1.ClusterStatus, error) {
	ctx, cancel := c.call(cmd)
	defer cancel()
	return hookwirev1.NewClusterServiceClient(c.conn).GetClusterStatus(ctx, &hookwirev1.GetClusterStatusRequest{})
}

func (c *cli) raftListPeersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list-peers",
		Short:   "List the servers of the cluster, who leads, and how far behind each is",
		Example: "  hookwire operator raft list-peers --addr 10.0.0.1:7070",
		Args:    c.argNames(),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, _ []string) error {
		st, err := c.clusterStatus(cmd)
		if err != nil {
			return err
		}
		return c.emit(cmd, st, func(w io.Writer) error {
			t := newTable(w, "NODE", "ADDRESS", "STATE", "VOTER", "LOG INDEX", "APPLIED", "LAG")
			for _, p := range st.GetPeers() {
				state := "follower"
				if p.GetLeader() {
					state = "leader"
				}
				lag := dash("")
				switch {
				case p.GetError() != "":
					lag = "unreachable"
				case st.GetState() == "Leader":
					lag = strconv.FormatUint(p.GetLag(), 10)
				}
				t.row(p.GetId(), p.GetAddress(), state, strconv.FormatBool(p.GetVoter()),
					indexOrDash(p.GetLastLogIndex()), indexOrDash(p.GetAppliedIndex()), lag)
			}
			return t.flush()
		})
	})
	return cmd
}

func indexOrDash(i uint64) string {
	if i == 0 {
		return "-"
	}
	return strconv.FormatUint(i, 10)
}

func (c *cli) raftRemovePeerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove-peer NODE-ID",
		Short: "Remove a server that is gone for good from the cluster",
		Long: `Remove a server from the cluster configuration. Do it for a server that
will not come back (a lost machine), so that the quorum is counted on the
servers left; a server that is only restarting rejoins by itself.`,
		Example: "  hookwire operator raft remove-peer n3",
		Args:    c.argNames("NODE-ID"),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, args []string) error {
		ctx, cancel := c.call(cmd)
		defer cancel()
		st, err := hookwirev1.NewClusterServiceClient(c.conn).RemovePeer(ctx, &hookwirev1.RemovePeerRequest{Id: args[0]})
		if err != nil {
			return notFoundHint(err, "list the peers with 'hookwire operator raft list-peers'")
		}
		return c.emit(cmd, st, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "Removed %s; the cluster has %d servers.\n", args[0], len(st.GetPeers()))
			return err
		})
	})
	return cmd
}

func (c *cli) operatorLeaderCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "leader",
		Short:   "Show which server leads the cluster",
		Example: "  hookwire operator leader",
		Args:    c.argNames(),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, _ []string) error {
		st, err := c.clusterStatus(cmd)
		if err != nil {
			return err
		}
		return c.emit(cmd, st, func(w io.Writer) error {
			if st.GetLeaderId() == "" {
				_, err := fmt.Fprintf(w, "No leader: %s (an election is running, or it cannot reach a quorum).\n", st.GetNodeId())
				return err
			}
			_, err := fmt.Fprintf(w, "%s at %s (term %d, as seen by %s)\n", st.GetLeaderId(), st.GetLeaderAddress(), st.GetTerm(), st.GetNodeId())
			return err
		})
	})
	return cmd
}

func (c *cli) snapshotSaveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "save FILE",
		Short: "Save a consistent snapshot of the whole control plane state to FILE",
		Long: `Take a snapshot of the whole state while the cluster keeps serving, and
write it to FILE (a tar archive with checksums). This is the backup: keep
FILE with the master key, which it needs to be of use (signing secrets are
sealed under it). Restore it with 'operator snapshot restore'.`,
		Example: "  hookwire operator snapshot save backup-$(date +%F).snap",
		Args:    c.argNames("FILE"),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, args []string) error {
		ctx, cancel := c.call(cmd)
		defer cancel()
		stream, err := hookwirev1.NewClusterServiceClient(c.conn).SaveSnapshot(ctx, &hookwirev1.SaveSnapshotRequest{})
		if err != nil {
			return err
		}
		path := args[0]
		tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		var size int64
		for {
			chunk, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				tmp.Close()
				return err
			}
			n, err := tmp.Write(chunk.GetData())
			size += int64(n)
			if err != nil {
				tmp.Close()
				return err
			}
		}
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Saved a snapshot to %s (%d bytes).\n", path, size)
		return nil
	})
	return cmd
}

func (c *cli) snapshotRestoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the whole control plane state with a saved snapshot",
		Long: `Replace the cluster's whole state with the snapshot in FILE (from
'operator snapshot save', of this cluster or another). The cluster keeps
its servers; everything else (tenants, keys, subscriptions, events,
deliveries) becomes what the snapshot holds, and pending deliveries in it go
out. The servers must run with the master key the snapshot's secrets were
sealed under.`,
		Example: "  hookwire operator snapshot restore backup-2026-12-07.snap",
		Args:    c.argNames("FILE"),
	}
	cmd.RunE = c.runAPI(func(cmd *cobra.Command, args []string) error {
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		ctx, cancel := c.call(cmd)
		defer cancel()
		stream, err := hookwirev1.NewClusterServiceClient(c.conn).RestoreSnapshot(ctx)
		if err != nil {
			return err
		}
		buf := make([]byte, 1<<20)
		for {
			n, rerr := f.Read(buf)
			if n > 0 {
				if err := stream.Send(&hookwirev1.SnapshotChunk{Data: buf[:n]}); err != nil {
					break // the server ended the call; CloseAndRecv says why
				}
			}
			if errors.Is(rerr, io.EOF) {
				break
			}
			if rerr != nil {
				return rerr
			}
		}
		resp, err := stream.CloseAndRecv()
		if err != nil {
			return err
		}
		return c.emit(cmd, resp, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "Restored the snapshot saved by %s at index %d (%d bytes).\n", resp.GetSavedBy(), resp.GetIndex(), resp.GetSize())
			return err
		})
	})
	return cmd
}
