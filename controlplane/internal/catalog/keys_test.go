package catalog

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/secrets"
	"github.com/hookwire/hookwire/controlplane/signing"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

func masterKey(t *testing.T, fill byte) *secrets.MasterKey {
	t.Helper()
	k, err := secrets.NewMasterKey(bytes.Repeat([]byte{fill}, secrets.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var (
	ringOnce sync.Once
	ring     *secrets.Keyring
)

func testKeyring(t *testing.T) *secrets.Keyring {
	t.Helper()
	ringOnce.Do(func() { ring, _ = secrets.NewKeyring(masterKey(t, 1)) })
	return ring
}

func testSub() *hookwirev1.Subscription {
	return &hookwirev1.Subscription{
		Id: ids.Format(ids.Subscription, ids.New(time.Now())), Tenant: "acme",
		EventTypes: []string{"x"}, Target: &hookwirev1.Target{Transport: "http"},
	}
}

func hmacKey(t *testing.T, fill byte) signing.Key {
	t.Helper()
	k, err := signing.NewHMACKey(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealedKeysAreBoundToTheirRecord(t *testing.T) {
	kr := testKeyring(t)
	sub := testSub()
	sk, err := SealKey(kr, sub, 1, hmacKey(t, 7))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sk.GetSealedKey(), bytes.Repeat([]byte{7}, 32)) {
		t.Fatal("sealed key contains the raw key")
	}
	rec := &storev1.SubscriptionRecord{Subscription: sub, SigningKeys: []*storev1.SigningKey{sk}}
	if _, err := Prepare(rec, kr); err != nil {
		t.Fatal(err)
	}
	// Copied into another subscription, it does not open.
	other := testSub()
	other.Id = ids.Format(ids.Subscription, ids.New(time.Now().Add(time.Second)))
	if _, err := Prepare(&storev1.SubscriptionRecord{Subscription: other, SigningKeys: rec.SigningKeys}, kr); !errors.Is(err, secrets.ErrAuthentication) {
		t.Fatalf("foreign sealed key: err = %v", err)
	}
	// Under another master key only, it does not open, and says why.
	other2, _ := secrets.NewKeyring(masterKey(t, 2))
	if _, err := Prepare(rec, other2); !errors.Is(err, secrets.ErrUnknownKey) || !strings.Contains(err.Error(), "previous master key") {
		t.Fatalf("unknown master key: err = %v", err)
	}
}

func TestRotateKeysKeepsTenNewestAndPrunesExpired(t *testing.T) {
	kr := testKeyring(t)
	sub := testSub()
	now := time.Unix(1_700_000_000, 0)
	sk, _ := SealKey(kr, sub, 1, hmacKey(t, 1))
	rec := &storev1.SubscriptionRecord{Subscription: sub, SigningKeys: []*storev1.SigningKey{sk}}
	for i := 2; i <= 13; i++ {
		next, err := SealKey(kr, sub, NextKeyVersion(rec), hmacKey(t, byte(i)))
		if err != nil {
			t.Fatal(err)
		}
		RotateKeys(rec, next, now, time.Hour)
	}
	if got := len(rec.GetSigningKeys()); got != 1+MaxOldKeys {
		t.Fatalf("%d keys, want %d", got, 1+MaxOldKeys)
	}
	if v := rec.GetSigningKeys()[0]; v.GetVersion() != 13 || v.GetExpireUnix() != 0 {
		t.Fatalf("current key %v", v)
	}
	for _, k := range rec.GetSigningKeys()[1:] {
		if k.GetVersion() < 3 {
			t.Fatalf("oldest keys kept: version %d", k.GetVersion())
		}
	}
	if _, err := Prepare(rec, kr); err != nil {
		t.Fatal(err)
	}
	// Once their overlap ended, the next change drops them.
	PruneKeys(rec, now.Add(2*time.Hour))
	if len(rec.GetSigningKeys()) != 1 || rec.GetSigningKeys()[0].GetVersion() != 13 {
		t.Fatalf("after expiry: %v", rec.GetSigningKeys())
	}
}

func TestResealKeys(t *testing.T) {
	oldKey, newKey := masterKey(t, 3), masterKey(t, 4)
	oldRing, _ := secrets.NewKeyring(oldKey)
	sub := testSub()
	sk, _ := SealKey(oldRing, sub, 1, hmacKey(t, 9))
	rec := &storev1.SubscriptionRecord{Subscription: sub, SigningKeys: []*storev1.SigningKey{sk}}
	rotating, _ := secrets.NewKeyring(newKey, oldKey)
	if n, err := ResealKeys(rec, rotating); err != nil || n != 1 {
		t.Fatalf("reseal: %d, %v", n, err)
	}
	if n, err := ResealKeys(rec, rotating); err != nil || n != 0 {
		t.Fatalf("second reseal: %d, %v", n, err)
	}
	newOnly, _ := secrets.NewKeyring(newKey)
	if _, err := Prepare(rec, newOnly); err != nil {
		t.Fatal(err)
	}
}
