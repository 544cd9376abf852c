package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestOrderedPromotionAndRetryInOneWrite: when the head of an ordered
// group finishes and the delivery it promotes is changed in the same write
// (results are batched), the promoted delivery ends with exactly one due
// entry, at its new time. Found by `store check`: bbolt's Get returns nil
// for an index entry put earlier in the same transaction, so the entry the
// promotion had just added was not removed, and the delivery was due twice.
func TestOrderedPromotionAndRetryInOneWrite(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sub := ids.New(now)
	var changes []*DeliveryChange
	var dlv []ids.ID
	for i := range 6 {
		ne := event("acme", now, sub)
		ne.Deliveries[0].Ordered = true
		ne.Deliveries[0].Delivery.OrderingKey = fmt.Sprintf("g%d", i%2)
		if err := s.Publish(ctx, "acme", []*NewEvent{ne}); err != nil {
			t.Fatal(err)
		}
		dlv = append(dlv, ne.Deliveries[0].ID)
		// The heads (0, 1) succeed; the next of each group (2, 3) are
		// promoted and fail in the same write, retrying in a minute.
		if i >= 4 {
			continue
		}
		status := hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
		if i >= 2 {
			status = hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING
		}
		changes = append(changes, &DeliveryChange{DeliveryID: ne.Deliveries[0].ID, Ordered: true, Fields: []string{"status", "next_attempt_time"},
			Set: &hookwirev1.Delivery{Status: status, NextAttemptTime: timestamppb.New(now.Add(time.Minute))}})
	}
	if _, err := s.ChangeDeliveries(ctx, changes); err != nil {
		t.Fatal(err)
	}
	var due []Due
	if err := s.ScanDue(sub, func(d Due) bool { due = append(due, d); return true }); err != nil {
		t.Fatal(err)
	}
	if len(due) != 2 || !due[0].At.Equal(now.Add(time.Minute)) || !due[1].At.Equal(now.Add(time.Minute)) ||
		(due[0].DeliveryID != dlv[2] && due[0].DeliveryID != dlv[3]) || due[0].DeliveryID == due[1].DeliveryID {
		t.Fatalf("due entries %+v, want deliveries 2 and 3 once each, a minute from now", due)
	}
	counted, later := s.DueDepth(now)
	if counted[sub] != 0 || later != 2 {
		t.Errorf("DueDepth = %v due, %d later; want 0 and 2", counted, later)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if rep := mustCheck(t, dir); !rep.OK() {
		t.Fatalf("Check: %q", rep.Problems)
	}
}
