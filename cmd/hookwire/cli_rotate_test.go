package main

import (
	"strings"
	"testing"
)

func TestCLIRotateSecret(t *testing.T) {
	srv := startServer(t, t.TempDir())
	h := newHW(t, srv.grpcAddr)
	h.ok("tenants", "create", "acme")
	var created obj
	h.json(&created, "subscriptions", "create", "--tenant", "acme", "--event-type", "order.*", "--url", "http://127.0.0.1:9/hook", "-o", "json")
	id := created["id"].(string)

	res := h.run("subscriptions", "rotate-secret", "--tenant", "acme", "--overlap", "1h", id, "-o", "json")
	if res.code != 0 {
		t.Fatalf("rotate: %d %s", res.code, res.stderr)
	}
	if !strings.Contains(res.stderr, "only time the new signing secret is shown") {
		t.Errorf("no warning to store the secret: %q", res.stderr)
	}
	var rot obj
	decodeJSON(t, res.stdout, &rot)
	sub := rot["subscription"].(map[string]any)
	if s, _ := sub["signing_secret"].(string); !strings.HasPrefix(s, "whsec_") || s == created["signing_secret"] {
		t.Fatalf("rotated secret %q", s)
	}
	if rot["previous_keys_expire_time"] == nil {
		t.Fatalf("no previous_keys_expire_time in %v", rot)
	}

	// Migrating to ed25519 shows the public key, never a secret.
	out := h.ok("subscriptions", "rotate-secret", "--tenant", "acme", "--scheme", "ed25519", id)
	if !strings.Contains(out, "whpk_") || strings.Contains(out, "whsec_") || strings.Contains(out, "whsk_") {
		t.Fatalf("ed25519 rotation output:\n%s", out)
	}
	if out := h.ok("subscriptions", "get", "--tenant", "acme", id); !strings.Contains(out, "whpk_") {
		t.Fatalf("get does not show the public key:\n%s", out)
	}
	h.fail(exitInvalid, "7 days", "subscriptions", "rotate-secret", "--tenant", "acme", "--overlap", "200h", id)
	h.fail(exitUsage, "--scheme", "subscriptions", "rotate-secret", "--tenant", "acme", "--scheme", "rsa", id)
}
