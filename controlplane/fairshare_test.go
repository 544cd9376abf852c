package controlplane_test

import (
	"testing"

	"github.com/hookwire/hookwire/controlplane"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// smallAgent connects an agent labelled pool=small with the given slots;
// subscriptions selecting pool=small go only to it (the harness's own
// agent has no labels).
func smallAgent(t *testing.T, h *deliveryHarness, id string, slots uint32) *fakeAgent {
	t.Helper()
	return mustDialAgent(t, h.conn, adminKey, &hookwirev1.Hello{AgentId: id, MaxInFlight: slots, Labels: map[string]string{"pool": "small"}})
}

// grant sends the agent's Credit for n freed slots.
func (a *fakeAgent) grant(t *testing.T, n uint32) {
	t.Helper()
	if err := a.stream.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Credit{Credit: &hookwirev1.Credit{Amount: n}}}); err != nil {
		t.Fatal(err)
	}
}

// finish reports results for as and grants their slots back, as an agent
// does.
func (a *fakeAgent) finish(t *testing.T, results ...*hookwirev1.Result) {
	t.Helper()
	a.report(t, results...)
	a.grant(t, uint32(len(results)))
}

func (h *deliveryHarness) listAgents() map[string]*hookwirev1.Agent {
	h.t.Helper()
	resp, err := hookwirev1.NewAgentAdminServiceClient(h.conn).ListAgents(h.ctx(), &hookwirev1.ListAgentsRequest{})
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]*hookwirev1.Agent{}
	for _, a := range resp.GetAgents() {
		out[a.GetId()] = a
	}
	return out
}

// TestFairShareKeepsRoomForAnotherSubscription: a slow subscription alone
// on an agent uses all of it; once another subscription is active there,
// the slow one gets no slot beyond its share, so the other's next
// delivery is assigned at once instead of waiting for a slow attempt to
// end; when the other goes quiet for the fair-share window, the slow one
// may use the whole agent again.
func TestFairShareKeepsRoomForAnotherSubscription(t *testing.T) {
	h := startFrozen(t, t.TempDir(), controlplane.Config{})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"slow.*"}, AgentSelector: "pool=small"})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"fast.*"}, AgentSelector: "pool=small"})
	small := smallAgent(t, h, "small", 4)
	for range 10 {
		h.publish("slow.created", `{}`)
	}
	slow := small.assignments(t, 4) // alone on the agent: all four slots
	noAssignment(t, small)

	// The fast subscription's delivery waits for the first slot to free,
	// and gets it although the slow one has six more queued.
	h.publish("fast.created", `{}`)
	noAssignment(t, small)
	small.finish(t, outcome(slow[0], transportv1.Outcome_OUTCOME_TIMEOUT, 0))
	fast := nextWithin(t, small, within)
	if fast.GetRequest().GetEventType() != "fast.created" {
		t.Fatalf("the freed slot went to %s, want the fast subscription", fast.GetRequest().GetEventType())
	}

	// The slow one holds 3 of 4 slots, over its share of 2: the slot the
	// fast one frees stays free for it, though slow has work queued...
	small.finish(t, outcome(fast, transportv1.Outcome_OUTCOME_SUCCESS, 0))
	noAssignment(t, small)
	if a := h.listAgents()["small"]; a.GetInFlight() != 3 || a.GetCredit() != 1 {
		t.Fatalf("small agent: in flight %d, credit %d; want 3 and 1", a.GetInFlight(), a.GetCredit())
	}
	// ...so the fast subscription's next delivery is assigned at once.
	h.publish("fast.created", `{}`)
	fast = nextWithin(t, small, within)
	if fast.GetRequest().GetEventType() != "fast.created" {
		t.Fatalf("got %s, want the fast subscription", fast.GetRequest().GetEventType())
	}
	small.finish(t, outcome(fast, transportv1.Outcome_OUTCOME_SUCCESS, 0))
	noAssignment(t, small)

	// Quiet for the window, the fast one no longer counts: the slow one
	// takes the free slot, without anything else happening.
	h.clock.advance(controlplane.DefaultFairShareWindow)
	if a := nextWithin(t, small, within); a.GetRequest().GetEventType() != "slow.created" {
		t.Fatalf("after the window got %s, want the slow subscription", a.GetRequest().GetEventType())
	}
	noAssignment(t, small)
}

// TestFairShareOffIsRoundRobin: with the window negative fair share is
// off, and the slot the fast subscription frees goes straight back to the
// slow one (the behaviour before fair share).
func TestFairShareOffIsRoundRobin(t *testing.T) {
	h := startFrozen(t, t.TempDir(), controlplane.Config{FairShareWindow: -1})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"slow.*"}, AgentSelector: "pool=small"})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"fast.*"}, AgentSelector: "pool=small"})
	small := smallAgent(t, h, "small", 4)
	for range 10 {
		h.publish("slow.created", `{}`)
	}
	held := small.assignments(t, 4)
	h.publish("fast.created", `{}`)
	// Time slow attempts out one at a time until round-robin gives the
	// fast one its turn.
	var fast *hookwirev1.Assignment
	for fast == nil {
		if len(held) == 0 {
			t.Fatal("the fast subscription never got a slot")
		}
		small.finish(t, outcome(held[0], transportv1.Outcome_OUTCOME_TIMEOUT, 0))
		held = held[1:]
		a := nextWithin(t, small, within)
		if a.GetRequest().GetEventType() == "fast.created" {
			fast = a
		} else {
			held = append(held, a)
		}
	}
	small.finish(t, outcome(fast, transportv1.Outcome_OUTCOME_SUCCESS, 0))
	if a := nextWithin(t, small, within); a.GetRequest().GetEventType() != "slow.created" {
		t.Fatalf("with fair share off the free slot went to %s, want the slow subscription", a.GetRequest().GetEventType())
	}
}

// TestDrainedAgentIsAssignedNothingMore: once DrainAgent returns, the
// agent's stream gets no new delivery although it still has credit (issue
// 11: a new delivery 39 ms after "asked the agent to drain"); what it had
// still reports; what comes next goes to another agent.
func TestDrainedAgentIsAssignedNothingMore(t *testing.T) {
	h := startFrozen(t, t.TempDir(), controlplane.Config{})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, AgentSelector: "pool=small"})
	drainee := smallAgent(t, h, "drainee", 100)
	h.publish("order.created", `{}`)
	h.publish("order.created", `{}`)
	held := drainee.assignments(t, 2)
	if _, err := hookwirev1.NewAgentAdminServiceClient(h.conn).DrainAgent(h.ctx(), &hookwirev1.DrainAgentRequest{Id: "drainee"}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := drainee.stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.GetAssignments() != nil {
			t.Fatalf("assignment %v after DrainAgent returned", m.GetAssignments().GetItems())
		}
		if m.GetDrain() != nil {
			break
		}
	}
	for range 3 {
		h.publish("order.created", `{}`)
	}
	noAssignment(t, drainee)
	if acks := drainee.report(t, outcome(held[0], transportv1.Outcome_OUTCOME_SUCCESS, 0), outcome(held[1], transportv1.Outcome_OUTCOME_SUCCESS, 0)); !acks[0].GetAccepted() || !acks[1].GetAccepted() {
		t.Fatalf("the drained agent's results were refused: %v", acks)
	}
	drainee.grant(t, 2) // credit from a draining agent changes nothing
	noAssignment(t, drainee)
	// The three published after the drain wait for, and go to, another
	// agent: none of them was handed to the drained one.
	relief := smallAgent(t, h, "relief", 10)
	for range 3 {
		if a := nextWithin(t, relief, within); a.GetRequest().GetEventType() != "order.created" {
			t.Fatalf("relief got %v", a)
		}
	}
	noAssignment(t, drainee)
}
