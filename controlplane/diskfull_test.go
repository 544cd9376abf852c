package controlplane_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/hookwire/hookwire/internal/tmpfs/tmpfstest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// collect reads what the control plane sends a until the acknowledgement of
// a probe result, and returns every assignment that came (with those
// already pending).
func collect(t *testing.T, a *fakeAgent) []*hookwirev1.Assignment {
	t.Helper()
	acks := a.report(t, &hookwirev1.Result{LeaseId: "probe", LeaseToken: "probe"})
	if len(acks) != 1 || acks[0].GetAccepted() || acks[0].GetRetry() {
		t.Fatalf("ack of an unknown lease = %v, want rejected", acks)
	}
	out := a.pending
	a.pending = nil
	return out
}

func successes(as []*hookwirev1.Assignment) []*hookwirev1.Result {
	out := make([]*hookwirev1.Result, len(as))
	for i, a := range as {
		out[i] = &hookwirev1.Result{LeaseId: a.GetLeaseId(), LeaseToken: a.GetLeaseToken(),
			Result: &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_SUCCESS, StatusCode: 204}}
	}
	return out
}

// The data directory's disk fills up while an agent holds work (issue 11
// item 2). The results it reports cannot be recorded: the control plane
// acknowledges them with retry and keeps the stream; it keeps their leases
// (they do not expire, the deliveries go to nobody else) and assigns no
// new work. Once space is back the same results are accepted on the same
// stream, each delivery has exactly one attempt, and work flows again.
func TestFullDiskHoldsLeasesAndAsksForResultsAgain(t *testing.T) {
	dir := tmpfstest.Mount(t, 8<<20)
	h := startDelivery(t, filepath.Join(dir, "data"), controlplane.Config{LeaseGrace: time.Second})
	target, _ := structpb.NewStruct(map[string]any{"url": "http://127.0.0.1:1/hook"})
	h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"},
		Target: &hookwirev1.Target{Transport: "http", Config: target, Timeout: durationpb.New(time.Second)}})
	for range 3 {
		h.publish("order.created", `{}`)
	}
	held := h.agent.assignments(t, 3)

	// Fill the disk, then publish until the store refuses.
	filler := tmpfstest.Fill(t, dir, 0)
	payload := make([]byte, 2048)
	for i := range payload {
		payload[i] = 'x'
	}
	refused := false
	for i := 0; i < 20000 && !refused; i++ {
		_, err := hookwirev1.NewEventServiceClient(h.conn).PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{Tenant: "acme",
			Event: &hookwirev1.Event{Type: "order.created", Payload: []byte(`{"pad":"` + string(payload) + `"}`)}})
		refused = err != nil
	}
	if !refused {
		t.Fatal("the store accepted 20000 events on a full disk")
	}
	// Everything assigned so far is in flight on the agent.
	held = append(held, collect(t, h.agent)...)
	t.Logf("%d deliveries in flight when the disk filled up", len(held))

	acks := h.agent.report(t, successes(held)...)
	for _, a := range acks {
		if a.GetAccepted() || !a.GetRetry() {
			t.Fatalf("ack while the disk is full = %v, want retry (not accepted)", a)
		}
	}
	// The stream is up, nothing new is assigned, and the held leases do not
	// expire however long the disk stays full, as long as the agent keeps
	// sending its results again.
	for range 3 {
		h.advance(20 * time.Second) // far past every lease's deadline
		if got := collect(t, h.agent); len(got) != 0 {
			t.Fatalf("assigned %d deliveries while the store cannot write (e.g. %s attempt %d)", len(got), got[0].GetDeliveryId(), got[0].GetAttempt())
		}
		for _, a := range h.agent.report(t, successes(held)...) {
			if !a.GetRetry() {
				t.Fatalf("ack while the disk is still full = %v, want retry", a)
			}
		}
	}
	d := h.delivery(held[0].GetDeliveryId())
	if d.GetAttemptCount() != 0 || d.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING {
		t.Errorf("delivery while the disk is full = %v with %d attempts", d.GetStatus(), d.GetAttemptCount())
	}

	// Space comes back; the store recovers by itself. The agent's next
	// resend is recorded.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		acks := h.agent.report(t, successes(held)...)
		if acks[0].GetAccepted() {
			for _, a := range acks {
				if !a.GetAccepted() {
					t.Fatalf("after recovery: ack %v, want every held result accepted", a)
				}
			}
			break
		}
		if !acks[0].GetRetry() {
			t.Fatalf("ack during recovery = %v, want retry or accepted", acks[0])
		}
		if time.Now().After(deadline) {
			t.Fatal("results still not recorded 30s after space came back")
		}
		time.Sleep(50 * time.Millisecond) // the agent's resend backoff, shortened
	}
	for _, a := range held {
		d := h.delivery(a.GetDeliveryId())
		if d.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED || d.GetAttemptCount() != 1 {
			t.Errorf("delivery %s = %v with %d attempts, want SUCCEEDED with 1", a.GetDeliveryId(), d.GetStatus(), d.GetAttemptCount())
		}
	}
	// New work flows again, to the same stream.
	h.publish("order.created", `{"after":true}`)
	if a := h.next(); a.GetAttempt() != 1 {
		t.Errorf("assignment after recovery = %v", a)
	}
}

// A control plane restarted while its disk is full (issue 11 item 2) comes
// up: it serves reads, refuses writes with UNAVAILABLE saying why, and
// accepts them again by itself once space is back. Before, its start
// rewrote the unchanged admin key, failed on the full disk and exited.
func TestRestartOnAFullDiskServesReadsAndRecovers(t *testing.T) {
	dir := tmpfstest.Mount(t, 16<<20)
	data := filepath.Join(dir, "data")
	h := start(t, data, controlplane.Config{})
	tenants := func() hookwirev1.TenantServiceClient { return hookwirev1.NewTenantServiceClient(h.conn) }
	if _, err := tenants().CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "kept"}); err != nil {
		t.Fatal(err)
	}
	h.stop()

	filler := tmpfstest.Fill(t, dir, 0)
	h = start(t, data, controlplane.Config{})
	if _, err := tenants().GetTenant(h.ctx(), &hookwirev1.GetTenantRequest{Id: "kept"}); err != nil {
		t.Fatalf("read on a full disk: %v", err)
	}
	_, err := tenants().CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "later"})
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "space") {
		t.Fatalf("write on a full disk = %v, want UNAVAILABLE saying the disk has no space", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a write after space came back", func() (bool, string) {
		_, err := tenants().CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "later"})
		if err != nil && status.Code(err) != codes.Unavailable {
			t.Fatalf("write after space came back = %v, want success (or UNAVAILABLE while recovering)", err)
		}
		return err == nil, fmt.Sprint(err)
	})
}
