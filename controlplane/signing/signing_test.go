package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// The known-answer vector from the Standard Webhooks specification.
func TestSignKnownAnswer(t *testing.T) {
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	got := s.SignUnix("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	const want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got != want {
		t.Fatalf("signature = %q, want %q", got, want)
	}
}

func TestSignSeveralKeysDuringRotation(t *testing.T) {
	a, _ := ParseSecret(mustGenerate(t))
	b, _ := ParseSecret(mustGenerate(t))
	s, err := NewSigner(a, b)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0)
	sigs := strings.Split(s.Sign("msg_1", ts, []byte("hi")), " ")
	if len(sigs) != 2 {
		t.Fatalf("want 2 signatures, got %q", sigs)
	}
	for i, key := range [][]byte{a, b} {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte("msg_1.1700000000.hi"))
		if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); sigs[i] != want {
			t.Errorf("signature %d = %q, want %q", i, sigs[i], want)
		}
	}
	h := s.Headers("msg_1", ts, []byte("hi"))
	if h[HeaderID] != "msg_1" || h[HeaderTimestamp] != "1700000000" || h[HeaderSignature] != strings.Join(sigs, " ") {
		t.Errorf("headers = %v", h)
	}
}

func TestParseSecretErrors(t *testing.T) {
	for _, in := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_" + base64.StdEncoding.EncodeToString([]byte("short"))} {
		if _, err := ParseSecret(in); err == nil {
			t.Errorf("ParseSecret(%q) succeeded, want error", in)
		}
	}
}

func TestGenerateSecretRoundTrip(t *testing.T) {
	sec := mustGenerate(t)
	if !strings.HasPrefix(sec, SecretPrefix) {
		t.Fatalf("secret %q lacks prefix", sec)
	}
	key, err := ParseSecret(sec)
	if err != nil || len(key) != secretBytes {
		t.Fatalf("ParseSecret(generated) = %d bytes, %v", len(key), err)
	}
	if mustGenerate(t) == sec {
		t.Fatal("two generated secrets are equal")
	}
}

func mustGenerate(t *testing.T) string {
	t.Helper()
	s, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func BenchmarkSign(b *testing.B) {
	key, _ := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	s, _ := NewSigner(key)
	body := []byte(strings.Repeat("x", 512))
	b.ReportAllocs()
	for b.Loop() {
		s.SignUnix("dlv_01HZZZZZZZZZZZZZZZZZZZZZZZ", 1614265330, body)
	}
}
