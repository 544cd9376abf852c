package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

var (
	// ErrNotLeader matches (errors.Is) every *NotLeaderError.
	ErrNotLeader = errors.New("not the cluster leader")
	// ErrLeadershipLost: this node stopped leading before the entry was
	// committed. The write may or may not have been committed; a retry must
	// be safe to apply twice, or check first.
	ErrLeadershipLost = errors.New("leadership lost while committing; the write may or may not have been applied")
	// ErrShutdown: the node is shut down.
	ErrShutdown = errors.New("cluster node is shut down")
	// ErrNoLeader: there is no leader to forward to right now (an election
	// is running, or this node cannot reach a quorum).
	ErrNoLeader = errors.New("the cluster has no leader")
)

// NotLeaderError is returned by leader-only operations on a follower. It
// names the current leader, so the caller can forward the request there;
// Leader is zero when no leader is known.
type NotLeaderError struct {
	Leader Server
}

func (e *NotLeaderError) Error() string {
	if e.Leader.ID == "" {
		return "not the cluster leader, and no leader is known"
	}
	return fmt.Sprintf("not the cluster leader; the leader is %s at %s", e.Leader.ID, e.Leader.Address)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// Server names a cluster member.
type Server struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// translate maps raft's errors to this package's.
func (n *Node) translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return n.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrLeadershipLost
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("raft queue full: %w", context.DeadlineExceeded)
	}
	return err
}

func (n *Node) notLeader() error {
	addr, id := n.raft.LeaderWithID()
	return &NotLeaderError{Leader: Server{ID: string(id), Address: string(addr)}}
}
