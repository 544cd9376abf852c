package controlplane_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hookwire/hookwire/controlplane"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

func withHeaders(h map[string]string) *hookwirev1.Subscription {
	t := isoTarget()
	t.Headers = h
	return &hookwirev1.Subscription{EventTypes: []string{"order.*"}, Target: t}
}

// TestSubscriptionHeadersReachTheAgent: custom headers are sent with every
// attempt, next to (never instead of) the signature headers.
func TestSubscriptionHeadersReachTheAgent(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	sub := h.subscribe(withHeaders(map[string]string{"X-Team": "billing", "Authorization": "Bearer target-token\twith tab"}))
	if got := sub.GetTarget().GetHeaders()["X-Team"]; got != "<redacted>" { // values are secrets (secrets_test.go)
		t.Fatalf("created subscription headers = %v", sub.GetTarget().GetHeaders())
	}
	h.publish("order.created", `{}`)
	a := h.next()
	hd := a.GetRequest().GetHeaders()
	if hd["x-team"] != "billing" || hd["authorization"] != "Bearer target-token\twith tab" {
		t.Fatalf("assignment headers = %v, want the custom ones", hd)
	}
	if hd["webhook-id"] != a.GetDeliveryId() || hd["webhook-signature"] == "" || hd["webhook-timestamp"] == "" {
		t.Fatalf("assignment headers = %v, want the signature headers too", hd)
	}

	// Changing only the headers takes effect for the next attempt.
	upd := withHeaders(map[string]string{"X-Team": "payments"})
	upd.Id = sub.GetId()
	if _, err := hookwirev1.NewSubscriptionServiceClient(h.conn).UpdateSubscription(h.ctx(), &hookwirev1.UpdateSubscriptionRequest{
		Tenant: "acme", Subscription: upd, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"target.headers"}},
	}); err != nil {
		t.Fatal(err)
	}
	h.publish("order.created", `{}`)
	if hd := h.next().GetRequest().GetHeaders(); hd["x-team"] != "payments" || hd["authorization"] != "" {
		t.Fatalf("after update: headers = %v", hd)
	}
}

// TestHostileSubscriptionAndEventInput: header injection, reserved headers,
// oversized maps and bad metadata are InvalidArgument with a message that
// says what to fix, over gRPC and REST.
func TestHostileSubscriptionAndEventInput(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	h.setup("acme")
	subs := hookwirev1.NewSubscriptionServiceClient(h.conn)
	events := hookwirev1.NewEventServiceClient(h.conn)

	many := map[string]string{}
	for i := range 33 {
		many[fmt.Sprintf("x-h%d", i)] = "v"
	}
	big := map[string]string{}
	for i := range 3 {
		big[fmt.Sprintf("x-big%d", i)] = strings.Repeat("v", 3000)
	}
	subCases := []struct {
		name    string
		headers map[string]string
		field   string // the BadRequest field, "" when the proto rules speak
		msg     string
	}{
		{"space in name", map[string]string{"X Team": "a"}, `subscription.target.headers["X Team"]`, "is not an HTTP token"},
		{"colon in name", map[string]string{"X-A:B": "a"}, `subscription.target.headers["X-A:B"]`, "is not an HTTP token"},
		{"CRLF in value", map[string]string{"X-A": "a\r\nX-Evil: 1"}, `subscription.target.headers["X-A"]`, "control character"},
		{"LF in value", map[string]string{"X-A": "a\nb"}, `subscription.target.headers["X-A"]`, "remove line breaks"},
		{"NUL in value", map[string]string{"X-A": "a\x00b"}, `subscription.target.headers["X-A"]`, "control character"},
		{"DEL in value", map[string]string{"X-A": "a\x7fb"}, `subscription.target.headers["X-A"]`, "control character"},
		{"signature header", map[string]string{"Webhook-Signature": "v1,forged"}, `subscription.target.headers["Webhook-Signature"]`, "set by Hookwire itself"},
		{"webhook-id", map[string]string{"WEBHOOK-ID": "x"}, `subscription.target.headers["WEBHOOK-ID"]`, "set by Hookwire itself"},
		{"timestamp", map[string]string{"webhook-timestamp": "1"}, `subscription.target.headers["webhook-timestamp"]`, "set by Hookwire itself"},
		{"content-type", map[string]string{"Content-Type": "text/plain"}, `subscription.target.headers["Content-Type"]`, "set by Hookwire itself"},
		{"content-length", map[string]string{"content-length": "0"}, `subscription.target.headers["content-length"]`, "set by Hookwire itself"},
		{"host", map[string]string{"Host": "internal"}, `subscription.target.headers["Host"]`, "set by Hookwire itself"},
		{"traceparent", map[string]string{"TraceParent": "00-x"}, `subscription.target.headers["TraceParent"]`, "set by Hookwire itself"},
		{"tracestate", map[string]string{"tracestate": "a=b"}, `subscription.target.headers["tracestate"]`, "set by Hookwire itself"},
		{"transfer-encoding", map[string]string{"Transfer-Encoding": "chunked"}, `subscription.target.headers["Transfer-Encoding"]`, "set by Hookwire itself"},
		{"connection", map[string]string{"Connection": "close"}, `subscription.target.headers["Connection"]`, "set by Hookwire itself"},
		{"too many", many, "", "subscription.target.headers: map must be at most 32 entries"},
		{"too large in all", big, "subscription.target.headers", "the limit is 8192 bytes"},
		{"value too long", map[string]string{"X-A": strings.Repeat("v", 4097)}, "", "4096"},
		{"name too long", map[string]string{strings.Repeat("x", 129): "v"}, "", "128"},
	}
	for _, tc := range subCases {
		_, err := subs.CreateSubscription(h.ctx(), &hookwirev1.CreateSubscriptionRequest{Tenant: "acme", Subscription: withHeaders(tc.headers)})
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tc.msg) {
			t.Errorf("%s: got %v %q, want InvalidArgument containing %q", tc.name, st.Code(), st.Message(), tc.msg)
			continue
		}
		if tc.field != "" && !hasFieldViolation(st, tc.field) {
			t.Errorf("%s: details %v do not name field %s", tc.name, st.Details(), tc.field)
		}
	}

	// The same checks guard updates.
	sub, err := subs.CreateSubscription(h.ctx(), &hookwirev1.CreateSubscriptionRequest{Tenant: "acme", Subscription: withHeaders(map[string]string{"X-Ok": "1"})})
	if err != nil {
		t.Fatal(err)
	}
	upd := withHeaders(map[string]string{"X-Ok": "1\r\nWebhook-Signature: v1,forged"})
	upd.Id = sub.GetId()
	_, err = subs.UpdateSubscription(h.ctx(), &hookwirev1.UpdateSubscriptionRequest{Tenant: "acme", Subscription: upd, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"target.headers"}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "control character") {
		t.Errorf("update with CRLF header: %v", err)
	}

	evCases := []struct {
		name string
		ev   *hookwirev1.Event
		msg  string
	}{
		{"metadata key with space", &hookwirev1.Event{Type: "order.created", Payload: []byte(`{}`), Metadata: map[string]string{"bad key": "v"}}, `event.metadata["bad key"]`},
		{"metadata value with LF", &hookwirev1.Event{Type: "order.created", Payload: []byte(`{}`), Metadata: map[string]string{"k": "a\nb"}}, `event.metadata["k"]: value has a control character`},
		{"type with space", &hookwirev1.Event{Type: "order created", Payload: []byte(`{}`)}, "event.type"},
		{"type with empty segment", &hookwirev1.Event{Type: "order..created", Payload: []byte(`{}`)}, "event.type"},
		{"type with wildcard", &hookwirev1.Event{Type: "order.*", Payload: []byte(`{}`)}, "event.type"},
		{"type too long", &hookwirev1.Event{Type: strings.Repeat("a", 129), Payload: []byte(`{}`)}, "event.type"},
	}
	for _, tc := range evCases {
		_, err := events.PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{Tenant: "acme", Event: tc.ev})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tc.msg) {
			t.Errorf("%s: got %v %q, want InvalidArgument containing %q", tc.name, st.Code(), st.Message(), tc.msg)
		}
	}
	// In a batch the message names the event.
	_, err = events.PublishEvents(h.ctx(), &hookwirev1.PublishEventsRequest{Tenant: "acme", Events: []*hookwirev1.Event{
		{Type: "order.created", Payload: []byte(`{}`)},
		{Type: "order.created", Payload: []byte(`{}`), Metadata: map[string]string{"k": "\x00"}},
	}})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), `events[1].metadata["k"]`) {
		t.Errorf("batch with a NUL in metadata: %v", err)
	}

	// REST: 400 with the same message.
	var body struct {
		Message string `json:"message"`
	}
	code := h.rest("POST", "/v1/tenants/acme/subscriptions", adminKey, "application/json",
		[]byte(`{"event_types":["order.*"],"target":{"transport":"http","config":{"url":"http://127.0.0.1:1/"},"headers":{"X-A":"x\r\nWebhook-Id: forged"}}}`), &body)
	if code != http.StatusBadRequest || !strings.Contains(body.Message, `subscription.target.headers["X-A"]`) || !strings.Contains(body.Message, "control character") {
		t.Errorf("REST CRLF header: HTTP %d %q", code, body.Message)
	}
	code = h.rest("POST", "/v1/tenants/acme/events", adminKey, "application/json", []byte(`{"type":"order.created","payload":{},"metadata":{"k":"a\u0000b"}}`), &body)
	if code != http.StatusBadRequest || !strings.Contains(body.Message, "control character") {
		t.Errorf("REST NUL in metadata: HTTP %d %q", code, body.Message)
	}
}

func hasFieldViolation(st *status.Status, field string) bool {
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return true
				}
			}
		}
	}
	return false
}
