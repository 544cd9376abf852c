package agent

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func checkResult(t *testing.T, r *hookwirev1.Result, id string, outcome transportv1.Outcome) {
	t.Helper()
	if r == nil {
		t.Fatalf("no result for %s", id)
	}
	if r.GetLeaseToken() != "tok-"+id {
		t.Errorf("result %s: lease token %q, want %q", id, r.GetLeaseToken(), "tok-"+id)
	}
	if got := r.GetResult().GetOutcome(); got != outcome {
		t.Errorf("result %s: outcome %v, want %v (error %q)", id, got, outcome, r.GetResult().GetError())
	}
	if r.GetStartTime() == nil {
		t.Errorf("result %s: no start time", id)
	}
}

func TestHelloAssignResultAck(t *testing.T) {
	cp := newFakeCP()
	cp.apiKey = "s3cret"
	_, addr := startCP(t, "127.0.0.1:0", cp)
	tr := &fakeTransport{name: "fake", deliver: echo}
	cfg := testConfig(t, addr, tr)
	cfg.APIKey = "s3cret"
	cfg.Labels = map[string]string{"region": "eu-west", "zone": "b"}
	cfg.Version = "v0.9.0"
	a := startAgent(t, cfg, testHooks{})

	c := cp.accept(t)
	h := c.hello
	if h.GetAgentId() != "agent-test" || h.GetVersion() != "v0.9.0" || h.GetMaxInFlight() != 8 {
		t.Errorf("hello id/version/credit = %q/%q/%d, want agent-test/v0.9.0/8",
			h.GetAgentId(), h.GetVersion(), h.GetMaxInFlight())
	}
	if len(h.GetLabels()) != 2 || h.GetLabels()["region"] != "eu-west" || h.GetLabels()["zone"] != "b" {
		t.Errorf("hello labels = %v", h.GetLabels())
	}
	if ts := h.GetTransports(); len(ts) != 1 || ts[0].GetName() != "fake" || ts[0].GetVersion() != "1.2.3" ||
		!slices.Equal(ts[0].GetApiVersions(), []uint32{1}) {
		t.Errorf("hello transports = %v", ts)
	}
	if len(h.GetHeldLeaseIds()) != 0 {
		t.Errorf("first hello holds leases %v", h.GetHeldLeaseIds())
	}

	before := time.Now()
	c.send(t, welcome())
	c.send(t, assignIDs("fake", "l1", "l2", "l3"))
	got, _, credit := c.results(t, 3)
	for _, id := range []string{"l1", "l2", "l3"} {
		r := got[id]
		checkResult(t, r, id, transportv1.Outcome_OUTCOME_SUCCESS)
		if string(r.GetResult().GetResponseBody()) != id || r.GetResult().GetStatusCode() != 200 {
			t.Errorf("result %s: response %d %q", id, r.GetResult().GetStatusCode(), r.GetResult().GetResponseBody())
		}
		if st := r.GetStartTime().AsTime(); st.Before(before.Add(-time.Second)) || st.After(time.Now()) {
			t.Errorf("result %s: start time %v out of range", id, st)
		}
	}
	c.credit(t, credit, 3) // one slot back per finished delivery

	c.send(t, acks(true, "l1", "l2", "l3"))
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatalf("Run = %v, want nil after drain", err)
	}
	s := a.Stats()
	if s.Outbox != 0 || s.Acked != 3 || s.Delivered != 3 || s.Sessions != 1 || s.InFlight != 0 {
		t.Errorf("stats after drain = %+v", s)
	}
}

// The control plane here spends exactly the credit it is given and checks
// that the agent never grants more than it can run.
func TestCreditNeverExceeded(t *testing.T) {
	const maxInFlight, total = 4, 300
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	tr := &fakeTransport{name: "fake", deliver: echo}
	cfg := testConfig(t, addr, tr)
	cfg.MaxInFlight = maxInFlight
	a := startAgent(t, cfg, testHooks{})

	c := cp.accept(t)
	credit := int(c.hello.GetMaxInFlight())
	if credit != maxInFlight {
		t.Fatalf("initial credit %d, want %d", credit, maxInFlight)
	}
	c.send(t, welcome())
	outstanding, next, done := 0, 0, 0
	for done < total {
		if credit > 0 && next < total {
			k := min(credit, total-next, 3)
			ids := make([]string, k)
			for i := range ids {
				ids[i] = "l" + itoa(next+i)
			}
			c.send(t, assignIDs("fake", ids...))
			credit -= k
			outstanding += k
			next += k
			continue
		}
		m := c.next(t)
		switch {
		case m.GetResults() != nil:
			var ids []string
			for _, r := range m.GetResults().GetItems() {
				if r.GetLeaseToken() != "tok-"+r.GetLeaseId() {
					t.Fatalf("result %s carries token %q", r.GetLeaseId(), r.GetLeaseToken())
				}
				ids = append(ids, r.GetLeaseId())
			}
			outstanding -= len(ids)
			done += len(ids)
			c.send(t, acks(true, ids...))
		case m.GetCredit() != nil:
			credit += int(m.GetCredit().GetAmount())
			if outstanding+credit > maxInFlight {
				t.Fatalf("agent granted credit beyond its capacity: outstanding %d + credit %d > %d",
					outstanding, credit, maxInFlight)
			}
		default:
			t.Fatalf("unexpected message %v", m)
		}
	}
	// Every slot comes back once everything is reported.
	c.credit(t, uint32(credit), maxInFlight)
	if p := tr.peak.Load(); p > maxInFlight || p < 1 {
		t.Errorf("peak concurrent deliveries = %d, want 1..%d", p, maxInFlight)
	}
	if n := tr.calls.Load(); n != total {
		t.Errorf("transport calls = %d, want %d", n, total)
	}
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// Results that finish while the sender is busy go out in one message.
func TestResultsBatched(t *testing.T) {
	const n = 50
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	tr := &fakeTransport{name: "fake", deliver: echo}
	cfg := testConfig(t, addr, tr)
	cfg.MaxInFlight = 64

	senderBusy, proceed, allFinished := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	var finished atomic.Int64
	hooks := testHooks{
		beforeTake: func() {
			if first.CompareAndSwap(false, true) {
				close(senderBusy)
				<-proceed
			}
		},
		finished: func() {
			if finished.Add(1) == n {
				close(allFinished)
			}
		},
	}
	a := startAgent(t, cfg, hooks)
	c := cp.accept(t)
	c.send(t, welcome())
	<-senderBusy
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "l" + itoa(i)
	}
	c.send(t, assignIDs("fake", ids...))
	select {
	case <-allFinished:
	case <-time.After(failsafe):
		t.Fatalf("%d of %d deliveries finished", finished.Load(), n)
	}
	close(proceed)

	m := c.next(t)
	if got := len(m.GetResults().GetItems()); got != n {
		t.Fatalf("first message carries %d results, want all %d in one batch (message %v)", got, n, m)
	}
	for _, r := range m.GetResults().GetItems() {
		checkResult(t, r, r.GetLeaseId(), transportv1.Outcome_OUTCOME_SUCCESS)
	}
	c.credit(t, 0, n)
	c.send(t, acks(true, ids...))
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
}

func TestOutboxResentAfterStreamKilled(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	g := newGated("b")
	tr := &fakeTransport{name: "fake", deliver: g.deliver}
	a := startAgent(t, testConfig(t, addr, tr), testHooks{})

	c1 := cp.accept(t)
	c1.send(t, welcome())
	c1.send(t, assignIDs("fake", "a", "b", "c"))
	g.waitStarted(t, "b")
	got, _, _ := c1.results(t, 2)
	if got["a"] == nil || got["c"] == nil {
		t.Fatalf("first stream results = %v, want a and c", got)
	}
	// The control plane dies before making them durable.
	c1.kill <- status.Error(codes.Unavailable, "control plane restarting")

	c2 := cp.accept(t)
	held := slices.Sorted(slices.Values(c2.hello.GetHeldLeaseIds()))
	if !slices.Equal(held, []string{"a", "b", "c"}) {
		t.Fatalf("reconnect hello holds %v, want [a b c]", held)
	}
	if c := c2.hello.GetMaxInFlight(); c != 7 {
		t.Errorf("reconnect credit = %d, want 7 (8 minus the delivery still running)", c)
	}
	c2.send(t, welcome("a", "b", "c"))
	m := c2.next(t)
	if items := m.GetResults().GetItems(); len(items) != 2 {
		t.Fatalf("first message after Welcome = %v, want the 2 unacked results in one batch", m)
	}
	for _, r := range m.GetResults().GetItems() {
		checkResult(t, r, r.GetLeaseId(), transportv1.Outcome_OUTCOME_SUCCESS)
	}

	close(g.release)
	got, _, credit := c2.results(t, 1)
	checkResult(t, got["b"], "b", transportv1.Outcome_OUTCOME_SUCCESS)
	c2.credit(t, credit, 1)
	if n := tr.calls.Load(); n != 3 {
		t.Errorf("transport calls = %d, want 3 (no delivery repeated by the reconnect)", n)
	}
	c2.send(t, acks(true, "a", "b", "c"))
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
	if s := a.Stats(); s.Sessions != 2 || s.Outbox != 0 || s.Acked != 3 {
		t.Errorf("stats = %+v", s)
	}
}

func TestLeaseNotHonouredIsCancelled(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	g := newGated("x")
	tr := &fakeTransport{name: "fake", deliver: g.deliver}
	a := startAgent(t, testConfig(t, addr, tr), testHooks{})

	c1 := cp.accept(t)
	c1.send(t, welcome())
	c1.send(t, assignIDs("fake", "x"))
	g.waitStarted(t, "x")
	c1.kill <- status.Error(codes.Unavailable, "gone")

	c2 := cp.accept(t)
	if !slices.Equal(c2.hello.GetHeldLeaseIds(), []string{"x"}) {
		t.Fatalf("held = %v, want [x]", c2.hello.GetHeldLeaseIds())
	}
	c2.send(t, welcome()) // the lease expired meanwhile
	got, _, _ := c2.results(t, 1)
	checkResult(t, got["x"], "x", transportv1.Outcome_OUTCOME_TIMEOUT)
	if e := got["x"].GetResult().GetError(); !strings.Contains(e, "canceled") {
		t.Errorf("error %q, want the delivery's context cancelled", e)
	}
	c2.send(t, acks(false, "x"))
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
	if s := a.Stats(); s.AckRejected != 1 || s.Outbox != 0 {
		t.Errorf("stats = %+v, want one rejected ack and an empty outbox", s)
	}
}

// acceptAndDrop plays an unreachable control plane: it accepts n TCP
// connections on lis and closes each at once.
func acceptAndDrop(t *testing.T, lis *net.TCPListener, n int) {
	t.Helper()
	if err := lis.SetDeadline(time.Now().Add(failsafe)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		conn, err := lis.Accept()
		if err != nil {
			t.Fatalf("agent made %d connection attempts, want %d: %v", i, n, err)
		}
		conn.Close()
	}
}

func TestReconnectAfterServerRestart(t *testing.T) {
	cp := newFakeCP()
	srv1, addr := startCP(t, "127.0.0.1:0", cp)
	g := newGated("slow")
	tr := &fakeTransport{name: "fake", deliver: g.deliver}
	a := startAgent(t, testConfig(t, addr, tr), testHooks{})

	c1 := cp.accept(t)
	c1.send(t, welcome())
	c1.send(t, assignIDs("fake", "slow"))
	g.waitStarted(t, "slow")

	srv1.Stop()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	acceptAndDrop(t, lis.(*net.TCPListener), 3)
	lis.Close()

	_, _ = startCP(t, addr, cp)
	c2 := cp.accept(t)
	if !slices.Equal(c2.hello.GetHeldLeaseIds(), []string{"slow"}) {
		t.Fatalf("held = %v, want [slow]", c2.hello.GetHeldLeaseIds())
	}
	if c := c2.hello.GetMaxInFlight(); c != 7 {
		t.Errorf("reconnect credit = %d, want 7", c)
	}
	c2.send(t, welcome("slow"))
	close(g.release)
	got, _, credit := c2.results(t, 1)
	checkResult(t, got["slow"], "slow", transportv1.Outcome_OUTCOME_SUCCESS)
	c2.credit(t, credit, 1)
	c2.send(t, acks(true, "slow"))

	s := a.Stats()
	if !s.Connected || s.Sessions != 2 || s.FailedConnects < 1 {
		t.Errorf("stats = %+v, want connected, 2 sessions, failed attempts while down", s)
	}
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownTransportRejected(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	tr := &fakeTransport{name: "fake", deliver: echo}
	a := startAgent(t, testConfig(t, addr, tr), testHooks{})

	c := cp.accept(t)
	c.send(t, welcome())
	c.send(t, assignIDs("smtp", "m1"))
	got, _, credit := c.results(t, 1)
	checkResult(t, got["m1"], "m1", transportv1.Outcome_OUTCOME_REJECTED)
	if e := got["m1"].GetResult().GetError(); !strings.Contains(e, `"smtp"`) || !strings.Contains(e, "fake") {
		t.Errorf("error %q should name the transport and the hosted ones", e)
	}
	c.credit(t, credit, 1)
	if n := tr.calls.Load(); n != 0 {
		t.Errorf("transport called %d times", n)
	}
	c.send(t, acks(true, "m1"))
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
}

func TestCancelStopsDelivery(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	g := newGated("x", "y")
	tr := &fakeTransport{name: "fake", deliver: g.deliver}
	a := startAgent(t, testConfig(t, addr, tr), testHooks{})

	c := cp.accept(t)
	c.send(t, welcome())
	c.send(t, assignIDs("fake", "x", "y"))
	g.waitStarted(t, "x", "y")
	c.send(t, cancelMsg("x"))
	c.send(t, cancelMsg("unknown-lease")) // ignored
	got, _, credit := c.results(t, 1)
	checkResult(t, got["x"], "x", transportv1.Outcome_OUTCOME_TIMEOUT)
	if e := got["x"].GetResult().GetError(); e != context.Canceled.Error() {
		t.Errorf("error %q, want %q", e, context.Canceled)
	}
	if got["y"] != nil {
		t.Errorf("y was cancelled too")
	}
	c.credit(t, credit, 1)
	close(g.release)
	got, _, credit = c.results(t, 1)
	checkResult(t, got["y"], "y", transportv1.Outcome_OUTCOME_SUCCESS)
	c.credit(t, credit, 1)
	c.send(t, acks(true, "x", "y"))
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
}

func TestDrainFinishesInFlight(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	g := newGated("a", "b")
	tr := &fakeTransport{name: "fake", deliver: g.deliver}
	cfg := testConfig(t, addr, tr)
	cfg.DrainTimeout = time.Minute
	cfg.FlushTimeout = time.Minute
	a := startAgent(t, cfg, testHooks{})

	c := cp.accept(t)
	c.send(t, welcome())
	c.send(t, assignIDs("fake", "a", "b"))
	g.waitStarted(t, "a", "b")
	a.Drain()
	if !a.Stats().Draining {
		t.Fatal("not draining after Drain")
	}
	close(g.release)
	got, _, credit := c.results(t, 2)
	checkResult(t, got["a"], "a", transportv1.Outcome_OUTCOME_SUCCESS)
	checkResult(t, got["b"], "b", transportv1.Outcome_OUTCOME_SUCCESS)
	if credit != 0 {
		t.Errorf("a draining agent granted credit %d", credit)
	}
	select {
	case err := <-a.done:
		t.Fatalf("Run returned %v before its results were acknowledged", err)
	default:
	}
	c.send(t, acks(true, "a", "b"))
	if err := a.wait(t); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	// Everything the agent sent after the results: no credit.
	for m := range c.in {
		if m.GetCredit() != nil || m.GetResults() != nil {
			t.Errorf("agent sent %v after draining", m)
		}
	}
}

func TestControlPlaneDrainCancelsAtDeadline(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	g := newGated("stuck")
	tr := &fakeTransport{name: "fake", deliver: g.deliver}
	cfg := testConfig(t, addr, tr)
	cfg.DrainTimeout = 20 * time.Millisecond
	a := startAgent(t, cfg, testHooks{})

	c := cp.accept(t)
	c.send(t, welcome())
	c.send(t, assignIDs("fake", "stuck"))
	g.waitStarted(t, "stuck")
	c.send(t, &hookwirev1.ControlMessage{Msg: &hookwirev1.ControlMessage_Drain{
		Drain: &hookwirev1.Drain{Reason: "control plane shutting down"},
	}})
	got, _, credit := c.results(t, 1)
	checkResult(t, got["stuck"], "stuck", transportv1.Outcome_OUTCOME_TIMEOUT)
	if e := got["stuck"].GetResult().GetError(); e != context.Canceled.Error() {
		t.Errorf("error %q, want the drain deadline to cancel the delivery", e)
	}
	if credit != 0 {
		t.Errorf("draining agent granted credit %d", credit)
	}
	c.send(t, acks(true, "stuck"))
	if err := a.wait(t); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

func TestDrainGivesUpOnUnackedResults(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	tr := &fakeTransport{name: "fake", deliver: echo}
	cfg := testConfig(t, addr, tr)
	cfg.FlushTimeout = 20 * time.Millisecond
	a := startAgent(t, cfg, testHooks{})

	c := cp.accept(t)
	c.send(t, welcome())
	c.send(t, assignIDs("fake", "l1"))
	c.results(t, 1)
	a.Drain() // the control plane never acknowledges
	if err := a.wait(t); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if s := a.Stats(); s.Outbox != 1 {
		t.Errorf("outbox = %d, want the unacknowledged result still there", s.Outbox)
	}
}

func TestHeartbeatCarriesInFlight(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	g := newGated("x")
	tr := &fakeTransport{name: "fake", deliver: g.deliver}
	a := startAgent(t, testConfig(t, addr, tr), testHooks{})

	c := cp.accept(t)
	w := welcome()
	w.GetWelcome().HeartbeatIntervalMs = 5
	c.send(t, w)
	c.send(t, assignIDs("fake", "x"))
	g.waitStarted(t, "x")
	for {
		m := c.nextAny(t)
		if hb := m.GetHeartbeat(); hb != nil && hb.GetInFlight() == 1 {
			break
		}
	}
	close(g.release)
	c.results(t, 1)
	c.send(t, acks(true, "x"))
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
}

// The control plane's clock runs an hour ahead; the attempt must still end
// at the lease deadline, not an hour later (or at the request timeout).
func TestLeaseDeadlineUsesServerClock(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	deadlines := make(chan time.Time, 1)
	tr := &fakeTransport{name: "fake", deliver: func(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
		d, _ := ctx.Deadline()
		deadlines <- d
		return echo(ctx, req)
	}}
	a := startAgent(t, testConfig(t, addr, tr), testHooks{})

	c := cp.accept(t)
	serverNow := time.Now().Add(time.Hour)
	c.send(t, &hookwirev1.ControlMessage{Msg: &hookwirev1.ControlMessage_Welcome{Welcome: &hookwirev1.Welcome{
		ServerTime: timestamppb.New(serverNow),
	}}})
	as := assignment("x", "fake")
	as.Deadline = timestamppb.New(serverNow.Add(30 * time.Second))
	as.Request.Timeout = durationpb.New(10 * time.Minute)
	c.send(t, assign(as))
	d := <-deadlines
	if want := time.Now().Add(30 * time.Second); d.Before(want.Add(-5*time.Second)) || d.After(want.Add(5*time.Second)) {
		t.Errorf("delivery deadline in %v, want about 30s", time.Until(d))
	}
	c.results(t, 1)
	c.send(t, acks(true, "x"))
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
}

func TestUnauthenticatedIsFatal(t *testing.T) {
	cp := newFakeCP()
	cp.apiKey = "right"
	_, addr := startCP(t, "127.0.0.1:0", cp)
	cfg := testConfig(t, addr, &fakeTransport{name: "fake", deliver: echo})
	cfg.APIKey = "wrong"
	a := startAgent(t, cfg, testHooks{})
	err := a.wait(t)
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Run = %v, want an Unauthenticated error", err)
	}
	t.Logf("Run = %v", err)
	if !strings.Contains(err.Error(), "agent-test") {
		t.Errorf("error %q should name the agent", err)
	}
}

func TestRunTwiceAndDrainBeforeRun(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:1", &fakeTransport{name: "fake", deliver: echo})
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.Drain()
	if err := a.Run(context.Background()); err != nil {
		t.Fatalf("Run after Drain with nothing to do = %v, want nil", err)
	}
	if err := a.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

func TestNewValidatesConfig(t *testing.T) {
	src, err := StaticTransports(context.Background(), &fakeTransport{name: "fake", deliver: echo})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no address", Config{Transports: src}, "ServerAddr"},
		{"no transports", Config{ServerAddr: "x:1"}, "Transports"},
		{"negative max", Config{ServerAddr: "x:1", Transports: src, MaxInFlight: -1}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error about %s", err, tc.want)
			}
		})
	}
	a, err := New(Config{ServerAddr: "x:1", Transports: src})
	if err != nil {
		t.Fatal(err)
	}
	if a.cfg.MaxInFlight != DefaultMaxInFlight || a.cfg.DrainTimeout != DefaultDrainTimeout ||
		a.cfg.BackoffBase != DefaultBackoffBase || a.cfg.BackoffMax != DefaultBackoffMax || a.ID() == "" {
		t.Errorf("defaults not applied: %+v", a.cfg)
	}
	if _, err := StaticTransports(context.Background(),
		&fakeTransport{name: "fake"}, &fakeTransport{name: "fake"}); err == nil {
		t.Error("StaticTransports accepted two transports with one name")
	}
}

func TestDuplicateAssignmentReturnsCredit(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	g := newGated("d")
	tr := &fakeTransport{name: "fake", deliver: g.deliver}
	a := startAgent(t, testConfig(t, addr, tr), testHooks{})

	c := cp.accept(t)
	c.send(t, welcome())
	c.send(t, assignIDs("fake", "d"))
	g.waitStarted(t, "d")
	c.send(t, assignIDs("fake", "d")) // control plane bug: same lease again
	c.credit(t, 0, 1)                 // the wasted credit comes back, no result
	close(g.release)
	got, _, credit := c.results(t, 1)
	checkResult(t, got["d"], "d", transportv1.Outcome_OUTCOME_SUCCESS)
	c.credit(t, credit, 1)
	if n := tr.calls.Load(); n != 1 {
		t.Errorf("transport calls = %d, want 1", n)
	}
	c.send(t, acks(true, "d"))
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
}

func TestTransportPanicBecomesFailedResult(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	tr := &fakeTransport{name: "fake", deliver: func(context.Context, *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
		panic("boom")
	}}
	a := startAgent(t, testConfig(t, addr, tr), testHooks{})
	c := cp.accept(t)
	c.send(t, welcome())
	c.send(t, assignIDs("fake", "p"))
	got, _, _ := c.results(t, 1)
	checkResult(t, got["p"], "p", transportv1.Outcome_OUTCOME_FAILED)
	if e := got["p"].GetResult().GetError(); !strings.Contains(e, "panicked: boom") {
		t.Errorf("error %q", e)
	}
	c.send(t, acks(true, "p"))
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
}
