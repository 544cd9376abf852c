package controlplane_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	"github.com/hookwire/hookwire/plugins/builtin"
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

// withBuiltinTransports makes a server validate built-in targets and seal
// the config fields they declare secret, as `hookwire server` does.
func withBuiltinTransports(cfg controlplane.Config) controlplane.Config {
	cfg.ValidateTarget = func(ctx context.Context, transport string, config *structpb.Struct) ([]string, bool, error) {
		tr, ok := builtin.New(transport)
		if !ok {
			return nil, false, nil
		}
		if c, ok := tr.(io.Closer); ok {
			defer c.Close()
		}
		problems, err := tr.Validate(ctx, config)
		return problems, true, err
	}
	cfg.SecretConfigFields = func(transport string) []string {
		fields, _ := builtin.SecretFields(transport)
		return fields
	}
	return cfg
}

func TestSigningKeysAreEncryptedAtRest(t *testing.T) {
	dir := t.TempDir()
	h := startDelivery(t, dir, withBuiltinTransports(controlplane.Config{}))
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
	brokerShown, brokerSecrets := brokerSecretsShown(t, h)
	h.stop()

	db, err := os.ReadFile(filepath.Join(dir, "hookwire.db"))
	if err != nil {
		t.Fatal(err)
	}
	// Broker URLs with credentials (secret config fields of the amqp,
	// redis, nats and mqtt transports): not in any file of the data
	// directory, not in any API response or audit record.
	var files []byte
	if err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files = append(files, b...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, value := range brokerSecrets {
		for form, b := range map[string][]byte{
			"raw":        []byte(value),
			"base64":     []byte(base64.StdEncoding.EncodeToString([]byte(value))),
			"raw base64": []byte(base64.RawStdEncoding.EncodeToString([]byte(value))),
			"url base64": []byte(base64.RawURLEncoding.EncodeToString([]byte(value))),
		} {
			if bytes.Contains(files, b) {
				t.Errorf("broker secret %q in %s form is in the data directory", value, form)
			}
			if bytes.Contains(brokerShown, b) || bytes.Contains(shown, b) {
				t.Errorf("broker secret %q in %s form is in an API response or audit record", value, form)
			}
		}
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

// brokerTargets are broker subscriptions whose URL carries credentials:
// by transport, the target config and the password (or token) in it.
var brokerTargets = map[string]struct {
	config   map[string]any
	password string
}{
	"amqp":  {map[string]any{"url": "amqp://hook:amqp-pw-41c7e2@broker.internal:5672/vh", "routing_key": "orders"}, "amqp-pw-41c7e2"},
	"redis": {map[string]any{"url": "redis://default:redis-pw-9b3d11@cache.internal:6379/0", "stream": "events"}, "redis-pw-9b3d11"},
	"nats":  {map[string]any{"url": "nats://nats-token-5f0a9c@nats.internal:4222", "subject": "orders.created"}, "nats-token-5f0a9c"},
	"mqtt":  {map[string]any{"url": "mqtt://hook:mqtt-pw-2e8b64@mqtt.internal:1883", "topic": "orders"}, "mqtt-pw-2e8b64"},
}

// brokerSecretURL2 replaces the amqp subscription's URL in an update.
const brokerSecretURL2 = "amqp://hook:amqp-pw2-77d1a0@broker.internal:5672/vh"

// brokerSecretsShown creates a subscription per broker transport with
// credentials in its URL, exercises every API that shows it (create, get,
// list, update, the audit log; gRPC and REST), checks that responses show
// the URL as "<redacted>" and other fields as given, and that an agent's
// assignment carries the real URL; it returns everything the API answered
// and the secrets that must appear nowhere in it.
func brokerSecretsShown(t *testing.T, h *deliveryHarness) ([]byte, []string) {
	t.Helper()
	subs := hookwirev1.NewSubscriptionServiceClient(h.conn)
	agent, _ := h.connectAgentFor("broker-agent", 100, []string{"amqp", "mqtt", "nats", "redis"})
	var shown []byte
	see := func(m proto.Message) {
		t.Helper()
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		shown = append(shown, b...)
	}
	masked := func(what string, s *hookwirev1.Subscription, want map[string]any) {
		t.Helper()
		got := s.GetTarget().GetConfig().AsMap()
		if got["url"] != catalogRedacted || len(got) != len(want) {
			t.Fatalf("%s: config %v, want url %q and the other fields as given", what, got, catalogRedacted)
		}
		for k, v := range want {
			if k != "url" && got[k] != v {
				t.Fatalf("%s: config field %s = %v, want %v", what, k, got[k], v)
			}
		}
	}
	// delivers publishes an event for the transport's subscription and
	// checks that the assignment carries url.
	delivers := func(transport, url string) {
		t.Helper()
		h.publish(transport+".sent", `{}`)
		a := agent.assignments(t, 1)[0]
		if got := a.GetRequest().GetConfig().GetFields()["url"].GetStringValue(); a.GetTransport() != transport || got != url {
			t.Fatalf("%s assignment: transport %q, url %q; want the stored url", transport, a.GetTransport(), got)
		}
		agent.report(t, ok(a))
	}
	var secrets []string
	ids := map[string]string{}
	var amqpSub *hookwirev1.Subscription // as Get shows it
	for _, transport := range []string{"amqp", "mqtt", "nats", "redis"} {
		bt := brokerTargets[transport]
		secrets = append(secrets, bt.config["url"].(string), bt.password)
		cfg, err := structpb.NewStruct(bt.config)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := subs.CreateSubscription(h.ctx(), &hookwirev1.CreateSubscriptionRequest{Tenant: "acme", Subscription: &hookwirev1.Subscription{
			EventTypes: []string{transport + ".sent"}, Target: &hookwirev1.Target{Transport: transport, Config: cfg}}})
		if err != nil {
			t.Fatalf("create %s subscription: %v", transport, err)
		}
		see(sub)
		masked(transport+" create response", sub, bt.config)
		ids[transport] = sub.GetId()
		delivers(transport, bt.config["url"].(string))
		got, err := subs.GetSubscription(h.ctx(), &hookwirev1.GetSubscriptionRequest{Tenant: "acme", Id: sub.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		see(got)
		masked(transport+" get response", got, bt.config)

		// A full update that sends the target back as shown keeps the
		// URL (and validates with it: "<redacted>" is no amqp:// URL).
		got.SigningPublicKey = ""
		upd, err := subs.UpdateSubscription(h.ctx(), &hookwirev1.UpdateSubscriptionRequest{Tenant: "acme", Subscription: got,
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"target", "description"}}})
		if err != nil {
			t.Fatalf("%s: update sending the shown target back: %v", transport, err)
		}
		see(upd)
		masked(transport+" update response", upd, bt.config)
		if transport == "amqp" {
			amqpSub = upd
		}
		delivers(transport, bt.config["url"].(string))
	}
	secrets = append(secrets, brokerSecretURL2, "amqp-pw2-77d1a0")
	// A new URL replaces the stored one; it is the last one stored, so the
	// file check sees it where a clear copy would be.
	withConfig := func(m map[string]any) *hookwirev1.Subscription {
		s := proto.Clone(amqpSub).(*hookwirev1.Subscription)
		s.SigningPublicKey = ""
		cfg, err := structpb.NewStruct(m)
		if err != nil {
			t.Fatal(err)
		}
		s.Target.Config = cfg
		return s
	}
	upd, err := subs.UpdateSubscription(h.ctx(), &hookwirev1.UpdateSubscriptionRequest{Tenant: "acme",
		Subscription: withConfig(map[string]any{"url": brokerSecretURL2, "routing_key": "orders"}),
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"target.config"}}})
	if err != nil {
		t.Fatal(err)
	}
	see(upd)
	delivers("amqp", brokerSecretURL2)
	// The new value is still validated, and the error shows no password.
	_, err = subs.UpdateSubscription(h.ctx(), &hookwirev1.UpdateSubscriptionRequest{Tenant: "acme",
		Subscription: withConfig(map[string]any{"url": "http://hook:amqp-pw-41c7e2@broker.internal/", "routing_key": "orders"}),
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"target.config"}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "amqp://") {
		t.Fatalf("update to an invalid amqp url: %v, want InvalidArgument saying what a url looks like", err)
	}
	shown = append(shown, err.Error()...)
	// The mask cannot stand for a URL that was never stored.
	masks, _ := structpb.NewStruct(map[string]any{"url": catalogRedacted, "subject": "x"})
	_, err = subs.CreateSubscription(h.ctx(), &hookwirev1.CreateSubscriptionRequest{Tenant: "acme", Subscription: &hookwirev1.Subscription{
		EventTypes: []string{"x"}, Target: &hookwirev1.Target{Transport: "nats", Config: masks}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "send the field's real value") {
		t.Fatalf("create with a masked url: %v, want InvalidArgument", err)
	}

	list, err := subs.ListSubscriptions(h.ctx(), &hookwirev1.ListSubscriptionsRequest{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	see(list)
	audit := hookwirev1.NewAuditServiceClient(h.conn)
	for _, scope := range []string{"acme", "-"} {
		resp, err := audit.ListAuditEvents(h.ctx(), &hookwirev1.ListAuditEventsRequest{Tenant: scope})
		if err != nil {
			t.Fatal(err)
		}
		see(resp)
		for _, ev := range resp.GetAuditEvents() {
			if ev.GetResource() == "tenants/acme/subscriptions/"+ids["amqp"] && ev.GetAfter() != nil {
				url := ev.GetAfter().GetFields()["target"].GetStructValue().GetFields()["config"].GetStructValue().GetFields()["url"].GetStringValue()
				if url != catalogRedacted {
					t.Fatalf("audit %s after-snapshot url %q, want %q", ev.GetAction(), url, catalogRedacted)
				}
			}
		}
	}
	paths := []string{"/v1/tenants/acme/subscriptions", "/v1/tenants/acme/audit-events", "/v1/tenants/-/audit-events"}
	for _, id := range ids {
		paths = append(paths, "/v1/tenants/acme/subscriptions/"+id)
	}
	for _, path := range paths {
		body, code := h.restRaw("GET", path, "", nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: HTTP %d %s", path, code, body)
		}
		if strings.Contains(path, "/subscriptions/") && !strings.Contains(string(body), `"url":"\u003credacted\u003e"`) && !strings.Contains(string(body), `"url":"<redacted>"`) {
			t.Fatalf("GET %s shows no redacted url: %s", path, body)
		}
		shown = append(shown, body...)
	}
	return shown, secrets
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
	h := start(t, dir, withBuiltinTransports(controlplane.Config{MasterKey: oldKey}))
	first := h.setup("acme")
	// A broker subscription: its URL (a secret config field) is sealed
	// under the master key as well, and re-sealed with the signing keys.
	broker := brokerTargets["amqp"]
	brokerCfg, _ := structpb.NewStruct(broker.config)
	if _, err := hookwirev1.NewSubscriptionServiceClient(h.conn).CreateSubscription(h.ctx(), &hookwirev1.CreateSubscriptionRequest{
		Tenant: "acme", Subscription: &hookwirev1.Subscription{EventTypes: []string{"broker.sent"},
			Target: &hookwirev1.Target{Transport: "amqp", Config: brokerCfg}}}); err != nil {
		t.Fatal(err)
	}
	brokerReceivesURL := func(h *harness) {
		t.Helper()
		agent, _ := h.connectAgentFor("broker-agent", 10, []string{"amqp"})
		if _, err := hookwirev1.NewEventServiceClient(h.conn).PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{
			Tenant: "acme", Event: &hookwirev1.Event{Type: "broker.sent", Payload: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
		a := agent.assignments(t, 1)[0]
		if got := a.GetRequest().GetConfig().GetFields()["url"].GetStringValue(); got != broker.config["url"] {
			t.Fatalf("broker assignment url %q, want the stored one", got)
		}
		agent.report(t, ok(a))
	}
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
	h = start(t, dir, withBuiltinTransports(controlplane.Config{MasterKey: newKey, PreviousMasterKeys: []*controlplane.MasterKey{oldKey}}))
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
	h = start(t, dir, withBuiltinTransports(controlplane.Config{MasterKey: newKey}))
	agent, _ = h.connectAgent("agent-1", 100)
	checkSigns(h, agent)
	brokerReceivesURL(h)
}

// TestClearSecretConfigIsSealedAtStart: a subscription stored while the
// server did not know its transport's secret fields (written before they
// were sealed, or a third-party plugin the server learns about later) has
// them sealed when a server that knows them starts, and shown masked.
func TestClearSecretConfigIsSealedAtStart(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, controlplane.Config{}) // knows no transport's schema
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "acme"}); err != nil {
		t.Fatal(err)
	}
	broker := brokerTargets["redis"]
	cfg, _ := structpb.NewStruct(broker.config)
	sub, err := hookwirev1.NewSubscriptionServiceClient(h.conn).CreateSubscription(h.ctx(), &hookwirev1.CreateSubscriptionRequest{
		Tenant: "acme", Subscription: &hookwirev1.Subscription{EventTypes: []string{"broker.sent"},
			Target: &hookwirev1.Target{Transport: "redis", Config: cfg}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := sub.GetTarget().GetConfig().GetFields()["url"].GetStringValue(); got != broker.config["url"] {
		t.Fatalf("a server that knows no schema shows url %q, want it as given", got)
	}
	h.stop()

	h = start(t, dir, withBuiltinTransports(controlplane.Config{}))
	got, err := hookwirev1.NewSubscriptionServiceClient(h.conn).GetSubscription(h.ctx(), &hookwirev1.GetSubscriptionRequest{Tenant: "acme", Id: sub.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if url := got.GetTarget().GetConfig().GetFields()["url"].GetStringValue(); url != catalogRedacted {
		t.Fatalf("after a start that knows the schema: url shown as %q, want %q", url, catalogRedacted)
	}
	agent, _ := h.connectAgentFor("broker-agent", 10, []string{"redis"})
	if _, err := hookwirev1.NewEventServiceClient(h.conn).PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{
		Tenant: "acme", Event: &hookwirev1.Event{Type: "broker.sent", Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	a := agent.assignments(t, 1)[0]
	if url := a.GetRequest().GetConfig().GetFields()["url"].GetStringValue(); url != broker.config["url"] {
		t.Fatalf("assignment url %q, want the stored one", url)
	}
	agent.report(t, ok(a))
	h.stop()
	// The stored record keeps the url sealed: a server that knows no
	// schema any more shows the mask, and still delivers with the url.
	h = start(t, dir, controlplane.Config{})
	got, err = hookwirev1.NewSubscriptionServiceClient(h.conn).GetSubscription(h.ctx(), &hookwirev1.GetSubscriptionRequest{Tenant: "acme", Id: sub.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if url := got.GetTarget().GetConfig().GetFields()["url"].GetStringValue(); url != catalogRedacted {
		t.Fatalf("stored record after sealing: url shown as %q, want %q", url, catalogRedacted)
	}
	agent, _ = h.connectAgentFor("broker-agent", 10, []string{"redis"})
	if _, err := hookwirev1.NewEventServiceClient(h.conn).PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{
		Tenant: "acme", Event: &hookwirev1.Event{Type: "broker.sent", Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	a = agent.assignments(t, 1)[0]
	if url := a.GetRequest().GetConfig().GetFields()["url"].GetStringValue(); url != broker.config["url"] {
		t.Fatalf("assignment url without the schema %q, want the stored one", url)
	}
	agent.report(t, ok(a))
}
