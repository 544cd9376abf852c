package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
)

// Discovery and join, without gossip. A fresh server (empty data dir) runs
// rounds of a "hello" handshake with every address it knows (Config.Join
// plus servers it has heard of) until it is a member of a configuration.
// Each hello carries the sender's id and advertised address, and the reply
// carries the receiver's id and address, whether it is already a member of
// a cluster (and its leader), and the fresh servers it has heard of; both
// sides remember each other, so knowledge spreads in a round or two.
//
//   - If any reply comes from a member, the cluster exists: the fresh node
//     asks its leader to add it as a voter ("join"), and the leader's
//     AddVoter brings it in (log or snapshot) as for any new server.
//   - Otherwise, with BootstrapExpect = N > 1, once the fresh servers known
//     number exactly N, itself included, and every one of them answered the
//     round as fresh, it bootstraps with those N sorted by id. Every server
//     that gets there computes the same list, and raft allows bootstrapping
//     several servers with an identical configuration. Finding more than N
//     refuses to bootstrap (a misconfiguration an operator must fix).
//   - A server restarted with state never runs discovery: its configuration
//     is in its log, and raft reconnects on its own.
//
// Each handshake is one connection of kind connRPC on the cluster port: one
// JSON request, one JSON reply. The same connection kind serves "status",
// which the leader uses to report per-follower lag.

const (
	opHello  = "hello"
	opJoin   = "join"
	opStatus = "status"

	maxRPCMessage = 1 << 20
)

type rpcRequest struct {
	Op   string `json:"op"`
	From Server `json:"from"`
}

type rpcResponse struct {
	Error  string      `json:"error,omitempty"`
	Self   Server      `json:"self"`
	Member bool        `json:"member"`
	Leader Server      `json:"leader"`
	Known  []Server    `json:"known,omitempty"`
	Status *peerStatus `json:"status,omitempty"`
}

type peerStatus struct {
	State        string `json:"state"`
	Term         uint64 `json:"term"`
	LastLogIndex uint64 `json:"last_log_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
}

// discovery is what a fresh node has learned about other fresh servers.
type discovery struct {
	mu    sync.Mutex
	known map[string]string // id -> advertised address, never this node
}

func (d *discovery) add(self string, s Server) bool {
	if s.ID == "" || s.ID == self || s.Address == "" {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.known == nil {
		d.known = make(map[string]string)
	}
	if d.known[s.ID] == s.Address {
		return false
	}
	d.known[s.ID] = s.Address
	return true
}

func (d *discovery) list() []Server {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Server, 0, len(d.known))
	for id, addr := range d.known {
		out = append(out, Server{ID: id, Address: addr})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// serveRPC answers handshake, join and status requests.
func (n *Node) serveRPC() {
	defer n.wg.Done()
	ln := n.mux.listener(connRPC)
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(n.cfg.RPCTimeout))
			var req rpcRequest
			if err := json.NewDecoder(io.LimitReader(conn, maxRPCMessage)).Decode(&req); err != nil {
				return
			}
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RPCTimeout)
			defer cancel()
			resp := n.handleRPC(ctx, req)
			_ = json.NewEncoder(conn).Encode(resp)
		}()
	}
}

func (n *Node) handleRPC(ctx context.Context, req rpcRequest) rpcResponse {
	member := n.isMember()
	resp := rpcResponse{Self: Server{ID: n.id, Address: n.addr}, Member: member}
	resp.Leader, _ = n.LeaderInfo()
	switch req.Op {
	case opHello:
		if !member && n.disc.add(n.id, req.From) {
			n.log.Info("cluster discovery: heard from a server", "id", req.From.ID, "address", req.From.Address)
		}
		if !member {
			resp.Known = n.disc.list()
		}
	case opJoin:
		if req.From.ID == "" || req.From.Address == "" {
			resp.Error = "join needs the server's id and address"
			break
		}
		if !n.IsLeader() {
			resp.Error = ErrNotLeader.Error()
			break
		}
		n.log.Info("adding server that asked to join", "id", req.From.ID, "address", req.From.Address)
		if err := n.AddPeer(ctx, Peer{ID: req.From.ID, Address: req.From.Address, Voter: true}); err != nil {
			resp.Error = err.Error()
		}
	case opStatus:
		s := n.localStats()
		resp.Status = &peerStatus{State: s.State, Term: s.Term, LastLogIndex: s.LastLogIndex, CommitIndex: s.CommitIndex, AppliedIndex: s.AppliedIndex}
	default:
		resp.Error = fmt.Sprintf("unknown cluster request %q", req.Op)
	}
	return resp
}

// call sends one request to the server at address and returns its reply;
// a reply carrying an error is returned with that error.
func (n *Node) call(ctx context.Context, address string, req rpcRequest) (rpcResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RPCTimeout)
	defer cancel()
	// Stop waiting when the node shuts down.
	stop := context.AfterFunc(n.ctx, cancel)
	defer stop()
	req.From = Server{ID: n.id, Address: n.addr}
	var resp rpcResponse
	conn, err := n.dialer.dialKind(ctx, address, connRPC)
	if err != nil {
		return resp, err
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	// Closing the connection unblocks I/O when ctx ends first.
	unblock := context.AfterFunc(ctx, func() { conn.Close() })
	defer unblock()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return resp, fmt.Errorf("send %s to %s: %w", req.Op, address, err)
	}
	if err := json.NewDecoder(io.LimitReader(conn, maxRPCMessage)).Decode(&resp); err != nil {
		return resp, fmt.Errorf("read %s reply from %s: %w", req.Op, address, err)
	}
	if resp.Error != "" {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

// discover runs discovery rounds until this node is a member.
func (n *Node) discover() {
	defer n.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for round := 0; ; round++ {
		select {
		case <-n.shutdownCh:
			return
		case <-t.C:
		}
		if n.isMember() {
			n.log.Info("cluster discovery done: this server is a member")
			return
		}
		n.discoverRound(round)
		t.Reset(n.cfg.DiscoveryInterval)
	}
}

type helloResult struct {
	address string
	resp    rpcResponse
	err     error
}

// discoverRound says hello to every address known, then joins an existing
// cluster or bootstraps a new one when it can.
func (n *Node) discoverRound(round int) {
	self := Server{ID: n.id, Address: n.addr}
	targets := map[string]bool{}
	for _, a := range n.cfg.Join {
		targets[a] = true
	}
	for _, s := range n.disc.list() {
		targets[s.Address] = true
	}
	delete(targets, n.addr)

	results := make(chan helloResult, len(targets))
	for addr := range targets {
		go func() {
			resp, err := n.call(n.ctx, addr, rpcRequest{Op: opHello})
			results <- helloResult{address: addr, resp: resp, err: err}
		}()
	}
	fresh := map[string]Server{n.id: self} // answered this round as fresh
	var leader Server
	memberSeen := false
	for range targets {
		r := <-results
		switch {
		case r.err != nil:
			if round%20 == 0 {
				n.log.Info("cluster discovery: server did not answer", "address", r.address, "error", r.err)
			}
			continue
		case r.resp.Self.ID == n.id:
			if r.resp.Self.Address != n.addr {
				n.log.Error("cluster discovery: another server uses this node's id", "id", n.id, "address", r.resp.Self.Address)
			}
			continue
		case r.resp.Member:
			memberSeen = true
			if r.resp.Leader.ID != "" {
				leader = r.resp.Leader
			}
			continue
		}
		fresh[r.resp.Self.ID] = r.resp.Self
		n.disc.add(n.id, r.resp.Self)
		for _, s := range r.resp.Known {
			n.disc.add(n.id, s)
		}
	}

	if memberSeen {
		if leader.ID == "" {
			if round%20 == 0 {
				n.log.Info("cluster discovery: found a cluster with no leader yet; waiting")
			}
			return
		}
		if _, err := n.call(n.ctx, leader.Address, rpcRequest{Op: opJoin}); err != nil {
			n.log.Warn("cluster discovery: join request failed", "leader", leader.ID, "address", leader.Address, "error", err)
			return
		}
		n.log.Info("cluster discovery: the leader added this server", "leader", leader.ID)
		return
	}
	expect := n.cfg.BootstrapExpect
	if expect < 2 {
		return // join only
	}
	servers := append(n.disc.list(), self)
	switch {
	case len(servers) < expect:
		if round%20 == 0 {
			n.log.Info("cluster discovery: waiting for servers", "found", len(servers), "bootstrap_expect", expect)
		}
		return
	case len(servers) > expect:
		if round%20 == 0 {
			n.log.Error("cluster discovery: found more fresh servers than bootstrap-expect; refusing to bootstrap", "found", serverIDs(servers), "bootstrap_expect", expect)
		}
		return
	}
	for _, s := range servers {
		if got, ok := fresh[s.ID]; !ok || got.Address != s.Address {
			return // not confirmed this round; try again
		}
	}
	if err := n.bootstrap(servers); err != nil {
		n.log.Error("cluster discovery: bootstrap failed", "error", err)
	}
}

func serverIDs(servers []Server) []string {
	ids := make([]string, len(servers))
	for i, s := range servers {
		ids[i] = s.ID
	}
	return ids
}
