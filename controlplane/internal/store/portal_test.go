package store

import (
	"context"
	"errors"
	"testing"
	"time"

	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestPortalRecordsGoWithTheirTenant: deleting a tenant deletes its event
// types, portal settings and portal sessions, and nobody else's; expired
// sessions are purged.
func TestPortalRecordsGoWithTheirTenant(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	now := time.Now()
	for _, tenant := range []string{"acme", "beta"} {
		if err := s.CreateTenant(ctx, tenantNamed(tenant), nil); err != nil {
			t.Fatal(err)
		}
		if err := s.PutEventType(ctx, &hookwirev1.EventType{Tenant: tenant, Name: "order.created"}, true, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.PutPortalSettings(ctx, &hookwirev1.PortalSettings{Tenant: tenant, PrimaryColor: "#000000"}, nil); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"hwp_" + tenant + "_live", "hwp_" + tenant + "_old"} {
			exp := now.Add(time.Hour)
			if id == "hwp_"+tenant+"_old" {
				exp = now.Add(-2 * time.Hour)
			}
			rec := &storev1.PortalSessionRecord{Session: &hookwirev1.PortalSession{Id: id, Tenant: tenant, ExpireTime: timestamppb.New(exp)}, Hash: []byte("h")}
			if err := s.PutPortalSession(ctx, rec, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.PutEventType(ctx, &hookwirev1.EventType{Tenant: "nobody", Name: "x"}, true, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("event type of a missing tenant: %v, want ErrNotFound", err)
	}
	if n, err := s.PurgePortalSessions(ctx, now.Add(-time.Hour), 1); err != nil || n != 2 {
		t.Fatalf("purge expired sessions: %d %v, want the 2 expired ones", n, err)
	}
	if _, err := s.GetPortalSession("hwp_acme_old"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an expired session survived the purge: %v", err)
	}
	if err := s.DeleteTenant(ctx, "acme", now, nil); err != nil {
		t.Fatal(err)
	}
	if list, err := s.ListEventTypes("acme"); err != nil || len(list) != 0 {
		t.Errorf("acme's event types after its deletion: %v %v", list, err)
	}
	if _, err := s.GetPortalSettings("acme"); !errors.Is(err, ErrNotFound) {
		t.Errorf("acme's portal settings after its deletion: %v", err)
	}
	if _, err := s.GetPortalSession("hwp_acme_live"); !errors.Is(err, ErrNotFound) {
		t.Errorf("acme's portal session after its deletion: %v (its token would still work)", err)
	}
	if list, _ := s.ListEventTypes("beta"); len(list) != 1 {
		t.Errorf("beta's event types: %v", list)
	}
	if _, err := s.GetPortalSession("hwp_beta_live"); err != nil {
		t.Errorf("beta's session: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if rep := mustCheck(t, dir); !rep.OK() {
		t.Errorf("store check of the portal buckets: %v", rep.Problems)
	}
}
