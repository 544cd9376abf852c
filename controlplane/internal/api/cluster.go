package api

import (
	"context"
	"errors"
	"io"

	"github.com/hookwire/hookwire/controlplane/internal/cluster"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ClusterNode is what the cluster service needs of this server's node.
type ClusterNode interface {
	Stats(ctx context.Context) cluster.Stats
	Peers(ctx context.Context) ([]cluster.Peer, error)
	RemovePeer(ctx context.Context, id string) error
	SnapshotSave(ctx context.Context, w io.Writer) (cluster.SnapshotInfo, error)
	SnapshotRestore(ctx context.Context, r io.Reader) (cluster.SnapshotInfo, error)
}

// clusterService implements hookwire.v1.ClusterService.
type clusterService struct {
	hookwirev1.UnimplementedClusterServiceServer
	*Services
	node ClusterNode
	// restored is told after a snapshot was restored on this (leading)
	// server, whose soft state must then be rebuilt from the store.
	restored func()
}

const (
	auditClusterRemovePeer = "cluster.remove_peer"
	auditClusterRestore    = "cluster.restore_snapshot"
	auditClusterSave       = "cluster.save_snapshot"
)

// snapshotChunk is the size of the pieces a snapshot travels in.
const snapshotChunk = 1 << 20

// RegisterCluster adds the cluster service for node to g; restored is
// called after a snapshot restore on this server.
func (s *Services) RegisterCluster(g grpc.ServiceRegistrar, node ClusterNode, restored func()) {
	hookwirev1.RegisterClusterServiceServer(g, &clusterService{Services: s, node: node, restored: restored})
}

func (c *clusterService) GetClusterStatus(ctx context.Context, _ *hookwirev1.GetClusterStatusRequest) (*hookwirev1.ClusterStatus, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	return c.status(ctx)
}

func (c *clusterService) status(ctx context.Context) (*hookwirev1.ClusterStatus, error) {
	st := c.node.Stats(ctx)
	out := &hookwirev1.ClusterStatus{
		NodeId: st.ID, Address: st.Address, State: st.State, Term: st.Term,
		LastLogIndex: st.LastLogIndex, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex,
		LastSnapshotIndex: st.LastSnapshotIndex, LeaderId: st.Leader.ID, LeaderAddress: st.Leader.Address,
	}
	if st.LastContact > 0 {
		out.LastContact = durationpb.New(st.LastContact)
	}
	peers, err := c.node.Peers(ctx)
	if err != nil {
		return nil, clusterError(err)
	}
	progress := map[string]cluster.FollowerStats{}
	for _, f := range st.Followers {
		progress[f.ID] = f
	}
	for _, p := range peers {
		cp := &hookwirev1.ClusterPeer{Id: p.ID, Address: p.Address, Voter: p.Voter, Leader: p.Leader}
		if f, ok := progress[p.ID]; ok {
			cp.LastLogIndex, cp.AppliedIndex, cp.Lag, cp.Error = f.LastLogIndex, f.AppliedIndex, f.Lag, f.Error
		} else if p.ID == st.ID {
			cp.LastLogIndex, cp.AppliedIndex = st.LastLogIndex, st.AppliedIndex
		}
		out.Peers = append(out.Peers, cp)
	}
	return out, nil
}

func (c *clusterService) RemovePeer(ctx context.Context, req *hookwirev1.RemovePeerRequest) (*hookwirev1.ClusterStatus, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	peers, err := c.node.Peers(ctx)
	if err != nil {
		return nil, clusterError(err)
	}
	found := false
	for _, p := range peers {
		found = found || p.ID == req.GetId()
	}
	if !found {
		return nil, status.Errorf(codes.NotFound, "no server %q in the cluster (GetClusterStatus lists the peers)", req.GetId())
	}
	if err := c.node.RemovePeer(ctx, req.GetId()); err != nil {
		return nil, clusterError(err)
	}
	c.auditAfter(ctx, &auditEntry{tenant: store.AuditGlobal, action: auditClusterRemovePeer, resource: "cluster/peers/" + req.GetId()})
	return c.status(ctx)
}

func (c *clusterService) SaveSnapshot(_ *hookwirev1.SaveSnapshotRequest, stream hookwirev1.ClusterService_SaveSnapshotServer) error {
	ctx := stream.Context()
	if err := requireAdmin(ctx); err != nil {
		return err
	}
	w := &chunkWriter{send: func(b []byte) error { return stream.Send(&hookwirev1.SnapshotChunk{Data: b}) }}
	info, err := c.node.SnapshotSave(ctx, w)
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		return clusterError(err)
	}
	c.auditAfter(ctx, &auditEntry{tenant: store.AuditGlobal, action: auditClusterSave, resource: "cluster",
		details: map[string]any{"index": info.Index, "term": info.Term, "size": info.Size}})
	return nil
}

func (c *clusterService) RestoreSnapshot(stream hookwirev1.ClusterService_RestoreSnapshotServer) error {
	ctx := stream.Context()
	if err := requireAdmin(ctx); err != nil {
		return err
	}
	info, err := c.node.SnapshotRestore(ctx, &chunkReader{recv: func() ([]byte, error) {
		m, err := stream.Recv()
		return m.GetData(), err
	}})
	switch {
	case err == nil:
	case errors.Is(err, cluster.ErrNotLeader), errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrLeadershipLost),
		errors.Is(err, cluster.ErrShutdown), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return clusterError(err)
	default:
		return status.Errorf(codes.InvalidArgument, "%v (send a file written by 'hookwire operator snapshot save')", err)
	}
	c.restored()
	c.auditAfter(ctx, &auditEntry{tenant: store.AuditGlobal, action: auditClusterRestore, resource: "cluster",
		details: map[string]any{"saved_by": info.NodeID, "index": info.Index, "size": info.Size}})
	return stream.SendAndClose(&hookwirev1.RestoreSnapshotResponse{SavedBy: info.NodeID, Index: info.Index, Term: info.Term,
		Size: info.Size, CreateTime: timestamppb.New(info.Created)})
}

// clusterError maps the cluster package's errors to gRPC codes.
func clusterError(err error) error {
	switch {
	case errors.Is(err, cluster.ErrNotLeader), errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrLeadershipLost):
		return status.Errorf(codes.Unavailable, "%v; retry", err)
	case errors.Is(err, cluster.ErrShutdown):
		return status.Error(codes.Unavailable, "the server is shutting down; retry against a running server")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Errorf(codes.FailedPrecondition, "%v", err)
}

// chunkWriter sends what is written in pieces of snapshotChunk bytes.
type chunkWriter struct {
	buf  []byte
	send func([]byte) error
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		take := min(snapshotChunk-len(w.buf), len(p))
		w.buf = append(w.buf, p[:take]...)
		p = p[take:]
		if len(w.buf) == snapshotChunk {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.send(w.buf)
	w.buf = nil
	return err
}

// chunkReader reads the pieces a client streams, until it closes.
type chunkReader struct {
	cur  []byte
	recv func() ([]byte, error)
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		b, err := r.recv()
		if err != nil {
			return 0, err // io.EOF at the end
		}
		r.cur = b
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}
