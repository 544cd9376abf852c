package agent

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/hookwire/hookwire/plugins/sdk"
)

// switchableSource is a TransportSource whose availability the test sets,
// the way pluginhost reports a plugin that crashed and came back.
type switchableSource struct {
	TransportSource
	mu      sync.Mutex
	down    map[string]string
	changed chan struct{}
}

func newSwitchableSource(t *testing.T, ts ...sdk.Transport) *switchableSource {
	t.Helper()
	src, err := StaticTransports(context.Background(), ts...)
	if err != nil {
		t.Fatal(err)
	}
	return &switchableSource{TransportSource: src, changed: make(chan struct{})}
}

func (s *switchableSource) Unavailable() (map[string]string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var down map[string]string
	for k, v := range s.down {
		if down == nil {
			down = map[string]string{}
		}
		down[k] = v
	}
	return down, s.changed
}

// set marks a transport down with reason, or up when reason is "".
func (s *switchableSource) set(name, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reason == "" {
		delete(s.down, name)
	} else {
		if s.down == nil {
			s.down = map[string]string{}
		}
		s.down[name] = reason
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// refusingTransport is a CheckedTransport that refuses while refuse holds
// a reason, the way a plugin refuses in the moment between its crash and
// the host noticing.
type refusingTransport struct {
	*fakeTransport
	refuse  atomic.Pointer[string]
	refused atomic.Int64
}

func (r *refusingTransport) DeliverIfRunning(ctx context.Context, req *transportv1.DeliveryRequest) (*transportv1.DeliveryResult, string) {
	if why := r.refuse.Load(); why != nil {
		r.refused.Add(1)
		return nil, *why
	}
	return r.Deliver(ctx, req), ""
}

// nextStatus reads the next message and requires a TransportStatus.
func (c *cpConn) nextStatus(t *testing.T) *hookwirev1.TransportStatus {
	t.Helper()
	m := c.next(t)
	st := m.GetTransportStatus()
	if st == nil {
		t.Fatalf("got %v, want a TransportStatus", m)
	}
	return st
}

func checkStatus(t *testing.T, st *hookwirev1.TransportStatus, name string, available bool, reason string) {
	t.Helper()
	if st.GetName() != name || st.GetAvailable() != available || !strings.Contains(st.GetReason(), reason) {
		t.Fatalf("transport status = %v, want %s available=%v reason containing %q", st, name, available, reason)
	}
}

func checkHandedBack(t *testing.T, r *hookwirev1.Result, id, reason string) {
	t.Helper()
	if r == nil {
		t.Fatalf("no result for %s", id)
	}
	if r.GetLeaseToken() != "tok-"+id {
		t.Errorf("hand-back %s: lease token %q", id, r.GetLeaseToken())
	}
	if r.GetResult() != nil || !strings.Contains(r.GetNotAttemptedReason(), reason) {
		t.Errorf("hand-back %s = result %v, not_attempted_reason %q; want no result and a reason containing %q",
			id, r.GetResult(), r.GetNotAttemptedReason(), reason)
	}
}

// While its transport is down the agent says so, and gives back what it is
// assigned for it without calling the transport; when the transport is
// back it says so and delivers again; a new stream is told at once.
func TestUnavailableTransportIsReportedAndHandedBack(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	tr := &fakeTransport{name: "fake", deliver: echo}
	src := newSwitchableSource(t, tr)
	cfg := testConfig(t, addr)
	cfg.Transports = src
	a := startAgent(t, cfg, testHooks{})

	c := cp.accept(t)
	c.send(t, welcome())
	src.set("fake", `transport plugin "fake" is not running: it crashed`)
	checkStatus(t, c.nextStatus(t), "fake", false, "it crashed")

	// Assigned before the control plane heard: handed back untouched.
	c.send(t, assignIDs("fake", "h1", "h2"))
	got, _, credit := c.results(t, 2)
	checkHandedBack(t, got["h1"], "h1", "it crashed")
	checkHandedBack(t, got["h2"], "h2", "it crashed")
	c.credit(t, credit, 2) // the slots are free again
	if n := tr.calls.Load(); n != 0 {
		t.Fatalf("transport called %d times while down, want 0", n)
	}
	c.send(t, acks(true, "h1", "h2"))
	if s := a.Stats(); s.HandedBack != 2 || s.Delivered != 0 || s.Unavailable["fake"] == "" {
		t.Errorf("stats while down = %+v, want 2 handed back, none delivered, fake unavailable", s)
	}

	src.set("fake", "")
	checkStatus(t, c.nextStatus(t), "fake", true, "")
	c.send(t, assignIDs("fake", "ok"))
	got, _, credit = c.results(t, 1)
	checkResult(t, got["ok"], "ok", transportv1.Outcome_OUTCOME_SUCCESS)
	c.credit(t, credit, 1)
	c.send(t, acks(true, "ok"))

	// Down across a reconnect: the new stream hears it right after Welcome.
	src.set("fake", "down again")
	checkStatus(t, c.nextStatus(t), "fake", false, "down again")
	c.kill <- status.Error(codes.Unavailable, "control plane restarting")
	c2 := cp.accept(t)
	c2.send(t, welcome())
	checkStatus(t, c2.nextStatus(t), "fake", false, "down again")
	src.set("fake", "")
	checkStatus(t, c2.nextStatus(t), "fake", true, "")

	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
	if s := a.Stats(); s.HandedBack != 2 || s.Delivered != 1 || s.Outbox != 0 || len(s.Unavailable) != 0 {
		t.Errorf("final stats = %+v", s)
	}
}

// A transport that refuses a delivery (its plugin died a moment ago) before
// the source reports it down: the agent reports the transport unavailable
// BEFORE the hand-back, so the control plane does not assign the delivery
// straight back; it hands back later assignments without calling the
// transport; and once the source confirms the transport is fine, it is
// reported available again.
func TestRefusedDeliveryReportsTransportBeforeHandBack(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	rt := &refusingTransport{fakeTransport: &fakeTransport{name: "fake", deliver: echo}}
	why := `transport plugin "fake" is not running: it exited or crashed and is being restarted`
	rt.refuse.Store(&why)
	a := startAgent(t, testConfig(t, addr, rt), testHooks{})

	c := cp.accept(t)
	c.send(t, welcome())
	c.send(t, assignIDs("fake", "r1"))
	checkStatus(t, c.nextStatus(t), "fake", false, "is being restarted")
	got, _, credit := c.results(t, 1)
	checkHandedBack(t, got["r1"], "r1", "is being restarted")
	c.credit(t, credit, 1)

	c.send(t, assignIDs("fake", "r2"))
	got, _, credit = c.results(t, 1)
	checkHandedBack(t, got["r2"], "r2", "is being restarted")
	c.credit(t, credit, 1)
	if n := rt.refused.Load(); n != 1 {
		t.Errorf("transport asked %d times, want once (later work goes back without asking)", n)
	}

	// The source never reported it down; the agent asks again and finds
	// it available (the plugin is back).
	rt.refuse.Store(nil)
	checkStatus(t, c.nextStatus(t), "fake", true, "")
	c.send(t, assignIDs("fake", "r3"))
	got, _, _ = c.results(t, 1)
	checkResult(t, got["r3"], "r3", transportv1.Outcome_OUTCOME_SUCCESS)
	c.send(t, acks(true, "r1", "r2", "r3"))
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
	if s := a.Stats(); s.HandedBack != 2 || s.Delivered != 1 {
		t.Errorf("stats = %+v, want 2 handed back and 1 delivered", s)
	}
}

func retryAck(ids ...string) *hookwirev1.ControlMessage {
	items := make([]*hookwirev1.ResultAck, len(ids))
	for i, id := range ids {
		items[i] = &hookwirev1.ResultAck{LeaseId: id, Retry: true}
	}
	return &hookwirev1.ControlMessage{Msg: &hookwirev1.ControlMessage_ResultAcks{
		ResultAcks: &hookwirev1.ResultAcks{Items: items},
	}}
}

// A result the control plane cannot record (its store is full) stays in the
// outbox and goes out again on the same stream after a jittered backoff
// that grows while the control plane keeps refusing; other results are not
// held up, and an accepted ack ends it.
func TestResultRetryAckResendsAfterBackoff(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	tr := &fakeTransport{name: "fake", deliver: echo}
	a := startAgent(t, testConfig(t, addr, tr), testHooks{})

	c := cp.accept(t)
	c.send(t, welcome())
	c.send(t, assignIDs("fake", "p1"))
	got, _, credit := c.results(t, 1)
	checkResult(t, got["p1"], "p1", transportv1.Outcome_OUTCOME_SUCCESS)
	c.credit(t, credit, 1)

	var waits []time.Duration
	for range 3 {
		c.send(t, retryAck("p1"))
		asked := time.Now()
		got, _, _ := c.results(t, 1)
		waits = append(waits, time.Since(asked))
		checkResult(t, got["p1"], "p1", transportv1.Outcome_OUTCOME_SUCCESS)
		if s := a.Stats(); s.Outbox != 1 {
			t.Fatalf("outbox = %d after a retry ack, want the result kept", s.Outbox)
		}
		if len(waits) == 1 {
			// Meanwhile new work flows as usual.
			c.send(t, assignIDs("fake", "p2"))
			got, _, credit := c.results(t, 1)
			checkResult(t, got["p2"], "p2", transportv1.Outcome_OUTCOME_SUCCESS)
			c.credit(t, credit, 1)
			c.send(t, acks(true, "p2"))
		}
	}
	t.Logf("resend waits after retry acks: %v", waits)
	// Each wait is at least half the first window (the accepted ack for p2
	// started the backoff over; TestResultRetryBackoffGrows covers growth).
	for i, w := range waits {
		if w < resultRetryBase/2 {
			t.Errorf("resend %d came %v after the retry ack, want at least %v", i+1, w, resultRetryBase/2)
		}
	}
	c.send(t, acks(true, "p1"))
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
	if s := a.Stats(); s.Outbox != 0 || s.ResultRetries != 3 || s.Sessions != 1 || s.Acked != 2 {
		t.Errorf("stats = %+v, want an empty outbox, 3 retries, one session, 2 acked", s)
	}
}

// Retries without any accepted result in between back off: each wait at
// least half of a window that doubles.
func TestResultRetryBackoffGrows(t *testing.T) {
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	tr := &fakeTransport{name: "fake", deliver: echo}
	a := startAgent(t, testConfig(t, addr, tr), testHooks{})

	c := cp.accept(t)
	c.send(t, welcome())
	c.send(t, assignIDs("fake", "q1"))
	_, _, credit := c.results(t, 1)
	c.credit(t, credit, 1)
	var waits []time.Duration
	for range 3 {
		c.send(t, retryAck("q1"))
		asked := time.Now()
		c.results(t, 1)
		waits = append(waits, time.Since(asked))
	}
	t.Logf("resend waits: %v", waits)
	for i, w := range waits {
		if min := resultRetryBase << i / 2; w < min {
			t.Errorf("resend %d came %v after the retry ack, want at least %v (half of a doubling window)", i+1, w, min)
		}
	}
	c.send(t, acks(true, "q1"))
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
}

// A control plane that welcomes the agent and ends the stream at once (it
// could not record anything, say) must not be reconnected to in a tight
// loop: only a stream that stayed up resets the reconnect backoff.
func TestShortStreamsDoNotResetReconnectBackoff(t *testing.T) {
	const window = 1500 * time.Millisecond
	cp := newFakeCP()
	_, addr := startCP(t, "127.0.0.1:0", cp)
	tr := &fakeTransport{name: "fake", deliver: echo}
	cfg := testConfig(t, addr, tr)
	cfg.BackoffBase, cfg.BackoffMax = 50*time.Millisecond, 5*time.Second
	a := startAgent(t, cfg, testHooks{})

	start := time.Now()
	streams := 0
	for time.Since(start) < window {
		var c *cpConn
		select {
		case c = <-cp.conns:
		case <-time.After(window - time.Since(start)):
			continue
		}
		streams++
		c.send(t, welcome())
		for deadline := time.Now().Add(failsafe); a.Stats().Sessions < uint64(streams); {
			if time.Now().After(deadline) {
				t.Fatal("agent did not take the Welcome")
			}
			time.Sleep(time.Millisecond) // polling the agent's session counter
		}
		c.kill <- status.Error(codes.Unavailable, "cannot record results")
	}
	t.Logf("%d streams in %v", streams, window)
	// Doubling windows from 50ms (mean waits 25, 50, 100, 200, 400ms...)
	// allow about 6 streams in 1.5s; a backoff reset by every Welcome
	// (mean wait 25ms) allows about 60.
	if streams < 2 || streams > 15 {
		t.Errorf("%d streams in %v, want 2 to 15: the backoff must keep growing while streams end at once", streams, window)
	}
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}
}
