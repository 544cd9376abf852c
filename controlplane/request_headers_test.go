package controlplane_test

import (
	"strings"
	"testing"

	"github.com/hookwire/hookwire/controlplane"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestAttemptRecordsItsRequestHeaders: an attempt's record shows the
// headers the control plane prepared for it — the Standard Webhooks
// headers exactly as the agent was told to send them, and content-type —
// while the subscription's own headers, which often carry credentials,
// appear by name only, over gRPC and REST.
func TestAttemptRecordsItsRequestHeaders(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "acme"}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := structpb.NewStruct(map[string]any{"url": "http://127.0.0.1:1/hook"})
	const credential = "Bearer s3cret-receiver-credential"
	if _, err := hookwirev1.NewSubscriptionServiceClient(h.conn).CreateSubscription(h.ctx(), &hookwirev1.CreateSubscriptionRequest{
		Tenant: "acme",
		Subscription: &hookwirev1.Subscription{
			EventTypes: []string{"order.*"},
			Target:     &hookwirev1.Target{Transport: "http", Config: cfg, Headers: map[string]string{"Authorization": credential, "X-Team": "billing"}},
		},
	}); err != nil {
		t.Fatal(err)
	}
	agent, _ := h.connectAgent("edge-1", 1)
	id := h.publishOne("acme", "order.created")
	a := agent.assignments(t, 1)[0]
	sent := a.GetRequest().GetHeaders()
	if acks := agent.report(t, ok(a)); len(acks) != 1 || !acks[0].GetAccepted() {
		t.Fatalf("acks %v", acks)
	}

	resp, err := hookwirev1.NewDeliveryServiceClient(h.conn).ListAttempts(h.ctx(), &hookwirev1.ListAttemptsRequest{Tenant: "acme", DeliveryId: id})
	if err != nil || len(resp.GetAttempts()) != 1 {
		t.Fatalf("ListAttempts: %v, %v", resp, err)
	}
	got := resp.GetAttempts()[0].GetRequestHeaders()
	want := map[string]string{
		"webhook-id":        id,
		"webhook-timestamp": sent["webhook-timestamp"],
		"webhook-signature": sent["webhook-signature"],
		"content-type":      "application/json",
		"authorization":     "<redacted>",
		"x-team":            "<redacted>",
	}
	if sent["webhook-signature"] == "" || sent["authorization"] != credential {
		t.Fatalf("the assignment's headers %v: want the signature and the subscription's own headers", sent)
	}
	if len(got) != len(want) {
		t.Errorf("recorded request headers %v; want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("recorded %s = %q; want %q", k, got[k], v)
		}
	}
	body, code := h.restRaw("GET", "/v1/tenants/acme/deliveries/"+id+"/attempts", "", nil)
	if code != 200 || !strings.Contains(string(body), `"webhook-signature":"`+sent["webhook-signature"]+`"`) || strings.Contains(string(body), "s3cret") {
		t.Errorf("REST attempts: %d %s; want the signature shown and the credential nowhere", code, body)
	}
}
