package api

import (
	"context"
	"strings"
	"testing"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// authenticateKey is what the server's interceptor makes of a call that
// sends key.
func authenticateKey(s *Services, key string) (context.Context, error) {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+key))
	return s.auth.authenticate(ctx, "/hookwire.v1.TenantService/GetTenant")
}

func TestApiKeyServiceCreateShowsTheKeyOnce(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	ctx := asTenant(t.Context(), "acme", scopeTenantAdmin)
	k, err := s.apiKeys.CreateApiKey(ctx, &hookwirev1.CreateApiKeyRequest{Tenant: "acme", Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.GetKey(), k.GetId()+"_") || k.GetScope() != scopeTenantAdmin {
		t.Fatalf("created key %v: want the key value after its id, and the tenant-admin scope by default", k)
	}
	// The key works, as a key of its tenant.
	authed, err := authenticateKey(s, k.GetKey())
	if err != nil {
		t.Fatalf("the new key does not authenticate: %v", err)
	}
	if p := principalFrom(authed); p.tenant != "acme" || p.keyID != k.GetId() {
		t.Errorf("the key authenticates as %+v", p)
	}

	list, err := s.apiKeys.ListApiKeys(ctx, &hookwirev1.ListApiKeysRequest{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetApiKeys()) != 1 || list.GetApiKeys()[0].GetId() != k.GetId() || list.GetApiKeys()[0].GetKey() != "" {
		t.Fatalf("list %v: want the one key, without its value", list.GetApiKeys())
	}
	ev := lastAudit(t, s, auditAPIKeyCreate)
	if ev.GetResource() != "tenants/acme/api-keys/"+k.GetId() || ev.GetTenant() != "acme" {
		t.Errorf("audit record on %s of tenant %q", ev.GetResource(), ev.GetTenant())
	}
	if snapshotField(ev.GetAfter(), "key") != nil || strings.Contains(ev.String(), k.GetKey()) {
		t.Errorf("the audit record shows the key: %v", ev.GetAfter())
	}
}

func TestApiKeyServiceRevoke(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	mustTenant(t, s, "globex")
	acme := asTenant(t.Context(), "acme", scopeTenantAdmin)
	k, err := s.apiKeys.CreateApiKey(acme, &hookwirev1.CreateApiKeyRequest{Tenant: "acme", Scope: scopePublish})
	if err != nil {
		t.Fatal(err)
	}
	// Another tenant's admin cannot name it, even by its id in its own
	// tenant.
	globex := asTenant(t.Context(), "globex", scopeTenantAdmin)
	_, err = s.apiKeys.RevokeApiKey(globex, &hookwirev1.RevokeApiKeyRequest{Tenant: "globex", Id: k.GetId()})
	wantCode(t, err, codes.NotFound, "API key", k.GetId(), "not found")

	if _, err := s.apiKeys.RevokeApiKey(acme, &hookwirev1.RevokeApiKeyRequest{Tenant: "acme", Id: k.GetId()}); err != nil {
		t.Fatal(err)
	}
	_, err = authenticateKey(s, k.GetKey())
	wantCode(t, err, codes.Unauthenticated, "revoked")
	ev := lastAudit(t, s, auditAPIKeyRevoke)
	if snapshotField(ev.GetBefore(), "revoked").GetBoolValue() || !snapshotField(ev.GetAfter(), "revoked").GetBoolValue() {
		t.Errorf("revoke audit record: before %v, after %v", ev.GetBefore(), ev.GetAfter())
	}
}

func TestApiKeyServiceRefusals(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	acme := asTenant(t.Context(), "acme", scopeTenantAdmin)

	_, err := s.apiKeys.CreateApiKey(acme, &hookwirev1.CreateApiKeyRequest{Tenant: "acme", ExpireTime: timestamppb.New(time.Now().Add(-time.Minute))})
	wantCode(t, err, codes.InvalidArgument, "expire_time is in the past")
	_, err = s.apiKeys.CreateApiKey(asTenant(t.Context(), "acme", scopeReadOnly), &hookwirev1.CreateApiKeyRequest{Tenant: "acme"})
	wantCode(t, err, codes.PermissionDenied, "read-only")
	_, err = s.apiKeys.CreateApiKey(asAdmin(t.Context()), &hookwirev1.CreateApiKeyRequest{Tenant: "nope"})
	wantCode(t, err, codes.NotFound, `tenant "nope" not found`)
	// Listing an unknown tenant is NotFound too, not an empty list.
	_, err = s.apiKeys.ListApiKeys(asAdmin(t.Context()), &hookwirev1.ListApiKeysRequest{Tenant: "nope"})
	wantCode(t, err, codes.NotFound, `tenant "nope" not found`)
	_, err = s.apiKeys.RevokeApiKey(acme, &hookwirev1.RevokeApiKeyRequest{Tenant: "acme", Id: "hwk_missing"})
	wantCode(t, err, codes.NotFound, `API key "hwk_missing" not found`)

	// A key that expires stops working then.
	soon := time.Now().Add(time.Hour)
	k, err := s.apiKeys.CreateApiKey(acme, &hookwirev1.CreateApiKeyRequest{Tenant: "acme", ExpireTime: timestamppb.New(soon)})
	if err != nil {
		t.Fatal(err)
	}
	s.auth.now = func() time.Time { return soon }
	_, err = authenticateKey(s, k.GetKey())
	wantCode(t, err, codes.Unauthenticated, "expired")
}
