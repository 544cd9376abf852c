package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Asymmetric key prefixes from the Standard Webhooks specification.
//
// Key formats used by Hookwire:
//
//	whsec_ + base64(24..64 random bytes)          HMAC-SHA256 secret ("v1")
//	whsk_  + base64(64-byte ed25519 private key)  ed25519 secret key ("v1a")
//	whpk_  + base64(32-byte ed25519 public key)   ed25519 public key ("v1a")
//
// The 64-byte private key is the form of Go's crypto/ed25519 and libsodium
// (the 32-byte seed followed by the public key). Parsing also accepts the
// bare 32-byte seed, which is what some other libraries export. Base64 is
// the standard alphabet with padding.
const (
	SecretKeyPrefix = "whsk_"
	PublicKeyPrefix = "whpk_"
)

// Signature version identifiers as they appear in webhook-signature.
const (
	VersionHMAC    = "v1"
	VersionEd25519 = "v1a"
)

// Scheme is a signature scheme.
type Scheme uint8

// The signature schemes a Key can use. The zero Scheme is invalid.
const (
	// SchemeHMAC is HMAC-SHA256 with a shared "whsec_" secret ("v1").
	SchemeHMAC Scheme = 1
	// SchemeEd25519 is ed25519 with a "whsk_" secret key; receivers verify
	// with the "whpk_" public key ("v1a").
	SchemeEd25519 Scheme = 2
)

// String returns the scheme's name ("hmac-sha256" or "ed25519").
func (s Scheme) String() string {
	switch s {
	case SchemeHMAC:
		return "hmac-sha256"
	case SchemeEd25519:
		return "ed25519"
	}
	return fmt.Sprintf("Scheme(%d)", uint8(s))
}

// Version returns the signature version identifier of the scheme ("v1" or
// "v1a"), or "" for an invalid scheme.
func (s Scheme) Version() string {
	switch s {
	case SchemeHMAC:
		return VersionHMAC
	case SchemeEd25519:
		return VersionEd25519
	}
	return ""
}

// HMAC secret length bounds from the specification (192 to 512 bits).
const (
	minHMACKey = 24
	maxHMACKey = 64
)

// Key is one signing key: an HMAC secret or an ed25519 private key, with an
// optional expiry after which it no longer signs. Keys are values; the key
// material is copied on construction and never shared. Formatting a Key
// with fmt prints only its scheme and public identity, never the secret.
type Key struct {
	scheme Scheme
	// material is the HMAC key or the 64-byte ed25519 private key.
	material []byte
	// expires says whether expireUnix, the last Unix second at which the
	// key signs, applies.
	expires    bool
	expireUnix int64
}

// NewHMACKey returns an HMAC-SHA256 key for the raw secret (24 to 64 bytes).
func NewHMACKey(raw []byte) (Key, error) {
	if len(raw) < minHMACKey || len(raw) > maxHMACKey {
		return Key{}, fmt.Errorf("HMAC signing key must be %d to %d bytes, got %d", minHMACKey, maxHMACKey, len(raw))
	}
	return Key{scheme: SchemeHMAC, material: bytes.Clone(raw)}, nil
}

// NewEd25519Key returns an ed25519 signing key from either the 64-byte
// private key (seed followed by public key) or the 32-byte seed.
func NewEd25519Key(raw []byte) (Key, error) {
	priv, err := ed25519FromBytes(raw)
	if err != nil {
		return Key{}, err
	}
	return Key{scheme: SchemeEd25519, material: priv}, nil
}

// NewKey returns a key of the given scheme from its raw bytes, as kept in
// storage: the HMAC secret, or the ed25519 private key (64 bytes, or the
// 32-byte seed).
func NewKey(scheme Scheme, raw []byte) (Key, error) {
	switch scheme {
	case SchemeHMAC:
		return NewHMACKey(raw)
	case SchemeEd25519:
		return NewEd25519Key(raw)
	}
	return Key{}, fmt.Errorf("unknown signing scheme %d: use SchemeHMAC or SchemeEd25519", uint8(scheme))
}

// ParseSigningKey parses a key in its text form: a "whsec_" HMAC secret or
// a "whsk_" ed25519 secret key. A "whpk_" public key cannot sign and is
// refused with an error saying so.
func ParseSigningKey(text string) (Key, error) {
	switch {
	case strings.HasPrefix(text, SecretPrefix):
		raw, err := ParseSecret(text)
		if err != nil {
			return Key{}, err
		}
		return Key{scheme: SchemeHMAC, material: raw}, nil
	case strings.HasPrefix(text, SecretKeyPrefix):
		priv, err := ParseEd25519SecretKey(text)
		if err != nil {
			return Key{}, err
		}
		return Key{scheme: SchemeEd25519, material: priv}, nil
	case strings.HasPrefix(text, PublicKeyPrefix):
		return Key{}, errors.New("a " + PublicKeyPrefix + " public key cannot sign: use the matching " + SecretKeyPrefix + " secret key")
	}
	return Key{}, errors.New("signing key must start with " + SecretPrefix + " (HMAC) or " + SecretKeyPrefix + " (ed25519)")
}

// Scheme returns the key's signature scheme.
func (k Key) Scheme() Scheme { return k.scheme }

// Bytes returns a copy of the raw key material for storage: the HMAC
// secret, or the 64-byte ed25519 private key. Treat it as a secret.
func (k Key) Bytes() []byte { return bytes.Clone(k.material) }

// Secret returns the key in its text form ("whsec_..." or "whsk_..."), the
// form to show once to whoever configures the key. Treat it as a secret.
func (k Key) Secret() string {
	switch k.scheme {
	case SchemeHMAC:
		return SecretPrefix + base64.StdEncoding.EncodeToString(k.material)
	case SchemeEd25519:
		return SecretKeyPrefix + base64.StdEncoding.EncodeToString(k.material)
	}
	return ""
}

// PublicKey returns the "whpk_" public key of an ed25519 key, and "" for an
// HMAC key (which has no public part).
func (k Key) PublicKey() string {
	if k.scheme != SchemeEd25519 {
		return ""
	}
	return encodePublicKey(ed25519.PrivateKey(k.material).Public().(ed25519.PublicKey))
}

// WithExpiry returns a copy of the key that signs only up to and including
// the Unix second of t (the old key of a rotation). The zero time means the
// key never expires.
func (k Key) WithExpiry(t time.Time) Key {
	k.expires, k.expireUnix = !t.IsZero(), 0
	if k.expires {
		k.expireUnix = t.Unix()
	}
	return k
}

// Expiry returns the time after which the key no longer signs, or the zero
// time if it never expires.
func (k Key) Expiry() time.Time {
	if !k.expires {
		return time.Time{}
	}
	return time.Unix(k.expireUnix, 0)
}

// validAt reports whether the key signs at the given Unix second.
func (k Key) validAt(unix int64) bool {
	return !k.expires || unix <= k.expireUnix
}

// sameMaterial reports whether two keys are the same key of the same scheme.
func (k Key) sameMaterial(o Key) bool {
	return k.scheme == o.scheme && subtle.ConstantTimeCompare(k.material, o.material) == 1
}

// String describes the key without its secret: the scheme, and for ed25519
// the public key.
func (k Key) String() string {
	switch k.scheme {
	case SchemeHMAC:
		return "signing.Key{hmac-sha256, secret redacted}"
	case SchemeEd25519:
		return "signing.Key{ed25519, public " + k.PublicKey() + "}"
	}
	return "signing.Key{invalid}"
}

// GoString is String, so %#v does not print key material either.
func (k Key) GoString() string { return k.String() }

// Format prints String for every verb, so no fmt verb prints the secret.
func (k Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// GenerateEd25519 returns a new ed25519 key pair in text form: the secret
// key ("whsk_" + base64 of the 64-byte private key) for the sender, and the
// public key ("whpk_" + base64 of 32 bytes) for receivers.
func GenerateEd25519() (secret, public string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generate ed25519 key: %w", err)
	}
	return SecretKeyPrefix + base64.StdEncoding.EncodeToString(priv), encodePublicKey(pub), nil
}

// ParseEd25519SecretKey returns the 64-byte private key of a "whsk_"
// secret key. The base64 part may hold the 64-byte private key, whose
// public half must match its seed, or the bare 32-byte seed.
func ParseEd25519SecretKey(text string) (ed25519.PrivateKey, error) {
	enc, ok := strings.CutPrefix(text, SecretKeyPrefix)
	if !ok {
		return nil, errors.New("ed25519 secret key must start with " + SecretKeyPrefix)
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("ed25519 secret key is not valid base64 after %s: %w", SecretKeyPrefix, err)
	}
	return ed25519FromBytes(raw)
}

// ParsePublicKey returns the ed25519 public key of a "whpk_" public key.
func ParsePublicKey(text string) (ed25519.PublicKey, error) {
	enc, ok := strings.CutPrefix(text, PublicKeyPrefix)
	if !ok {
		if strings.HasPrefix(text, SecretKeyPrefix) {
			return nil, errors.New("got an ed25519 secret key (" + SecretKeyPrefix + "); receivers need only the " + PublicKeyPrefix + " public key, keep the secret key with the sender")
		}
		return nil, errors.New("ed25519 public key must start with " + PublicKeyPrefix)
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("ed25519 public key is not valid base64 after %s: %w", PublicKeyPrefix, err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ed25519 public key must be %d bytes, got %d", ed25519.PublicKeySize, len(raw))
	}
	return ed25519.PublicKey(raw), nil
}

func ed25519FromBytes(raw []byte) (ed25519.PrivateKey, error) {
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		priv := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
		if subtle.ConstantTimeCompare(priv[ed25519.SeedSize:], raw[ed25519.SeedSize:]) != 1 {
			return nil, errors.New("ed25519 private key is corrupt: its last 32 bytes are not the public key of its first 32 (the seed)")
		}
		return priv, nil
	}
	return nil, fmt.Errorf("ed25519 secret key must be %d bytes (private key) or %d bytes (seed), got %d", ed25519.PrivateKeySize, ed25519.SeedSize, len(raw))
}

func encodePublicKey(pub ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}
