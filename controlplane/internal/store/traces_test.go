package store

import (
	"context"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/proto"
)

// TestEventTracesSurviveReopenAndPurge: the publish trace context is
// stored with its event, read back after a restart, absent for events
// published without one, and purged with its event.
func TestEventTracesSurviveReopenAndPurge(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-40 * 24 * time.Hour)
	sub := ids.New(old)
	tc := &storev1.TraceContext{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Tracestate: "vendor=a"}
	traced, plain := event("acme", old, sub), event("acme", old, sub)
	traced.Trace = tc
	if err := s.Publish(ctx, "acme", []*NewEvent{traced, plain}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir)
	defer s.Close()
	got, err := s.EventTraces([]ids.ID{traced.ID, plain.ID, ids.New(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got[0], tc) || got[1] != nil || got[2] != nil {
		t.Fatalf("traces after reopen: %v, want [%v <nil> <nil>]", got, tc)
	}

	var changes []*DeliveryChange
	for _, ne := range []*NewEvent{traced, plain} {
		changes = append(changes, &DeliveryChange{DeliveryID: ne.Deliveries[0].ID, Attempt: &hookwirev1.Attempt{Number: 1},
			Fields: []string{"status"}, Set: &hookwirev1.Delivery{Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED}})
	}
	if _, err := s.ChangeDeliveries(ctx, changes); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Purge(ctx, time.Now().Add(-30*24*time.Hour), 10); err != nil || st.Events != 2 {
		t.Fatalf("purge: %+v, %v; want 2 events", st, err)
	}
	if got, err := s.EventTraces([]ids.ID{traced.ID}); err != nil || got[0] != nil {
		t.Fatalf("trace of a purged event: %v, %v; want none", got[0], err)
	}
}
