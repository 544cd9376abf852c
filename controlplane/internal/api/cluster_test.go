package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/hookwire/hookwire/controlplane/internal/cluster"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
)

// clusterNode is a three-server cluster led by "a", as far as the cluster
// service can tell, whose snapshot is state.
type clusterNode struct {
	peers []cluster.Peer
	state []byte
}

func (n *clusterNode) Stats(context.Context) cluster.Stats {
	return cluster.Stats{ID: "a", State: "Leader", Leader: cluster.Server{ID: "a"}}
}

func (n *clusterNode) Peers(context.Context) ([]cluster.Peer, error) { return n.peers, nil }

func (n *clusterNode) RemovePeer(_ context.Context, id string) error {
	n.peers = slices.DeleteFunc(n.peers, func(p cluster.Peer) bool { return p.ID == id })
	return nil
}

func (n *clusterNode) SnapshotSave(_ context.Context, w io.Writer) (cluster.SnapshotInfo, error) {
	_, err := w.Write(n.state)
	return cluster.SnapshotInfo{NodeID: "a", Index: 42, Size: int64(len(n.state))}, err
}

func (n *clusterNode) SnapshotRestore(context.Context, io.Reader) (cluster.SnapshotInfo, error) {
	return cluster.SnapshotInfo{}, errors.New("not in this test")
}

func newClusterService(s *Services) (*clusterService, *clusterNode) {
	node := &clusterNode{peers: []cluster.Peer{{ID: "a", Leader: true, Voter: true}, {ID: "b", Voter: true}, {ID: "c", Voter: true}}}
	return &clusterService{Services: s, node: node, restored: func() {}}, node
}

func TestClusterServiceRemovePeer(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	c, _ := newClusterService(s)
	admin := asAdmin(t.Context())

	_, err := c.RemovePeer(asTenant(t.Context(), "acme", scopeTenantAdmin), &hookwirev1.RemovePeerRequest{Id: "b"})
	wantCode(t, err, codes.PermissionDenied, "needs the admin key")
	_, err = c.RemovePeer(admin, &hookwirev1.RemovePeerRequest{Id: "z"})
	wantCode(t, err, codes.NotFound, `no server "z" in the cluster`)

	st, err := c.RemovePeer(admin, &hookwirev1.RemovePeerRequest{Id: "b"})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, p := range st.GetPeers() {
		left = append(left, p.GetId())
	}
	if !slices.Equal(left, []string{"a", "c"}) || st.GetLeaderId() != "a" {
		t.Errorf("status after the removal: peers %v, leader %q", left, st.GetLeaderId())
	}
	if ev := lastAudit(t, s, auditClusterRemovePeer); ev.GetResource() != "cluster/peers/b" {
		t.Errorf("removal audited on %s", ev.GetResource())
	}
}

func TestClusterServiceSaveSnapshotStreamsChunks(t *testing.T) {
	s := newTestServices(t)
	c, node := newClusterService(s)
	node.state = bytes.Repeat([]byte("0123456789"), (2*snapshotChunk+snapshotChunk/2)/10)
	stream := &testStream[*hookwirev1.SnapshotChunk]{ctx: asAdmin(t.Context())}
	if err := c.SaveSnapshot(&hookwirev1.SaveSnapshotRequest{}, stream); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for i, ch := range stream.sent {
		if i < len(stream.sent)-1 && len(ch.GetData()) != snapshotChunk {
			t.Errorf("chunk %d is %d bytes; all but the last are %d", i, len(ch.GetData()), snapshotChunk)
		}
		got = append(got, ch.GetData()...)
	}
	if len(stream.sent) != 3 || !bytes.Equal(got, node.state) {
		t.Fatalf("%d chunks with %d bytes; want 3 with the %d bytes saved", len(stream.sent), len(got), len(node.state))
	}
	ev := lastAudit(t, s, auditClusterSave)
	if size := ev.GetDetails().GetFields()["size"].GetNumberValue(); size != float64(len(node.state)) {
		t.Errorf("save audited with size %v", size)
	}
}
