package controlplane_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	"github.com/hookwire/hookwire/controlplane/signing"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// auditAll lists every audit event of tenant with key, page by page.
func auditAll(t *testing.T, h *harness, key string, req *hookwirev1.ListAuditEventsRequest) []*hookwirev1.AuditEvent {
	t.Helper()
	client := hookwirev1.NewAuditServiceClient(h.conn)
	var out []*hookwirev1.AuditEvent
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("pagination does not end")
		}
		resp, err := client.ListAuditEvents(authedCtx(t, key), req)
		if err != nil {
			t.Fatalf("ListAuditEvents(%v): %v", req, err)
		}
		out = append(out, resp.GetAuditEvents()...)
		if resp.GetNextPageToken() == "" {
			return out
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

func actions(list []*hookwirev1.AuditEvent) []string {
	out := make([]string, len(list))
	for i, ev := range list {
		out[i] = ev.GetAction()
	}
	return out
}

func findAudit(t *testing.T, list []*hookwirev1.AuditEvent, action, resource string) *hookwirev1.AuditEvent {
	t.Helper()
	for _, ev := range list {
		if ev.GetAction() == action && (resource == "" || ev.GetResource() == resource) {
			return ev
		}
	}
	t.Fatalf("no %s audit event on %q in %v", action, resource, actions(list))
	return nil
}

func TestAuditLogRecordsConfigurationChanges(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	ctx := h.ctx()
	keysClient := hookwirev1.NewApiKeyServiceClient(h.conn)
	newKey := func(tenant string, scope hookwirev1.ApiKeyScope) *hookwirev1.ApiKey {
		t.Helper()
		k, err := keysClient.CreateApiKey(ctx, &hookwirev1.CreateApiKeyRequest{Tenant: tenant, Name: "k", Scope: scope})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(ctx, &hookwirev1.CreateTenantRequest{Id: "other"}); err != nil {
		t.Fatal(err)
	}
	tenantAdmin := newKey("acme", hookwirev1.ApiKeyScope_API_KEY_SCOPE_TENANT_ADMIN)
	readOnly := newKey("acme", hookwirev1.ApiKeyScope_API_KEY_SCOPE_READ_ONLY)
	publishOnly := newKey("acme", hookwirev1.ApiKeyScope_API_KEY_SCOPE_PUBLISH)
	otherAdmin := newKey("other", hookwirev1.ApiKeyScope_API_KEY_SCOPE_TENANT_ADMIN)
	secretsSeen := []string{tenantAdmin.GetKey(), readOnly.GetKey(), publishOnly.GetKey(), otherAdmin.GetKey()}

	// Configuration changes made with the tenant-admin key.
	tctx := authedCtx(t, tenantAdmin.GetKey())
	subs := hookwirev1.NewSubscriptionServiceClient(h.conn)
	sub := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, Description: "first"})
	secretsSeen = append(secretsSeen, sub.GetSigningSecret())
	upd := &hookwirev1.Subscription{Id: sub.GetId(), Description: "second", EventTypes: sub.GetEventTypes(), Target: sub.GetTarget()}
	if _, err := subs.UpdateSubscription(tctx, &hookwirev1.UpdateSubscriptionRequest{Tenant: "acme", Subscription: upd, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := subs.PauseSubscription(tctx, &hookwirev1.PauseSubscriptionRequest{Tenant: "acme", Id: sub.GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := subs.ResumeSubscription(tctx, &hookwirev1.ResumeSubscriptionRequest{Tenant: "acme", Id: sub.GetId()}); err != nil {
		t.Fatal(err)
	}
	rot, err := subs.RotateSubscriptionSecret(tctx, &hookwirev1.RotateSubscriptionSecretRequest{Tenant: "acme", Id: sub.GetId(), Overlap: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	secretsSeen = append(secretsSeen, rot.GetSubscription().GetSigningSecret())
	doomed := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"doomed.*"}})
	secretsSeen = append(secretsSeen, doomed.GetSigningSecret())
	if _, err := subs.DeleteSubscription(tctx, &hookwirev1.DeleteSubscriptionRequest{Tenant: "acme", Id: doomed.GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := keysClient.RevokeApiKey(tctx, &hookwirev1.RevokeApiKeyRequest{Tenant: "acme", Id: otherAdmin.GetId()}); status.Code(err) != codes.NotFound {
		t.Fatalf("revoke another tenant's key: %v", err)
	}

	// Operator actions on deliveries of a subscription no agent may take,
	// so they stay put.
	deliveries := hookwirev1.NewDeliveryServiceClient(h.conn)
	held := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"held.*"}, AgentSelector: "region=nowhere"})
	secretsSeen = append(secretsSeen, held.GetSigningSecret())
	pub := h.publish("held.created", `{"n":1}`)
	dl, err := deliveries.ListDeliveries(tctx, &hookwirev1.ListDeliveriesRequest{Tenant: "acme", EventId: pub.GetId()})
	if err != nil || len(dl.GetDeliveries()) != 1 {
		t.Fatalf("deliveries of %s: %v %v", pub.GetId(), dl, err)
	}
	first := dl.GetDeliveries()[0]
	if _, err := deliveries.CancelDelivery(tctx, &hookwirev1.CancelDeliveryRequest{Tenant: "acme", Id: first.GetId()}); err != nil {
		t.Fatal(err)
	}
	// A refused change records nothing.
	if _, err := deliveries.CancelDelivery(tctx, &hookwirev1.CancelDeliveryRequest{Tenant: "acme", Id: first.GetId()}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("cancel a cancelled delivery: %v", err)
	}
	if _, err := deliveries.RetryDelivery(tctx, &hookwirev1.RetryDeliveryRequest{Tenant: "acme", Id: first.GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := deliveries.ResendEvent(tctx, &hookwirev1.ResendEventRequest{Tenant: "acme", EventId: pub.GetId(), SubscriptionId: held.GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := deliveries.RecoverDeliveries(tctx, &hookwirev1.RecoverDeliveriesRequest{Tenant: "acme", SubscriptionId: held.GetId()}); err != nil {
		t.Fatal(err)
	}

	// Hookwire's own change: a 410 disables the subscription.
	gone := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"gone.*"}})
	secretsSeen = append(secretsSeen, gone.GetSigningSecret())
	h.publish("gone.now", `{}`)
	h.agent.report(t, outcome(h.next(), transportv1.Outcome_OUTCOME_GONE, 0))
	waitSub(t, h, gone.GetId(), func(s *hookwirev1.Subscription) bool {
		return s.GetStatus() == hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_DISABLED
	})
	if _, err := keysClient.RevokeApiKey(tctx, &hookwirev1.RevokeApiKeyRequest{Tenant: "acme", Id: publishOnly.GetId()}); err != nil {
		t.Fatal(err)
	}

	// Global changes with the admin key.
	agents := hookwirev1.NewAgentAdminServiceClient(h.conn)
	jt, err := agents.CreateJoinToken(ctx, &hookwirev1.CreateJoinTokenRequest{Name: "edge", Labels: map[string]string{"region": "eu"}})
	if err != nil {
		t.Fatal(err)
	}
	secretsSeen = append(secretsSeen, jt.GetToken())
	if _, err := agents.RevokeJoinToken(ctx, &hookwirev1.RevokeJoinTokenRequest{Id: jt.GetId()}); err != nil {
		t.Fatal(err)
	}
	h.connectAgent("edge-2", 1)
	if _, err := agents.DrainAgent(ctx, &hookwirev1.DrainAgentRequest{Id: "edge-2", Reason: "kernel upgrade"}); err != nil {
		t.Fatal(err)
	}

	// The tenant's log, newest first, read with the read-only key.
	list := auditAll(t, h.harness, readOnly.GetKey(), &hookwirev1.ListAuditEventsRequest{Tenant: "acme"})
	want := []string{
		"api_key.create", "api_key.create", "api_key.create", "subscription.create", "subscription.update",
		"subscription.pause", "subscription.resume", "subscription.rotate_secret", "subscription.create",
		"subscription.delete", "subscription.create", "delivery.cancel", "delivery.retry", "delivery.resend", "deliveries.recover",
		"subscription.create", "subscription.disable", "api_key.revoke",
	}
	got := actions(list)
	slices.Reverse(got)
	if !slices.Equal(got, want) {
		t.Fatalf("acme audit actions, oldest first:\n got %v\nwant %v", got, want)
	}
	for i := 1; i < len(list); i++ {
		if list[i].GetTime().AsTime().After(list[i-1].GetTime().AsTime()) || list[i].GetId() >= list[i-1].GetId() {
			t.Fatalf("not newest first at %d: %v then %v", i, list[i-1], list[i])
		}
	}
	subRes := "tenants/acme/subscriptions/" + sub.GetId()
	ev := findAudit(t, list, "subscription.update", subRes)
	if ev.GetBefore().GetFields()["description"].GetStringValue() != "first" || ev.GetAfter().GetFields()["description"].GetStringValue() != "second" {
		t.Fatalf("update before/after: %v / %v", ev.GetBefore(), ev.GetAfter())
	}
	if a := ev.GetActor(); a.GetApiKeyId() != tenantAdmin.GetId() || a.GetScope() != hookwirev1.ApiKeyScope_API_KEY_SCOPE_TENANT_ADMIN || a.GetSystem() {
		t.Fatalf("update actor %v, want %s", a, tenantAdmin.GetId())
	}
	if ev.GetTenant() != "acme" || ev.GetTime() == nil || !strings.HasPrefix(ev.GetId(), "aud_") {
		t.Fatalf("update event %v", ev)
	}
	if ev := findAudit(t, list, "subscription.pause", subRes); ev.GetAfter().GetFields()["status"].GetStringValue() != "SUBSCRIPTION_STATUS_PAUSED" {
		t.Fatalf("pause after: %v", ev.GetAfter())
	}
	if ev := findAudit(t, list, "subscription.create", subRes); ev.GetBefore() != nil || ev.GetAfter().GetFields()["id"].GetStringValue() != sub.GetId() {
		t.Fatalf("create: %v", ev)
	}
	if ev := findAudit(t, list, "subscription.delete", "tenants/acme/subscriptions/"+doomed.GetId()); ev.GetAfter() != nil || ev.GetBefore().GetFields()["id"].GetStringValue() != doomed.GetId() {
		t.Fatalf("delete: %v", ev)
	}
	if ev := findAudit(t, list, "subscription.rotate_secret", subRes); ev.GetDetails().GetFields()["overlap"].GetStringValue() != "1h0m0s" {
		t.Fatalf("rotate details: %v", ev.GetDetails())
	}
	if ev := findAudit(t, list, "delivery.cancel", "tenants/acme/deliveries/"+first.GetId()); ev.GetBefore().GetFields()["status"].GetStringValue() != "DELIVERY_STATUS_PENDING" ||
		ev.GetAfter().GetFields()["status"].GetStringValue() != "DELIVERY_STATUS_CANCELLED" {
		t.Fatalf("cancel before/after: %v / %v", ev.GetBefore(), ev.GetAfter())
	}
	if ev := findAudit(t, list, "subscription.disable", "tenants/acme/subscriptions/"+gone.GetId()); !ev.GetActor().GetSystem() || ev.GetActor().GetApiKeyId() != "" {
		t.Fatalf("disable actor %v, want system", ev.GetActor())
	}
	if ev := findAudit(t, list, "api_key.create", "tenants/acme/api-keys/"+readOnly.GetId()); ev.GetActor().GetApiKeyId() != "admin" || ev.GetActor().GetScope() != hookwirev1.ApiKeyScope_API_KEY_SCOPE_ADMIN {
		t.Fatalf("key create actor %v", ev.GetActor())
	}
	if ev := findAudit(t, list, "api_key.revoke", ""); ev.GetBefore().GetFields()["revoked"].GetBoolValue() || !ev.GetAfter().GetFields()["revoked"].GetBoolValue() {
		t.Fatalf("revoke before/after: %v / %v", ev.GetBefore(), ev.GetAfter())
	}

	// The global log (admin, tenant "-") has everything, global changes too.
	all := auditAll(t, h.harness, adminKey, &hookwirev1.ListAuditEventsRequest{Tenant: "-"})
	for _, want := range []struct{ action, resource string }{
		{"tenant.create", "tenants/acme"}, {"tenant.create", "tenants/other"},
		{"join_token.create", "join-tokens/" + jt.GetId()}, {"join_token.revoke", "join-tokens/" + jt.GetId()},
		{"agent.drain", "agents/edge-2"}, {"subscription.update", subRes},
	} {
		ev := findAudit(t, all, want.action, want.resource)
		if strings.HasPrefix(want.resource, "tenants/acme/") != (ev.GetTenant() == "acme") {
			t.Errorf("%s on %s has tenant %q", want.action, want.resource, ev.GetTenant())
		}
	}
	if ev := findAudit(t, all, "agent.drain", ""); ev.GetTenant() != "-" || ev.GetDetails().GetFields()["reason"].GetStringValue() != "kernel upgrade" {
		t.Fatalf("drain event %v", ev)
	}
	if len(all) != len(list)+len(auditAll(t, h.harness, adminKey, &hookwirev1.ListAuditEventsRequest{Tenant: "other"}))+5 {
		t.Fatalf("global log has %d events: %v", len(all), actions(all))
	}
	for _, ev := range list {
		if strings.HasPrefix(ev.GetAction(), "join_token.") || strings.HasPrefix(ev.GetAction(), "tenant.") || ev.GetAction() == "agent.drain" {
			t.Fatalf("a tenant sees a global change: %v", ev)
		}
	}

	// No secret value is ever recorded.
	var dump bytes.Buffer
	for _, ev := range all {
		data, err := protojson.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		dump.Write(data)
	}
	forbidden := map[string]string{"whsec_ prefix": signing.SecretPrefix, "whsk_ prefix": signing.SecretKeyPrefix, "hwj_ value marker": jt.GetToken()[len(jt.GetId()):]}
	for i, s := range secretsSeen {
		if s == "" {
			t.Fatalf("secret %d is empty", i)
		}
		forbidden["secret "+s[:4]] = s
		if strings.HasPrefix(s, signing.SecretPrefix) {
			raw, err := signing.ParseSecret(s)
			if err != nil {
				t.Fatal(err)
			}
			for form, enc := range map[string]*base64.Encoding{"std": base64.StdEncoding, "raw": base64.RawStdEncoding, "url": base64.URLEncoding, "rawurl": base64.RawURLEncoding} {
				forbidden["signing key "+form] = enc.EncodeToString(raw)
			}
			if bytes.Contains(dump.Bytes(), raw) {
				t.Errorf("raw signing key bytes in the audit log")
			}
		}
	}
	for what, s := range forbidden {
		if strings.Contains(dump.String(), s) {
			t.Errorf("%s (%q) appears in the audit log", what, s)
		}
	}
	for _, field := range []string{`"signing_secret"`, `"key":`, `"token"`, `"hash"`, `"sealed_key"`} {
		if strings.Contains(dump.String(), field) {
			t.Errorf("field %s appears in the audit log", field)
		}
	}

	// Who may read it.
	client := hookwirev1.NewAuditServiceClient(h.conn)
	for _, c := range []struct {
		name, key, tenant string
		code              codes.Code
	}{
		{"publish-only key", publishOnly.GetKey(), "acme", codes.Unauthenticated}, // revoked above
		{"other tenant's key", otherAdmin.GetKey(), "acme", codes.NotFound},
		{"tenant key, global log", tenantAdmin.GetKey(), "-", codes.PermissionDenied},
		{"no key", "", "acme", codes.Unauthenticated},
	} {
		ctx := context.Background()
		if c.key != "" {
			ctx = authedCtx(t, c.key)
		}
		if _, err := client.ListAuditEvents(ctx, &hookwirev1.ListAuditEventsRequest{Tenant: c.tenant}); status.Code(err) != c.code {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
	}
	publish2 := newKey("acme", hookwirev1.ApiKeyScope_API_KEY_SCOPE_PUBLISH)
	if _, err := client.ListAuditEvents(authedCtx(t, publish2.GetKey()), &hookwirev1.ListAuditEventsRequest{Tenant: "acme"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("publish-only key: %v, want PermissionDenied", err)
	}
	if _, err := client.ListAuditEvents(authedCtx(t, otherAdmin.GetKey()), &hookwirev1.ListAuditEventsRequest{Tenant: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("other tenant's key on a missing tenant: %v", err)
	}

	// Filters, pagination and bad input.
	onlySubs := auditAll(t, h.harness, tenantAdmin.GetKey(), &hookwirev1.ListAuditEventsRequest{Tenant: "acme", Action: "subscription.*"})
	if len(onlySubs) != 10 {
		t.Fatalf("subscription.* gave %v", actions(onlySubs))
	}
	onlyOne := auditAll(t, h.harness, tenantAdmin.GetKey(), &hookwirev1.ListAuditEventsRequest{Tenant: "acme", Resource: subRes})
	if got := actions(onlyOne); len(got) != 5 || got[0] != "subscription.rotate_secret" || got[4] != "subscription.create" {
		t.Fatalf("resource %s gave %v", subRes, got)
	}
	future := timestamppb.New(h.clock.now().Add(time.Hour))
	if got := auditAll(t, h.harness, tenantAdmin.GetKey(), &hookwirev1.ListAuditEventsRequest{Tenant: "acme", StartTime: future}); len(got) != 0 {
		t.Fatalf("start_time in the future gave %v", actions(got))
	}
	if got := auditAll(t, h.harness, tenantAdmin.GetKey(), &hookwirev1.ListAuditEventsRequest{Tenant: "acme", EndTime: list[4].GetTime(), StartTime: list[len(list)-1].GetTime()}); len(got) == 0 || len(got) >= len(list) {
		t.Fatalf("time range gave %d of %d", len(got), len(list))
	}
	paged := auditAll(t, h.harness, tenantAdmin.GetKey(), &hookwirev1.ListAuditEventsRequest{Tenant: "acme", PageSize: 2})
	var pagedIDs, listIDs []string
	for i := range paged {
		pagedIDs = append(pagedIDs, paged[i].GetId())
	}
	for _, ev := range auditAll(t, h.harness, tenantAdmin.GetKey(), &hookwirev1.ListAuditEventsRequest{Tenant: "acme"}) {
		listIDs = append(listIDs, ev.GetId())
	}
	if !slices.Equal(pagedIDs, listIDs) {
		t.Fatalf("pages of 2 gave\n%v\nwant\n%v", pagedIDs, listIDs)
	}
	for _, bad := range []*hookwirev1.ListAuditEventsRequest{
		{Tenant: "acme", PageToken: "nope"},
		{Tenant: "acme", Action: "sub*"},
		{Tenant: "acme", StartTime: future, EndTime: timestamppb.New(h.clock.now())},
	} {
		if _, err := client.ListAuditEvents(authedCtx(t, tenantAdmin.GetKey()), bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%v: %v, want InvalidArgument", bad, err)
		}
	}

	// REST.
	var rest struct {
		AuditEvents []struct {
			Action string         `json:"action"`
			Before map[string]any `json:"before"`
			Actor  struct {
				APIKeyID string `json:"api_key_id"`
			} `json:"actor"`
		} `json:"audit_events"`
	}
	if code := h.rest("GET", "/v1/tenants/acme/audit-events?action=subscription.update", readOnly.GetKey(), "", nil, &rest); code != http.StatusOK ||
		len(rest.AuditEvents) != 1 || rest.AuditEvents[0].Before["description"] != "first" || rest.AuditEvents[0].Actor.APIKeyID != tenantAdmin.GetId() {
		t.Fatalf("REST: %d %+v", code, rest)
	}
	var restErr json.RawMessage
	if code := h.rest("GET", "/v1/tenants/acme/audit-events", publish2.GetKey(), "", nil, &restErr); code != http.StatusForbidden {
		t.Fatalf("REST with a publish-only key: %d %s", code, restErr)
	}

	// Retention: a year later the purge removes them.
	h.clock.advance(366 * 24 * time.Hour)
	if _, _, _, err := h.srv.Purge(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := auditAll(t, h.harness, adminKey, &hookwirev1.ListAuditEventsRequest{Tenant: "-"}); len(got) != 0 {
		t.Fatalf("after the retention period: %v", actions(got))
	}
}
