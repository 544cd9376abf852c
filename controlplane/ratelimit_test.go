package controlplane_test

import (
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestAPIRateLimitPerKey(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{APIRateLimit: 1, APIRateBurst: 2})
	tenants := hookwirev1.NewTenantServiceClient(h.conn)
	get := func() (metadata.MD, error) {
		var hdr metadata.MD
		_, err := tenants.GetTenant(h.ctx(), &hookwirev1.GetTenantRequest{Id: "acme"}, grpc.Header(&hdr))
		return hdr, err
	}
	// startDelivery already spent one call (CreateTenant); the burst is 2.
	if _, err := get(); err != nil {
		t.Fatal(err)
	}
	hdr, err := get()
	if status.Code(err) != codes.ResourceExhausted || hdr.Get("retry-after")[0] != "1" {
		t.Fatalf("over the limit: %v, retry-after %v", err, hdr.Get("retry-after"))
	}
	// Over REST: 429 with Retry-After.
	_, code, header := h.restFull("GET", "/v1/tenants/acme", "")
	if code != 429 || header.Get("Retry-After") != "1" {
		t.Fatalf("REST over the limit: HTTP %d Retry-After %q", code, header.Get("Retry-After"))
	}
	// Every method counts against the same key.
	if _, err := hookwirev1.NewApiKeyServiceClient(h.conn).CreateApiKey(h.ctx(), &hookwirev1.CreateApiKeyRequest{Tenant: "acme"}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("another method under the same key: %v", err)
	}
	h.clock.advance(2 * time.Second) // two tokens back
	if _, err := get(); err != nil {
		t.Fatalf("after waiting: %v", err)
	}
	k, err := hookwirev1.NewApiKeyServiceClient(h.conn).CreateApiKey(h.ctx(), &hookwirev1.CreateApiKeyRequest{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	// The admin key is spent again, but a new key has its own full bucket.
	if _, err := get(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("admin key after spending its tokens: %v", err)
	}
	for range 2 {
		if _, err := tenants.GetTenant(authedCtx(t, k.GetKey()), &hookwirev1.GetTenantRequest{Id: "acme"}); err != nil {
			t.Fatalf("a fresh key's burst: %v", err)
		}
	}
}
