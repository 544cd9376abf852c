package api

import (
	"testing"

	"github.com/hookwire/hookwire/controlplane/internal/store"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
)

func TestTenantServiceLifecycleIsAudited(t *testing.T) {
	s := newTestServices(t)
	admin := asAdmin(t.Context())
	created, err := s.tenants.CreateTenant(admin, &hookwirev1.CreateTenantRequest{Id: "acme", DisplayName: "Acme Inc."})
	if err != nil {
		t.Fatal(err)
	}
	if created.GetCreateTime() == nil {
		t.Error("created tenant has no create_time")
	}
	ev := lastAudit(t, s, auditTenantCreate)
	if ev.GetTenant() != store.AuditGlobal || ev.GetResource() != "tenants/acme" || ev.GetActor().GetApiKeyId() != AdminKeyID {
		t.Errorf("audit record %v: want global scope, resource tenants/acme, actor %s", ev, AdminKeyID)
	}
	if got := snapshotField(ev.GetAfter(), "display_name").GetStringValue(); got != "Acme Inc." {
		t.Errorf("audit after-image display_name = %q", got)
	}

	got, err := s.tenants.GetTenant(admin, &hookwirev1.GetTenantRequest{Id: "acme"})
	if err != nil || got.GetDisplayName() != "Acme Inc." {
		t.Fatalf("GetTenant = %v, %v", got, err)
	}
	_, err = s.tenants.CreateTenant(admin, &hookwirev1.CreateTenantRequest{Id: "acme"})
	wantCode(t, err, codes.AlreadyExists, `tenant "acme" already exists`)

	if _, err := s.tenants.DeleteTenant(admin, &hookwirev1.DeleteTenantRequest{Id: "acme"}); err != nil {
		t.Fatal(err)
	}
	ev = lastAudit(t, s, auditTenantDelete)
	if snapshotField(ev.GetBefore(), "id").GetStringValue() != "acme" || ev.GetAfter() != nil {
		t.Errorf("delete audit record: before %v, after %v; want the deleted tenant before and nothing after", ev.GetBefore(), ev.GetAfter())
	}
	_, err = s.tenants.GetTenant(admin, &hookwirev1.GetTenantRequest{Id: "acme"})
	wantCode(t, err, codes.NotFound, `tenant "acme" not found`)
	// Nothing purges here (RunTenantPurges is not running): the id stays
	// taken until its records are gone, and the answer says so.
	_, err = s.tenants.CreateTenant(admin, &hookwirev1.CreateTenantRequest{Id: "acme"})
	wantCode(t, err, codes.FailedPrecondition, "deletion is still in progress", "retry the create later")
	_, err = s.tenants.DeleteTenant(admin, &hookwirev1.DeleteTenantRequest{Id: "acme"})
	wantCode(t, err, codes.NotFound, `tenant "acme" not found`)
}

func TestTenantServiceListPages(t *testing.T) {
	s := newTestServices(t)
	for _, id := range []string{"c", "a", "b"} {
		mustTenant(t, s, id)
	}
	admin := asAdmin(t.Context())
	first, err := s.tenants.ListTenants(admin, &hookwirev1.ListTenantsRequest{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.GetTenants()) != 2 || first.GetTenants()[0].GetId() != "a" || first.GetNextPageToken() != "b" {
		t.Fatalf("first page %v, next %q; want a, b and a next page token", first.GetTenants(), first.GetNextPageToken())
	}
	second, err := s.tenants.ListTenants(admin, &hookwirev1.ListTenantsRequest{PageSize: 2, PageToken: first.GetNextPageToken()})
	if err != nil {
		t.Fatal(err)
	}
	if len(second.GetTenants()) != 1 || second.GetTenants()[0].GetId() != "c" || second.GetNextPageToken() != "" {
		t.Fatalf("second page %v, next %q; want c and no further page", second.GetTenants(), second.GetNextPageToken())
	}
}

func TestTenantServiceAccess(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	mustTenant(t, s, "globex")
	acme := asTenant(t.Context(), "acme", scopeTenantAdmin)

	_, err := s.tenants.CreateTenant(acme, &hookwirev1.CreateTenantRequest{Id: "new"})
	wantCode(t, err, codes.PermissionDenied, "needs the admin key")
	_, err = s.tenants.ListTenants(acme, &hookwirev1.ListTenantsRequest{})
	wantCode(t, err, codes.PermissionDenied, "needs the admin key")
	_, err = s.tenants.DeleteTenant(acme, &hookwirev1.DeleteTenantRequest{Id: "acme"})
	wantCode(t, err, codes.PermissionDenied, "needs the admin key")

	if _, err := s.tenants.GetTenant(asTenant(t.Context(), "acme", scopeReadOnly), &hookwirev1.GetTenantRequest{Id: "acme"}); err != nil {
		t.Errorf("a read-only key cannot read its own tenant: %v", err)
	}
	// Another tenant answers exactly as a missing one.
	_, err = s.tenants.GetTenant(acme, &hookwirev1.GetTenantRequest{Id: "globex"})
	wantCode(t, err, codes.NotFound, `tenant "globex" not found`)
	_, err = s.tenants.GetTenant(t.Context(), &hookwirev1.GetTenantRequest{Id: "acme"})
	wantCode(t, err, codes.Unauthenticated, "missing API key")

	if n := len(auditRecords(t, s)); n != 2 {
		t.Errorf("%d audit records; want the 2 creates (refused calls change nothing)", n)
	}
}
