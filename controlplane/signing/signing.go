// Package signing produces Standard Webhooks signatures for outgoing
// deliveries. It owns the key formats ("whsec_" HMAC secrets, "whsk_" and
// "whpk_" ed25519 secret and public keys) and the signed content
// "{id}.{timestamp}.{body}", signed as "v1,<base64 HMAC-SHA256>" or
// "v1a,<base64 ed25519 signature>". It knows nothing about storage:
// callers hand it decrypted keys and must never log them.
//
// Receivers verify with the companion package signing/verify.
package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header names defined by the Standard Webhooks specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix marks a symmetric (HMAC-SHA256) signing secret.
const SecretPrefix = "whsec_"

// secretBytes is the key length of generated secrets (the spec allows 24-64).
const secretBytes = 32

// GenerateSecret returns a new random signing secret in its "whsec_" form.
func GenerateSecret() (string, error) {
	key := make([]byte, secretBytes)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generate signing secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// ParseSecret returns the raw key of a "whsec_" secret.
func ParseSecret(secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, errors.New("signing secret must start with " + SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("signing secret is not valid base64 after %s: %w", SecretPrefix, err)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("signing secret key must be 24 to 64 bytes, got %d", len(key))
	}
	return key, nil
}

// Signer signs with one or more keys, HMAC-SHA256 ("v1") and ed25519
// ("v1a") alike. During a rotation, or a migration from one scheme to the
// other, every key still valid at the signing time signs, and the
// signatures are space-separated in the order the keys were given to the
// constructor. A Signer is immutable and safe for concurrent use.
type Signer struct {
	keys       []Key
	hasEd25519 bool
}

// NewSigner returns a Signer for the given raw HMAC keys (at least one).
// The keys never expire. Use NewKeySigner for ed25519 keys, mixed key sets
// and expiring keys.
func NewSigner(keys ...[]byte) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("signer needs at least one key")
	}
	cp := make([]Key, len(keys))
	for i, k := range keys {
		cp[i] = Key{scheme: SchemeHMAC, material: append([]byte(nil), k...)}
	}
	return &Signer{keys: cp}, nil
}

// NewKeySigner returns a Signer for keys of either scheme, built with
// NewHMACKey, NewEd25519Key, NewKey or ParseSigningKey. Signatures come out
// in the order given, so pass the current key first. At least one key must
// not expire (the current key); keys with an expiry (Key.WithExpiry) stop
// signing after it. A key given twice signs once, with the later of its
// expiries.
func NewKeySigner(keys ...Key) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("signer needs at least one key")
	}
	s := &Signer{keys: make([]Key, 0, len(keys))}
	current := false
next:
	for i, k := range keys {
		if k.scheme != SchemeHMAC && k.scheme != SchemeEd25519 {
			return nil, fmt.Errorf("signer key %d is not initialised: build keys with NewHMACKey, NewEd25519Key, NewKey or ParseSigningKey", i)
		}
		current = current || !k.expires
		for j := range s.keys {
			if s.keys[j].sameMaterial(k) {
				if !k.expires || (s.keys[j].expires && k.expireUnix > s.keys[j].expireUnix) {
					s.keys[j].expires, s.keys[j].expireUnix = k.expires, k.expireUnix
				}
				continue next
			}
		}
		k.material = bytes.Clone(k.material)
		s.keys = append(s.keys, k)
		s.hasEd25519 = s.hasEd25519 || k.scheme == SchemeEd25519
	}
	if !current {
		return nil, errors.New("signer needs a current key: every key given has an expiry, so none would sign once they pass")
	}
	return s, nil
}

// Sign returns the webhook-signature header value for the message.
func (s *Signer) Sign(msgID string, ts time.Time, body []byte) string {
	return s.SignUnix(msgID, ts.Unix(), body)
}

// SignUnix is Sign with the timestamp already in Unix seconds.
func (s *Signer) SignUnix(msgID string, unix int64, body []byte) string {
	var tsBuf [20]byte
	tsText := strconv.AppendInt(tsBuf[:0], unix, 10)
	// ed25519 needs the signed content in one piece; HMAC can stream it.
	var content []byte
	if s.hasEd25519 {
		content = make([]byte, 0, len(msgID)+len(tsText)+len(body)+2)
		content = append(content, msgID...)
		content = append(content, '.')
		content = append(content, tsText...)
		content = append(content, '.')
		content = append(content, body...)
	}
	out := make([]byte, 0, len(s.keys)*(len(VersionEd25519)+2+base64.StdEncoding.EncodedLen(ed25519.SignatureSize)))
	var sum [sha256.Size]byte
	n := 0
	for _, key := range s.keys {
		if !key.validAt(unix) {
			continue
		}
		if n > 0 {
			out = append(out, ' ')
		}
		n++
		switch key.scheme {
		case SchemeHMAC:
			mac := hmac.New(sha256.New, key.material)
			if content != nil {
				mac.Write(content)
			} else {
				mac.Write([]byte(msgID))
				mac.Write([]byte{'.'})
				mac.Write(tsText)
				mac.Write([]byte{'.'})
				mac.Write(body)
			}
			out = append(out, VersionHMAC+","...)
			out = base64.StdEncoding.AppendEncode(out, mac.Sum(sum[:0]))
		case SchemeEd25519:
			out = append(out, VersionEd25519+","...)
			out = base64.StdEncoding.AppendEncode(out, ed25519.Sign(ed25519.PrivateKey(key.material), content))
		}
	}
	return string(out)
}

// PublicKeys returns the "whpk_" public keys of the signer's ed25519 keys,
// in signing order, for publishing to receivers. It is empty for a signer
// with HMAC keys only.
func (s *Signer) PublicKeys() []string {
	var out []string
	for _, k := range s.keys {
		if k.scheme == SchemeEd25519 {
			out = append(out, k.PublicKey())
		}
	}
	return out
}

// Headers returns the three Standard Webhooks headers for one attempt.
func (s *Signer) Headers(msgID string, ts time.Time, body []byte) map[string]string {
	return map[string]string{
		HeaderID:        msgID,
		HeaderTimestamp: strconv.FormatInt(ts.Unix(), 10),
		HeaderSignature: s.Sign(msgID, ts, body),
	}
}
