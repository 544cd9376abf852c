package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane/signing"
)

// buffer is a goroutine-safe bytes.Buffer for the receiver's output.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// start runs the receiver program on a free loopback port.
func start(t *testing.T, env string) (url string, out *buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &buffer{}
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-path", "/hooks"},
			func(k string) string {
				if k == envSecret {
					return env
				}
				return ""
			}, out, func(a string) { addr <- a })
	}()
	select {
	case a := <-addr:
		url = "http://" + a + "/hooks"
	case err := <-done:
		t.Fatalf("receiver exited: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("receiver did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("receiver: %v", err)
		}
	})
	return url, out
}

func post(t *testing.T, url string, headers map[string]string, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestReceiverAcceptsSignedAndRefusesTampered(t *testing.T) {
	secret, err := signing.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	key, _ := signing.ParseSecret(secret)
	signer, _ := signing.NewSigner(key)
	url, out := start(t, secret)

	body := `{"type":"order.created","data":{"id":42}}`
	h := signer.Headers("dlv_01TEST", time.Now(), []byte(body))
	if code := post(t, url, h, body); code != http.StatusNoContent {
		t.Fatalf("signed request: status %d, output:\n%s", code, out)
	}
	if !strings.Contains(out.String(), `event dlv_01TEST ("order.created"): {"type":"order.created","data":{"id":42}}`) {
		t.Fatalf("event not printed; output:\n%s", out)
	}

	if code := post(t, url, h, `{"type":"order.created","data":{"id":43}}`); code != http.StatusUnauthorized {
		t.Fatalf("tampered body: status %d, want 401", code)
	}
	if code := post(t, url, nil, body); code != http.StatusBadRequest {
		t.Fatalf("unsigned request: status %d, want 400", code)
	}
	stale := signer.Headers("dlv_01STALE", time.Now().Add(-time.Hour), []byte(body))
	if code := post(t, url, stale, body); code != http.StatusUnauthorized {
		t.Fatalf("stale request: status %d, want 401", code)
	}
	// A retry of the same delivery is acknowledged but not processed again.
	if code := post(t, url, signer.Headers("dlv_01TEST", time.Now(), []byte(body)), body); code != http.StatusNoContent {
		t.Fatalf("retried delivery: status %d", code)
	}

	got := out.String()
	if n := strings.Count(got, "event dlv_"); n != 1 {
		t.Errorf("%d events printed, want 1; output:\n%s", n, got)
	}
	for _, want := range []string{"rejected request", "no matching webhook signature", "missing webhook headers", "too old", "duplicate dlv_01TEST ignored"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, strings.TrimPrefix(secret, signing.SecretPrefix)) {
		t.Error("output contains the secret")
	}
}

// During a rotation the receiver holds both keys; an ed25519 public key
// works the same way as a secret.
func TestReceiverWithRotatedKeys(t *testing.T) {
	oldSecret, _ := signing.GenerateSecret()
	sk, pk, err := signing.GenerateEd25519()
	if err != nil {
		t.Fatal(err)
	}
	url, out := start(t, oldSecret+", "+pk)
	for i, text := range []string{oldSecret, sk} {
		k, _ := signing.ParseSigningKey(text)
		s, _ := signing.NewKeySigner(k)
		body := `{"n":` + string(rune('0'+i)) + `}`
		id := "dlv_rot" + string(rune('a'+i))
		if code := post(t, url, s.Headers(id, time.Now(), []byte(body)), body); code != http.StatusNoContent {
			t.Errorf("key %d: status %d; output:\n%s", i, code, out)
		}
	}
	if n := strings.Count(out.String(), "event dlv_rot"); n != 2 {
		t.Errorf("%d events printed, want 2:\n%s", n, out)
	}
}

func TestReceiverConfigErrors(t *testing.T) {
	for env, want := range map[string]string{
		"":                   "is not set",
		"whsec_tooshort":     "24 to 64 bytes",
		"whsk_AAAA":          "receivers need only the whpk_",
		"sk_live_1234567890": "must start with whsec_",
	} {
		err := run(context.Background(), nil, func(string) string { return env }, &buffer{}, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=%q: %v, want %q", envSecret, env, err, want)
		}
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"{ \"a\" : 1 }":   `{"a":1}`,
		"plain\x1b[31m":   `"plain\x1b[31m"`,
		"not json":        `"not json"`,
		"[1, 2,\n 3]":     `[1,2,3]`,
		"\"escaped\\n\"":  `"escaped\n"`,
		"{\"type\":\"x\"": `"{\"type\":\"x\""`,
	} {
		if got := printable([]byte(in)); got != want {
			t.Errorf("printable(%q) = %s, want %s", in, got, want)
		}
	}
}
