package verify

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hookwire/hookwire/controlplane/signing"
)

// The error kinds Verify returns, wrapped with details; test with errors.Is.
var (
	// ErrMissingHeaders means webhook-id, webhook-timestamp or
	// webhook-signature is absent or empty.
	ErrMissingHeaders = errors.New("missing webhook headers")
	// ErrMalformedHeader means a webhook header is present but unusable:
	// a timestamp that is not Unix seconds, an id containing '.', or a
	// signature header without any "version,signature" entry.
	ErrMalformedHeader = errors.New("malformed webhook header")
	// ErrTimestampTooOld means webhook-timestamp is further in the past
	// than the tolerance allows.
	ErrTimestampTooOld = errors.New("webhook timestamp too old")
	// ErrTimestampTooNew means webhook-timestamp is further in the future
	// than the tolerance allows.
	ErrTimestampTooNew = errors.New("webhook timestamp too new")
	// ErrNoMatchingSignature means no signature in webhook-signature was
	// made with any of the verifier's keys over this id, timestamp and body.
	ErrNoMatchingSignature = errors.New("no matching webhook signature")
)

const (
	// DefaultTolerance is how far webhook-timestamp may be from the local
	// clock, in either direction, unless WithTolerance says otherwise.
	DefaultTolerance = 5 * time.Minute
	// DefaultMaxBodyBytes is the largest body Middleware reads unless
	// WithMaxBodyBytes says otherwise.
	DefaultMaxBodyBytes = 1 << 20
	// MaxSignatures bounds the entries of one webhook-signature header that
	// Verify considers, so a hostile header cannot cost unbounded CPU.
	MaxSignatures = 16
)

// Verifier checks webhook signatures against a fixed set of keys. It is
// immutable and safe for concurrent use.
type Verifier struct {
	hmacKeys  [][]byte
	pubKeys   []ed25519.PublicKey
	tolerance time.Duration
	now       func() time.Time
	maxBody   int64
	onReject  func(*http.Request, error)
}

// Option configures a Verifier; see Verifier.With.
type Option func(*Verifier)

// WithTolerance sets how far webhook-timestamp may be from the local clock
// in either direction. A non-positive d restores DefaultTolerance.
func WithTolerance(d time.Duration) Option {
	return func(v *Verifier) {
		if d <= 0 {
			d = DefaultTolerance
		}
		v.tolerance = d
	}
}

// WithNow sets the clock Verify compares timestamps with (for tests). nil
// restores time.Now.
func WithNow(now func() time.Time) Option {
	return func(v *Verifier) {
		if now == nil {
			now = time.Now
		}
		v.now = now
	}
}

// WithMaxBodyBytes sets the largest body Middleware accepts; larger bodies
// are refused with 413. A non-positive n restores DefaultMaxBodyBytes.
func WithMaxBodyBytes(n int64) Option {
	return func(v *Verifier) {
		if n <= 0 {
			n = DefaultMaxBodyBytes
		}
		v.maxBody = n
	}
}

// WithOnReject sets a function Middleware calls with each rejected request
// and the detailed reason, e.g. to log it. The response itself carries only
// a short reason. The error never contains key material.
func WithOnReject(f func(r *http.Request, err error)) Option {
	return func(v *Verifier) { v.onReject = f }
}

// New returns a Verifier for one or more keys: "whsec_..." secrets (for
// "v1" HMAC signatures) and "whpk_..." public keys (for "v1a" ed25519
// signatures), in any mix. Pass several during a key rotation; a request
// signed with any of them verifies. Surrounding whitespace is ignored.
// Configure it further with With.
func New(keys ...string) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, errors.New("verify.New needs at least one key: the whsec_ secret or whpk_ public key of the subscription")
	}
	v := &Verifier{tolerance: DefaultTolerance, now: time.Now, maxBody: DefaultMaxBodyBytes}
	for i, k := range keys {
		k = strings.TrimSpace(k)
		switch {
		case k == "":
			return nil, fmt.Errorf("verify key %d is empty: is the environment variable or setting holding it unset?", i+1)
		case strings.ContainsAny(k, " \t\r\n,"):
			return nil, fmt.Errorf("verify key %d contains a space or comma: pass several keys as separate arguments, e.g. verify.New(strings.Fields(keys)...)", i+1)
		case strings.HasPrefix(k, signing.SecretPrefix):
			raw, err := signing.ParseSecret(k)
			if err != nil {
				return nil, fmt.Errorf("verify key %d: %w", i+1, err)
			}
			v.hmacKeys = append(v.hmacKeys, raw)
		case strings.HasPrefix(k, signing.PublicKeyPrefix), strings.HasPrefix(k, signing.SecretKeyPrefix):
			pub, err := signing.ParsePublicKey(k)
			if err != nil {
				return nil, fmt.Errorf("verify key %d: %w", i+1, err)
			}
			v.pubKeys = append(v.pubKeys, pub)
		default:
			return nil, fmt.Errorf("verify key %d must start with %s (HMAC secret) or %s (ed25519 public key)", i+1, signing.SecretPrefix, signing.PublicKeyPrefix)
		}
	}
	return v, nil
}

// With returns a copy of the Verifier with the options applied.
func (v *Verifier) With(opts ...Option) *Verifier {
	c := *v
	for _, o := range opts {
		o(&c)
	}
	return &c
}

// Verify checks one webhook: all three headers present, the timestamp
// within the tolerance of the local clock, and at least one signature in
// webhook-signature made by one of the keys over "{id}.{timestamp}.{body}".
// Signatures of unknown versions are ignored. body must be the raw request
// body, exactly as received. A nil error means the webhook is authentic.
func (v *Verifier) Verify(headers http.Header, body []byte) error {
	id := header(headers, signing.HeaderID)
	ts := header(headers, signing.HeaderTimestamp)
	sig := strings.Join(headerValues(headers, signing.HeaderSignature), " ")
	var missing []string
	for _, h := range [...]struct{ name, val string }{{signing.HeaderID, id}, {signing.HeaderTimestamp, ts}, {signing.HeaderSignature, strings.TrimSpace(sig)}} {
		if h.val == "" {
			missing = append(missing, h.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s absent or empty (is the request from Hookwire, and does a proxy strip webhook-* headers?)", ErrMissingHeaders, strings.Join(missing, ", "))
	}
	if strings.Contains(id, ".") {
		return fmt.Errorf("%w: webhook-id %s contains '.', which would make the signed content ambiguous", ErrMalformedHeader, excerpt(id))
	}
	unix, err := parseTimestamp(ts)
	if err != nil {
		return err
	}
	if err := v.checkTime(unix); err != nil {
		return err
	}
	return v.checkSignatures(id, ts, sig, body)
}

// farFuture is a timestamp distance, in seconds, that is wrong by any
// measure (about 35,000 years).
const farFuture = 1 << 40

// checkTime compares a non-negative Unix timestamp with the clock.
func (v *Verifier) checkTime(unix int64) error {
	now := v.now()
	if unix-now.Unix() > farFuture {
		// Beyond what time.Time represents without wrapping around.
		return fmt.Errorf("%w: webhook-timestamp %d is thousands of years in the future: the sender's clock or header is wrong", ErrTimestampTooNew, unix)
	}
	sent := time.Unix(unix, 0)
	// Sub saturates instead of overflowing.
	if age := now.Sub(sent); age > v.tolerance {
		return fmt.Errorf("%w: webhook-timestamp is %s in the past, beyond the %s tolerance: a replayed or long-delayed request, or this machine's clock is wrong", ErrTimestampTooOld, age.Round(time.Second), v.tolerance)
	}
	if ahead := sent.Sub(now); ahead > v.tolerance {
		return fmt.Errorf("%w: webhook-timestamp is %s in the future, beyond the %s tolerance: the sender's or this machine's clock is wrong", ErrTimestampTooNew, ahead.Round(time.Second), v.tolerance)
	}
	return nil
}

// parseTimestamp accepts decimal Unix seconds: ASCII digits only, no sign.
func parseTimestamp(ts string) (int64, error) {
	for i := 0; i < len(ts); i++ {
		if ts[i] < '0' || ts[i] > '9' {
			return 0, fmt.Errorf("%w: webhook-timestamp %s is not Unix seconds (digits only)", ErrMalformedHeader, excerpt(ts))
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: webhook-timestamp %s is out of range", ErrMalformedHeader, excerpt(ts))
	}
	return unix, nil
}

func (v *Verifier) checkSignatures(id, ts, header string, body []byte) error {
	entries := strings.Fields(header)
	if len(entries) > MaxSignatures {
		return fmt.Errorf("%w: webhook-signature has %d entries, more than the %d accepted", ErrMalformedHeader, len(entries), MaxSignatures)
	}
	var (
		content        []byte   // "{id}.{ts}.{body}", built on first use
		macs           [][]byte // expected v1 signatures, computed on first use
		wellFormed     int
		sawV1, sawV1a  bool
		unknownVersion []string
	)
	signed := func() []byte {
		if content == nil {
			content = make([]byte, 0, len(id)+len(ts)+len(body)+2)
			content = append(append(append(append(append(content, id...), '.'), ts...), '.'), body...)
		}
		return content
	}
	for _, e := range entries {
		version, enc, ok := strings.Cut(e, ",")
		if !ok || version == "" || enc == "" {
			continue
		}
		wellFormed++
		switch version {
		case signing.VersionHMAC:
			sawV1 = true
			if len(v.hmacKeys) == 0 {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(enc)
			if err != nil || len(got) != sha256.Size {
				continue
			}
			if macs == nil {
				for _, k := range v.hmacKeys {
					m := hmac.New(sha256.New, k)
					m.Write(signed())
					macs = append(macs, m.Sum(nil))
				}
			}
			for _, want := range macs {
				if hmac.Equal(got, want) {
					return nil
				}
			}
		case signing.VersionEd25519:
			sawV1a = true
			if len(v.pubKeys) == 0 {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(enc)
			if err != nil || len(got) != ed25519.SignatureSize {
				continue
			}
			for _, pub := range v.pubKeys {
				if ed25519.Verify(pub, signed(), got) {
					return nil
				}
			}
		default:
			if len(unknownVersion) < 3 {
				unknownVersion = append(unknownVersion, excerpt(version))
			}
		}
	}
	switch {
	case wellFormed == 0:
		return fmt.Errorf("%w: webhook-signature has no entry of the form version,base64 (for example v1,K5oZ...)", ErrMalformedHeader)
	case !sawV1 && !sawV1a:
		return fmt.Errorf("%w: webhook-signature has no v1 or v1a signature, only versions this verifier does not know (%s)", ErrNoMatchingSignature, strings.Join(unknownVersion, ", "))
	case sawV1 && !sawV1a && len(v.hmacKeys) == 0:
		return fmt.Errorf("%w: the request has only v1 (HMAC) signatures but this verifier has only %s public keys: configure the subscription's %s secret", ErrNoMatchingSignature, signing.PublicKeyPrefix, signing.SecretPrefix)
	case sawV1a && !sawV1 && len(v.pubKeys) == 0:
		return fmt.Errorf("%w: the request has only v1a (ed25519) signatures but this verifier has only %s secrets: configure the subscription's %s public key", ErrNoMatchingSignature, signing.SecretPrefix, signing.PublicKeyPrefix)
	}
	return fmt.Errorf("%w: none of the %d signatures was made with the configured keys over this id, timestamp and body: the body was changed after signing (verify the raw bytes, before any parsing), or the key is wrong or was rotated", ErrNoMatchingSignature, wellFormed)
}

// header returns the first value of a header, also when the map was built
// by hand with non-canonical keys.
func header(h http.Header, name string) string {
	if vs := headerValues(h, name); len(vs) > 0 {
		return strings.TrimSpace(vs[0])
	}
	return ""
}

func headerValues(h http.Header, name string) []string {
	if vs := h.Values(name); len(vs) > 0 {
		return vs
	}
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs
		}
	}
	return nil
}

// excerpt quotes untrusted header text for an error message, shortened.
func excerpt(s string) string {
	const max = 40
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
