package controlplane_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hookwire/hookwire/controlplane"
)

// TestGatewayEmptyListsAreArrays: over REST an empty repeated field is
// [], not a missing member, at the top level, inside nested messages and
// in error bodies; zero scalars are still left out.
func TestGatewayEmptyListsAreArrays(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	if body, code, _ := h.restFull(http.MethodPost, "/v1/tenants", `{"id":"quiet"}`); code != http.StatusOK {
		t.Fatalf("create tenant: %d %s", code, body)
	}

	body, code, _ := h.restFull(http.MethodGet, "/v1/tenants/quiet/subscriptions", "")
	if code != http.StatusOK || string(body) != `{"subscriptions":[]}` {
		t.Fatalf("list subscriptions of a tenant with none: %d %s, want 200 {\"subscriptions\":[]}", code, body)
	}

	// Nested: a subscription whose retry schedule has no delays lists
	// "delays": [] inside retry_policy.schedule; event_types stays as sent.
	body, code, _ = h.restFull(http.MethodPost, "/v1/tenants/quiet/subscriptions",
		`{"event_types":["order.*"],"target":{"transport":"http","config":{"url":"https://example.com/hook"}},"retry_policy":{"schedule":{}}}`)
	if code != http.StatusOK {
		t.Fatalf("create subscription: %d %s", code, body)
	}
	var sub struct {
		EventTypes  []string `json:"event_types"`
		RetryPolicy struct {
			Schedule map[string]json.RawMessage `json:"schedule"`
		} `json:"retry_policy"`
		Target struct {
			Config map[string]any `json:"config"`
		} `json:"target"`
	}
	if err := json.Unmarshal(body, &sub); err != nil {
		t.Fatalf("create subscription answer %s: %v", body, err)
	}
	if d := string(sub.RetryPolicy.Schedule["delays"]); d != "[]" || len(sub.EventTypes) != 1 || sub.Target.Config["url"] != "https://example.com/hook" {
		t.Errorf("create subscription answer %s: want retry_policy.schedule.delays [] and the sent event types and target", body)
	}
	if strings.Contains(string(body), `"ordered"`) || strings.Contains(string(body), `"disabled_reason"`) {
		t.Errorf("create subscription answer %s: zero scalars should stay out", body)
	}

	// The publish acknowledgement always has filter_errors.
	body, code, _ = h.restFull(http.MethodPost, "/v1/tenants/quiet/events", `{"type":"order.created","payload":{"n":1}}`)
	var ack map[string]json.RawMessage
	if err := json.Unmarshal(body, &ack); err != nil || code != http.StatusOK || string(ack["filter_errors"]) != "[]" {
		t.Errorf("publish: %d %s, want filter_errors []", code, body)
	}

	// Errors: the one shape {code, message, details}, details present.
	body, code, _ = h.restFull(http.MethodGet, "/v1/tenants/quiet/subscriptions/sub_01J0000000000000000000000Z", "")
	var e map[string]json.RawMessage
	if err := json.Unmarshal(body, &e); err != nil || code != http.StatusNotFound || string(e["details"]) != "[]" || e["code"] == nil || e["message"] == nil {
		t.Errorf("get a missing subscription: %d %s, want 404 with code, message and details []", code, body)
	}
}
