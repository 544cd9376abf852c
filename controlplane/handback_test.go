package controlplane_test

import (
	"strings"
	"testing"

	"github.com/hookwire/hookwire/controlplane"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

func (a *fakeAgent) transportStatus(t *testing.T, name string, available bool, reason string) {
	t.Helper()
	if err := a.stream.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_TransportStatus{TransportStatus: &hookwirev1.TransportStatus{
		Name: name, Available: available, Reason: reason,
	}}}); err != nil {
		t.Fatal(err)
	}
}

func handBack(a *hookwirev1.Assignment, reason string) *hookwirev1.Result {
	return &hookwirev1.Result{LeaseId: a.GetLeaseId(), LeaseToken: a.GetLeaseToken(), NotAttemptedReason: reason}
}

// An agent whose http plugin is down says so and hands back the delivery
// it was given: the delivery goes back without an attempt (count, records
// and the attempt number of the next try unchanged), the operator sees why
// (last_error, tail, metric), the agent gets no more http work, and another
// agent delivers it as attempt 1.
func TestHandedBackDeliveryIsNotAnAttempt(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{AdminAddr: "127.0.0.1:0"})
	sub := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	tail := mustTail(t, h.harness, &hookwirev1.TailDeliveriesRequest{Tenant: "acme", SubscriptionId: sub.GetId()})
	h.publish("order.created", `{"n":1}`)
	first := h.next()
	if first.GetAttempt() != 1 {
		t.Fatalf("first assignment is attempt %d", first.GetAttempt())
	}
	const why = `transport plugin "http" is not running: it exited or crashed and is being restarted`
	h.agent.transportStatus(t, "http", false, why)
	acks := h.agent.report(t, handBack(first, why))
	if len(acks) != 1 || !acks[0].GetAccepted() || acks[0].GetRetry() {
		t.Fatalf("acks for the hand-back = %v, want accepted", acks)
	}

	d := h.delivery(first.GetDeliveryId())
	if d.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING || d.GetAttemptCount() != 0 {
		t.Errorf("delivery after hand-back = %v with %d attempts, want PENDING with 0", d.GetStatus(), d.GetAttemptCount())
	}
	if le := d.GetLastError(); !strings.Contains(le, "not attempted") || !strings.Contains(le, "agent-1") || !strings.Contains(le, why) {
		t.Errorf("last_error = %q, want it to say not attempted, by agent-1, and why", le)
	}
	atts, err := hookwirev1.NewDeliveryServiceClient(h.conn).ListAttempts(h.ctx(), &hookwirev1.ListAttemptsRequest{Tenant: "acme", DeliveryId: first.GetDeliveryId()})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(atts.GetAttempts()); n != 0 {
		t.Errorf("%d attempt records after a hand-back, want none: %v", n, atts.GetAttempts())
	}
	for {
		it := recvTail(t, tail)
		if it.GetKind() == hookwirev1.TailEventKind_TAIL_EVENT_KIND_CREATED {
			continue
		}
		if it.GetKind() != hookwirev1.TailEventKind_TAIL_EVENT_KIND_REQUEUED || it.GetAgentId() != "agent-1" ||
			it.GetDeliveryId() != first.GetDeliveryId() || !strings.Contains(it.GetError(), why) {
			t.Fatalf("tail item = %v, want REQUEUED by agent-1 with the reason", it)
		}
		break
	}
	get := scrape(t, h.srv.AdminAddr())
	if v := get(`hookwire_deliveries_not_attempted_total{transport="http"}`); v != 1 {
		t.Errorf("hookwire_deliveries_not_attempted_total = %v, want 1", v)
	}

	// The agent whose plugin is down gets nothing; the delivery waits for
	// an agent that can take it and says so.
	noAssignment(t, h.agent)
	if r := h.waitingReason("acme", first.GetDeliveryId()); !strings.Contains(r, `no connected agent hosts transport "http"`) {
		t.Errorf("waiting reason = %q, want no agent hosting http", r)
	}
	other, _ := h.connectAgent("agent-2", 10)
	again := other.assignments(t, 1)[0]
	if again.GetDeliveryId() != first.GetDeliveryId() || again.GetAttempt() != 1 {
		t.Fatalf("re-assignment = %s attempt %d, want %s attempt 1", again.GetDeliveryId(), again.GetAttempt(), first.GetDeliveryId())
	}
	if acks := other.report(t, outcome(again, transportv1.Outcome_OUTCOME_SUCCESS, 0)); !acks[0].GetAccepted() {
		t.Fatalf("result of the real attempt refused: %v", acks)
	}
	d = h.delivery(first.GetDeliveryId())
	if d.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED || d.GetAttemptCount() != 1 {
		t.Errorf("delivery = %v with %d attempts, want SUCCEEDED with 1", d.GetStatus(), d.GetAttemptCount())
	}
	atts, err = hookwirev1.NewDeliveryServiceClient(h.conn).ListAttempts(h.ctx(), &hookwirev1.ListAttemptsRequest{Tenant: "acme", DeliveryId: first.GetDeliveryId()})
	if err != nil {
		t.Fatal(err)
	}
	if a := atts.GetAttempts(); len(a) != 1 || a[0].GetAgentId() != "agent-2" || a[0].GetNumber() != 1 {
		t.Errorf("attempts = %v, want one, number 1, by agent-2", a)
	}
}

// An agent that reports its transport unavailable gets no work for it
// until it reports it available again; then what waited goes out to it.
func TestUnavailableTransportGetsNoWorkUntilBack(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	h.agent.transportStatus(t, "http", false, "plugin restarting")
	noAssignment(t, h.agent) // the status is applied before the dummy result
	id := h.publishOne("acme", "order.created")
	noAssignment(t, h.agent)
	if r := h.waitingReason("acme", id); !strings.Contains(r, `no connected agent hosts transport "http"`) {
		t.Errorf("waiting reason = %q, want no agent hosting http", r)
	}
	// A status for a transport the agent never announced changes nothing.
	h.agent.transportStatus(t, "nats", true, "")
	noAssignment(t, h.agent)

	h.agent.transportStatus(t, "http", true, "")
	got := h.next()
	if got.GetDeliveryId() != id || got.GetAttempt() != 1 {
		t.Fatalf("assignment after the transport is back = %s attempt %d, want %s attempt 1", got.GetDeliveryId(), got.GetAttempt(), id)
	}
}
