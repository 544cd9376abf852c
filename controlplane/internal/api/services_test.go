package api

// The harness of the service types' unit tests: a Services on a real,
// unreplicated store in a temporary directory, a catalog and a keyring,
// and no dispatcher (this server does not lead) unless a test installs
// one. Tests call the service methods directly, as the gRPC server would
// after authentication, with the caller put in the context.

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/filter"
	"github.com/hookwire/hookwire/controlplane/internal/secrets"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// newTestServices returns Services on a fresh store; adjust, if given,
// changes the configuration first. Everything is closed when t ends.
func newTestServices(t *testing.T, adjust ...func(*Config)) *Services {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	raw := make([]byte, secrets.KeySize)
	_, _ = rand.Read(raw)
	master, err := secrets.NewMasterKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := secrets.NewKeyring(master)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Store: st, Catalog: catalog.New(filter.Limits{MaxPayloadBytes: 1 << 20}), Keyring: ring}
	for _, f := range adjust {
		f(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// asAdmin is ctx with the admin key as the caller.
func asAdmin(ctx context.Context) context.Context {
	return withPrincipal(ctx, &principal{keyID: AdminKeyID, scope: hookwirev1.ApiKeyScope_API_KEY_SCOPE_ADMIN})
}

// asTenant is ctx with a key of tenant with scope as the caller.
func asTenant(ctx context.Context, tenant string, scope hookwirev1.ApiKeyScope) context.Context {
	return withPrincipal(ctx, &principal{keyID: "hwk_test" + tenant, tenant: tenant, scope: scope})
}

const (
	scopeTenantAdmin = hookwirev1.ApiKeyScope_API_KEY_SCOPE_TENANT_ADMIN
	scopeReadOnly    = hookwirev1.ApiKeyScope_API_KEY_SCOPE_READ_ONLY
	scopePublish     = hookwirev1.ApiKeyScope_API_KEY_SCOPE_PUBLISH
)

// mustTenant creates tenant as the admin.
func mustTenant(t *testing.T, s *Services, tenant string) {
	t.Helper()
	if _, err := s.tenants.CreateTenant(asAdmin(t.Context()), &hookwirev1.CreateTenantRequest{Id: tenant}); err != nil {
		t.Fatalf("create tenant %q: %v", tenant, err)
	}
}

// httpSubscription is a subscription to eventTypes delivered over HTTP.
func httpSubscription(t *testing.T, eventTypes ...string) *hookwirev1.Subscription {
	t.Helper()
	config, err := structpb.NewStruct(map[string]any{"url": "https://receiver.example/hooks"})
	if err != nil {
		t.Fatal(err)
	}
	return &hookwirev1.Subscription{EventTypes: eventTypes, Target: &hookwirev1.Target{Transport: "http", Config: config}}
}

// mustSubscription creates sub in tenant as the tenant's admin key.
func mustSubscription(t *testing.T, s *Services, tenant string, sub *hookwirev1.Subscription) *hookwirev1.Subscription {
	t.Helper()
	out, err := s.subscriptions.CreateSubscription(asTenant(t.Context(), tenant, scopeTenantAdmin),
		&hookwirev1.CreateSubscriptionRequest{Tenant: tenant, Subscription: sub})
	if err != nil {
		t.Fatalf("create subscription: %v", err)
	}
	return out
}

// wantCode fails t unless err is a status with code and a message that
// contains every one of parts.
func wantCode(t *testing.T, err error, code codes.Code, parts ...string) {
	t.Helper()
	st, _ := status.FromError(err)
	if err == nil || st.Code() != code {
		t.Fatalf("got %v, want code %v", err, code)
	}
	for _, p := range parts {
		if !strings.Contains(st.Message(), p) {
			t.Errorf("message %q lacks %q", st.Message(), p)
		}
	}
}

// auditRecords returns every audit record (of every tenant and global),
// oldest first.
func auditRecords(t *testing.T, s *Services) []*hookwirev1.AuditEvent {
	t.Helper()
	list, _, err := s.cfg.Store.ListAudit(store.AuditGlobal, true, store.AuditFilter{}, nil, 1000, auditScan)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
		list[i], list[j] = list[j], list[i]
	}
	return list
}

// lastAudit returns the newest audit record, which must have action.
func lastAudit(t *testing.T, s *Services, action string) *hookwirev1.AuditEvent {
	t.Helper()
	list := auditRecords(t, s)
	if len(list) == 0 {
		t.Fatalf("no audit records; want %s", action)
	}
	ev := list[len(list)-1]
	if ev.GetAction() != action {
		t.Fatalf("newest audit record is %s on %s; want %s", ev.GetAction(), ev.GetResource(), action)
	}
	return ev
}

// snapshotField is a top-level field of an audit snapshot, or nil.
func snapshotField(s *structpb.Struct, name string) *structpb.Value {
	return s.GetFields()[name]
}

// testStream is the server side of a streaming call: its context, and
// what the handler sent.
type testStream[T any] struct {
	grpc.ServerStream
	ctx  context.Context
	sent []T
}

func (s *testStream[T]) Context() context.Context { return s.ctx }
func (s *testStream[T]) Send(m T) error {
	s.sent = append(s.sent, m)
	return nil
}
