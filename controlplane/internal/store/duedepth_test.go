package store

import (
	"context"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestDueDepthFollowsCommitsAndReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a, b := ids.New(now), ids.New(now)
	ne := event("acme", now, a, a, a, b)
	if err := s.Publish(ctx, "acme", []*NewEvent{ne}); err != nil {
		t.Fatal(err)
	}
	check := func(at time.Time, wantA, wantB, wantLater int) {
		t.Helper()
		due, later := s.DueDepth(at)
		if due[a] != wantA || due[b] != wantB || later != wantLater {
			t.Fatalf("at +%v: due a=%d b=%d later=%d, want %d %d %d", at.Sub(now), due[a], due[b], later, wantA, wantB, wantLater)
		}
	}
	check(now, 3, 1, 0)

	// One of a's fails and waits a minute; one succeeds; a change that is
	// refused counts nothing.
	retryAt := now.Add(time.Minute)
	changes := []*DeliveryChange{
		{DeliveryID: ne.Deliveries[0].ID, Fields: []string{"attempt_count", "next_attempt_time"},
			Set: &hookwirev1.Delivery{AttemptCount: 1, NextAttemptTime: timestamppb.New(retryAt)}},
		{DeliveryID: ne.Deliveries[1].ID, Fields: []string{"status", "next_attempt_time"},
			Set: &hookwirev1.Delivery{Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED}},
		// A failed precondition changes nothing.
		{DeliveryID: ne.Deliveries[2].ID, IfStatus: []hookwirev1.DeliveryStatus{hookwirev1.DeliveryStatus_DELIVERY_STATUS_DEAD},
			Fields: []string{"status"}, Set: &hookwirev1.Delivery{Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED}},
	}
	if _, err := s.ChangeDeliveries(ctx, changes); err != nil {
		t.Fatal(err)
	}
	check(now, 1, 1, 1)
	check(retryAt.Add(time.Second), 2, 1, 0) // the retry came due

	// A reopen counts the bucket again.
	s.Close()
	s = open(t, dir)
	defer s.Close()
	check(now, 1, 1, 1)
	check(retryAt.Add(time.Second), 2, 1, 0)
	check(now, 2, 1, 0) // the watermark never moves back
	due, _ := s.DueDepth(now)
	if n, err := s.CountDue(); len(due) != 2 || n != 3 || err != nil {
		t.Fatalf("after reopen: %v, CountDue %d, %v", due, n, err)
	}
}

func TestDueDepthWatermark(t *testing.T) {
	base := time.Unix(1_800_000_000, 0)
	d := newDueDepth(base)
	sub := ids.New(base)
	d.add(sub, base.Add(500*time.Millisecond).UnixNano(), 1) // this second: due
	d.add(sub, base.Add(3*time.Second).UnixNano(), 2)
	d.add(sub, base.Add(3*time.Second+time.Millisecond).UnixNano(), 1)
	d.add(sub, base.Add(10*time.Second).UnixNano(), 1)
	if d.due[sub] != 1 || d.nLater != 4 {
		t.Fatalf("due %d later %d", d.due[sub], d.nLater)
	}
	d.advance(base.Add(3 * time.Second))
	if d.due[sub] != 4 || d.nLater != 1 {
		t.Fatalf("after 3s: due %d later %d", d.due[sub], d.nLater)
	}
	d.add(sub, base.Add(10*time.Second).UnixNano(), -1)
	d.advance(base.Add(20 * time.Second))
	if d.nLater != 0 || len(d.later) != 0 || len(d.order) != 0 || d.due[sub] != 4 {
		t.Fatalf("after 20s: due %d later %d (%v, %v)", d.due[sub], d.nLater, d.later, d.order)
	}
}
