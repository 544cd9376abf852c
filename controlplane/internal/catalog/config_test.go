package catalog

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hookwire/hookwire/controlplane/internal/secrets"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// amqpRecord is a stored amqp subscription with a signing key and no
// target configuration yet.
func amqpRecord(t *testing.T, keys *secrets.Keyring) *storev1.SubscriptionRecord {
	t.Helper()
	rec := headerRecord(t, keys)
	rec.Subscription.Target.Transport = "amqp"
	return rec
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const brokerURL = "amqp://guest:pw-7c1e5b0d@broker:5672/"

var urlSecret = []string{"url"}

func TestSecretConfigFieldsAreSealedAndOpenedForDispatch(t *testing.T) {
	keys := testKeyring(t)
	rec := amqpRecord(t, keys)
	in := mustStruct(t, map[string]any{"url": brokerURL, "routing_key": "orders"})
	if err := SetConfig(rec, keys, in, urlSecret); err != nil {
		t.Fatal(err)
	}
	if in.GetFields()["url"].GetStringValue() != brokerURL {
		t.Fatal("SetConfig changed its input")
	}
	shown := rec.GetSubscription().GetTarget().GetConfig().GetFields()
	if shown["url"].GetStringValue() != RedactedValue || shown["routing_key"].GetStringValue() != "orders" {
		t.Fatalf("stored config %v, want url masked and routing_key as given", shown)
	}
	stored, err := proto.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte("pw-7c1e5b0d")) {
		t.Fatal("the broker password is in the stored record")
	}
	sub, err := Prepare(rec, keys)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(sub.Config, in) {
		t.Fatalf("prepared config %v, want %v", sub.Config, in)
	}

	// Sent back as shown, the stored value stays (same sealed bytes).
	before := rec.GetSealedConfig()[0].GetSealedValue()
	opened, err := OpenConfig(rec, keys, rec.GetSubscription().GetTarget().GetConfig())
	if err != nil || !proto.Equal(opened, in) {
		t.Fatalf("OpenConfig of the shown config = %v, %v; want %v", opened, err, in)
	}
	if err := SetConfig(rec, keys, proto.Clone(rec.GetSubscription().GetTarget().GetConfig()).(*structpb.Struct), urlSecret); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec.GetSealedConfig()[0].GetSealedValue(), before) {
		t.Fatal("sending the masked value back re-sealed it")
	}
	// A new value replaces it; a field left out is dropped.
	if err := SetConfig(rec, keys, mustStruct(t, map[string]any{"url": "amqp://u:pw2@b/"}), urlSecret); err != nil {
		t.Fatal(err)
	}
	if sub, err = Prepare(rec, keys); err != nil || sub.Config.GetFields()["url"].GetStringValue() != "amqp://u:pw2@b/" || len(sub.Config.GetFields()) != 1 {
		t.Fatalf("after replacing: %v, %v", sub.Config, err)
	}

	// The mask cannot stand for a value that was never stored.
	fresh := amqpRecord(t, keys)
	var ie *InputError
	if err := SetConfig(fresh, keys, mustStruct(t, map[string]any{"url": RedactedValue}), urlSecret); !errors.As(err, &ie) || ie.Field != "subscription.target.config.url" {
		t.Fatalf("mask with no stored value: %v, want an InputError on the field", err)
	}

	// Sealed values are bound to their field name and subscription.
	other := amqpRecord(t, keys)
	other.SealedConfig = rec.GetSealedConfig()
	other.Subscription.Target.Config = rec.GetSubscription().GetTarget().GetConfig()
	if _, err := Prepare(other, keys); err == nil {
		t.Fatal("a value copied to another subscription still opens")
	}
	renamed := proto.Clone(rec).(*storev1.SubscriptionRecord)
	renamed.SealedConfig[0].Name = "exchange"
	renamed.Subscription.Target.Config.Fields["exchange"] = structpb.NewStringValue(RedactedValue)
	if _, err := Prepare(renamed, keys); err == nil {
		t.Fatal("a value moved to another field name still opens")
	}

	// A sealed value stays sealed when the field is not called secret
	// (another transport, or a server that does not know the schema):
	// sending back the mask never stores it in clear; a new clear value
	// of a field that is no secret is stored as given.
	if err := SetConfig(rec, keys, rec.GetSubscription().GetTarget().GetConfig(), nil); err != nil {
		t.Fatal(err)
	}
	if got := rec.GetSubscription().GetTarget().GetConfig().GetFields()["url"].GetStringValue(); got != RedactedValue || len(rec.GetSealedConfig()) != 1 {
		t.Fatalf("mask sent back with no secret fields: url %q, %d sealed; want it kept sealed", got, len(rec.GetSealedConfig()))
	}
	if sub, err = Prepare(rec, keys); err != nil || sub.Config.GetFields()["url"].GetStringValue() != "amqp://u:pw2@b/" {
		t.Fatalf("kept sealed: %v, %v", sub.Config, err)
	}
	if err := SetConfig(rec, keys, mustStruct(t, map[string]any{"url": "https://example.com/"}), nil); err != nil {
		t.Fatal(err)
	}
	if got := rec.GetSubscription().GetTarget().GetConfig().GetFields()["url"].GetStringValue(); got != "https://example.com/" || len(rec.GetSealedConfig()) != 0 {
		t.Fatalf("new clear value of a field that is no secret: url %q, %d sealed", got, len(rec.GetSealedConfig()))
	}
}

func TestClearSecretConfigIsSealedMaskedAndResealed(t *testing.T) {
	oldRing := testKeyring(t)
	rec := amqpRecord(t, oldRing)
	// A record written before the transport declared url secret.
	rec.Subscription.Target.Config = mustStruct(t, map[string]any{"url": brokerURL, "routing_key": "orders"})
	if !HasClearConfig(rec, urlSecret) || HasClearConfig(rec, nil) {
		t.Fatal("HasClearConfig does not follow the secret field names")
	}
	shown := proto.Clone(rec.GetSubscription()).(*hookwirev1.Subscription)
	MaskConfig(shown, urlSecret)
	if shown.GetTarget().GetConfig().GetFields()["url"].GetStringValue() != RedactedValue || rec.GetSubscription().GetTarget().GetConfig().GetFields()["url"].GetStringValue() != brokerURL {
		t.Fatal("MaskConfig did not mask the response copy, or changed the record's config")
	}
	if n, err := SealClearConfig(rec, oldRing, urlSecret); err != nil || n != 1 || HasClearConfig(rec, urlSecret) {
		t.Fatalf("seal clear config: %d, %v", n, err)
	}
	if sub, err := Prepare(rec, oldRing); err != nil || sub.Config.GetFields()["url"].GetStringValue() != brokerURL {
		t.Fatalf("after sealing: %v, %v", sub, err)
	}

	// A master-key rotation re-seals it with the signing key.
	newRing, err := secrets.NewKeyring(masterKey(t, 2), masterKey(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ResealKeys(rec, newRing); err != nil || n != 2 {
		t.Fatalf("reseal: %d, %v; want the signing key and the url", n, err)
	}
	onlyNew, err := secrets.NewKeyring(masterKey(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	if sub, err := Prepare(rec, onlyNew); err != nil || sub.Config.GetFields()["url"].GetStringValue() != brokerURL {
		t.Fatalf("with the new master key only: %v, %v", sub, err)
	}
	unopened := 0
	CheckTargetKeys(rec, oldRing, func([]byte, error) { unopened++ })
	if unopened != 1 {
		t.Fatalf("CheckTargetKeys with the old key only: %d values it cannot open, want the url", unopened)
	}
}
