package controlplane_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// These tests run on a clock that stands still unless the test moves it
// (startFrozen), and never call Tick: whatever goes out on time does so
// because the dispatcher's own timer fired when the clock passed its
// time, with nothing else happening on the server.

// within bounds the real time an expected assignment may take to arrive
// once its time has come (the dispatcher reacts at once; this only
// absorbs a loaded test machine).
const within = 10 * time.Second

// nextWithin waits up to d of real time for a's next assignment and fails
// the test if none comes.
func nextWithin(t *testing.T, a *fakeAgent, d time.Duration) *hookwirev1.Assignment {
	t.Helper()
	type recv struct {
		m   *hookwirev1.ControlMessage
		err error
	}
	deadline := time.After(d)
	for len(a.pending) == 0 {
		ch := make(chan recv, 1)
		go func() {
			m, err := a.stream.Recv()
			ch <- recv{m, err}
		}()
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("recv: %v", r.err)
			}
			a.pending = append(a.pending, r.m.GetAssignments().GetItems()...)
		case <-deadline:
			a.cancel() // ends the Recv above
			<-ch
			t.Fatalf("no assignment within %v", d)
		}
	}
	x := a.pending[0]
	a.pending = a.pending[1:]
	return x
}

func schedule(delays ...time.Duration) *hookwirev1.RetryPolicy {
	ds := make([]*durationpb.Duration, len(delays))
	for i, d := range delays {
		ds[i] = durationpb.New(d)
	}
	return &hookwirev1.RetryPolicy{Policy: &hookwirev1.RetryPolicy_Schedule{Schedule: &hookwirev1.RetrySchedule{Delays: ds}}}
}

func (h *deliveryHarness) attempts(deliveryID string) []*hookwirev1.Attempt {
	h.t.Helper()
	resp, err := hookwirev1.NewDeliveryServiceClient(h.conn).ListAttempts(h.ctx(), &hookwirev1.ListAttemptsRequest{Tenant: "acme", DeliveryId: deliveryID})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.GetAttempts()
}

// TestRetryGoesOutOnTimeWithNothingElseHappening is issue 11's quiet
// server: delays 2s, 20s, 20s and a target that always fails. Attempt 2
// goes out when the clock passes +2s, attempt 3 when it passes +22s,
// attempt 4 at +42s, and not a moment before; each attempt record says
// when it was due.
func TestRetryGoesOutOnTimeWithNothingElseHappening(t *testing.T) {
	h := startFrozen(t, t.TempDir(), controlplane.Config{DisableAfter: -1})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, RetryPolicy: schedule(2*time.Second, 20*time.Second, 20*time.Second)})
	t0 := h.clock.now()
	h.publish("order.created", `{}`)
	a := h.next()
	if a.GetAttempt() != 1 {
		t.Fatalf("attempt %d, want 1", a.GetAttempt())
	}
	id := a.GetDeliveryId()
	h.agent.report(t, outcome(a, transportv1.Outcome_OUTCOME_FAILED, 0))
	if h.clock.fake.Pending() == 0 {
		t.Fatal("a retry is scheduled but the dispatcher set no timer for it")
	}
	for _, step := range []struct {
		n    int32
		wait time.Duration
	}{{2, 2 * time.Second}, {3, 20 * time.Second}, {4, 20 * time.Second}} {
		h.clock.advance(step.wait - time.Millisecond)
		assertNoAssignment(t, h)
		h.clock.advance(time.Millisecond)
		a = nextWithin(t, h.agent, within)
		if a.GetAttempt() != step.n || a.GetDeliveryId() != id {
			t.Fatalf("got attempt %d of %s, want attempt %d of %s", a.GetAttempt(), a.GetDeliveryId(), step.n, id)
		}
		h.agent.report(t, outcome(a, transportv1.Outcome_OUTCOME_FAILED, 0))
	}
	if d := h.delivery(id); d.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_DEAD {
		t.Fatalf("after the last attempt: %v", d.GetStatus())
	}
	// due_time: the event's arrival for attempt 1 (ms, as in its id),
	// the scheduled time for retries; nothing went out late.
	want := []time.Duration{0, 2 * time.Second, 22 * time.Second, 42 * time.Second}
	list := h.attempts(id)
	if len(list) != len(want) {
		t.Fatalf("%d attempts recorded, want %d", len(list), len(want))
	}
	for i, at := range list {
		due := at.GetDueTime().AsTime()
		if at.GetDueTime() == nil || due.Sub(t0.Add(want[i])).Abs() > time.Millisecond {
			t.Errorf("attempt %d due_time %v, want t0+%v", at.GetNumber(), due, want[i])
		}
		if late := at.GetStartTime().AsTime().Sub(due); late < 0 || late > time.Millisecond {
			t.Errorf("attempt %d started %v after it was due", at.GetNumber(), late)
		}
	}
}

// TestTwoSchedulesInterleaveOnTime: schedules 2s/4s/6s and 3s/3s/3s, one
// event each, failing targets. Stepping the clock a second at a time,
// exactly the attempts due at that second go out.
func TestTwoSchedulesInterleaveOnTime(t *testing.T) {
	h := startFrozen(t, t.TempDir(), controlplane.Config{DisableAfter: -1})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"a.*"}, RetryPolicy: schedule(2*time.Second, 4*time.Second, 6*time.Second)})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"b.*"}, RetryPolicy: schedule(3*time.Second, 3*time.Second, 3*time.Second)})
	h.publish("a.created", `{}`)
	h.publish("b.created", `{}`)
	// Attempts due per second: a at 0, 2, 6, 12; b at 0, 3, 6, 9.
	due := map[int][]string{0: {"a.created", "b.created"}, 2: {"a.created"}, 3: {"b.created"}, 6: {"a.created", "b.created"}, 9: {"b.created"}, 12: {"a.created"}}
	for sec := 0; sec <= 14; sec++ {
		if sec > 0 {
			h.clock.advance(time.Second)
		}
		var got []string
		for range due[sec] {
			a := nextWithin(t, h.agent, within)
			got = append(got, a.GetRequest().GetEventType())
			h.agent.report(t, outcome(a, transportv1.Outcome_OUTCOME_FAILED, 0))
		}
		assertNoAssignment(t, h)
		if slices.Sort(got); !slices.Equal(got, due[sec]) {
			t.Fatalf("at +%ds: assigned %v, want %v", sec, got, due[sec])
		}
	}
}

// TestCircuitProbeGoesOutWhenTheCooldownEnds: the half-open probe is
// assigned when the clock passes the cool-down's end, and only one.
func TestCircuitProbeGoesOutWhenTheCooldownEnds(t *testing.T) {
	h := startFrozen(t, t.TempDir(), controlplane.Config{DisableAfter: -1})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"},
		CircuitBreaker: &hookwirev1.CircuitBreaker{ConsecutiveFailures: 1, Cooldown: durationpb.New(30 * time.Second)},
		RetryPolicy:    schedule(time.Second, time.Second),
	})
	h.publish("order.created", `{"n":1}`)
	a := h.next()
	h.agent.report(t, outcome(a, transportv1.Outcome_OUTCOME_FAILED, 0)) // opens the circuit
	h.publish("order.created", `{"n":2}`)                                // waits behind it
	assertNoAssignment(t, h)
	h.clock.advance(30*time.Second - time.Millisecond) // the retry is due, the circuit still open
	assertNoAssignment(t, h)
	h.clock.advance(time.Millisecond)
	probe := nextWithin(t, h.agent, within)
	assertNoAssignment(t, h) // half-open: one probe at a time
	h.agent.report(t, outcome(probe, transportv1.Outcome_OUTCOME_SUCCESS, 0))
	other := nextWithin(t, h.agent, within) // closed: the other one goes at once
	if other.GetDeliveryId() == probe.GetDeliveryId() {
		t.Fatalf("the probe's delivery was assigned again")
	}
}

// TestRateLimitRefillWakesTheQueue: with 1/s and a burst of 1, the next
// delivery goes out when the clock passes the refill, not before.
func TestRateLimitRefillWakesTheQueue(t *testing.T) {
	h := startFrozen(t, t.TempDir(), controlplane.Config{})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, FlowControl: &hookwirev1.FlowControl{RatePerSecond: 1, Burst: 1}})
	for range 3 {
		h.publish("order.created", `{}`)
	}
	for i := range 3 {
		if i > 0 {
			h.clock.advance(time.Second - time.Millisecond)
			assertNoAssignment(t, h)
			h.clock.advance(time.Millisecond)
		}
		a := nextWithin(t, h.agent, within)
		h.agent.report(t, outcome(a, transportv1.Outcome_OUTCOME_SUCCESS, 0))
		assertNoAssignment(t, h)
	}
}

// TestOrderedHeadRetryAndPromotionOnTime: an ordered group's failing head
// is retried when its time comes; when it succeeds the next one of the
// group goes out at once.
func TestOrderedHeadRetryAndPromotionOnTime(t *testing.T) {
	h := startFrozen(t, t.TempDir(), controlplane.Config{})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, Ordered: true, RetryPolicy: schedule(5 * time.Second)})
	key := func(e *hookwirev1.Event) { e.OrderingKey = "cust-1" }
	h.publish("order.created", `{"n":1}`, key)
	h.publish("order.created", `{"n":2}`, key)
	head := h.next()
	assertNoAssignment(t, h)
	h.agent.report(t, outcome(head, transportv1.Outcome_OUTCOME_FAILED, 0))
	h.clock.advance(5*time.Second - time.Millisecond)
	assertNoAssignment(t, h)
	h.clock.advance(time.Millisecond)
	again := nextWithin(t, h.agent, within)
	if again.GetDeliveryId() != head.GetDeliveryId() || again.GetAttempt() != 2 {
		t.Fatalf("got %s attempt %d, want the head's attempt 2", again.GetDeliveryId(), again.GetAttempt())
	}
	h.agent.report(t, outcome(again, transportv1.Outcome_OUTCOME_SUCCESS, 0))
	next := nextWithin(t, h.agent, within)
	if !strings.Contains(string(next.GetRequest().GetBody()), `"n":2`) {
		t.Fatalf("after the head succeeded got %s", next.GetRequest().GetBody())
	}
}
