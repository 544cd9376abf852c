package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// TestDeleteAuditsTheRecordItRemoves: a deletion carries its audit event
// (built from the record read before) and the revision it was decided
// from; it records the event in the same write, and is refused, changing
// and recording nothing, when the record changed after it was read. A
// record that cannot be read fails the delete.
func TestDeleteAuditsTheRecordItRemoves(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme", DisplayName: "Acme"}, nil); err != nil {
		t.Fatal(err)
	}
	newSub := func(name string) *storev1.SubscriptionRecord {
		id := ids.Format(ids.Subscription, ids.New(time.Now()))
		rec := &storev1.SubscriptionRecord{Subscription: &hookwirev1.Subscription{Id: id, Tenant: "acme", Description: name}}
		if err := s.CreateSubscription(ctx, rec, nil); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	auditOf := func(before *storev1.SubscriptionRecord) *hookwirev1.AuditEvent {
		return &hookwirev1.AuditEvent{Id: ids.Format(AuditIDPrefix, ids.New(time.Now())), Tenant: "acme", Action: "subscription.delete", Resource: before.GetSubscription().GetDescription()}
	}
	auditCount := func(scope string) int {
		t.Helper()
		list, _, err := s.ListAudit(scope, false, AuditFilter{}, nil, 10, 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(list)
	}

	doomed := newSub("doomed")
	if err := s.DeleteSubscription(ctx, doomed, auditOf(doomed)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSubscription("acme", doomed.GetSubscription().GetId()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted subscription: %v", err)
	}
	if n := auditCount("acme"); n != 1 {
		t.Fatalf("%d audit events, want the deletion's", n)
	}

	// Changed after it was read: refused, nothing recorded.
	kept := newSub("kept")
	changed := proto.Clone(kept).(*storev1.SubscriptionRecord)
	changed.Subscription.Description = "changed"
	if _, err := s.PutSubscription(ctx, changed, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSubscription(ctx, kept, auditOf(kept)); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete of a changed subscription: %v, want ErrConflict", err)
	}
	if _, err := s.GetSubscription("acme", kept.GetSubscription().GetId()); err != nil {
		t.Fatalf("the subscription is gone although its deletion was refused: %v", err)
	}
	if n := auditCount("acme"); n != 1 {
		t.Fatalf("%d audit events after a refused deletion, want 1", n)
	}

	// A record that cannot be read fails the delete.
	damaged := newSub("damaged")
	k, _ := subKey("acme", damaged.GetSubscription().GetId())
	if err := s.enqueue(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bucketSubscriptions).Put(k, []byte("not a sealed record")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSubscription(ctx, damaged, auditOf(damaged)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("delete of a damaged record: %v, want ErrCorrupt", err)
	}

	// Tenants: the deletion records its event.
	cur, err := s.GetSubscription("acme", kept.GetSubscription().GetId())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSubscription(ctx, cur, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.enqueue(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bucketSubscriptions).Delete(k) }); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTenant(ctx, "acme", time.Now(), &hookwirev1.AuditEvent{Id: ids.Format(AuditIDPrefix, ids.New(time.Now())), Tenant: AuditGlobal, Action: "tenant.delete"}); err != nil {
		t.Fatal(err)
	}
	if n := auditCount(AuditGlobal); n != 1 {
		t.Fatalf("%d global audit events, want the tenant deletion's", n)
	}
}
