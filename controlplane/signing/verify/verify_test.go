package verify_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/signing"
	"github.com/hookwire/hookwire/controlplane/signing/verify"
)

var now = time.Unix(1700000000, 0)

func clock() time.Time { return now }

// keyPair is one generated key in both of its forms: what the signer holds
// and what a receiver is given.
type keyPair struct {
	signing  signing.Key
	receiver string // whsec_ for HMAC, whpk_ for ed25519
}

func hmacPair(t testing.TB) keyPair {
	t.Helper()
	sec, err := signing.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	k, err := signing.ParseSigningKey(sec)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{k, sec}
}

func edPair(t testing.TB) keyPair {
	t.Helper()
	sec, pub, err := signing.GenerateEd25519()
	if err != nil {
		t.Fatal(err)
	}
	k, err := signing.ParseSigningKey(sec)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{k, pub}
}

// signed returns the headers the signer would send at ts.
func signed(t testing.TB, ts time.Time, id string, body []byte, keys ...keyPair) http.Header {
	t.Helper()
	var ks []signing.Key
	for _, k := range keys {
		ks = append(ks, k.signing)
	}
	s, err := signing.NewKeySigner(ks...)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for k, v := range s.Headers(id, ts, body) {
		h.Set(k, v)
	}
	return h
}

func verifier(t testing.TB, keys ...keyPair) *verify.Verifier {
	t.Helper()
	var ss []string
	for _, k := range keys {
		ss = append(ss, k.receiver)
	}
	v, err := verify.New(ss...)
	if err != nil {
		t.Fatal(err)
	}
	return v.With(verify.WithNow(clock))
}

func TestRoundTrip(t *testing.T) {
	body := []byte(`{"type":"order.created","data":{"id":42}}`)
	for name, k := range map[string]keyPair{"hmac": hmacPair(t), "ed25519": edPair(t)} {
		t.Run(name, func(t *testing.T) {
			h := signed(t, now, "dlv_01ABC", body, k)
			if err := verifier(t, k).Verify(h, body); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

// The known-answer vectors: the specification's v1 example and Hookwire's
// v1a vector (see signing's tests) verify from their text forms alone.
func TestKnownAnswerVectors(t *testing.T) {
	for _, tc := range []struct{ key, sig string }{
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
		{"whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=", "v1a,yoUrgEkc12aGqm0n4Sydmdz55xJfTz4AsAgieHFjmkR7LJtqVCZOQYzvvHjI5kAey+r4iaBGxTFRrl2iBQxtDQ=="},
	} {
		v, err := verify.New(tc.key)
		if err != nil {
			t.Fatal(err)
		}
		v = v.With(verify.WithNow(func() time.Time { return time.Unix(1614265330, 0) }))
		h := http.Header{}
		h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
		h.Set("webhook-timestamp", "1614265330")
		h.Set("webhook-signature", tc.sig)
		if err := v.Verify(h, []byte(`{"test": 2432232314}`)); err != nil {
			t.Errorf("%s: %v", tc.sig[:4], err)
		}
		if err := v.Verify(h, []byte(`{"test": 2432232315}`)); !errors.Is(err, verify.ErrNoMatchingSignature) {
			t.Errorf("%s with another body: %v, want ErrNoMatchingSignature", tc.sig[:4], err)
		}
	}
}

// A header signed by another implementation (Node.js crypto, OpenSSL) with
// both known-answer keys, after an entry of a future version.
func TestCrossImplementationVector(t *testing.T) {
	for _, key := range []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="} {
		v, err := verify.New(key)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set("webhook-id", "dlv_01J9Z3CORPUS")
		h.Set("webhook-timestamp", "1700000000")
		h.Set("webhook-signature", "v2,future  v1a,F9pya29JfxQFQR1mYjRwruKdhmLqlF3t4V9op+fV6UVRQB+68NwgYNGx2tbfyW56QqeJI/4270Qt6fyOkE5CDA== v1,/RefC9sGrMn2INVVgS/zZBVAuQPwHQ4kgEnxHXFf1Hs=")
		if err := v.With(verify.WithNow(clock)).Verify(h, []byte(`{"type":"order.created"}`)); err != nil {
			t.Errorf("%s...: %v", key[:6], err)
		}
	}
}

func TestRotationOverlap(t *testing.T) {
	body := []byte("payload")
	for name, mk := range map[string]func(testing.TB) keyPair{"hmac": hmacPair, "ed25519": edPair} {
		t.Run(name, func(t *testing.T) {
			oldKey, newKey := mk(t), mk(t)
			// During the overlap the sender signs with both keys.
			both := signed(t, now, "dlv_1", body, newKey, oldKey)
			if n := len(strings.Fields(both.Get("webhook-signature"))); n != 2 {
				t.Fatalf("overlap header has %d signatures, want 2", n)
			}
			for desc, v := range map[string]*verify.Verifier{
				"receiver still on the old key": verifier(t, oldKey),
				"receiver already on the new":   verifier(t, newKey),
				"receiver knows both":           verifier(t, oldKey, newKey),
			} {
				if err := v.Verify(both, body); err != nil {
					t.Errorf("%s: %v", desc, err)
				}
			}
			// A receiver configured with both keys accepts either alone.
			v := verifier(t, oldKey, newKey)
			for _, k := range []keyPair{oldKey, newKey} {
				if err := v.Verify(signed(t, now, "dlv_1", body, k), body); err != nil {
					t.Errorf("single-key signature with a two-key receiver: %v", err)
				}
			}
			// After the overlap the old key no longer verifies new requests.
			if err := verifier(t, oldKey).Verify(signed(t, now, "dlv_1", body, newKey), body); !errors.Is(err, verify.ErrNoMatchingSignature) {
				t.Errorf("old key after rotation: %v, want ErrNoMatchingSignature", err)
			}
		})
	}
}

func TestMixedV1AndV1a(t *testing.T) {
	body := []byte(`{"a":1}`)
	h, e := hmacPair(t), edPair(t)
	hdr := signed(t, now, "dlv_mixed", body, e, h)
	sig := hdr.Get("webhook-signature")
	if f := strings.Fields(sig); len(f) != 2 || !strings.HasPrefix(f[0], "v1a,") || !strings.HasPrefix(f[1], "v1,") {
		t.Fatalf("mixed signature header %q, want v1a then v1", sig)
	}
	for desc, v := range map[string]*verify.Verifier{
		"whsec only": verifier(t, h),
		"whpk only":  verifier(t, e),
		"both":       verifier(t, e, h),
	} {
		if err := v.Verify(hdr, body); err != nil {
			t.Errorf("%s: %v", desc, err)
		}
		if err := v.Verify(hdr, append([]byte(nil), `{"a":2}`...)); !errors.Is(err, verify.ErrNoMatchingSignature) {
			t.Errorf("%s, tampered: %v", desc, err)
		}
	}
}

func TestSchemeMismatchIsExplained(t *testing.T) {
	body := []byte("x")
	h, e := hmacPair(t), edPair(t)
	err := verifier(t, h).Verify(signed(t, now, "d", body, e), body)
	if !errors.Is(err, verify.ErrNoMatchingSignature) || !strings.Contains(err.Error(), "only v1a") || !strings.Contains(err.Error(), "whpk_ public key") {
		t.Errorf("v1a request, HMAC receiver: %v", err)
	}
	err = verifier(t, e).Verify(signed(t, now, "d", body, h), body)
	if !errors.Is(err, verify.ErrNoMatchingSignature) || !strings.Contains(err.Error(), "only v1 ") || !strings.Contains(err.Error(), "whsec_ secret") {
		t.Errorf("v1 request, ed25519 receiver: %v", err)
	}
}

func TestTimestampTolerance(t *testing.T) {
	body := []byte("b")
	k := hmacPair(t)
	v := verifier(t, k)
	tests := []struct {
		name string
		ts   time.Time
		v    *verify.Verifier
		want error
	}{
		{"now", now, v, nil},
		{"exactly 5m old", now.Add(-5 * time.Minute), v, nil},
		{"exactly 5m ahead", now.Add(5 * time.Minute), v, nil},
		{"expired", now.Add(-5*time.Minute - time.Second), v, verify.ErrTimestampTooOld},
		{"a day old", now.Add(-24 * time.Hour), v, verify.ErrTimestampTooOld},
		{"future", now.Add(5*time.Minute + time.Second), v, verify.ErrTimestampTooNew},
		{"inside a wider tolerance", now.Add(-9 * time.Minute), v.With(verify.WithTolerance(10 * time.Minute)), nil},
		{"outside a narrower tolerance", now.Add(-31 * time.Second), v.With(verify.WithTolerance(30 * time.Second)), verify.ErrTimestampTooOld},
		{"non-positive tolerance is the default", now.Add(-4 * time.Minute), v.With(verify.WithTolerance(-1)), nil},
		{"epoch", time.Unix(0, 0), v, verify.ErrTimestampTooOld},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.v.Verify(signed(t, tt.ts, "dlv_t", body, k), body)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), "tolerance") {
				t.Errorf("error %q does not mention the tolerance", err)
			}
		})
	}
	// The original signer's view: a real clock accepts a fresh signature.
	real, err := verify.New(k.receiver)
	if err != nil {
		t.Fatal(err)
	}
	if err := real.With(verify.WithNow(nil)).Verify(signed(t, time.Now(), "dlv_t", body, k), body); err != nil {
		t.Errorf("fresh signature with the real clock: %v", err)
	}
}

func TestTamperingIsDetected(t *testing.T) {
	body := []byte(`{"amount":100}`)
	k := edPair(t)
	v := verifier(t, k)
	good := signed(t, now, "dlv_orig", body, k)
	clone := func(f func(http.Header)) http.Header { h := good.Clone(); f(h); return h }

	cases := map[string]struct {
		h    http.Header
		body []byte
	}{
		"body":      {good, []byte(`{"amount":900}`)},
		"body tail": {good, append(append([]byte(nil), body...), ' ')},
		"empty":     {good, nil},
		"id":        {clone(func(h http.Header) { h.Set("webhook-id", "dlv_other") }), body},
		"timestamp": {clone(func(h http.Header) { h.Set("webhook-timestamp", strconv.FormatInt(now.Unix()+1, 10)) }), body},
		"signature": {clone(func(h http.Header) {
			s := []byte(h.Get("webhook-signature"))
			s[10] ^= 0x01
			h.Set("webhook-signature", string(s))
		}), body},
	}
	for name, c := range cases {
		if err := v.Verify(c.h, c.body); !errors.Is(err, verify.ErrNoMatchingSignature) {
			t.Errorf("tampered %s: %v, want ErrNoMatchingSignature", name, err)
		}
	}
	if err := v.Verify(good, body); err != nil {
		t.Fatalf("untampered: %v", err)
	}
}

func TestWrongKey(t *testing.T) {
	body := []byte("b")
	for name, mk := range map[string]func(testing.TB) keyPair{"hmac": hmacPair, "ed25519": edPair} {
		err := verifier(t, mk(t)).Verify(signed(t, now, "dlv_w", body, mk(t)), body)
		if !errors.Is(err, verify.ErrNoMatchingSignature) || !strings.Contains(err.Error(), "key is wrong") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestHeaderErrors(t *testing.T) {
	body := []byte("b")
	k := hmacPair(t)
	v := verifier(t, k)
	good := signed(t, now, "dlv_h", body, k)
	sig := good.Get("webhook-signature")
	with := func(name, value string) http.Header {
		h := good.Clone()
		if value == "" {
			h.Del(name)
		} else {
			h.Set(name, value)
		}
		return h
	}
	tests := []struct {
		name string
		h    http.Header
		want error
		text string
	}{
		{"no headers", http.Header{}, verify.ErrMissingHeaders, "webhook-id, webhook-timestamp, webhook-signature"},
		{"no id", with("webhook-id", ""), verify.ErrMissingHeaders, "webhook-id absent"},
		{"no timestamp", with("webhook-timestamp", ""), verify.ErrMissingHeaders, "webhook-timestamp absent"},
		{"no signature", with("webhook-signature", ""), verify.ErrMissingHeaders, "webhook-signature absent"},
		{"blank signature", with("webhook-signature", "   "), verify.ErrMissingHeaders, "webhook-signature absent"},
		{"timestamp text", with("webhook-timestamp", "yesterday"), verify.ErrMalformedHeader, `"yesterday" is not Unix seconds`},
		{"timestamp millis", with("webhook-timestamp", "1700000000.5"), verify.ErrMalformedHeader, "not Unix seconds"},
		{"timestamp sign", with("webhook-timestamp", "+1700000000"), verify.ErrMalformedHeader, "not Unix seconds"},
		{"timestamp negative", with("webhook-timestamp", "-1"), verify.ErrMalformedHeader, "not Unix seconds"},
		{"timestamp overflow", with("webhook-timestamp", "99999999999999999999"), verify.ErrMalformedHeader, "out of range"},
		{"timestamp far future", with("webhook-timestamp", "9223372036854775807"), verify.ErrTimestampTooNew, "future"},
		{"dotted id", with("webhook-id", "a.b"), verify.ErrMalformedHeader, "contains '.'"},
		{"no comma", with("webhook-signature", "garbage"), verify.ErrMalformedHeader, "version,base64"},
		{"empty parts", with("webhook-signature", ", v1, ,x"), verify.ErrMalformedHeader, "version,base64"},
		{"unknown only", with("webhook-signature", "v2,abc v3,def"), verify.ErrNoMatchingSignature, `"v2", "v3"`},
		{"bad base64", with("webhook-signature", "v1,@@@@"), verify.ErrNoMatchingSignature, "none of the 1"},
		{"too many", with("webhook-signature", strings.Repeat(sig+" ", verify.MaxSignatures+1)), verify.ErrMalformedHeader, "more than the 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Verify(tt.h, body)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not contain %q", err, tt.text)
			}
		})
	}
}

func TestSignatureHeaderParsingIsTolerant(t *testing.T) {
	body := []byte("b")
	k := hmacPair(t)
	v := verifier(t, k)
	good := signed(t, now, "dlv_p", body, k)
	sig := good.Get("webhook-signature")
	for _, s := range []string{
		"v2,c29tZXRoaW5n " + sig,
		"  " + sig + "   ",
		"v1,AAAA\t" + sig,
		"nonsense " + sig + " v1a,QUJD v9,",
		strings.Repeat("v2,x ", verify.MaxSignatures-1) + sig,
	} {
		h := good.Clone()
		h.Set("webhook-signature", s)
		if err := v.Verify(h, body); err != nil {
			t.Errorf("signature header %q: %v", s, err)
		}
	}
	// Several header lines (as some proxies split them) count as one list.
	h := good.Clone()
	h.Del("webhook-signature")
	h.Add("webhook-signature", "v2,abc")
	h.Add("webhook-signature", sig)
	if err := v.Verify(h, body); err != nil {
		t.Errorf("signature split over two header lines: %v", err)
	}
	// Hand-built maps with lower-case names work too.
	lower := http.Header{}
	for name, vals := range good {
		lower[strings.ToLower(name)] = vals
	}
	if err := v.Verify(lower, body); err != nil {
		t.Errorf("lower-case header map: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	sec, pub, _ := signing.GenerateEd25519()
	hsec, _ := signing.GenerateSecret()
	tests := []struct {
		name string
		keys []string
		text string
	}{
		{"none", nil, "at least one key"},
		{"empty", []string{hsec, " "}, "key 2 is empty"},
		{"ed25519 secret", []string{sec}, "receivers need only the whpk_"},
		{"unknown prefix", []string{"sk_live_abc"}, "must start with whsec_"},
		{"bad base64", []string{"whsec_***"}, "not valid base64"},
		{"short secret", []string{"whsec_AAAA"}, "24 to 64 bytes"},
		{"short public", []string{"whpk_AAAA"}, "must be 32 bytes"},
		{"two in one", []string{hsec + " " + pub}, "separate arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := verify.New(tt.keys...)
			if err == nil || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.text)
			}
			for _, k := range tt.keys {
				if len(k) > 12 && strings.Contains(err.Error(), k[6:]) {
					t.Fatalf("error %q contains key material", err)
				}
			}
		})
	}
	if _, err := verify.New(" "+pub+"\n", hsec); err != nil {
		t.Errorf("whitespace around keys: %v", err)
	}
}

func TestErrorsNeverContainKeys(t *testing.T) {
	body := []byte("b")
	h, e := hmacPair(t), edPair(t)
	v := verifier(t, h, e)
	raw := h.signing.Bytes()
	for _, hdr := range []http.Header{
		signed(t, now, "d", body, hmacPair(t)),
		signed(t, now.Add(-time.Hour), "d", body, h),
		{},
	} {
		err := v.Verify(hdr, body)
		if err == nil {
			t.Fatal("Verify succeeded")
		}
		for _, secret := range []string{h.receiver[6:], e.signing.Secret()[5:], string(raw)} {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q contains key material", err)
			}
		}
	}
}

func BenchmarkVerifyHMAC(b *testing.B) {
	k := hmacPair(b)
	benchVerify(b, k, k)
}

func BenchmarkVerifyEd25519(b *testing.B) {
	k := edPair(b)
	benchVerify(b, k, k)
}

func benchVerify(b *testing.B, k keyPair, keys ...keyPair) {
	body := []byte(strings.Repeat("x", 1024))
	h := signed(b, now, "dlv_01HZZZZZZZZZZZZZZZZZZZZZZZ", body, keys...)
	v := verifier(b, k)
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(h, body); err != nil {
			b.Fatal(err)
		}
	}
}
