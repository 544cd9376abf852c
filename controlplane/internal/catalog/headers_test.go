package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/hookwire/hookwire/controlplane/internal/secrets"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	"google.golang.org/protobuf/proto"
)

// headerRecord is a stored subscription with a signing key and no headers.
func headerRecord(t *testing.T, keys *secrets.Keyring) *storev1.SubscriptionRecord {
	t.Helper()
	sub := testSub()
	sk, err := SealKey(keys, sub, 1, hmacKey(t, 7))
	if err != nil {
		t.Fatal(err)
	}
	return &storev1.SubscriptionRecord{Subscription: sub, SigningKeys: []*storev1.SigningKey{sk}}
}

func TestHeaderValuesAreSealedAndOpenedForDispatch(t *testing.T) {
	keys := testKeyring(t)
	rec := headerRecord(t, keys)
	in := map[string]string{"Authorization": "Bearer tok-1", "X-Team": "billing"}
	if err := SetHeaders(rec, keys, in); err != nil {
		t.Fatal(err)
	}
	if in["Authorization"] != "Bearer tok-1" {
		t.Fatal("SetHeaders changed its input")
	}
	if got := rec.GetSubscription().GetTarget().GetHeaders(); fmt.Sprint(got) != fmt.Sprint(map[string]string{"Authorization": RedactedValue, "X-Team": RedactedValue}) {
		t.Fatalf("stored subscription headers %v, want the names with the mask", got)
	}
	stored, err := proto.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte("tok-1")) || bytes.Contains(stored, []byte("billing")) {
		t.Fatal("a header value is in the stored record")
	}
	sub, err := Prepare(rec, keys)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(sub.Headers, in) {
		t.Fatalf("prepared headers %v, want %v", sub.Headers, in)
	}

	// The mask keeps a stored value; the set is replaced as a whole.
	if err := SetHeaders(rec, keys, map[string]string{"Authorization": RedactedValue, "X-New": "v2"}); err != nil {
		t.Fatal(err)
	}
	if sub, err = Prepare(rec, keys); err != nil || !maps.Equal(sub.Headers, map[string]string{"Authorization": "Bearer tok-1", "X-New": "v2"}) {
		t.Fatalf("after replacing: %v, %v", sub.Headers, err)
	}
	var ie *InputError
	if err := SetHeaders(rec, keys, map[string]string{"X-Team": RedactedValue}); !errors.As(err, &ie) {
		t.Fatalf("mask with no stored value: %v, want an InputError", err)
	}

	// Sealed values are bound to their header name and subscription.
	swapped := proto.Clone(rec).(*storev1.SubscriptionRecord)
	swapped.SealedHeaders[0].Name, swapped.SealedHeaders[1].Name = swapped.SealedHeaders[1].GetName(), swapped.SealedHeaders[0].GetName()
	if _, err := Prepare(swapped, keys); err == nil {
		t.Fatal("values swapped between header names still open")
	}
	other := headerRecord(t, keys)
	other.SealedHeaders = rec.GetSealedHeaders()
	other.Subscription.Target.Headers = rec.GetSubscription().GetTarget().GetHeaders()
	if _, err := Prepare(other, keys); err == nil {
		t.Fatal("values copied to another subscription still open")
	}

	// Clearing the headers clears the sealed values.
	if err := SetHeaders(rec, keys, nil); err != nil || len(rec.GetSealedHeaders()) != 0 || rec.GetSubscription().GetTarget().GetHeaders() != nil {
		t.Fatalf("after clearing: %v, %v, %v", rec.GetSealedHeaders(), rec.GetSubscription().GetTarget().GetHeaders(), err)
	}
}

func TestClearHeaderValuesAreSealedAndResealed(t *testing.T) {
	oldRing := testKeyring(t)
	rec := headerRecord(t, oldRing)
	// A record written before header values were sealed.
	rec.Subscription.Target.Headers = map[string]string{"Authorization": "Bearer legacy"}
	if !HasClearHeaders(rec) {
		t.Fatal("a clear value is not noticed")
	}
	if sub, err := Prepare(rec, oldRing); err != nil || sub.Headers["Authorization"] != "Bearer legacy" {
		t.Fatalf("a record with a clear value is not usable before it is sealed: %v, %v", sub, err)
	}
	if n, err := SealClearHeaders(rec, oldRing); err != nil || n != 1 || HasClearHeaders(rec) {
		t.Fatalf("seal clear headers: %d, %v", n, err)
	}
	if sub, err := Prepare(rec, oldRing); err != nil || sub.Headers["Authorization"] != "Bearer legacy" {
		t.Fatalf("after sealing: %v, %v", sub, err)
	}

	// A master-key rotation re-seals them with the signing keys.
	newRing, err := secrets.NewKeyring(masterKey(t, 2), masterKey(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ResealKeys(rec, newRing); err != nil || n != 2 {
		t.Fatalf("reseal: %d, %v; want the signing key and the header value", n, err)
	}
	onlyNew, err := secrets.NewKeyring(masterKey(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	if sub, err := Prepare(rec, onlyNew); err != nil || sub.Headers["Authorization"] != "Bearer legacy" {
		t.Fatalf("with the new master key only: %v, %v", sub, err)
	}
	if _, err := Prepare(rec, oldRing); err == nil {
		t.Fatal("the old master key still opens the re-sealed record")
	}
}
