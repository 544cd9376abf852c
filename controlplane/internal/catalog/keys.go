package catalog

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/secrets"
	"github.com/hookwire/hookwire/controlplane/signing"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// Signing keys are stored sealed under the master key (see package
// secrets); this file converts between stored keys and signing.Keys and
// implements the rotation rules on a SubscriptionRecord.

// MaxOldKeys bounds how many previous keys a subscription keeps signing
// with during overlaps; a rotation beyond it drops the oldest.
const MaxOldKeys = 10

// NormalScheme maps the unspecified scheme to HMAC-SHA256, the default.
func NormalScheme(s hookwirev1.SignatureScheme) hookwirev1.SignatureScheme {
	if s == hookwirev1.SignatureScheme_SIGNATURE_SCHEME_UNSPECIFIED {
		return hookwirev1.SignatureScheme_SIGNATURE_SCHEME_HMAC_SHA256
	}
	return s
}

// SigningScheme returns the signing package's scheme for an API scheme.
func SigningScheme(s hookwirev1.SignatureScheme) (signing.Scheme, error) {
	switch NormalScheme(s) {
	case hookwirev1.SignatureScheme_SIGNATURE_SCHEME_HMAC_SHA256:
		return signing.SchemeHMAC, nil
	case hookwirev1.SignatureScheme_SIGNATURE_SCHEME_ED25519:
		return signing.SchemeEd25519, nil
	}
	return 0, fmt.Errorf("unknown signature scheme %d: use SIGNATURE_SCHEME_HMAC_SHA256 or SIGNATURE_SCHEME_ED25519", int32(s))
}

// KeyAAD is the associated data a subscription's signing key is sealed
// with: it binds the sealed bytes to their tenant, subscription, version
// and scheme, so sealed keys cannot be swapped between records.
func KeyAAD(tenant, subID string, version uint32, scheme hookwirev1.SignatureScheme) []byte {
	return fmt.Appendf(nil, "signing-key/%s/%s/%d/%d", tenant, subID, version, int32(NormalScheme(scheme)))
}

// SealKey returns the stored form of a new signing key of a subscription.
func SealKey(keys *secrets.Keyring, sub *hookwirev1.Subscription, version uint32, key signing.Key) (*storev1.SigningKey, error) {
	if keys == nil {
		return nil, errors.New("no master keyring configured to seal signing keys")
	}
	scheme := hookwirev1.SignatureScheme_SIGNATURE_SCHEME_HMAC_SHA256
	if key.Scheme() == signing.SchemeEd25519 {
		scheme = hookwirev1.SignatureScheme_SIGNATURE_SCHEME_ED25519
	}
	raw := key.Bytes()
	defer clear(raw)
	sealed, err := keys.Seal(raw, KeyAAD(sub.GetTenant(), sub.GetId(), version, scheme))
	if err != nil {
		return nil, err
	}
	return &storev1.SigningKey{SealedKey: sealed, Version: version, Scheme: scheme}, nil
}

// NextKeyVersion is the version for a subscription's next key.
func NextKeyVersion(rec *storev1.SubscriptionRecord) uint32 {
	var v uint32
	for _, k := range rec.GetSigningKeys() {
		v = max(v, k.GetVersion())
	}
	return v + 1
}

// openSigner opens a record's sealed keys and returns its signer: the
// current key first, then the previous ones, newest first, each signing
// until its expiry.
func openSigner(rec *storev1.SubscriptionRecord, keys *secrets.Keyring) (*signing.Signer, error) {
	sub := rec.GetSubscription()
	if keys == nil {
		return nil, errors.New("no master keyring configured to open signing keys")
	}
	stored := slices.Clone(rec.GetSigningKeys())
	slices.SortStableFunc(stored, func(a, b *storev1.SigningKey) int {
		if (a.GetExpireUnix() == 0) != (b.GetExpireUnix() == 0) {
			if a.GetExpireUnix() == 0 {
				return -1
			}
			return 1
		}
		return int(b.GetVersion()) - int(a.GetVersion())
	})
	out := make([]signing.Key, 0, len(stored))
	for _, sk := range stored {
		scheme, err := SigningScheme(sk.GetScheme())
		if err != nil {
			return nil, fmt.Errorf("signing key version %d: %w", sk.GetVersion(), err)
		}
		raw, err := keys.Open(sk.GetSealedKey(), KeyAAD(sub.GetTenant(), sub.GetId(), sk.GetVersion(), sk.GetScheme()))
		if err != nil {
			return nil, fmt.Errorf("open signing key version %d: %w", sk.GetVersion(), err)
		}
		key, err := signing.NewKey(scheme, raw)
		clear(raw)
		if err != nil {
			return nil, fmt.Errorf("signing key version %d: %w", sk.GetVersion(), err)
		}
		if sk.GetExpireUnix() != 0 {
			key = key.WithExpiry(time.Unix(sk.GetExpireUnix(), 0))
		}
		out = append(out, key)
	}
	return signing.NewKeySigner(out...)
}

// PruneKeys drops the previous keys that expired before now.
func PruneKeys(rec *storev1.SubscriptionRecord, now time.Time) {
	rec.SigningKeys = slices.DeleteFunc(rec.SigningKeys, func(k *storev1.SigningKey) bool {
		return k.GetExpireUnix() != 0 && k.GetExpireUnix() < now.Unix()
	})
}

// RotateKeys makes next the record's current key. The keys that were
// current keep signing until now+overlap (the returned time); expired keys
// are dropped, and of the previous keys only the MaxOldKeys newest remain.
func RotateKeys(rec *storev1.SubscriptionRecord, next *storev1.SigningKey, now time.Time, overlap time.Duration) time.Time {
	expire := now.Add(overlap)
	expireUnix := expire.Unix()
	if overlap <= 0 {
		// Signs through its expiry second: retire it at once.
		expireUnix = now.Unix() - 1
		expire = time.Unix(expireUnix, 0)
	}
	for _, k := range rec.GetSigningKeys() {
		if k.GetExpireUnix() == 0 {
			k.ExpireUnix = expireUnix
		}
	}
	PruneKeys(rec, now)
	if n := len(rec.SigningKeys); n > MaxOldKeys {
		slices.SortFunc(rec.SigningKeys, func(a, b *storev1.SigningKey) int { return int(b.GetVersion()) - int(a.GetVersion()) })
		clear(rec.SigningKeys[MaxOldKeys:])
		rec.SigningKeys = rec.SigningKeys[:MaxOldKeys]
	}
	rec.SigningKeys = append([]*storev1.SigningKey{next}, rec.SigningKeys...)
	return expire
}

// ResealKeys re-seals under the keyring's current master key every key,
// target header value and secret target configuration value of the record
// still sealed under another one, and seals header values still kept in
// clear; it returns how many. (Secret configuration values kept in clear
// need their transport's schema: SealClearConfig.)
func ResealKeys(rec *storev1.SubscriptionRecord, keys *secrets.Keyring) (int, error) {
	sub := rec.GetSubscription()
	n, err := resealHeaders(rec, keys)
	if err != nil {
		return n, err
	}
	clearHeaders, err := SealClearHeaders(rec, keys)
	if err != nil {
		return n, fmt.Errorf("subscription %s: %w", sub.GetId(), err)
	}
	n += clearHeaders
	config, err := resealConfig(rec, keys)
	n += config
	if err != nil {
		return n, err
	}
	for _, sk := range rec.GetSigningKeys() {
		if !keys.NeedsRotation(sk.GetSealedKey()) {
			continue
		}
		sealed, err := keys.Reseal(sk.GetSealedKey(), KeyAAD(sub.GetTenant(), sub.GetId(), sk.GetVersion(), sk.GetScheme()))
		if err != nil {
			return n, fmt.Errorf("subscription %s signing key version %d: %w", sub.GetId(), sk.GetVersion(), err)
		}
		sk.SealedKey = sealed
		n++
	}
	return n, nil
}
