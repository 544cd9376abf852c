package dispatch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/filter"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	"github.com/hookwire/hookwire/controlplane/signing"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// memStream is an agent stream in memory.
type memStream struct {
	ctx  context.Context
	stop func() // ends the stream and waits for Serve to return
	in   chan *hookwirev1.AgentMessage
	out  chan *hookwirev1.ControlMessage
}

func newMemStream(ctx context.Context) *memStream {
	return &memStream{ctx: ctx, in: make(chan *hookwirev1.AgentMessage, 16), out: make(chan *hookwirev1.ControlMessage, 64)}
}

func (s *memStream) Send(m *hookwirev1.ControlMessage) error {
	select {
	case s.out <- m:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func (s *memStream) Recv() (*hookwirev1.AgentMessage, error) {
	select {
	case m := <-s.in:
		return m, nil
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

func (s *memStream) Context() context.Context     { return s.ctx }
func (s *memStream) SetHeader(metadata.MD) error  { return nil }
func (s *memStream) SendHeader(metadata.MD) error { return nil }
func (s *memStream) SetTrailer(metadata.MD)       {}
func (s *memStream) SendMsg(any) error            { return errors.New("memStream: use Send") }
func (s *memStream) RecvMsg(any) error            { return errors.New("memStream: use Recv") }
func (s *memStream) send(t *testing.T, m *hookwirev1.AgentMessage) {
	t.Helper()
	select {
	case s.in <- m:
	case <-time.After(10 * time.Second):
		t.Fatal("the dispatcher does not read the agent stream")
	}
}

// next returns the next control message of a kind keep accepts, skipping
// others.
func (s *memStream) next(t *testing.T, keep func(*hookwirev1.ControlMessage) bool) *hookwirev1.ControlMessage {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-s.out:
			if keep(m) {
				return m
			}
		case <-deadline:
			t.Fatal("no expected control message within 10s")
		}
	}
}

func (s *memStream) assignments(t *testing.T, n int) []*hookwirev1.Assignment {
	t.Helper()
	var out []*hookwirev1.Assignment
	for len(out) < n {
		m := s.next(t, func(m *hookwirev1.ControlMessage) bool { return m.GetAssignments() != nil })
		out = append(out, m.GetAssignments().GetItems()...)
	}
	if len(out) != n {
		t.Fatalf("%d assignments, want %d", len(out), n)
	}
	return out
}

// acked waits for the acknowledgement of a's result, failing on any
// assignment that comes first when strict.
func (s *memStream) acked(t *testing.T, a *hookwirev1.Assignment, strict bool) {
	t.Helper()
	s.next(t, func(m *hookwirev1.ControlMessage) bool {
		if strict && m.GetAssignments() != nil {
			t.Fatalf("unexpected assignment %v", m.GetAssignments().GetItems())
		}
		for _, ack := range m.GetResultAcks().GetItems() {
			if ack.GetLeaseId() == a.GetLeaseId() {
				return true
			}
		}
		return false
	})
}

func result(a *hookwirev1.Assignment) *hookwirev1.AgentMessage {
	return resultOf(a, transportv1.Outcome_OUTCOME_SUCCESS)
}

func resultOf(a *hookwirev1.Assignment, o transportv1.Outcome) *hookwirev1.AgentMessage {
	return &hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Results{Results: &hookwirev1.Results{Items: []*hookwirev1.Result{{
		LeaseId: a.GetLeaseId(), LeaseToken: a.GetLeaseToken(),
		Result: &transportv1.DeliveryResult{Outcome: o, StatusCode: 500},
	}}}}}
}

func credit(n uint32) *hookwirev1.AgentMessage {
	return &hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Credit{Credit: &hookwirev1.Credit{Amount: n}}}
}

// slotRig is a running dispatcher with one subscription and a store.
// Its FailingSince hook (called by the stream's result writer after the
// commit of a subscription's first failure) can be held (holdWriter),
// which keeps the writer busy as a slow commit would.
type slotRig struct {
	d   *Dispatcher
	st  *store.Store
	sub *catalog.Sub

	mu      sync.Mutex
	gate    chan struct{}
	entered chan struct{} // a held writer is waiting
}

func (r *slotRig) holdWriter() {
	r.mu.Lock()
	r.gate = make(chan struct{})
	r.entered = make(chan struct{}, 1)
	r.mu.Unlock()
}

// awaitWriterHeld waits until the writer is held in the hook.
func (r *slotRig) awaitWriterHeld(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	entered := r.entered
	r.mu.Unlock()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the result writer never reached the held hook")
	}
}

func (r *slotRig) releaseWriter() {
	r.mu.Lock()
	if r.gate != nil {
		close(r.gate)
		r.gate = nil
	}
	r.mu.Unlock()
}

func (r *slotRig) failingSince(*catalog.Sub, time.Time) {
	r.mu.Lock()
	gate, entered := r.gate, r.entered
	r.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		<-gate
	}
}

func newSlotRig(t *testing.T) *slotRig {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signing.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	id := ids.New(time.Now())
	sub := &catalog.Sub{ID: id, IDText: ids.Format(ids.Subscription, id), Tenant: "acme", Transport: "http",
		Status: hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_ENABLED, Timeout: time.Second, Signer: signer}
	cat := catalog.New(filter.DefaultLimits())
	cat.Put(sub)
	if err := st.CreateTenant(context.Background(), &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	r := &slotRig{st: st, sub: sub}
	r.d = New(Config{Store: st, Catalog: cat, Clock: NewFakeClock(time.Now()), Hooks: Hooks{FailingSince: r.failingSince}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.d.Run(ctx) }()
	t.Cleanup(func() {
		r.releaseWriter()
		r.d.Shutdown()
		cancel()
		<-done
		st.Close()
	})
	return r
}

// connect serves an agent stream with slots and returns it after Welcome.
func (r *slotRig) connect(t *testing.T, agentID string, slots uint32, held ...string) *memStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := newMemStream(ctx)
	served := make(chan struct{})
	go func() { defer close(served); _ = r.d.Serve(s) }()
	s.stop = func() { r.releaseWriter(); cancel(); <-served }
	t.Cleanup(s.stop)
	s.send(t, &hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Hello{Hello: &hookwirev1.Hello{
		AgentId: agentID, MaxInFlight: slots, HeldLeaseIds: held, Transports: []*hookwirev1.TransportInfo{{Name: "http"}},
	}}})
	s.next(t, func(m *hookwirev1.ControlMessage) bool { return m.GetWelcome() != nil })
	return s
}

// enqueue publishes n events to the subscription, as the API does: stored,
// then handed to the dispatcher.
func (r *slotRig) enqueue(t *testing.T, n int) {
	t.Helper()
	evs := make([]*store.NewEvent, n)
	list := make([]Ready, n)
	for i := range list {
		now := time.Now()
		eid, did := ids.New(now), ids.New(now)
		at := timestamppb.New(now)
		evs[i] = &store.NewEvent{ID: eid,
			Event: &hookwirev1.Event{Id: ids.Format(ids.Event, eid), Tenant: "acme", Type: "order.created", Payload: []byte(`{}`), ContentType: "application/json", ReceiveTime: at},
			Deliveries: []store.NewDelivery{{ID: did, SubID: r.sub.ID, Delivery: &hookwirev1.Delivery{
				Id: ids.Format(ids.Delivery, did), Tenant: "acme", EventId: ids.Format(ids.Event, eid), SubscriptionId: r.sub.IDText,
				EventType: "order.created", Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING, NextAttemptTime: at, CreateTime: at, UpdateTime: at,
			}}},
		}
		list[i] = Ready{ID: did, Sub: r.sub, EventID: eid, EventType: "order.created", Payload: []byte(`{}`), ContentType: "application/json"}
	}
	if err := r.st.Publish(context.Background(), "acme", evs); err != nil {
		t.Fatal(err)
	}
	r.d.Enqueue(list)
}

func (r *slotRig) inFlight(t *testing.T, agentID string) int {
	t.Helper()
	for _, a := range r.d.Agents() {
		if a.ID == agentID && a.Connected {
			return a.InFlight
		}
	}
	t.Fatalf("agent %s not connected", agentID)
	return 0
}

// TestInFlightNeverExceedsTheAgentsSlots: an agent with 2 slots reports a
// result while the stream's result writer is still busy with the one
// before (a slow commit), then grants the credit for both. The control
// plane assigns two more at once, as it should; its count of what the
// agent holds must stay at the agent's 2 slots, not count a lease whose
// result has arrived but is not recorded yet (issue 11: 127 to 165 leases
// "in flight" on an agent started with --max-in-flight 64).
func TestInFlightNeverExceedsTheAgentsSlots(t *testing.T) {
	r := newSlotRig(t)
	s := r.connect(t, "a", 2)
	r.enqueue(t, 6)
	first := s.assignments(t, 2)
	if n := r.inFlight(t, "a"); n != 2 {
		t.Fatalf("in flight %d after two assignments, want 2", n)
	}
	r.holdWriter()
	s.send(t, resultOf(first[0], transportv1.Outcome_OUTCOME_FAILED)) // the writer is busy after it
	r.awaitWriterHeld(t)
	s.send(t, result(first[1])) // waits behind it
	s.send(t, credit(2))
	s.assignments(t, 2)
	if n := r.inFlight(t, "a"); n != 2 {
		t.Fatalf("in flight %d with both slots reassigned, want 2 (the agent has 2 slots)", n)
	}
	r.releaseWriter()
	s.acked(t, first[1], false)
	if n := r.inFlight(t, "a"); n != 2 {
		t.Fatalf("in flight %d after the results were recorded, want 2", n)
	}
}

// TestReconnectCarriesSlotsAndDrainStopsAssignments: leases the agent
// still runs when it reconnects stay counted on its new stream (and only
// once); after Drain nothing more is assigned on it, even with credit.
func TestReconnectCarriesSlotsAndDrainStopsAssignments(t *testing.T) {
	r := newSlotRig(t)
	s := r.connect(t, "a", 3)
	r.enqueue(t, 5)
	first := s.assignments(t, 3)
	// The stream breaks; the agent comes back still running all three.
	s.stop()
	var held []string
	for _, a := range first {
		held = append(held, a.GetLeaseId())
	}
	s2 := r.connect(t, "a", 0, held...)
	if n := r.inFlight(t, "a"); n != 3 {
		t.Fatalf("in flight %d on the new stream, want the 3 it still runs", n)
	}
	s2.send(t, result(first[0]))
	s2.acked(t, first[0], false)
	s2.send(t, credit(1))
	s2.assignments(t, 1)
	if n := r.inFlight(t, "a"); n != 3 {
		t.Fatalf("in flight %d, want 3", n)
	}
	if !r.d.Drain("a", "test") {
		t.Fatal("Drain: agent not connected")
	}
	s2.next(t, func(m *hookwirev1.ControlMessage) bool {
		if m.GetAssignments() != nil {
			t.Fatalf("assignment %v before the Drain message", m.GetAssignments().GetItems())
		}
		return m.GetDrain() != nil
	})
	s2.send(t, credit(5)) // a misbehaving agent: still nothing
	// Another agent gets what is left, and what comes next.
	s3 := r.connect(t, "b", 10)
	s3.assignments(t, 1)
	r.enqueue(t, 1)
	s3.assignments(t, 1)
	// The drained stream's results are still taken; it gets nothing new.
	s2.send(t, result(first[1]))
	s2.acked(t, first[1], true)
	if n := r.inFlight(t, "a"); n != 2 {
		t.Fatalf("in flight %d on the drained stream, want 2", n)
	}
}
