package api

import (
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/store"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestAuditServiceListsByScopeAndAction(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	mustTenant(t, s, "globex")
	sub := mustSubscription(t, s, "acme", httpSubscription(t, "order.*"))
	mustSubscription(t, s, "globex", httpSubscription(t, "order.*"))
	acme := asTenant(t.Context(), "acme", scopeReadOnly)
	if _, err := s.subscriptions.PauseSubscription(asTenant(t.Context(), "acme", scopeTenantAdmin),
		&hookwirev1.PauseSubscriptionRequest{Tenant: "acme", Id: sub.GetId()}); err != nil {
		t.Fatal(err)
	}

	actions := func(resp *hookwirev1.ListAuditEventsResponse) []string {
		var out []string
		for _, ev := range resp.GetAuditEvents() {
			out = append(out, ev.GetAction())
		}
		return out
	}
	own, err := s.audit.ListAuditEvents(acme, &hookwirev1.ListAuditEventsRequest{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(own); len(got) != 2 || got[0] != auditSubscriptionPause || got[1] != auditSubscriptionCreate {
		t.Errorf("acme's audit log %v; want its pause and create, newest first (not globex's, nor the global tenant creates)", got)
	}
	subs, err := s.audit.ListAuditEvents(acme, &hookwirev1.ListAuditEventsRequest{Tenant: "acme", Action: "subscription.create"})
	if err != nil || len(subs.GetAuditEvents()) != 1 {
		t.Errorf("acme's subscription.create records: %v, %v", actions(subs), err)
	}
	all, err := s.audit.ListAuditEvents(asAdmin(t.Context()), &hookwirev1.ListAuditEventsRequest{Tenant: store.AuditGlobal, Action: "tenant.*"})
	if err != nil || len(all.GetAuditEvents()) != 2 {
		t.Errorf("every tenant.* record: %v, %v; want the two creates", actions(all), err)
	}
	page, err := s.audit.ListAuditEvents(asAdmin(t.Context()), &hookwirev1.ListAuditEventsRequest{Tenant: store.AuditGlobal, PageSize: 4})
	if err != nil || len(page.GetAuditEvents()) != 4 || page.GetNextPageToken() == "" {
		t.Fatalf("first page of 4: %v, %v", actions(page), err)
	}
	rest, err := s.audit.ListAuditEvents(asAdmin(t.Context()), &hookwirev1.ListAuditEventsRequest{Tenant: store.AuditGlobal, PageToken: page.GetNextPageToken()})
	if err != nil || len(rest.GetAuditEvents()) != 1 || rest.GetNextPageToken() != "" {
		t.Errorf("second page: %v, %v; want the fifth and last record", actions(rest), err)
	}
}

func TestAuditServiceRefusals(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	acme := asTenant(t.Context(), "acme", scopeTenantAdmin)
	list := func(req *hookwirev1.ListAuditEventsRequest) error {
		_, err := s.audit.ListAuditEvents(acme, req)
		return err
	}
	wantCode(t, list(&hookwirev1.ListAuditEventsRequest{Tenant: store.AuditGlobal}), codes.PermissionDenied, "needs the admin key")
	wantCode(t, list(&hookwirev1.ListAuditEventsRequest{Tenant: "globex"}), codes.NotFound, `tenant "globex" not found`)
	wantCode(t, list(&hookwirev1.ListAuditEventsRequest{Tenant: "acme", Action: "*.create"}), codes.InvalidArgument, `"subscription.*"`)
	now := time.Now()
	wantCode(t, list(&hookwirev1.ListAuditEventsRequest{Tenant: "acme", StartTime: timestamppb.New(now), EndTime: timestamppb.New(now.Add(-time.Second))}),
		codes.InvalidArgument, "start_time must be before end_time")
	wantCode(t, list(&hookwirev1.ListAuditEventsRequest{Tenant: "acme", PageToken: "nonsense"}), codes.InvalidArgument, "page_token")
	_, err := s.audit.ListAuditEvents(asAdmin(t.Context()), &hookwirev1.ListAuditEventsRequest{Tenant: "gone"})
	wantCode(t, err, codes.NotFound, `tenant "-"`)
}
