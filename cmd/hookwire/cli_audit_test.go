package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCLIAuditList(t *testing.T) {
	srv := startServer(t, t.TempDir())
	h := newHW(t, srv.grpcAddr)
	h.ok("tenants", "create", "acme")
	var created obj
	h.json(&created, "subscriptions", "create", "--tenant", "acme", "--event-type", "order.*", "--url", "http://127.0.0.1:9/hook", "--description", "before")
	id := created["id"].(string)
	secret := created["signing_secret"].(string)
	h.ok("subscriptions", "update", "--tenant", "acme", id, "--description", "after")
	h.ok("subscriptions", "pause", "--tenant", "acme", id)
	var reader obj
	h.json(&reader, "api-keys", "create", "--tenant", "acme", "--name", "auditor", "--scope", "read-only")
	var publisher obj
	h.json(&publisher, "api-keys", "create", "--tenant", "acme", "--name", "pub", "--scope", "publish")

	// A read-only key of the tenant reads the log, as JSON.
	ro := h.with("HOOKWIRE_API_KEY=" + reader["key"].(string))
	out := ro.ok("audit", "list", "--tenant", "acme", "-o", "json")
	var doc obj
	decodeJSON(t, out, &doc)
	list := listOf(t, doc, "audit_events")
	var got []string
	for _, ev := range list {
		got = append(got, ev["action"].(string))
	}
	want := []string{"api_key.create", "api_key.create", "subscription.pause", "subscription.update", "subscription.create"}
	if !slices.Equal(got, want) {
		t.Fatalf("actions %v, want %v", got, want)
	}
	upd := list[3]
	if upd["resource"] != "tenants/acme/subscriptions/"+id || upd["before"].(obj)["description"] != "before" || upd["after"].(obj)["description"] != "after" ||
		upd["actor"].(obj)["api_key_id"] != "admin" || upd["tenant"] != "acme" {
		t.Fatalf("update record %v", upd)
	}
	for _, key := range []string{secret, reader["key"].(string), publisher["key"].(string)} {
		if strings.Contains(out, key) {
			t.Fatalf("a secret value is in the audit log: %s", out)
		}
	}

	// Filters, YAML and the table.
	var filtered obj
	h.json(&filtered, "audit", "list", "--tenant", "acme", "--action", "subscription.*", "--since", "1h", "--limit", "2")
	if l := listOf(t, filtered, "audit_events"); len(l) != 2 || l[0]["action"] != "subscription.pause" || filtered["next_page_token"] == nil {
		t.Fatalf("--action subscription.* --limit 2: %v", filtered)
	}
	if y := h.ok("audit", "list", "--tenant", "acme", "--action", "subscription.update", "-o", "yaml"); !strings.Contains(y, "action: subscription.update") || !strings.Contains(y, "description: before") {
		t.Fatalf("yaml:\n%s", y)
	}
	table := h.ok("audit", "list", "--tenant", "acme", "--resource", "tenants/acme/subscriptions/"+id)
	if !strings.Contains(table, "subscription.update") || !strings.Contains(table, "description") || strings.Contains(table, "api_key.create") {
		t.Fatalf("table:\n%s", table)
	}
	var global obj
	h.json(&global, "audit", "list", "--all-tenants", "--action", "tenant.create")
	if l := listOf(t, global, "audit_events"); len(l) != 1 || l[0]["resource"] != "tenants/acme" || l[0]["tenant"] != "-" {
		t.Fatalf("--all-tenants: %v", global)
	}

	// Who may not, and bad flags.
	h.with("HOOKWIRE_API_KEY="+publisher["key"].(string)).fail(exitAuth, "publish", "audit", "list", "--tenant", "acme")
	ro.fail(exitAuth, "admin key", "audit", "list", "--all-tenants")
	h.fail(exitUsage, "not both", "audit", "list", "--tenant", "acme", "--all-tenants")
	h.fail(exitUsage, "positive", "audit", "list", "--tenant", "acme", "--since", "-1h")
	h.fail(exitInvalid, "subscription.*", "audit", "list", "--tenant", "acme", "--action", "sub*")
}

// TestServerReloadsMasterKeysOnSIGHUP rotates the master key of a running
// `hookwire server` the documented way: move the key to the previous-key
// path, create a new one, SIGHUP; then drop the old one and SIGHUP again.
func TestServerReloadsMasterKeysOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	keys := t.TempDir()
	current, previous := filepath.Join(keys, "master.key"), filepath.Join(keys, "master.previous.key")
	newHW(t, "").ok("keygen", "--out", current)
	p, out := startProc(t, []string{"HOOKWIRE_ADMIN_KEY=" + e2eAdminKey, "HOOKWIRE_MASTER_KEY="},
		"server", "--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--master-key-file", current, "--previous-master-key-file", previous)
	var grpcAddr string
	for grpcAddr == "" && out.Scan() {
		if m := addrLine.FindStringSubmatch(out.Text()); m != nil {
			grpcAddr = m[1]
		}
	}
	if grpcAddr == "" {
		t.Fatalf("server did not start: %s", p.stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, readerOf(out)) }()

	h := newHW(t, grpcAddr)
	h.ok("tenants", "create", "acme")
	for range 3 {
		h.ok("subscriptions", "create", "--tenant", "acme", "--event-type", "order.*", "--url", "http://127.0.0.1:9/hook")
	}

	if err := os.Rename(current, previous); err != nil {
		t.Fatal(err)
	}
	newHW(t, "").ok("keygen", "--out", current)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitStderr(t, p, "master key rotation done", 20*time.Second)

	if err := os.Remove(previous); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(p.stderr.String(), "SIGHUP: master keys reloaded") < 2 {
		if strings.Contains(p.stderr.String(), "master keys not reloaded") || time.Now().After(deadline) {
			t.Fatalf("the second reload did not happen:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling the child's log
	}
	// Still serving, and new subscriptions are sealed under the new key.
	h.ok("subscriptions", "create", "--tenant", "acme", "--event-type", "order.*", "--url", "http://127.0.0.1:9/hook")
	p.kill(syscall.SIGTERM)

	// The new key alone opens every stored signing key.
	p2, out2 := startProc(t, []string{"HOOKWIRE_ADMIN_KEY=" + e2eAdminKey, "HOOKWIRE_MASTER_KEY="},
		"server", "--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--master-key-file", current)
	started := false
	for !started && out2.Scan() {
		started = addrLine.MatchString(out2.Text())
	}
	if !started {
		t.Fatalf("restart with the new key only failed: %s", p2.stderr.String())
	}
}
