package controlplane_test

import (
	"strings"
	"testing"

	"github.com/hookwire/hookwire/controlplane"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Listing in a tenant that does not exist is NotFound / 404 (with the
// message a caller from another tenant gets), not an empty 200: a typo in
// a tenant id must not look like "nothing there".
func TestListsInAnUnknownTenantAreNotFound(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	for _, path := range []string{"subscriptions", "deliveries", "events", "api-keys", "audit-events"} {
		body, code, _ := h.restFull("GET", "/v1/tenants/nope/"+path, "")
		if code != 404 || !strings.Contains(string(body), `tenant \"nope\" not found`) {
			t.Errorf("GET /v1/tenants/nope/%s: %d %s, want 404 tenant \"nope\" not found", path, code, body)
		}
	}
	_, err := hookwirev1.NewSubscriptionServiceClient(h.conn).ListSubscriptions(h.ctx(), &hookwirev1.ListSubscriptionsRequest{Tenant: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("gRPC ListSubscriptions in an unknown tenant: %v, want NotFound", err)
	}
	_, err = hookwirev1.NewDeliveryServiceClient(h.conn).ListDeliveries(h.ctx(), &hookwirev1.ListDeliveriesRequest{Tenant: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("gRPC ListDeliveries in an unknown tenant: %v, want NotFound", err)
	}
	_, err = hookwirev1.NewEventServiceClient(h.conn).ListEvents(h.ctx(), &hookwirev1.ListEventsRequest{Tenant: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("gRPC ListEvents in an unknown tenant: %v, want NotFound", err)
	}
	// A tenant that exists still lists (empty).
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "acme"}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"subscriptions", "deliveries", "events", "api-keys", "audit-events"} {
		if body, code, _ := h.restFull("GET", "/v1/tenants/acme/"+path, ""); code != 200 {
			t.Errorf("GET /v1/tenants/acme/%s: %d %s", path, code, body)
		}
	}
}
