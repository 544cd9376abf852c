package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// footprint counts what the store holds for a tenant, bucket by bucket.
// Attempts, due and ordered entries are counted through the tenant's
// subscriptions (subs), since their keys do not name the tenant.
func footprint(t *testing.T, s *Store, tenant string, subs ...ids.ID) map[string]int {
	t.Helper()
	out := map[string]int{}
	prefix := tenantPrefix(tenant)
	countPrefixOf := func(tx *bolt.Tx, bucket []byte, p []byte) int {
		b := tx.Bucket(bucket)
		if b == nil {
			return 0
		}
		n := 0
		c := b.Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			n++
		}
		return n
	}
	err := s.view(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
			rec, err := openValue(bucketEvents, k, v)
			if err != nil {
				return err
			}
			owner, err := eventTenant(rec)
			if owner == tenant {
				out["events"]++
				if tx.Bucket(bucketEventTraces).Get(k) != nil {
					out["event_traces"]++
				}
			}
			return err
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketDeliveries).ForEach(func(k, v []byte) error {
			d, err := decode(bucketDeliveries, k, v, &hookwirev1.Delivery{})
			if err != nil {
				return err
			}
			if d.GetTenant() == tenant {
				out["deliveries"]++
				out["attempts"] += countPrefixOf(tx, bucketAttempts, k)
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketAPIKeys).ForEach(func(k, v []byte) error {
			rec, err := decode(bucketAPIKeys, k, v, &storev1.ApiKeyRecord{})
			if rec.GetApiKey().GetTenant() == tenant {
				out["api_keys"]++
			}
			return err
		}); err != nil {
			return err
		}
		out["deliveries_by_tenant"] = countPrefixOf(tx, bucketDeliveriesByTenant, prefix)
		out["idempotency"] = countPrefixOf(tx, bucketIdempotency, prefix)
		out["audit"] = countPrefixOf(tx, bucketAudit, prefix)
		for _, sub := range subs {
			out["deliveries_by_sub"] += countPrefixOf(tx, bucketDeliveriesBySub, sub[:])
			out["due"] += countPrefixOf(tx, bucketDue, sub[:])
			out["ordered"] += countPrefixOf(tx, bucketOrdered, sub[:])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range out {
		if v == 0 {
			delete(out, k)
		}
	}
	return out
}

// fillTenant gives a tenant every kind of record: pending, ordered and
// finished deliveries with attempts, events without deliveries,
// idempotency keys, a trace context, audit events and an API key.
func fillTenant(t *testing.T, s *Store, tenant string, now time.Time) (subs []ids.ID) {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: tenant, CreateTime: timestamppb.New(now)}, nil); err != nil {
		t.Fatal(err)
	}
	plain, ordered := ids.New(now), ids.New(now)
	var events []*NewEvent
	for i := range 7 {
		ne := event(tenant, now, plain)
		ne.Event.IdempotencyKey = fmt.Sprintf("key-%d", i)
		events = append(events, ne)
	}
	for _, key := range []string{"a", "a", "b"} {
		ne := event(tenant, now, ordered)
		ne.Deliveries[0].Ordered = true
		ne.Deliveries[0].Delivery.OrderingKey = key
		events = append(events, ne)
	}
	for range 5 {
		events = append(events, event(tenant, now)) // no subscription matched
	}
	events[0].Trace = &storev1.TraceContext{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	if err := s.Publish(ctx, tenant, events); err != nil {
		t.Fatal(err)
	}
	// Three deliveries finished, one failed and waits for a retry.
	var changes []*DeliveryChange
	for i := range 4 {
		changes = append(changes, &DeliveryChange{DeliveryID: events[i].Deliveries[0].ID, Attempt: &hookwirev1.Attempt{Number: 1},
			Fields: []string{"status", "attempt_count", "next_attempt_time"},
			Set:    &hookwirev1.Delivery{Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, AttemptCount: 1}})
		if i == 3 {
			changes[i].Set = &hookwirev1.Delivery{Status: hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING, AttemptCount: 1, NextAttemptTime: timestamppb.New(now.Add(time.Hour))}
		}
	}
	if _, err := s.ChangeDeliveries(ctx, changes); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := s.AppendAudit(ctx, auditEv(tenant, "subscription.update", now.Add(time.Duration(i)*time.Millisecond))); err != nil {
			t.Fatal(err)
		}
	}
	key := &hookwirev1.ApiKey{Id: "key_" + tenant, Tenant: tenant}
	if err := s.PutAPIKey(ctx, &storev1.ApiKeyRecord{ApiKey: key, Hash: []byte("h")}, nil); err != nil {
		t.Fatal(err)
	}
	return []ids.ID{plain, ordered}
}

// TestTenantPurgeResumesAfterRestart: deleting a tenant leaves a
// tombstone that refuses the id; the purge removes every record of the
// tenant in small writes, survives a restart half way, leaves the other
// tenant and the global audit log alone, and frees the id at the end.
func TestTenantPurgeResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	now := time.Now().Add(-time.Hour)
	goneSubs := fillTenant(t, s, "gone", now)
	keptSubs := fillTenant(t, s, "kept", now)
	if err := s.AppendAudit(ctx, auditEv(AuditGlobal, "tenant.create", now)); err != nil {
		t.Fatal(err)
	}
	kept := footprint(t, s, "kept", keptSubs...)
	gone := footprint(t, s, "gone", goneSubs...)
	want := map[string]int{"events": 15, "deliveries": 10, "attempts": 4, "api_keys": 1, "deliveries_by_tenant": 10,
		"idempotency": 7, "audit": 5, "deliveries_by_sub": 10, "due": 6, "ordered": 3, "event_traces": 1}
	if fmt.Sprint(gone) != fmt.Sprint(want) {
		t.Fatalf("before: tenant holds %v, want %v", gone, want)
	}
	dueBefore, _ := s.DueDepth(time.Now().Add(2 * time.Hour))

	if err := s.DeleteTenant(ctx, "gone", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "gone"}, nil); !errors.Is(err, ErrTenantPurging) {
		t.Fatalf("create during the purge: %v, want ErrTenantPurging", err)
	}
	if err := s.DeleteTenant(ctx, "gone", time.Now(), nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	// A few small steps, then a restart.
	var total TenantPurgeStats
	for range 4 {
		st, done, err := s.PurgeTenantStep(ctx, "gone", 2)
		if err != nil || done {
			t.Fatalf("step: done %v, err %v; want more to do", done, err)
		}
		total.add(st)
	}
	if total.Deliveries != 8 {
		t.Fatalf("4 steps of 2 removed %d deliveries, want 8", total.Deliveries)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir)
	defer s.Close()
	if list, err := s.TenantPurges(); err != nil || fmt.Sprint(list) != "[gone]" {
		t.Fatalf("unfinished purges after restart: %v, %v; want [gone]", list, err)
	}
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "gone"}, nil); !errors.Is(err, ErrTenantPurging) {
		t.Fatalf("create after restart, purge unfinished: %v, want ErrTenantPurging", err)
	}
	st, done, err := s.PurgeTenant(ctx, "gone", 2)
	if err != nil || !done {
		t.Fatalf("purge: done %v, err %v", done, err)
	}
	total.add(st)
	if total.Deliveries != 10 || total.Events != 15 || total.Attempts != 4 || total.IdempotencyKeys != 0 || total.AuditEvents != 5 {
		t.Fatalf("purge removed %+v; want 10 deliveries, 15 events, 4 attempts, idempotency keys with their events, 5 audit events", total)
	}
	if left := footprint(t, s, "gone", goneSubs...); len(left) != 0 {
		t.Fatalf("after the purge the tenant still holds %v", left)
	}
	if got := footprint(t, s, "kept", keptSubs...); fmt.Sprint(got) != fmt.Sprint(kept) {
		t.Fatalf("the other tenant changed: %v, was %v", got, kept)
	}
	// The due counts in memory lost exactly the purged tenant's entries
	// (the reopen recounted them; the steps after it adjusted them).
	dueAfter, _ := s.DueDepth(time.Now().Add(2 * time.Hour))
	for _, sub := range goneSubs {
		if dueAfter[sub] != 0 {
			t.Errorf("due count of a purged subscription = %d, want 0", dueAfter[sub])
		}
	}
	for _, sub := range keptSubs {
		if dueAfter[sub] != dueBefore[sub] {
			t.Errorf("due count of the other tenant's subscription = %d, was %d", dueAfter[sub], dueBefore[sub])
		}
	}
	if global, _, err := s.ListAudit(AuditGlobal, false, AuditFilter{}, nil, 10, 100); err != nil || len(global) != 1 {
		t.Fatalf("global audit log: %d records, %v; want the one kept", len(global), err)
	}
	if list, err := s.TenantPurges(); err != nil || len(list) != 0 {
		t.Fatalf("unfinished purges: %v, %v; want none", list, err)
	}
	if err := s.CreateTenant(ctx, &hookwirev1.Tenant{Id: "gone"}, nil); err != nil {
		t.Fatalf("create after the purge: %v", err)
	}
	if _, done, err := s.PurgeTenant(ctx, "gone", 2); err != nil || !done {
		t.Fatalf("purging a tenant with no tombstone: done %v, err %v; want done at once", done, err)
	}
	if _, err := s.GetTenant("gone"); err != nil {
		t.Fatalf("the re-created tenant: %v", err)
	}
}

// TestTenantPurgeStepsAreSmall: no purge write removes more than its
// batch of deliveries, so API writes never wait behind a long one.
func TestTenantPurgeStepsAreSmall(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	fillTenant(t, s, "gone", time.Now())
	if err := s.DeleteTenant(ctx, "gone", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	steps := 0
	for {
		st, done, err := s.PurgeTenantStep(ctx, "gone", 3)
		if err != nil {
			t.Fatal(err)
		}
		if st.Deliveries > 3 || st.Events > 3 || st.AuditEvents > 3 || st.IdempotencyKeys > 3 {
			t.Fatalf("one step removed %+v, more than the batch of 3", st)
		}
		steps++
		if done {
			break
		}
		if steps > 100 {
			t.Fatal("the purge does not finish")
		}
	}
	// 10 deliveries in 4 steps, 15 events in 5, 5 audit events in 2, and
	// the last step removes the tombstone.
	if steps != 12 {
		t.Fatalf("purge took %d steps, want 12", steps)
	}
}
