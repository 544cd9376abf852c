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
)

// TestDeleteAuditsItsBeforeImageInTheSameWrite: a delete hands the record
// it removes to the audit builder inside its own write, so the audit
// record shows exactly what was deleted; a failure to read that record or
// to build the audit event fails the delete, which then changes nothing.
// (Before, the API read the before-image in a separate transaction and
// ignored its error.)
func TestDeleteAuditsItsBeforeImageInTheSameWrite(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "acme", DisplayName: "Acme"}, nil); err != nil {
		t.Fatal(err)
	}
	newSub := func(name string) string {
		id := ids.Format(ids.Subscription, ids.New(time.Now()))
		if err := s.CreateSubscription(ctx, &storev1.SubscriptionRecord{Subscription: &hookwirev1.Subscription{Id: id, Tenant: "acme", Description: name}}, nil); err != nil {
			t.Fatal(err)
		}
		return id
	}
	auditOf := func(before *storev1.SubscriptionRecord) *hookwirev1.AuditEvent {
		return &hookwirev1.AuditEvent{Id: ids.Format(AuditIDPrefix, ids.New(time.Now())), Tenant: "acme", Action: "subscription.delete", Resource: before.GetSubscription().GetDescription()}
	}

	// The builder sees the record in the deleting write.
	doomed := newSub("doomed")
	var seen *storev1.SubscriptionRecord
	if err := s.DeleteSubscription(ctx, "acme", doomed, func(before *storev1.SubscriptionRecord) (*hookwirev1.AuditEvent, error) {
		seen = before
		return auditOf(before), nil
	}); err != nil {
		t.Fatal(err)
	}
	if seen.GetSubscription().GetId() != doomed {
		t.Fatalf("audit builder saw %v", seen)
	}
	list, _, err := s.ListAudit("acme", false, AuditFilter{}, nil, 10, 100)
	if err != nil || len(list) != 1 || list[0].GetResource() != "doomed" {
		t.Fatalf("audit log %v, %v; want the deletion with its before-image", list, err)
	}

	// A failing builder fails the delete.
	kept := newSub("kept")
	boom := errors.New("cannot build the audit record")
	if err := s.DeleteSubscription(ctx, "acme", kept, func(*storev1.SubscriptionRecord) (*hookwirev1.AuditEvent, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("delete with a failing audit: %v", err)
	}
	if _, err := s.GetSubscription("acme", kept); err != nil {
		t.Fatalf("the subscription is gone although its audit failed: %v", err)
	}

	// A before-image that cannot be read fails the delete.
	damaged := newSub("damaged")
	k, _ := subKey("acme", damaged)
	if err := s.update(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bucketSubscriptions).Put(k, []byte("not a sealed record")) }); err != nil {
		t.Fatal(err)
	}
	called := false
	err = s.DeleteSubscription(ctx, "acme", damaged, func(*storev1.SubscriptionRecord) (*hookwirev1.AuditEvent, error) { called = true; return nil, nil })
	if !errors.Is(err, ErrCorrupt) || called {
		t.Fatalf("delete of a damaged record: %v (audit called %v), want ErrCorrupt before auditing", err, called)
	}

	// The same for tenants.
	if err := s.DeleteSubscription(ctx, "acme", kept, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.update(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bucketSubscriptions).Delete(k) }); err != nil {
		t.Fatal(err)
	}
	var tenantBefore *hookwirev1.Tenant
	if err := s.DeleteTenant(ctx, "acme", time.Now(), func(before *hookwirev1.Tenant) (*hookwirev1.AuditEvent, error) {
		tenantBefore = before
		return &hookwirev1.AuditEvent{Id: ids.Format(AuditIDPrefix, ids.New(time.Now())), Tenant: AuditGlobal, Action: "tenant.delete"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if tenantBefore.GetDisplayName() != "Acme" {
		t.Fatalf("tenant before-image %v", tenantBefore)
	}
	if list, _, err := s.ListAudit(AuditGlobal, false, AuditFilter{}, nil, 10, 100); err != nil || len(list) != 1 {
		t.Fatalf("global audit %v, %v", list, err)
	}
}
