package controlplane_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	"github.com/hookwire/hookwire/controlplane/signing"
	"github.com/hookwire/hookwire/controlplane/signing/verify"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// assignmentHeaders returns an assignment's request headers for verify.
func assignmentHeaders(a *hookwirev1.Assignment) http.Header {
	h := http.Header{}
	for k, v := range a.GetRequest().GetHeaders() {
		h.Set(k, v)
	}
	return h
}

// verifies reports whether the assignment's signature verifies with key
// (a whsec_ secret or whpk_ public key) at the given time.
func verifies(t *testing.T, a *hookwirev1.Assignment, key string, now func() time.Time) error {
	t.Helper()
	v, err := verify.New(key)
	if err != nil {
		t.Fatal(err)
	}
	if now != nil {
		v = v.With(verify.WithNow(now))
	}
	return v.Verify(assignmentHeaders(a), a.GetRequest().GetBody())
}

// signatures returns the entries of the webhook-signature header.
func signatures(a *hookwirev1.Assignment) []string {
	return strings.Fields(a.GetRequest().GetHeaders()[signing.HeaderSignature])
}

// Target header values that TestSigningKeysAreEncryptedAtRest stores: they
// may be credentials, so they are secrets like the signing keys.
const (
	headerSecret  = "Bearer hdr-secret-3f9a7c1e5b0d"
	headerSecret2 = "hdr-secret-second-8d2e4f61a7"
)

func TestSigningKeysAreEncryptedAtRest(t *testing.T) {
	dir := t.TempDir()
	h := startDelivery(t, dir, controlplane.Config{})
	sub := h.subscribe(withHeaders(map[string]string{"Authorization": headerSecret, "X-Team": "billing"}))
	secret := sub.GetSigningSecret()
	raw, err := signing.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	// An ed25519 subscription too: its private key is never shown.
	cfg, _ := structpb.NewStruct(map[string]any{"url": "http://127.0.0.1:1/hook"})
	ed, err := hookwirev1.NewSubscriptionServiceClient(h.conn).CreateSubscription(h.ctx(), &hookwirev1.CreateSubscriptionRequest{
		Tenant: "acme", Subscription: &hookwirev1.Subscription{
			EventTypes: []string{"invoice.*"}, Target: &hookwirev1.Target{Transport: "http", Config: cfg},
			SignatureScheme: hookwirev1.SignatureScheme_SIGNATURE_SCHEME_ED25519,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// A rotation stores a second key; it must be sealed as well.
	rot, err := hookwirev1.NewSubscriptionServiceClient(h.conn).RotateSubscriptionSecret(h.ctx(), &hookwirev1.RotateSubscriptionSecretRequest{Tenant: "acme", Id: sub.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := signing.ParseSecret(rot.GetSubscription().GetSigningSecret())
	if err != nil {
		t.Fatal(err)
	}
	got, err := hookwirev1.NewSubscriptionServiceClient(h.conn).GetSubscription(h.ctx(), &hookwirev1.GetSubscriptionRequest{Tenant: "acme", Id: sub.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSigningSecret() != "" {
		t.Fatal("GetSubscription shows the signing secret")
	}
	shown := headerValuesShown(t, h, sub, ed, rot, got)
	h.stop()

	db, err := os.ReadFile(filepath.Join(dir, "hookwire.db"))
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string][]byte{"first": raw, "rotated": rotated} {
		for form, b := range map[string][]byte{
			"raw":        key,
			"base64":     []byte(base64.StdEncoding.EncodeToString(key)),
			"raw base64": []byte(base64.RawStdEncoding.EncodeToString(key)),
			"url base64": []byte(base64.RawURLEncoding.EncodeToString(key)),
			"prefix":     []byte(signing.SecretPrefix),
		} {
			if bytes.Contains(db, b) {
				t.Errorf("the %s signing key's %s form is in the database file", name, form)
			}
		}
	}
	// The ed25519 key is sealed the same way; its public key may be
	// stored (it is public), its secret form never.
	if !strings.HasPrefix(ed.GetSigningPublicKey(), signing.PublicKeyPrefix) || ed.GetSigningSecret() != "" {
		t.Fatalf("ed25519 subscription: public key %q, secret shown: %v", ed.GetSigningPublicKey(), ed.GetSigningSecret() != "")
	}
	if bytes.Contains(db, []byte(signing.SecretKeyPrefix)) {
		t.Error("a whsk_ secret key is in the database file")
	}
	// Target header values: not in the file, not in any API response or
	// audit record (gRPC and REST), in any common encoding.
	for _, value := range []string{headerSecret, headerSecret2} {
		for form, b := range map[string][]byte{
			"raw":         []byte(value),
			"base64":      []byte(base64.StdEncoding.EncodeToString([]byte(value))),
			"raw base64":  []byte(base64.RawStdEncoding.EncodeToString([]byte(value))),
			"url base64":  []byte(base64.RawURLEncoding.EncodeToString([]byte(value))),
			"token alone": []byte(strings.TrimPrefix(value, "Bearer ")),
		} {
			if bytes.Contains(db, b) {
				t.Errorf("header value %q in %s form is in the database file", value, form)
			}
			if bytes.Contains(shown, b) {
				t.Errorf("header value %q in %s form is in an API response or audit record", value, form)
			}
		}
	}
}

// headerValuesShown exercises every API that shows a subscription with
// secret header values (create, get, list, update, rotate, pause, resume,
// and the audit log, over gRPC and REST), checks that the agent receives
// the values and that responses show each header name with the value
// masked, and returns everything the API answered.
func headerValuesShown(t *testing.T, h *deliveryHarness, sub *hookwirev1.Subscription, responses ...proto.Message) []byte {
	t.Helper()
	subs := hookwirev1.NewSubscriptionServiceClient(h.conn)
	var shown []byte
	see := func(m proto.Message) {
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		shown = append(shown, b...)
	}
	see(sub)
	for _, m := range responses {
		see(m)
	}
	masked := func(what string, s *hookwirev1.Subscription, want ...string) {
		t.Helper()
		hd := s.GetTarget().GetHeaders()
		if len(hd) != len(want) {
			t.Fatalf("%s: headers %v, want names %v", what, hd, want)
		}
		for _, name := range want {
			if hd[name] != catalogRedacted {
				t.Fatalf("%s: header %q shows %q, want %q", what, name, hd[name], catalogRedacted)
			}
		}
	}
	masked("create response", sub, "Authorization", "X-Team")

	// The target still receives the values.
	h.publish("order.created", `{"n":1}`)
	a := h.next()
	if hd := a.GetRequest().GetHeaders(); hd["authorization"] != headerSecret || hd["x-team"] != "billing" {
		t.Fatalf("assignment headers %v, want the stored values", hd)
	}
	h.agent.report(t, ok(a))

	withID := func(s *hookwirev1.Subscription) *hookwirev1.Subscription { s.Id = sub.GetId(); return s }
	// A full update that sends back the headers as the API showed them
	// keeps the stored values.
	full, err := subs.UpdateSubscription(h.ctx(), &hookwirev1.UpdateSubscriptionRequest{
		Tenant: "acme", UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"target"}},
		Subscription: withID(withHeaders(sub.GetTarget().GetHeaders())),
	})
	if err != nil {
		t.Fatal(err)
	}
	see(full)
	h.publish("order.created", `{"n":2}`)
	a = h.next()
	if hd := a.GetRequest().GetHeaders(); hd["authorization"] != headerSecret || hd["x-team"] != "billing" {
		t.Fatalf("assignment headers after a full update with masked values %v, want the stored values", hd)
	}
	h.agent.report(t, ok(a))
	// An update of target.headers replaces the whole set; "<redacted>"
	// keeps a stored value. The new value is the last one stored, so the
	// file check sees it where a clear copy would be.
	upd, err := subs.UpdateSubscription(h.ctx(), &hookwirev1.UpdateSubscriptionRequest{
		Tenant: "acme", UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"target.headers"}},
		Subscription: withID(withHeaders(map[string]string{"Authorization": catalogRedacted, "X-Api-Key": headerSecret2})),
	})
	if err != nil {
		t.Fatal(err)
	}
	see(upd)
	masked("update response", upd, "Authorization", "X-Api-Key")
	h.publish("order.created", `{"n":3}`)
	a = h.next()
	if hd := a.GetRequest().GetHeaders(); hd["authorization"] != headerSecret || hd["x-api-key"] != headerSecret2 || hd["x-team"] != "" {
		t.Fatalf("assignment headers after the update %v, want the kept and the new value, and X-Team gone", hd)
	}
	h.agent.report(t, ok(a))
	// The mask cannot stand for a header that has no stored value.
	_, err = subs.UpdateSubscription(h.ctx(), &hookwirev1.UpdateSubscriptionRequest{
		Tenant: "acme", UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"target.headers"}},
		Subscription: withID(withHeaders(map[string]string{"X-Other": catalogRedacted})),
	})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "send the header's real value") {
		t.Fatalf("mask for a header with no stored value: %v, want InvalidArgument", err)
	}

	get, err := subs.GetSubscription(h.ctx(), &hookwirev1.GetSubscriptionRequest{Tenant: "acme", Id: sub.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	see(get)
	masked("get response", get, "Authorization", "X-Api-Key")
	list, err := subs.ListSubscriptions(h.ctx(), &hookwirev1.ListSubscriptionsRequest{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	see(list)
	for _, step := range []func() (*hookwirev1.Subscription, error){
		func() (*hookwirev1.Subscription, error) {
			return subs.PauseSubscription(h.ctx(), &hookwirev1.PauseSubscriptionRequest{Tenant: "acme", Id: sub.GetId()})
		},
		func() (*hookwirev1.Subscription, error) {
			return subs.ResumeSubscription(h.ctx(), &hookwirev1.ResumeSubscriptionRequest{Tenant: "acme", Id: sub.GetId()})
		},
	} {
		s, err := step()
		if err != nil {
			t.Fatal(err)
		}
		see(s)
	}
	rot, err := subs.RotateSubscriptionSecret(h.ctx(), &hookwirev1.RotateSubscriptionSecretRequest{Tenant: "acme", Id: sub.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	see(rot)
	audit := hookwirev1.NewAuditServiceClient(h.conn)
	updates := 0
	for _, scope := range []string{"acme", "-"} {
		resp, err := audit.ListAuditEvents(h.ctx(), &hookwirev1.ListAuditEventsRequest{Tenant: scope})
		if err != nil {
			t.Fatal(err)
		}
		see(resp)
		for _, ev := range resp.GetAuditEvents() {
			if scope == "acme" && ev.GetAction() == "subscription.update" {
				updates++
				hd := ev.GetAfter().GetFields()["target"].GetStructValue().GetFields()["headers"].GetStructValue().GetFields()
				if hd["Authorization"].GetStringValue() != catalogRedacted {
					t.Fatalf("audit after-snapshot headers %v, want names with masked values", hd)
				}
			}
		}
	}
	if updates != 2 {
		t.Fatalf("audit log holds %d subscription updates, want 2", updates)
	}
	for _, path := range []string{
		"/v1/tenants/acme/subscriptions/" + sub.GetId(), "/v1/tenants/acme/subscriptions",
		"/v1/tenants/acme/audit-events", "/v1/tenants/-/audit-events",
	} {
		body, code := h.restRaw("GET", path, "", nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: HTTP %d %s", path, code, body)
		}
		shown = append(shown, body...)
	}
	return shown
}

// catalogRedacted is how the API shows a stored header value.
const catalogRedacted = "<redacted>"

func TestRotateSecretOverlapSignsWithBothKeys(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	sub := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}})
	oldSecret := sub.GetSigningSecret()

	var resp struct {
		Subscription struct {
			SigningSecret   string `json:"signing_secret"`
			SignatureScheme string `json:"signature_scheme"`
		} `json:"subscription"`
		PreviousKeysExpireTime time.Time `json:"previous_keys_expire_time"`
	}
	data, code := h.restRaw("POST", "/v1/tenants/acme/subscriptions/"+sub.GetId()+":rotateSecret", `{"overlap": "3600s"}`, nil)
	if code != http.StatusOK {
		t.Fatalf("rotate: HTTP %d %s", code, data)
	}
	if err := jsonUnmarshal(data, &resp); err != nil {
		t.Fatal(err)
	}
	newSecret := resp.Subscription.SigningSecret
	if !strings.HasPrefix(newSecret, signing.SecretPrefix) || newSecret == oldSecret {
		t.Fatalf("rotation returned secret shown=%v, same as before=%v", newSecret != "", newSecret == oldSecret)
	}
	if want := h.clock.now().Add(time.Hour); resp.PreviousKeysExpireTime.Sub(want).Abs() > 2*time.Second {
		t.Fatalf("previous keys expire at %v, want about %v", resp.PreviousKeysExpireTime, want)
	}

	// During the overlap both keys sign.
	h.publish("order.created", `{"n":1}`)
	a := h.next()
	if sigs := signatures(a); len(sigs) != 2 || !strings.HasPrefix(sigs[0], "v1,") || !strings.HasPrefix(sigs[1], "v1,") {
		t.Fatalf("during the overlap: signatures %q, want two v1 entries", sigs)
	}
	for name, secret := range map[string]string{"old": oldSecret, "new": newSecret} {
		if err := verifies(t, a, secret, h.clock.now); err != nil {
			t.Errorf("during the overlap, the %s secret does not verify: %v", name, err)
		}
	}
	h.agent.report(t, ok(a))

	// After it, only the new one.
	h.advance(time.Hour + 2*time.Second)
	h.publish("order.created", `{"n":2}`)
	a = h.next()
	if sigs := signatures(a); len(sigs) != 1 {
		t.Fatalf("after the overlap: signatures %q, want one", sigs)
	}
	if err := verifies(t, a, newSecret, h.clock.now); err != nil {
		t.Errorf("after the overlap, the new secret does not verify: %v", err)
	}
	if err := verifies(t, a, oldSecret, h.clock.now); !errors.Is(err, verify.ErrNoMatchingSignature) {
		t.Errorf("after the overlap, the old secret still verifies (err %v)", err)
	}
	h.agent.report(t, ok(a))

	// The default overlap is 24 hours.
	rot, err := hookwirev1.NewSubscriptionServiceClient(h.conn).RotateSubscriptionSecret(h.ctx(), &hookwirev1.RotateSubscriptionSecretRequest{Tenant: "acme", Id: sub.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if d := rot.GetPreviousKeysExpireTime().AsTime().Sub(h.clock.now()); d < 24*time.Hour-2*time.Second || d > 24*time.Hour+time.Second {
		t.Fatalf("default overlap %v, want 24h", d)
	}
}

func jsonUnmarshal(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", data, err)
	}
	return nil
}

func TestEd25519SubscriptionAndMigrationToHMAC(t *testing.T) {
	h := startDelivery(t, t.TempDir(), controlplane.Config{})
	sub := h.subscribe(&hookwirev1.Subscription{EventTypes: []string{"order.*"}, SignatureScheme: hookwirev1.SignatureScheme_SIGNATURE_SCHEME_ED25519})
	if sub.GetSigningSecret() != "" {
		t.Fatal("an ed25519 subscription shows a secret")
	}
	pub := sub.GetSigningPublicKey()
	if !strings.HasPrefix(pub, signing.PublicKeyPrefix) || sub.GetSignatureScheme() != hookwirev1.SignatureScheme_SIGNATURE_SCHEME_ED25519 {
		t.Fatalf("public key %q, scheme %v", pub, sub.GetSignatureScheme())
	}
	got, err := hookwirev1.NewSubscriptionServiceClient(h.conn).GetSubscription(h.ctx(), &hookwirev1.GetSubscriptionRequest{Tenant: "acme", Id: sub.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSigningPublicKey() != pub || got.GetSigningSecret() != "" {
		t.Fatalf("GetSubscription: public key %q, secret shown %v", got.GetSigningPublicKey(), got.GetSigningSecret() != "")
	}
	h.publish("order.created", `{"n":1}`)
	a := h.next()
	if sigs := signatures(a); len(sigs) != 1 || !strings.HasPrefix(sigs[0], "v1a,") {
		t.Fatalf("signatures %q, want one v1a", sigs)
	}
	if err := verifies(t, a, pub, h.clock.now); err != nil {
		t.Fatalf("ed25519 signature does not verify with the public key: %v", err)
	}
	h.agent.report(t, ok(a))

	// Rotating keeps the scheme by default.
	rot, err := hookwirev1.NewSubscriptionServiceClient(h.conn).RotateSubscriptionSecret(h.ctx(), &hookwirev1.RotateSubscriptionSecretRequest{
		Tenant: "acme", Id: sub.GetId(), Overlap: durationpb.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	pub2 := rot.GetSubscription().GetSigningPublicKey()
	if rot.GetSubscription().GetSigningSecret() != "" || !strings.HasPrefix(pub2, signing.PublicKeyPrefix) || pub2 == pub {
		t.Fatalf("ed25519 rotation: public key %q (old %q), secret shown %v", pub2, pub, rot.GetSubscription().GetSigningSecret() != "")
	}

	// Migrate to HMAC: both sign during the overlap.
	data, code := h.restRaw("POST", "/v1/tenants/acme/subscriptions/"+sub.GetId()+":rotateSecret", `{"overlap": "600s", "scheme": "SIGNATURE_SCHEME_HMAC_SHA256"}`, nil)
	if code != http.StatusOK {
		t.Fatalf("migrate: HTTP %d %s", code, data)
	}
	var resp struct {
		Subscription struct {
			SigningSecret    string `json:"signing_secret"`
			SigningPublicKey string `json:"signing_public_key"`
			SignatureScheme  string `json:"signature_scheme"`
		} `json:"subscription"`
	}
	if err := jsonUnmarshal(data, &resp); err != nil {
		t.Fatal(err)
	}
	secret := resp.Subscription.SigningSecret
	if !strings.HasPrefix(secret, signing.SecretPrefix) || resp.Subscription.SignatureScheme != "SIGNATURE_SCHEME_HMAC_SHA256" || resp.Subscription.SigningPublicKey != "" {
		t.Fatalf("after migration: scheme %q, public key %q, secret shown %v", resp.Subscription.SignatureScheme, resp.Subscription.SigningPublicKey, secret != "")
	}
	h.publish("order.created", `{"n":2}`)
	a = h.next()
	sigs := signatures(a)
	if len(sigs) != 2 || !strings.HasPrefix(sigs[0], "v1,") || !strings.HasPrefix(sigs[1], "v1a,") {
		t.Fatalf("during migration: signatures %q, want v1 then v1a", sigs)
	}
	if err := verifies(t, a, secret, h.clock.now); err != nil {
		t.Errorf("new HMAC secret: %v", err)
	}
	if err := verifies(t, a, pub2, h.clock.now); err != nil {
		t.Errorf("previous ed25519 public key: %v", err)
	}
	if err := verifies(t, a, pub, h.clock.now); err == nil {
		t.Error("the first ed25519 key, retired with a 0s overlap, still signs")
	}
	h.agent.report(t, ok(a))
	h.advance(11 * time.Minute)
	h.publish("order.created", `{"n":3}`)
	a = h.next()
	if sigs := signatures(a); len(sigs) != 1 || !strings.HasPrefix(sigs[0], "v1,") {
		t.Fatalf("after migration: signatures %q, want one v1", sigs)
	}
	if err := verifies(t, a, secret, h.clock.now); err != nil {
		t.Errorf("after migration: %v", err)
	}
	h.agent.report(t, ok(a))
}

func TestRotateSecretErrors(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	sub := h.setup("acme")
	client := hookwirev1.NewSubscriptionServiceClient(h.conn)
	for _, tc := range []struct {
		name string
		req  *hookwirev1.RotateSubscriptionSecretRequest
		code codes.Code
		msg  string
	}{
		{"overlap too long", &hookwirev1.RotateSubscriptionSecretRequest{Tenant: "acme", Id: sub.GetId(), Overlap: durationpb.New(8 * 24 * time.Hour)}, codes.InvalidArgument, "7 days"},
		{"negative overlap", &hookwirev1.RotateSubscriptionSecretRequest{Tenant: "acme", Id: sub.GetId(), Overlap: durationpb.New(-time.Second)}, codes.InvalidArgument, "negative"},
		{"unknown scheme", &hookwirev1.RotateSubscriptionSecretRequest{Tenant: "acme", Id: sub.GetId(), Scheme: 42}, codes.InvalidArgument, "scheme"},
		{"unknown subscription", &hookwirev1.RotateSubscriptionSecretRequest{Tenant: "acme", Id: "sub_01J00000000000000000000000"}, codes.NotFound, "not found"},
		{"malformed id", &hookwirev1.RotateSubscriptionSecretRequest{Tenant: "acme", Id: "nope"}, codes.NotFound, "not found"},
		{"other tenant", &hookwirev1.RotateSubscriptionSecretRequest{Tenant: "globex", Id: sub.GetId()}, codes.NotFound, "not found"},
	} {
		_, err := client.RotateSubscriptionSecret(h.ctx(), tc.req)
		if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
			t.Errorf("%s: %v, want %v mentioning %q", tc.name, err, tc.code, tc.msg)
		}
	}
	// Over REST, too long is 400 and names the limit.
	data, code := h.restRaw("POST", "/v1/tenants/acme/subscriptions/"+sub.GetId()+":rotateSecret", `{"overlap": "604801s"}`, nil)
	if code != http.StatusBadRequest || !strings.Contains(string(data), "604800s") {
		t.Fatalf("REST overlap too long: HTTP %d %s", code, data)
	}
	// The scheme cannot be changed by an update.
	upd := proto.Clone(sub).(*hookwirev1.Subscription)
	upd.SignatureScheme = hookwirev1.SignatureScheme_SIGNATURE_SCHEME_ED25519
	_, err := client.UpdateSubscription(h.ctx(), &hookwirev1.UpdateSubscriptionRequest{Tenant: "acme", Subscription: upd,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"signature_scheme"}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "rotateSecret") {
		t.Fatalf("update signature_scheme: %v", err)
	}
}

func TestMasterKeyRotationResealsInBackground(t *testing.T) {
	dir := t.TempDir()
	oldKey := mustMasterKey(t, testMasterKey)
	newKey, err := controlplane.GenerateMasterKeyFile(filepath.Join(t.TempDir(), "new.key"))
	if err != nil {
		t.Fatal(err)
	}

	// Subscriptions sealed under the old key, more than one re-seal batch.
	h := start(t, dir, controlplane.Config{MasterKey: oldKey})
	first := h.setup("acme")
	cfg, _ := structpb.NewStruct(map[string]any{"url": "http://127.0.0.1:1/hook"})
	keys := map[string]string{"order.created": first.GetSigningSecret()} // by event type
	for i := range 70 {
		scheme := hookwirev1.SignatureScheme_SIGNATURE_SCHEME_HMAC_SHA256
		if i%10 == 0 {
			scheme = hookwirev1.SignatureScheme_SIGNATURE_SCHEME_ED25519
		}
		s, err := hookwirev1.NewSubscriptionServiceClient(h.conn).CreateSubscription(h.ctx(), &hookwirev1.CreateSubscriptionRequest{
			Tenant: "acme", Subscription: &hookwirev1.Subscription{EventTypes: []string{fmt.Sprintf("t%d", i)},
				Target: &hookwirev1.Target{Transport: "http", Config: cfg}, SignatureScheme: scheme}})
		if err != nil {
			t.Fatal(err)
		}
		keys[fmt.Sprintf("t%d", i)] = s.GetSigningSecret() + s.GetSigningPublicKey()
	}
	h.stop()

	// The new key alone cannot open them, and says what to do.
	_, err = controlplane.Start(context.Background(), controlplane.Config{DataDir: dir, GRPCAddr: "127.0.0.1:0", HTTPAddr: "off", AdminKey: adminKey, MasterKey: newKey})
	if err == nil || !strings.Contains(err.Error(), "previous master key") || !strings.Contains(err.Error(), oldKey.ID()) {
		t.Fatalf("start with only the new master key: %v", err)
	}

	// With the old key as previous, keys still sign during the rotation.
	h = start(t, dir, controlplane.Config{MasterKey: newKey, PreviousMasterKeys: []*controlplane.MasterKey{oldKey}})
	agent, _ := h.connectAgent("agent-1", 100)
	checkSigns := func(h *harness, agent *fakeAgent) {
		t.Helper()
		for _, typ := range []string{"order.created", "t0", "t69"} {
			if _, err := hookwirev1.NewEventServiceClient(h.conn).PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{
				Tenant: "acme", Event: &hookwirev1.Event{Type: typ, Payload: []byte(`{}`)}}); err != nil {
				t.Fatal(err)
			}
			a := agent.assignments(t, 1)[0]
			if err := verifies(t, a, keys[typ], nil); err != nil {
				t.Fatalf("event %s: signature does not verify with the subscription's key: %v", typ, err)
			}
			agent.report(t, ok(a))
		}
	}
	checkSigns(h, agent)
	select {
	case <-h.srv.MasterKeyRotationDone():
	case <-time.After(20 * time.Second):
		t.Fatal("re-seal did not finish")
	}
	if err := h.srv.MasterKeyRotationErr(); err != nil {
		t.Fatal(err)
	}
	h.stop()

	// Every key is re-sealed: the new key alone now suffices.
	h = start(t, dir, controlplane.Config{MasterKey: newKey})
	agent, _ = h.connectAgent("agent-1", 100)
	checkSigns(h, agent)
}
