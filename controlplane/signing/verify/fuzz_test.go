package verify_test

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/hookwire/hookwire/controlplane/signing"
	"github.com/hookwire/hookwire/controlplane/signing/verify"
)

// Fixed keys for fuzzing (the known-answer keys of the signing package).
const (
	fuzzHMACSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	fuzzSecretKey  = "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8DoQe/884Qvh1w3RjnS8CZZ+TWMJulDV8d3IZkElUxuA=="
	fuzzPublicKey  = "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
)

// FuzzVerifyHeaders feeds arbitrary webhook-id, webhook-timestamp and
// webhook-signature values and bodies to Verify. It must never panic; every
// error must be one of the documented kinds; it may succeed only when a
// signature really matches (checked with crypto/hmac and crypto/ed25519
// directly); and a genuine signature must verify whatever junk entries
// precede it.
func FuzzVerifyHeaders(f *testing.F) {
	f.Add("dlv_1", "1700000000", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", []byte(`{"test": 2432232314}`))
	f.Add("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1a,yoUrgEkc12aGqm0n4Sydmdz55xJfTz4AsAgieHFjmkR7LJtqVCZOQYzvvHjI5kAey+r4iaBGxTFRrl2iBQxtDQ==", []byte(`{"test": 2432232314}`))
	f.Add("a.b", "-1", "v2,abc  v1,", []byte(nil))
	f.Add("id", "99999999999999999999", ",,, v1a,==== v1,@", []byte("x"))
	f.Add(" ", "0", "\t\n", []byte{0xff})
	f.Add("id", "1700000300", strings.Repeat("v1,AAAA ", 20), []byte("{}"))

	hmacKey, err := signing.ParseSigningKey(fuzzHMACSecret)
	if err != nil {
		f.Fatal(err)
	}
	edKey, err := signing.ParseSigningKey(fuzzSecretKey)
	if err != nil {
		f.Fatal(err)
	}
	signer, err := signing.NewKeySigner(edKey, hmacKey)
	if err != nil {
		f.Fatal(err)
	}
	v, err := verify.New(fuzzHMACSecret, fuzzPublicKey)
	if err != nil {
		f.Fatal(err)
	}
	v = v.With(verify.WithNow(clock))
	rawHMAC, _ := signing.ParseSecret(fuzzHMACSecret)
	pub, _ := signing.ParsePublicKey(fuzzPublicKey)
	kinds := []error{verify.ErrMissingHeaders, verify.ErrMalformedHeader, verify.ErrTimestampTooOld, verify.ErrTimestampTooNew, verify.ErrNoMatchingSignature}

	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", sig)
		err := v.Verify(h, body)
		if err == nil {
			if !genuine(rawHMAC, pub, strings.TrimSpace(id), strings.TrimSpace(ts), sig, body) {
				t.Fatalf("Verify accepted id %q ts %q sig %q without a genuine signature", id, ts, sig)
			}
		} else if !isOneOf(err, kinds) {
			t.Fatalf("Verify returned an undocumented error: %v", err)
		}

		// A genuine signature, after whatever the fuzzer wrote, verifies.
		if id == "" || id != strings.TrimSpace(id) || strings.Contains(id, ".") || len(strings.Fields(sig)) > verify.MaxSignatures-2 {
			return
		}
		h.Set("webhook-timestamp", "1700000000")
		h.Set("webhook-signature", sig+" "+signer.Sign(id, now, body))
		if err := v.Verify(h, body); err != nil {
			t.Fatalf("genuine signature after %q refused: %v", sig, err)
		}
	})
}

// genuine is an independent oracle: does any entry of sig carry a valid
// signature of "{id}.{ts}.{body}"?
func genuine(hmacKey []byte, pub ed25519.PublicKey, id, ts, sig string, body []byte) bool {
	msg := []byte(id + "." + ts + "." + string(body))
	mac := hmac.New(sha256.New, hmacKey)
	mac.Write(msg)
	want := mac.Sum(nil)
	for _, e := range strings.Fields(sig) {
		if enc, ok := strings.CutPrefix(e, "v1,"); ok {
			if s, err := base64.StdEncoding.DecodeString(enc); err == nil && hmac.Equal(s, want) {
				return true
			}
		}
		if enc, ok := strings.CutPrefix(e, "v1a,"); ok {
			if s, err := base64.StdEncoding.DecodeString(enc); err == nil && len(s) == ed25519.SignatureSize && ed25519.Verify(pub, msg, s) {
				return true
			}
		}
	}
	return false
}

func isOneOf(err error, kinds []error) bool {
	for _, k := range kinds {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}
