package signing

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The v1a known answer: the ed25519 key pair from the seed 0x00..0x1f signs
// the specification's v1 example message. The constants were computed once
// with crypto/ed25519 and cross-checked with Node.js (OpenSSL) crypto.sign.
const (
	katSecretKey  = "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8DoQe/884Qvh1w3RjnS8CZZ+TWMJulDV8d3IZkElUxuA=="
	katSeedKey    = "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	katPublicKey  = "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
	katID         = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	katTimestamp  = 1614265330
	katBody       = `{"test": 2432232314}`
	katSignature  = "v1a,yoUrgEkc12aGqm0n4Sydmdz55xJfTz4AsAgieHFjmkR7LJtqVCZOQYzvvHjI5kAey+r4iaBGxTFRrl2iBQxtDQ=="
	katHMACSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	katHMACSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func katSeed() []byte {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	return seed
}

func TestSignEd25519KnownAnswer(t *testing.T) {
	key, err := NewEd25519Key(katSeed())
	if err != nil {
		t.Fatal(err)
	}
	if got := key.Secret(); got != katSecretKey {
		t.Errorf("Secret() = %q, want %q", got, katSecretKey)
	}
	if got := key.PublicKey(); got != katPublicKey {
		t.Errorf("PublicKey() = %q, want %q", got, katPublicKey)
	}
	s, err := NewKeySigner(key)
	if err != nil {
		t.Fatal(err)
	}
	got := s.SignUnix(katID, katTimestamp, []byte(katBody))
	if got != katSignature {
		t.Fatalf("signature = %q, want %q", got, katSignature)
	}

	// Independent check with crypto/ed25519 and the public key alone.
	pub, err := ParsePublicKey(katPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(got, "v1a,"))
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte(katID + ".1614265330." + katBody)
	if !ed25519.Verify(pub, msg, sig) {
		t.Fatal("crypto/ed25519 does not verify the v1a signature")
	}
	if ed25519.Verify(pub, append(msg, ' '), sig) {
		t.Fatal("crypto/ed25519 verifies the signature for a different message")
	}
}

func TestParseEd25519SecretKeyForms(t *testing.T) {
	for _, text := range []string{katSecretKey, katSeedKey} {
		k, err := ParseSigningKey(text)
		if err != nil {
			t.Fatalf("ParseSigningKey(%s...): %v", text[:12], err)
		}
		if k.Scheme() != SchemeEd25519 || k.PublicKey() != katPublicKey || k.Secret() != katSecretKey {
			t.Errorf("ParseSigningKey(%s...) = %v, secret form %q", text[:12], k, k.Secret())
		}
		if len(k.Bytes()) != ed25519.PrivateKeySize {
			t.Errorf("Bytes() = %d bytes, want %d", len(k.Bytes()), ed25519.PrivateKeySize)
		}
	}
	// A 64-byte key whose public half does not belong to its seed.
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(katSecretKey, SecretKeyPrefix))
	raw[63] ^= 1
	if _, err := ParseEd25519SecretKey(SecretKeyPrefix + base64.StdEncoding.EncodeToString(raw)); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt private key: err = %v, want corrupt", err)
	}
}

func TestParseKeyErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
		parse          func(string) error
	}{
		{"no prefix", "AAECAwQF", "must start with whsec_ (HMAC) or whsk_", signingKey},
		{"public key cannot sign", katPublicKey, "cannot sign", signingKey},
		{"bad base64", "whsk_!!!", "not valid base64", signingKey},
		{"short ed25519", "whsk_" + base64.StdEncoding.EncodeToString(make([]byte, 31)), "got 31", signingKey},
		{"bad hmac", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 8)), "24 to 64 bytes", signingKey},
		{"public wrong prefix", "whsec_abc", "must start with whpk_", publicKey},
		{"public is secret", katSecretKey, "receivers need only the whpk_", publicKey},
		{"public bad base64", "whpk_%%%", "not valid base64", publicKey},
		{"public short", "whpk_" + base64.StdEncoding.EncodeToString(make([]byte, 16)), "must be 32 bytes, got 16", publicKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.parse(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), strings.TrimPrefix(katSecretKey, SecretKeyPrefix)[:16]) {
				t.Fatalf("error %q contains key material", err)
			}
		})
	}
	if _, err := NewKey(Scheme(9), make([]byte, 32)); err == nil {
		t.Error("NewKey with an unknown scheme succeeded")
	}
}

func signingKey(s string) error { _, err := ParseSigningKey(s); return err }
func publicKey(s string) error  { _, err := ParsePublicKey(s); return err }

func TestGenerateEd25519(t *testing.T) {
	sec, pub, err := GenerateEd25519()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sec, SecretKeyPrefix) || !strings.HasPrefix(pub, PublicKeyPrefix) {
		t.Fatalf("generated %q / %q lack their prefixes", sec[:5], pub)
	}
	k, err := ParseSigningKey(sec)
	if err != nil {
		t.Fatal(err)
	}
	if k.PublicKey() != pub {
		t.Fatalf("public key of the generated secret = %q, want %q", k.PublicKey(), pub)
	}
	p, err := ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewKeySigner(k)
	sig, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(s.SignUnix("m", 1, []byte("b")), "v1a,"))
	if !ed25519.Verify(p, []byte("m.1.b"), sig) {
		t.Fatal("signature of a generated key does not verify with its public key")
	}
	sec2, _, _ := GenerateEd25519()
	if sec2 == sec {
		t.Fatal("two generated key pairs are equal")
	}
}

func TestKeyFormattingRedactsSecrets(t *testing.T) {
	h, _ := ParseSigningKey(katHMACSecret)
	e, _ := ParseSigningKey(katSecretKey)
	hmacB64 := strings.TrimPrefix(katHMACSecret, SecretPrefix)
	edB64 := strings.TrimPrefix(katSecretKey, SecretKeyPrefix)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q", "%d"} {
		for _, v := range []any{h, e, &h, []Key{h, e}, struct{ K Key }{e}} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, hmacB64[:8]) || strings.Contains(out, edB64[:8]) ||
				strings.Contains(out, fmt.Sprintf("%x", katSeed()[:8])) || strings.Contains(out, "[0 1 2 3") {
				t.Errorf("Sprintf(%s) = %q leaks key material", verb, out)
			}
		}
	}
	if got := fmt.Sprint(e); !strings.Contains(got, katPublicKey) {
		t.Errorf("ed25519 key prints as %q, want its public key", got)
	}
}

// Mixed key sets: every valid key signs, in the order given.
func TestKeySignerMixedSchemes(t *testing.T) {
	h, _ := ParseSigningKey(katHMACSecret)
	e, _ := ParseSigningKey(katSecretKey)
	s, err := NewKeySigner(e, h)
	if err != nil {
		t.Fatal(err)
	}
	got := s.SignUnix(katID, katTimestamp, []byte(katBody))
	if want := katSignature + " " + katHMACSig; got != want {
		t.Fatalf("signature = %q, want %q", got, want)
	}
	s2, _ := NewKeySigner(h, e)
	if got, want := s2.SignUnix(katID, katTimestamp, []byte(katBody)), katHMACSig+" "+katSignature; got != want {
		t.Fatalf("signature = %q, want %q", got, want)
	}
	if pk := s.PublicKeys(); len(pk) != 1 || pk[0] != katPublicKey {
		t.Errorf("PublicKeys() = %q", pk)
	}
	// Deterministic: the same key set always signs the same way.
	if again := s.SignUnix(katID, katTimestamp, []byte(katBody)); again != got {
		t.Errorf("second signature differs: %q", again)
	}
}

func TestKeySignerExpiry(t *testing.T) {
	oldKey, _ := ParseSigningKey(katHMACSecret)
	newKey, _ := ParseSigningKey(katSecretKey)
	expiry := time.Unix(katTimestamp, 0)
	s, err := NewKeySigner(newKey, oldKey.WithExpiry(expiry))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.SignUnix(katID, katTimestamp, []byte(katBody)); got != katSignature+" "+katHMACSig {
		t.Errorf("at the expiry second: %q, want both signatures", got)
	}
	if got := s.SignUnix(katID, katTimestamp+1, []byte(katBody)); strings.Contains(got, " ") || !strings.HasPrefix(got, "v1a,") {
		t.Errorf("after the expiry: %q, want only the v1a signature", got)
	}
	if !oldKey.WithExpiry(expiry).Expiry().Equal(expiry) || !oldKey.Expiry().IsZero() || !oldKey.WithExpiry(expiry).WithExpiry(time.Time{}).Expiry().IsZero() {
		t.Error("Expiry() does not report what WithExpiry set")
	}
	if _, err := NewKeySigner(oldKey.WithExpiry(expiry), newKey.WithExpiry(expiry)); err == nil || !strings.Contains(err.Error(), "current key") {
		t.Errorf("all keys expiring: err = %v, want a current-key error", err)
	}
}

func TestKeySignerDeduplicatesAndValidates(t *testing.T) {
	h, _ := ParseSigningKey(katHMACSecret)
	s, err := NewKeySigner(h.WithExpiry(time.Unix(10, 0)), h)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.SignUnix(katID, katTimestamp, []byte(katBody)); got != katHMACSig {
		t.Errorf("duplicated key: %q, want one signature that outlives the earlier expiry", got)
	}
	if _, err := NewKeySigner(); err == nil {
		t.Error("NewKeySigner() succeeded with no keys")
	}
	if _, err := NewKeySigner(h, Key{}); err == nil || !strings.Contains(err.Error(), "key 1 is not initialised") {
		t.Errorf("zero Key: err = %v", err)
	}
}

// The raw-key constructor and the Key constructor agree on HMAC signatures.
func TestNewSignerAndNewKeySignerAgree(t *testing.T) {
	raw, _ := ParseSecret(katHMACSecret)
	k, err := NewKey(SchemeHMAC, raw)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := NewSigner(raw)
	b, _ := NewKeySigner(k)
	if x, y := a.SignUnix("id", 5, []byte("body")), b.SignUnix("id", 5, []byte("body")); x != y {
		t.Fatalf("NewSigner signs %q, NewKeySigner %q", x, y)
	}
	mac := hmac.New(sha256.New, raw)
	mac.Write([]byte("id.5.body"))
	if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); a.SignUnix("id", 5, []byte("body")) != want {
		t.Fatal("HMAC signature does not match crypto/hmac")
	}
	if _, err := NewHMACKey(make([]byte, 65)); err == nil {
		t.Error("NewHMACKey accepted 65 bytes")
	}
	if b.PublicKeys() != nil {
		t.Errorf("PublicKeys() of an HMAC signer = %q", b.PublicKeys())
	}
}

func TestSchemeNames(t *testing.T) {
	if SchemeHMAC.Version() != "v1" || SchemeEd25519.Version() != "v1a" || Scheme(0).Version() != "" {
		t.Error("Version() does not map schemes to v1 / v1a")
	}
	if SchemeHMAC.String() != "hmac-sha256" || SchemeEd25519.String() != "ed25519" || Scheme(7).String() != "Scheme(7)" {
		t.Error("String() names are wrong")
	}
}

func BenchmarkSignEd25519(b *testing.B) {
	k, _ := ParseSigningKey(katSecretKey)
	s, _ := NewKeySigner(k)
	body := []byte(strings.Repeat("x", 512))
	b.ReportAllocs()
	for b.Loop() {
		s.SignUnix("dlv_01HZZZZZZZZZZZZZZZZZZZZZZZ", 1614265330, body)
	}
}

// BenchmarkSignRotationMixed is a scheme migration overlap: one ed25519 key
// and one HMAC key sign every attempt.
func BenchmarkSignRotationMixed(b *testing.B) {
	e, _ := ParseSigningKey(katSecretKey)
	h, _ := ParseSigningKey(katHMACSecret)
	s, _ := NewKeySigner(e, h)
	body := []byte(strings.Repeat("x", 512))
	b.ReportAllocs()
	for b.Loop() {
		s.SignUnix("dlv_01HZZZZZZZZZZZZZZZZZZZZZZZ", 1614265330, body)
	}
}

func BenchmarkSignHMACTwoKeys(b *testing.B) {
	a, _ := ParseSecret(katHMACSecret)
	c := make([]byte, 32)
	s, _ := NewSigner(a, c)
	body := []byte(strings.Repeat("x", 512))
	b.ReportAllocs()
	for b.Loop() {
		s.SignUnix("dlv_01HZZZZZZZZZZZZZZZZZZZZZZZ", 1614265330, body)
	}
}

// FuzzParseKeys feeds arbitrary text to the key parsers: they must never
// panic, and whatever parses must survive a round trip through its text form.
func FuzzParseKeys(f *testing.F) {
	for _, s := range []string{katSecretKey, katSeedKey, katPublicKey, katHMACSecret, "whsk_", "whpk_====", "whsec_AAAA", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if k, err := ParseSigningKey(text); err == nil {
			again, err := ParseSigningKey(k.Secret())
			if err != nil || !again.sameMaterial(k) {
				t.Fatalf("round trip of a parsed key failed: %v", err)
			}
			if k.Scheme() == SchemeEd25519 {
				if _, err := ParsePublicKey(k.PublicKey()); err != nil {
					t.Fatalf("public key of a parsed key does not parse: %v", err)
				}
			}
		}
		if pub, err := ParsePublicKey(text); err == nil && len(pub) != ed25519.PublicKeySize {
			t.Fatalf("parsed public key has %d bytes", len(pub))
		}
	})
}
