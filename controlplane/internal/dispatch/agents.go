package dispatch

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/selector"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Admission is what authenticated an agent stream; the API layer attaches
// it to the stream's context with WithAdmission.
type Admission struct {
	// JoinToken is the id of the join token used ("" for the admin key).
	JoinToken string
	// RequiredLabels must all be carried, with these values, by the
	// agent's Hello.
	RequiredLabels map[string]string
}

type admissionKey struct{}

// WithAdmission attaches how an agent stream was authenticated.
func WithAdmission(ctx context.Context, a Admission) context.Context {
	return context.WithValue(ctx, admissionKey{}, a)
}

func admissionFrom(ctx context.Context) Admission {
	a, _ := ctx.Value(admissionKey{}).(Admission)
	return a
}

// check rejects an agent whose labels lack what its join token requires.
func (a Admission) check(labels map[string]string) error {
	keys := slices.Sorted(maps.Keys(a.RequiredLabels))
	for _, k := range keys {
		if v, ok := labels[k]; !ok || v != a.RequiredLabels[k] {
			return status.Errorf(codes.PermissionDenied, "join token %s requires the agent label %s=%s; start the agent with --label %s=%s or use another token", a.JoinToken, k, a.RequiredLabels[k], k, a.RequiredLabels[k])
		}
	}
	return nil
}

// AgentInfo describes a connected (or recently lost) agent stream.
type AgentInfo struct {
	ID         string
	Labels     map[string]string
	Transports []string
	Version    string
	InFlight   int
	Credit     int
	Connected  bool // false: lost (silent past the heartbeat deadline)
	Draining   bool // connected, but taking no new work (DrainAgent or shutdown)
	LastSeen   time.Time
	ConnectAt  time.Time
	JoinToken  string
}

// Agents lists the connected agents and those recently marked lost, by id.
func (d *Dispatcher) Agents() []AgentInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []AgentInfo
	for c := range d.conns {
		a := c.info(c.fair.held)
		a.Credit, a.Connected, a.Draining = c.credit, true, c.drainingLocked()
		out = append(out, a)
	}
	for _, a := range d.lost {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return out[i].ConnectAt.Before(out[j].ConnectAt)
	})
	return out
}

// info describes c, holding held slots (leases whose result has not
// arrived), as a lost agent (no credit, not connected). Caller holds
// Dispatcher.mu.
func (c *conn) info(held int) AgentInfo {
	return AgentInfo{
		ID: c.agentID, Labels: c.labels, Transports: slices.Sorted(maps.Keys(c.transports)),
		Version: c.version, InFlight: held, LastSeen: c.lastSeen, ConnectAt: c.connected, JoinToken: c.token,
	}
}

// Drain sends Drain to every stream of the agent; it reports whether the
// agent is connected. From the moment it is sent nothing more is assigned
// on those streams (the credit they had is dropped, and a batch taken
// just before goes back to its queues instead of out), so the agent only
// finishes what it already had.
func (d *Dispatcher) Drain(agentID, reason string) bool {
	d.mu.Lock()
	var list []*conn
	for c := range d.conns {
		if c.agentID == agentID {
			list = append(list, c)
		}
	}
	d.mu.Unlock()
	for _, c := range list {
		c.sendMu.Lock()
		d.mu.Lock()
		c.fair.draining = true
		c.credit = 0
		d.mu.Unlock()
		err := c.stream.Send(&hookwirev1.ControlMessage{Msg: &hookwirev1.ControlMessage_Drain{Drain: &hookwirev1.Drain{Reason: reason}}})
		c.sendMu.Unlock()
		if err != nil {
			d.log.Warn("send drain", "agent", agentID, "err", err)
		}
	}
	return len(list) > 0
}

// sendAssignments sends a prepared batch on c, unless Drain went out on c
// since the batch was taken: then its leases go back to their queues.
func (d *Dispatcher) sendAssignments(c *conn, leases []*lease, batch []*hookwirev1.Assignment) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	d.mu.Lock()
	if c.drainingLocked() {
		for _, l := range leases {
			if d.leases[l.id] == l {
				delete(d.leases, l.id)
				d.requeueLocked(l, "agent "+c.agentID+" began draining before the assignment was sent")
			}
		}
		d.wakeTransportsLocked()
		d.mu.Unlock()
		return nil
	}
	d.mu.Unlock()
	return c.stream.Send(&hookwirev1.ControlMessage{Msg: &hookwirev1.ControlMessage_Assignments{Assignments: &hookwirev1.Assignments{Items: batch}}})
}

// Disconnect ends the streams of agents that joined with the join token
// (it was revoked); it returns how many were closed.
func (d *Dispatcher) Disconnect(joinToken string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for c := range d.conns {
		if joinToken != "" && c.token == joinToken {
			c.close(status.Errorf(codes.Unauthenticated, "join token %s was revoked", joinToken))
			n++
		}
	}
	return n
}

func (c *conn) close(err error) {
	select {
	case c.kill <- err:
	default:
	}
}

// checkLiveness marks agents silent for three heartbeat intervals lost and
// closes their streams; their leases then expire as usual.
func (d *Dispatcher) checkLiveness() {
	limit := 3 * d.cfg.HeartbeatInterval
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for c := range d.conns {
		if now.Sub(c.heard) < limit {
			continue
		}
		held := c.fair.held
		d.lost[c.agentID] = c.info(held)
		delete(d.conns, c)
		d.log.Warn("agent lost: no message for three heartbeat intervals; closing its stream", "agent", c.agentID, "silent_for", now.Sub(c.heard).Round(time.Millisecond), "leases_outstanding", held)
		c.close(status.Errorf(codes.DeadlineExceeded, "no message from agent %s for %s (3 heartbeat intervals); reconnect", c.agentID, limit))
	}
}

// WaitingReason explains why a subscription's due deliveries are not going
// out, or returns "" when nothing is known to hold them back.
func (d *Dispatcher) WaitingReason(sub *catalog.Sub) string {
	if sub == nil {
		return "subscription deleted"
	}
	switch sub.Status {
	case hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_PAUSED:
		return "subscription paused"
	case hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_DISABLED:
		return "subscription disabled"
	}
	now := d.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.subs[sub.ID]; s != nil {
		if open, until := s.circuitOpen(now); open {
			return "circuit open until " + until.UTC().Format(time.RFC3339)
		}
	}
	var hosts []map[string]string
	for c := range d.conns {
		if c.transports[sub.Transport] && !c.drainingLocked() {
			hosts = append(hosts, c.labels)
		}
	}
	if len(hosts) == 0 {
		return fmt.Sprintf("no connected agent hosts transport %q", sub.Transport)
	}
	return selectorReason(sub.Selector, sub.Transport, hosts)
}

// selectorReason explains which requirement of sel no agent in hosts
// meets ("" when one matches).
func selectorReason(sel *selector.Selector, transport string, hosts []map[string]string) string {
	if sel.Empty() {
		return ""
	}
	for _, h := range hosts {
		if sel.Matches(h) {
			return ""
		}
	}
	// Name the most selective requirement.
	best, bestN := selector.Requirement{}, -1
	for _, r := range sel.Requirements {
		n := 0
		for _, h := range hosts {
			if r.Matches(h) {
				n++
			}
		}
		if bestN < 0 || n < bestN {
			best, bestN = r, n
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "no connected agent matches selector %s: ", sel)
	if len(sel.Requirements) == 1 || bestN == 0 {
		fmt.Fprintf(&b, "%d of %d connected agents hosting transport %q satisfy %s", bestN, len(hosts), transport, best)
	} else {
		fmt.Fprintf(&b, "none of %d connected agents hosting transport %q satisfies all of it", len(hosts), transport)
	}
	return b.String()
}
