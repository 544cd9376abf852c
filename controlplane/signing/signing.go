// Package signing produces Standard Webhooks signatures for outgoing
// deliveries. It owns the secret format ("whsec_" + base64 key) and the
// signed content "{id}.{timestamp}.{body}". It knows nothing about storage:
// callers hand it decrypted keys and must never log them.
package signing

import (
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

// Signer signs with one or more HMAC keys; during a rotation every valid key
// signs and the signatures are space-separated. A Signer is immutable and
// safe for concurrent use.
type Signer struct {
	keys [][]byte
}

// NewSigner returns a Signer for the given raw keys (at least one).
func NewSigner(keys ...[]byte) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("signer needs at least one key")
	}
	cp := make([][]byte, len(keys))
	for i, k := range keys {
		cp[i] = append([]byte(nil), k...)
	}
	return &Signer{keys: cp}, nil
}

// Sign returns the webhook-signature header value for the message.
func (s *Signer) Sign(msgID string, ts time.Time, body []byte) string {
	return s.SignUnix(msgID, ts.Unix(), body)
}

// SignUnix is Sign with the timestamp already in Unix seconds.
func (s *Signer) SignUnix(msgID string, unix int64, body []byte) string {
	var tsBuf [20]byte
	tsText := strconv.AppendInt(tsBuf[:0], unix, 10)
	var out []byte
	sum := make([]byte, 0, sha256.Size)
	for i, key := range s.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(msgID))
		mac.Write([]byte{'.'})
		mac.Write(tsText)
		mac.Write([]byte{'.'})
		mac.Write(body)
		sum = mac.Sum(sum[:0])
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, "v1,"...)
		out = base64.StdEncoding.AppendEncode(out, sum)
	}
	return string(out)
}

// Headers returns the three Standard Webhooks headers for one attempt.
func (s *Signer) Headers(msgID string, ts time.Time, body []byte) map[string]string {
	return map[string]string{
		HeaderID:        msgID,
		HeaderTimestamp: strconv.FormatInt(ts.Unix(), 10),
		HeaderSignature: s.Sign(msgID, ts, body),
	}
}
