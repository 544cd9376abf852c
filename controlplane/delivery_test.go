package controlplane_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	"github.com/hookwire/hookwire/controlplane/internal/dispatch"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// clock is a test clock. The zero value runs with real time plus what
// advance added (for Config.Now); with fake set (startFrozen) it stands
// still and only moves with advance, which also fires the dispatcher's
// timers that come due (retries, rate-limit refills, circuit probes).
type clock struct {
	off  atomic.Int64
	fake *dispatch.FakeClock
}

func (c *clock) now() time.Time {
	if c.fake != nil {
		return c.fake.Now()
	}
	return time.Now().Add(time.Duration(c.off.Load()))
}

func (c *clock) advance(d time.Duration) {
	if c.fake != nil {
		c.fake.Advance(d)
		return
	}
	c.off.Add(int64(d))
}

// deliveryHarness is a control plane with a test clock, no retry jitter,
// and a fake agent with plenty of credit.
type deliveryHarness struct {
	*harness
	clock *clock
	agent *fakeAgent
}

// startDelivery starts a deliveryHarness whose clock runs with real time
// plus what the test adds.
func startDelivery(t *testing.T, dir string, cfg controlplane.Config) *deliveryHarness {
	t.Helper()
	return startDeliveryWith(t, dir, cfg, &clock{})
}

// startFrozen starts a deliveryHarness whose clock stands still unless the
// test moves it (Config.Clock): whatever happens on time happens because
// the dispatcher's own timers fired.
func startFrozen(t *testing.T, dir string, cfg controlplane.Config) *deliveryHarness {
	t.Helper()
	return startDeliveryWith(t, dir, cfg, &clock{fake: dispatch.NewFakeClock(time.Now())})
}

func startDeliveryWith(t *testing.T, dir string, cfg controlplane.Config, c *clock) *deliveryHarness {
	t.Helper()
	if c.fake != nil {
		cfg.Clock = c.fake
	} else {
		cfg.Now = c.now
	}
	cfg.Retry = controlplane.RetryOptions{Jitter: 0, ThrottleMin: time.Minute, Rand: func() float64 { return 0.5 }}
	h := start(t, dir, cfg)
	dh := &deliveryHarness{harness: h, clock: c}
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "acme"}); err != nil && status.Code(err) != codes.AlreadyExists {
		t.Fatal(err)
	}
	dh.agent, _ = h.connectAgent("agent-1", 1000)
	return dh
}

func (h *deliveryHarness) subscribe(s *hookwirev1.Subscription) *hookwirev1.Subscription {
	h.t.Helper()
	if s.Target == nil {
		cfg, _ := structpb.NewStruct(map[string]any{"url": "http://127.0.0.1:1/hook"})
		s.Target = &hookwirev1.Target{Transport: "http", Config: cfg}
	}
	out, err := hookwirev1.NewSubscriptionServiceClient(h.conn).CreateSubscription(h.ctx(), &hookwirev1.CreateSubscriptionRequest{Tenant: "acme", Subscription: s})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func (h *deliveryHarness) publish(typ, payload string, opts ...func(*hookwirev1.Event)) *hookwirev1.PublishEventResponse {
	h.t.Helper()
	ev := &hookwirev1.Event{Type: typ, Payload: []byte(payload)}
	for _, o := range opts {
		o(ev)
	}
	resp, err := hookwirev1.NewEventServiceClient(h.conn).PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{Tenant: "acme", Event: ev})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

func (h *deliveryHarness) delivery(id string) *hookwirev1.Delivery {
	h.t.Helper()
	d, err := hookwirev1.NewDeliveryServiceClient(h.conn).GetDelivery(h.ctx(), &hookwirev1.GetDeliveryRequest{Tenant: "acme", Id: id})
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

func outcome(a *hookwirev1.Assignment, o transportv1.Outcome, retryAfter time.Duration) *hookwirev1.Result {
	r := &hookwirev1.Result{LeaseId: a.GetLeaseId(), LeaseToken: a.GetLeaseToken(), Result: &transportv1.DeliveryResult{Outcome: o, StatusCode: 500}}
	if retryAfter > 0 {
		r.Result.RetryAfter = durationpb.New(retryAfter)
	}
	return r
}

// next waits for one assignment.
func (h *deliveryHarness) next() *hookwirev1.Assignment {
	h.t.Helper()
	return h.agent.assignments(h.t, 1)[0]
}

// advance moves the clock (firing what came due) and expires the leases
// past their deadline at once (Tick), as tests written before the
// dispatcher followed the clock by itself expect.
func (h *deliveryHarness) advance(d time.Duration) {
	h.clock.advance(d)
	h.srv.Tick()
}

func TestRetryScheduleOutcomesAndExhaustion(t *testing.T) {
	// Auto-disable would fire after five days of failures; this test is
	// about the schedule.
	h := startDelivery(t, t.TempDir(), controlplane.Config{DisableAfter: -1})
	ops := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"hookwire.*"}})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	h.publish("order.created", `{}`)

	a := h.next()
	if a.GetAttempt() != 1 {
		t.Fatalf("attempt %d", a.GetAttempt())
	}
	h.agent.report(t, outcome(a, transportv1.Outcome_OUTCOME_FAILED, 0))
	d := h.delivery(a.GetDeliveryId())
	if got := d.GetNextAttemptTime().AsTime().Sub(d.GetUpdateTime().AsTime()); got != 5*time.Second {
		t.Fatalf("after a failure the next attempt is in %v, want 5s", got)
	}
	h.advance(5 * time.Second)
	a = h.next()
	// Throttled with Retry-After 7m: the schedule says 5m, the minimum is
	// 1m, and Retry-After within [5m, 10m] is honoured.
	h.agent.report(t, outcome(a, transportv1.Outcome_OUTCOME_THROTTLED, 7*time.Minute))
	d = h.delivery(a.GetDeliveryId())
	if got := d.GetNextAttemptTime().AsTime().Sub(d.GetUpdateTime().AsTime()); got != 7*time.Minute {
		t.Fatalf("after 429 with Retry-After 7m the next attempt is in %v", got)
	}
	// Attempts 3..10 fail; then the delivery is dead.
	for n := int32(3); n <= 10; n++ {
		h.advance(25 * time.Hour)
		a = h.next()
		if a.GetAttempt() != n {
			t.Fatalf("attempt %d, want %d", a.GetAttempt(), n)
		}
		h.agent.report(t, outcome(a, transportv1.Outcome_OUTCOME_TIMEOUT, 0))
	}
	if d = h.delivery(a.GetDeliveryId()); d.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_DEAD || d.GetAttemptCount() != 10 {
		t.Fatalf("after ten attempts: %v", d)
	}
	// delivery.exhausted reaches the tenant's operational subscription.
	op := h.next()
	if op.GetRequest().GetEventType() != "hookwire.delivery.exhausted" || !strings.Contains(string(op.GetRequest().GetBody()), a.GetDeliveryId()) {
		t.Fatalf("operational event %s %s", op.GetRequest().GetEventType(), op.GetRequest().GetBody())
	}
	if op.GetRequest().GetHeaders()["webhook-id"] == "" || !strings.Contains(op.GetDeliveryId(), "dlv_") {
		t.Fatalf("operational delivery %v", op)
	}
	_ = ops
}

func TestGoneDisablesAndRecoveredAfterResume(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"hookwire.subscription.*"}})
	sub := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	h.publish("order.created", `{}`)
	a := h.next()
	h.agent.report(t, outcome(a, transportv1.Outcome_OUTCOME_GONE, 0))
	if d := h.delivery(a.GetDeliveryId()); d.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_DEAD {
		t.Fatalf("after 410: %v", d)
	}
	ev := h.next()
	if ev.GetRequest().GetEventType() != "hookwire.subscription.disabled" || !strings.Contains(string(ev.GetRequest().GetBody()), "410") {
		t.Fatalf("want subscription.disabled, got %s %s", ev.GetRequest().GetEventType(), ev.GetRequest().GetBody())
	}
	got := waitSub(t, h, sub.GetId(), func(s *hookwirev1.Subscription) bool {
		return s.GetStatus() == hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_DISABLED
	})
	if !strings.Contains(got.GetDisabledReason(), "410") {
		t.Fatalf("disabled reason %q", got.GetDisabledReason())
	}
	// Deliveries wait while disabled, and go out after a resume.
	waiting := h.publish("order.updated", `{}`)
	if _, err := hookwirev1.NewSubscriptionServiceClient(h.conn).ResumeSubscription(h.ctx(), &hookwirev1.ResumeSubscriptionRequest{Tenant: "acme", Id: sub.GetId()}); err != nil {
		t.Fatal(err)
	}
	a = h.next()
	if a.GetRequest().GetEventType() != "order.updated" {
		t.Fatalf("after resume got %s", a.GetRequest().GetEventType())
	}
	_ = waiting
}

// waitSub polls the API until the subscription satisfies ok (the disable
// is applied asynchronously after the result is acknowledged).
func waitSub(t *testing.T, h *deliveryHarness, id string, ok func(*hookwirev1.Subscription) bool) *hookwirev1.Subscription {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := hookwirev1.NewSubscriptionServiceClient(h.conn).GetSubscription(h.ctx(), &hookwirev1.GetSubscriptionRequest{Tenant: "acme", Id: id})
		if err != nil {
			t.Fatal(err)
		}
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscription never reached the expected state: %v", s)
		}
		time.Sleep(10 * time.Millisecond) // polling an asynchronous API change
	}
}

func TestAutoDisableAfterFailingWindow(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{DisableAfter: time.Hour})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"hookwire.subscription.disabled"}})
	sub := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, RetryPolicy: &hookwirev1.RetryPolicy{
		Policy: &hookwirev1.RetryPolicy_Schedule{Schedule: &hookwirev1.RetrySchedule{Delays: []*durationpb.Duration{durationpb.New(40 * time.Minute), durationpb.New(40 * time.Minute)}}},
	}})
	h.publish("order.created", `{}`)
	h.agent.report(t, outcome(h.next(), transportv1.Outcome_OUTCOME_FAILED, 0))
	h.advance(40 * time.Minute)
	h.agent.report(t, outcome(h.next(), transportv1.Outcome_OUTCOME_FAILED, 0))
	if s := waitSub(t, h, sub.GetId(), func(s *hookwirev1.Subscription) bool { return s.GetFailingSince() != nil }); s.GetStatus() != hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_ENABLED {
		t.Fatalf("disabled too early: %v", s)
	}
	h.advance(40 * time.Minute) // 80 minutes of nothing but failures
	h.agent.report(t, outcome(h.next(), transportv1.Outcome_OUTCOME_FAILED, 0))
	ev := h.next()
	if ev.GetRequest().GetEventType() != "hookwire.subscription.disabled" {
		t.Fatalf("want subscription.disabled, got %s", ev.GetRequest().GetEventType())
	}
	s := waitSub(t, h, sub.GetId(), func(s *hookwirev1.Subscription) bool {
		return s.GetStatus() == hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_DISABLED
	})
	if !strings.Contains(s.GetDisabledReason(), "every attempt failed") {
		t.Fatalf("reason %q", s.GetDisabledReason())
	}
}

func TestCircuitBreakerOpensProbesAndCloses(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"hookwire.circuit.*"}})
	sub := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"},
		CircuitBreaker: &hookwirev1.CircuitBreaker{ConsecutiveFailures: 2, Cooldown: durationpb.New(time.Minute)},
		RetryPolicy: &hookwirev1.RetryPolicy{Policy: &hookwirev1.RetryPolicy_Schedule{Schedule: &hookwirev1.RetrySchedule{
			Delays: []*durationpb.Duration{durationpb.New(time.Second), durationpb.New(time.Second), durationpb.New(time.Second)}}}},
		FlowControl: &hookwirev1.FlowControl{MaxInFlight: 1},
	})
	for range 3 {
		h.publish("order.created", `{}`)
	}
	h.agent.report(t, outcome(h.next(), transportv1.Outcome_OUTCOME_FAILED, 0))
	h.agent.report(t, outcome(h.next(), transportv1.Outcome_OUTCOME_FAILED, 0))
	ev := h.next()
	if ev.GetRequest().GetEventType() != "hookwire.circuit.opened" {
		t.Fatalf("want circuit.opened, got %s", ev.GetRequest().GetEventType())
	}
	// Acknowledge it, or its lease would expire while the clock jumps.
	h.agent.report(t, outcome(ev, transportv1.Outcome_OUTCOME_SUCCESS, 0))
	s := waitSub(t, h, sub.GetId(), func(*hookwirev1.Subscription) bool { return true })
	if s.GetCircuitState() != hookwirev1.CircuitState_CIRCUIT_STATE_OPEN {
		t.Fatalf("circuit state %v", s.GetCircuitState())
	}
	// While open nothing goes out, even once retries are due.
	h.advance(30 * time.Second)
	assertNoAssignment(t, h)
	// After the cooldown one probe goes out; its success closes the circuit.
	h.advance(31 * time.Second)
	probe := h.next()
	assertNoAssignment(t, h)
	h.agent.report(t, outcome(probe, transportv1.Outcome_OUTCOME_SUCCESS, 0))
	seen := map[string]int{}
	for range 3 { // circuit.closed plus the two deliveries left
		a := h.next()
		seen[a.GetRequest().GetEventType()]++
		if a.GetRequest().GetEventType() == "order.created" {
			h.agent.report(t, outcome(a, transportv1.Outcome_OUTCOME_SUCCESS, 0))
		}
	}
	if seen["hookwire.circuit.closed"] != 1 || seen["order.created"] != 2 {
		t.Fatalf("after the probe: %v", seen)
	}
}

// assertNoAssignment checks that nothing is assigned right now: it asks
// the server for a round trip (a result for an unknown lease is always
// answered) and makes sure no assignment came before the answer.
func assertNoAssignment(t *testing.T, h *deliveryHarness) {
	t.Helper()
	if len(h.agent.pending) > 0 {
		t.Fatalf("unexpected assignment %v", h.agent.pending[0])
	}
	if err := h.agent.stream.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Results{Results: &hookwirev1.Results{Items: []*hookwirev1.Result{{LeaseId: "none", LeaseToken: "none"}}}}}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := h.agent.stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.GetAssignments() != nil {
			t.Fatalf("unexpected assignment %v", m.GetAssignments().GetItems()[0])
		}
		if m.GetResultAcks() != nil {
			return
		}
	}
}

func TestMaxInFlightAndRateLimit(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, FlowControl: &hookwirev1.FlowControl{MaxInFlight: 2}})
	for range 5 {
		h.publish("order.created", `{}`)
	}
	first := h.agent.assignments(t, 2)
	assertNoAssignment(t, h)
	h.agent.report(t, outcome(first[0], transportv1.Outcome_OUTCOME_SUCCESS, 0))
	third := h.next()
	assertNoAssignment(t, h)
	h.agent.report(t, outcome(first[1], transportv1.Outcome_OUTCOME_SUCCESS, 0), outcome(third, transportv1.Outcome_OUTCOME_SUCCESS, 0))
	h.agent.assignments(t, 2)

	rl := startDelivery(t, t.TempDir(), controlplane.Config{})
	rl.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, FlowControl: &hookwirev1.FlowControl{RatePerSecond: 1, Burst: 2}})
	for range 4 {
		rl.publish("order.created", `{}`)
	}
	burst := rl.agent.assignments(t, 2)
	for _, a := range burst {
		rl.agent.report(t, outcome(a, transportv1.Outcome_OUTCOME_SUCCESS, 0))
	}
	assertNoAssignment(t, rl)
	rl.advance(time.Second) // one more token
	rl.next()
	assertNoAssignment(t, rl)
}

func TestOrderedFailingHeadBlocksUntilSkipped(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, Ordered: true})
	key := func(k string) func(*hookwirev1.Event) { return func(e *hookwirev1.Event) { e.OrderingKey = k } }
	h.publish("order.created", `{"n":1}`, key("cust-1"))
	h.publish("order.created", `{"n":2}`, key("cust-1"))
	h.publish("order.created", `{"n":3}`, key("cust-2"))
	got := map[string]*hookwirev1.Assignment{}
	for _, a := range h.agent.assignments(t, 2) {
		got[string(a.GetRequest().GetBody())] = a
	}
	head := got[`{"n":1}`]
	if head == nil || got[`{"n":3}`] == nil {
		t.Fatalf("first assignments %v: want the heads of both keys", got)
	}
	assertNoAssignment(t, h)
	// The head fails: n=2 must not overtake it.
	h.agent.report(t, outcome(head, transportv1.Outcome_OUTCOME_FAILED, 0))
	assertNoAssignment(t, h)
	h.advance(5 * time.Second)
	retried := h.next()
	if string(retried.GetRequest().GetBody()) != `{"n":1}` {
		t.Fatalf("after the retry wait got %s, want the head again", retried.GetRequest().GetBody())
	}
	h.agent.report(t, outcome(retried, transportv1.Outcome_OUTCOME_FAILED, 0))
	// An operator skips the failing head; the next one goes.
	if _, err := hookwirev1.NewDeliveryServiceClient(h.conn).CancelDelivery(h.ctx(), &hookwirev1.CancelDeliveryRequest{Tenant: "acme", Id: head.GetDeliveryId()}); err != nil {
		t.Fatal(err)
	}
	if a := h.next(); string(a.GetRequest().GetBody()) != `{"n":2}` {
		t.Fatalf("after skipping the head got %s", a.GetRequest().GetBody())
	}
}

func TestFiltersAndGlobs(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	_, err := hookwirev1.NewSubscriptionServiceClient(h.conn).CreateSubscription(h.ctx(), &hookwirev1.CreateSubscriptionRequest{Tenant: "acme", Subscription: &hookwirev1.Subscription{
		EventTypes: []string{"*"}, Filter: "payload.amount > 100 &&\n  paylod.currency == 'EUR'",
		Target: &hookwirev1.Target{Transport: "http", Config: &structpb.Struct{}},
	}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "line 2, column 3") {
		t.Fatalf("bad filter: %v", err)
	}
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, Filter: `payload.amount > 100 && metadata["region"] == "eu"`})
	eu := func(e *hookwirev1.Event) { e.Metadata = map[string]string{"region": "eu"} }
	for _, tc := range []struct {
		typ, payload string
		opts         []func(*hookwirev1.Event)
		want         int32
	}{
		{"order.created", `{"amount": 150}`, []func(*hookwirev1.Event){eu}, 1},
		{"order.created", `{"amount": 50}`, []func(*hookwirev1.Event){eu}, 0},
		{"order.created", `{"amount": 150}`, nil, 0},
		{"invoice.paid", `{"amount": 150}`, []func(*hookwirev1.Event){eu}, 0},
		{"order.created", `not json`, []func(*hookwirev1.Event){eu, func(e *hookwirev1.Event) { e.ContentType = "text/plain" }}, 0},
	} {
		if got := h.publish(tc.typ, tc.payload, tc.opts...).GetDeliveryCount(); got != tc.want {
			t.Errorf("%s %s: %d deliveries, want %d", tc.typ, tc.payload, got, tc.want)
		}
	}
}

func TestIdempotencyAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	h := startDelivery(t, dir, controlplane.Config{})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	key := func(e *hookwirev1.Event) { e.IdempotencyKey = "order-42-created" }
	first := h.publish("order.created", `{}`, key)
	h.stop()
	h = startDelivery(t, dir, controlplane.Config{})
	again := h.publish("order.created", `{"different": true}`, key)
	if again.GetId() != first.GetId() || !again.GetDuplicate() || again.GetDeliveryCount() != 1 {
		t.Fatalf("republish after restart: %v, first %v", again, first)
	}
	// Over REST the Idempotency-Key header does the same.
	var out struct {
		ID        string `json:"id"`
		Duplicate bool   `json:"duplicate"`
	}
	req := func() int {
		return h.restWithHeader("POST", "/v1/tenants/acme/events", `{"type":"order.created","payload":{}}`, "Idempotency-Key", "rest-key-1", &out)
	}
	if code := req(); code != 200 || out.Duplicate {
		t.Fatalf("first REST publish: %d %+v", code, out)
	}
	firstID := out.ID
	if code := req(); code != 200 || !out.Duplicate || out.ID != firstID {
		t.Fatalf("second REST publish: %d %+v", code, out)
	}
	// The header has the field's limit: 256 bytes.
	long := strings.Repeat("k", 257)
	body, code := h.restRaw("POST", "/v1/tenants/acme/events", `{"type":"order.created","payload":{}}`, map[string]string{"Idempotency-Key": long})
	if code != 400 || !strings.Contains(string(body), "Idempotency-Key header is 257 bytes; the limit is 256") {
		t.Fatalf("over-long Idempotency-Key: %d %s", code, body)
	}
}

func TestRecoverReplaysWithProgress(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	sub := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, RetryPolicy: &hookwirev1.RetryPolicy{
		Policy: &hookwirev1.RetryPolicy_Schedule{Schedule: &hookwirev1.RetrySchedule{}}}}) // no retries
	for range 3 {
		h.publish("order.created", `{}`)
	}
	as := h.agent.assignments(t, 3)
	h.agent.report(t, outcome(as[0], transportv1.Outcome_OUTCOME_SUCCESS, 0), outcome(as[1], transportv1.Outcome_OUTCOME_FAILED, 0), outcome(as[2], transportv1.Outcome_OUTCOME_FAILED, 0))
	dsc := hookwirev1.NewDeliveryServiceClient(h.conn)
	op, err := dsc.RecoverDeliveries(h.ctx(), &hookwirev1.RecoverDeliveriesRequest{Tenant: "acme", SubscriptionId: sub.GetId(),
		StartTime: timestamppb.New(h.clock.now().Add(-time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	if op.GetTotal() != 3 {
		t.Fatalf("operation total %d, want 3", op.GetTotal())
	}
	stream, err := dsc.WatchOperation(h.ctx(), &hookwirev1.WatchOperationRequest{Tenant: "acme", Id: op.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	var last *hookwirev1.Operation
	for {
		o, err := stream.Recv()
		if err != nil {
			break
		}
		last = o
	}
	if last == nil || !last.GetDone() || last.GetProcessed() != 3 || last.GetRequeued() != 2 {
		t.Fatalf("final progress %v", last)
	}
	replayed := h.agent.assignments(t, 2)
	for _, a := range replayed {
		if a.GetAttempt() != 2 {
			t.Fatalf("replayed attempt number %d, want 2", a.GetAttempt())
		}
	}
	polled, err := dsc.GetOperation(h.ctx(), &hookwirev1.GetOperationRequest{Tenant: "acme", Id: op.GetId()})
	if err != nil || !polled.GetDone() {
		t.Fatalf("GetOperation: %v %v", polled, err)
	}
}

func TestRetentionPurge(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{Retention: 24 * time.Hour})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	old := h.publish("order.created", `{}`)
	h.agent.report(t, outcome(h.next(), transportv1.Outcome_OUTCOME_SUCCESS, 0))
	h.clock.advance(25 * time.Hour)
	fresh := h.publish("order.created", `{}`)
	events, deliveries, attempts, err := h.srv.Purge(context.Background())
	if err != nil || events != 1 || deliveries != 1 || attempts != 1 {
		t.Fatalf("purge: %d %d %d %v", events, deliveries, attempts, err)
	}
	list, err := hookwirev1.NewDeliveryServiceClient(h.conn).ListDeliveries(h.ctx(), &hookwirev1.ListDeliveriesRequest{Tenant: "acme"})
	if err != nil || len(list.GetDeliveries()) != 1 || list.GetDeliveries()[0].GetEventId() != fresh.GetId() {
		t.Fatalf("after purge: %v %v (old %s)", list, err, old.GetId())
	}
}

// restWithHeader is rest with one extra request header.
func (h *harness) restWithHeader(method, path, body, header, value string, out any) int {
	h.t.Helper()
	data, code := h.restRaw(method, path, body, map[string]string{header: value})
	if err := json.Unmarshal(data, out); err != nil {
		h.t.Fatalf("decode %q: %v", data, err)
	}
	return code
}
