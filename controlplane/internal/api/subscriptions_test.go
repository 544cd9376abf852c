package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestSubscriptionServiceCreateMasksSecrets(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	in := httpSubscription(t, "order.*")
	in.Target.Headers = map[string]string{"Authorization": "Bearer receiver-token"}
	sub := mustSubscription(t, s, "acme", in)

	if !strings.HasPrefix(sub.GetSigningSecret(), "whsec_") || sub.GetStatus() != hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_ENABLED {
		t.Fatalf("created %v: want an enabled subscription and its whsec_ secret, shown once", sub)
	}
	if got := sub.GetTarget().GetHeaders()["Authorization"]; got != catalog.RedactedValue {
		t.Errorf("the answer shows header value %q", got)
	}
	id, err := ids.Parse(ids.Subscription, sub.GetId())
	if err != nil || s.cfg.Catalog.Get(id) == nil {
		t.Fatalf("subscription %s is not in the catalog (%v)", sub.GetId(), err)
	}
	ctx := asTenant(t.Context(), "acme", scopeReadOnly)
	got, err := s.subscriptions.GetSubscription(ctx, &hookwirev1.GetSubscriptionRequest{Tenant: "acme", Id: sub.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSigningSecret() != "" || got.GetTarget().GetHeaders()["Authorization"] != catalog.RedactedValue {
		t.Errorf("a read shows secrets: %v", got)
	}
	ev := lastAudit(t, s, auditSubscriptionCreate)
	if text := ev.String(); strings.Contains(text, "receiver-token") || strings.Contains(text, sub.GetSigningSecret()) {
		t.Errorf("the audit record shows a secret: %v", ev)
	}
	if ev.GetResource() != "tenants/acme/subscriptions/"+sub.GetId() || ev.GetActor().GetApiKeyId() != "hwk_testacme" {
		t.Errorf("audit record on %s by %v", ev.GetResource(), ev.GetActor())
	}
}

func TestSubscriptionServiceCreateRefusals(t *testing.T) {
	s := newTestServices(t, func(c *Config) {
		c.ValidateTarget = func(_ context.Context, transport string, config *structpb.Struct) ([]string, bool, error) {
			if transport != "http" {
				return nil, false, nil
			}
			if !strings.HasPrefix(config.GetFields()["url"].GetStringValue(), "https://") {
				return []string{"url must be https"}, true, nil
			}
			return nil, true, nil
		}
	})
	mustTenant(t, s, "acme")
	mustTenant(t, s, "globex")
	ctx := asTenant(t.Context(), "acme", scopeTenantAdmin)
	create := func(sub *hookwirev1.Subscription) error {
		_, err := s.subscriptions.CreateSubscription(ctx, &hookwirev1.CreateSubscriptionRequest{Tenant: "acme", Subscription: sub})
		return err
	}

	bad := httpSubscription(t, "order.*")
	bad.Target.Config.Fields["url"] = structpb.NewStringValue("http://plain.example")
	wantCode(t, create(bad), codes.InvalidArgument, `invalid target for transport "http": url must be https`)

	bad = httpSubscription(t, "order.*")
	bad.Filter = "payload.amount >"
	wantCode(t, create(bad), codes.InvalidArgument, "invalid filter")

	bad = httpSubscription(t, "order.*")
	bad.AgentSelector = "region in ("
	wantCode(t, create(bad), codes.InvalidArgument, "invalid")

	// A custom transport the control plane cannot check itself is
	// accepted (agents check it).
	custom := httpSubscription(t, "order.*")
	custom.Target.Transport = "acme-queue"
	if err := create(custom); err != nil {
		t.Errorf("custom transport: %v", err)
	}

	_, err := s.subscriptions.CreateSubscription(asTenant(t.Context(), "acme", scopeReadOnly),
		&hookwirev1.CreateSubscriptionRequest{Tenant: "acme", Subscription: httpSubscription(t, "order.*")})
	wantCode(t, err, codes.PermissionDenied, "read-only")
	_, err = s.subscriptions.ListSubscriptions(ctx, &hookwirev1.ListSubscriptionsRequest{Tenant: "globex"})
	wantCode(t, err, codes.NotFound, `tenant "globex" not found`)
	if n := len(auditRecords(t, s)); n != 3 {
		t.Errorf("%d audit records; want 2 tenant creates and the one subscription created", n)
	}
}

func TestSubscriptionServiceChangesAreAuditedWithTheirAction(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	sub := mustSubscription(t, s, "acme", httpSubscription(t, "order.*"))
	ctx := asTenant(t.Context(), "acme", scopeTenantAdmin)
	key := &hookwirev1.PauseSubscriptionRequest{Tenant: "acme", Id: sub.GetId()}

	paused, err := s.subscriptions.PauseSubscription(ctx, key)
	if err != nil || paused.GetStatus() != hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_PAUSED {
		t.Fatalf("pause: %v, %v", paused, err)
	}
	ev := lastAudit(t, s, auditSubscriptionPause)
	if snapshotField(ev.GetBefore(), "status").GetStringValue() != "SUBSCRIPTION_STATUS_ENABLED" ||
		snapshotField(ev.GetAfter(), "status").GetStringValue() != "SUBSCRIPTION_STATUS_PAUSED" {
		t.Errorf("pause audit record: before %v, after %v", ev.GetBefore(), ev.GetAfter())
	}

	if _, err := s.subscriptions.ResumeSubscription(ctx, &hookwirev1.ResumeSubscriptionRequest{Tenant: "acme", Id: sub.GetId()}); err != nil {
		t.Fatal(err)
	}
	lastAudit(t, s, auditSubscriptionResume)

	updated, err := s.subscriptions.UpdateSubscription(ctx, &hookwirev1.UpdateSubscriptionRequest{Tenant: "acme",
		Subscription: &hookwirev1.Subscription{Id: sub.GetId(), Description: "orders to the warehouse"},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"description"}}})
	if err != nil || updated.GetDescription() != "orders to the warehouse" {
		t.Fatalf("update: %v, %v", updated, err)
	}
	ev = lastAudit(t, s, auditSubscriptionUpdate)
	if snapshotField(ev.GetAfter(), "description").GetStringValue() != "orders to the warehouse" {
		t.Errorf("update audit after-image %v", ev.GetAfter())
	}

	rotated, err := s.subscriptions.RotateSubscriptionSecret(ctx, &hookwirev1.RotateSubscriptionSecretRequest{Tenant: "acme", Id: sub.GetId(), Overlap: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if s := rotated.GetSubscription().GetSigningSecret(); s == "" || s == sub.GetSigningSecret() {
		t.Errorf("rotation shows secret %q; want a new one", s)
	}
	ev = lastAudit(t, s, auditSubscriptionRotate)
	if ev.GetDetails().GetFields()["overlap"].GetStringValue() != "1h0m0s" || strings.Contains(ev.String(), rotated.GetSubscription().GetSigningSecret()) {
		t.Errorf("rotation audit record %v: want the overlap and no secret", ev)
	}

	// The dispatcher's callbacks: disabling is a change Hookwire makes and
	// records; the failure streak's start is bookkeeping and is not.
	cs := s.cfg.Catalog.Get(mustParse(t, sub.GetId()))
	s.DisableSubscription(cs, "the target answered 410 Gone")
	ev = lastAudit(t, s, auditSubscriptionDisable)
	if !ev.GetActor().GetSystem() || snapshotField(ev.GetAfter(), "disabled_reason").GetStringValue() != "the target answered 410 Gone" {
		t.Errorf("disable audit record %v: want Hookwire as the actor and the reason", ev)
	}
	records := len(auditRecords(t, s))
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.SetFailingSince(cs, since)
	got, err := s.subscriptions.GetSubscription(ctx, &hookwirev1.GetSubscriptionRequest{Tenant: "acme", Id: sub.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if !got.GetFailingSince().AsTime().Equal(since) || got.GetStatus() != hookwirev1.SubscriptionStatus_SUBSCRIPTION_STATUS_DISABLED {
		t.Errorf("after SetFailingSince: failing_since %v, status %v", got.GetFailingSince(), got.GetStatus())
	}
	if n := len(auditRecords(t, s)); n != records {
		t.Errorf("SetFailingSince wrote %d audit records; want none", n-records)
	}
}

func TestSubscriptionServiceUpdateRefusals(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	sub := mustSubscription(t, s, "acme", httpSubscription(t, "order.*"))
	ctx := asTenant(t.Context(), "acme", scopeTenantAdmin)
	update := func(in *hookwirev1.Subscription, paths ...string) error {
		req := &hookwirev1.UpdateSubscriptionRequest{Tenant: "acme", Subscription: in}
		if len(paths) > 0 {
			req.UpdateMask = &fieldmaskpb.FieldMask{Paths: paths}
		}
		_, err := s.subscriptions.UpdateSubscription(ctx, req)
		return err
	}
	wantCode(t, update(nil), codes.InvalidArgument, "subscription is required")
	wantCode(t, update(&hookwirev1.Subscription{Description: "x"}, "description"), codes.InvalidArgument, "subscription.id is required")
	wantCode(t, update(&hookwirev1.Subscription{Id: sub.GetId()}), codes.InvalidArgument, "nothing to update")
	wantCode(t, update(&hookwirev1.Subscription{Id: sub.GetId(), Filter: "payload.amount >"}, "filter"), codes.InvalidArgument, "invalid filter")
	wantCode(t, update(&hookwirev1.Subscription{Id: "sub_01J00000000000000000000000", Description: "x"}, "description"), codes.NotFound, "not found")
	if n := len(auditRecords(t, s)); n != 2 {
		t.Errorf("%d audit records; refused updates must record nothing", n)
	}
}

func TestSubscriptionServiceDelete(t *testing.T) {
	s := newTestServices(t)
	mustTenant(t, s, "acme")
	mustTenant(t, s, "globex")
	sub := mustSubscription(t, s, "acme", httpSubscription(t, "order.*"))
	req := &hookwirev1.DeleteSubscriptionRequest{Tenant: "globex", Id: sub.GetId()}
	_, err := s.subscriptions.DeleteSubscription(asTenant(t.Context(), "globex", scopeTenantAdmin), req)
	wantCode(t, err, codes.NotFound, "not found")

	ctx := asTenant(t.Context(), "acme", scopeTenantAdmin)
	req.Tenant = "acme"
	if _, err := s.subscriptions.DeleteSubscription(ctx, req); err != nil {
		t.Fatal(err)
	}
	if s.cfg.Catalog.Get(mustParse(t, sub.GetId())) != nil {
		t.Error("the deleted subscription is still in the catalog")
	}
	_, err = s.subscriptions.GetSubscription(ctx, &hookwirev1.GetSubscriptionRequest{Tenant: "acme", Id: sub.GetId()})
	wantCode(t, err, codes.NotFound, "not found")
	ev := lastAudit(t, s, auditSubscriptionDelete)
	if snapshotField(ev.GetBefore(), "id").GetStringValue() != sub.GetId() {
		t.Errorf("delete audit before-image %v", ev.GetBefore())
	}
}

func mustParse(t *testing.T, subID string) ids.ID {
	t.Helper()
	id, err := ids.Parse(ids.Subscription, subID)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
