package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIPortal drives the event catalog and the portal through the
// binary: a type from a file, settings, a session whose URL opens the
// page, the list, and revocation.
func TestCLIPortal(t *testing.T) {
	srv := startServer(t, t.TempDir())
	h := newHW(t, srv.grpcAddr)
	h.ok("tenants", "create", "acme")

	ex := filepath.Join(t.TempDir(), "order.json")
	if err := os.WriteFile(ex, []byte(`{"id": "ord_1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var et obj
	h.json(&et, "event-types", "create", "--tenant", "acme", "order.created", "--description", "An order was placed", "--example", "@"+ex)
	if et["name"] != "order.created" || et["example_payload"] != `{"id": "ord_1"}` {
		t.Fatalf("created type %v", et)
	}
	h.fail(5, "not valid JSON", "event-types", "create", "--tenant", "acme", "order.bad", "--example", "{nope")
	h.fail(7, "already exists", "event-types", "create", "--tenant", "acme", "order.created")
	h.ok("event-types", "update", "--tenant", "acme", "order.created", "--deprecated")
	if out := h.ok("event-types", "list", "--tenant", "acme"); strings.Contains(out, "order.created") {
		t.Errorf("a deprecated type is listed without --all:\n%s", out)
	}
	if out := h.ok("event-types", "list", "--tenant", "acme", "--all"); !strings.Contains(out, "order.created") {
		t.Errorf("--all does not list the deprecated type:\n%s", out)
	}

	h.fail(5, "plain http is allowed only for localhost", "portal", "set", "--tenant", "acme", "--frame-ancestor", "http://app.example.com")
	if out := h.ok("portal", "set", "--tenant", "acme", "--frame-ancestor", "https://app.example.com", "--theme", "dark", "--primary-color", "#0b6e4f"); !strings.Contains(out, "https://app.example.com") {
		t.Errorf("portal set:\n%s", out)
	}

	var ps obj
	h.json(&ps, "portal", "create", "--tenant", "acme", "--label", "customer=cus_42", "--feature", "endpoints.write", "--ttl", "15m", "--customer", "Customer 42")
	url, _ := ps["url"].(string)
	id, _ := ps["id"].(string)
	if !strings.HasPrefix(url, "/portal/hwp_") || !strings.HasPrefix(id, "hwp_") {
		t.Fatalf("portal create: %v", ps)
	}
	h.fail(5, "ttl", "portal", "create", "--tenant", "acme", "--ttl", "48h")
	resp, err := http.Get("http://" + srv.httpAddr + url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors https://app.example.com") {
		t.Fatalf("GET the session's URL: %d %v", resp.StatusCode, resp.Header)
	}
	if out := h.ok("portal", "list", "--tenant", "acme"); !strings.Contains(out, id) || !strings.Contains(out, "Customer 42") {
		t.Errorf("portal list:\n%s", out)
	}
	h.ok("portal", "revoke", "--tenant", "acme", id)
	h.fail(3, "not found", "portal", "revoke", "--tenant", "acme", "hwp_aaaaaaaaaaaaaaaa")
	if resp, err := http.Get("http://" + srv.httpAddr + url); err != nil || resp.StatusCode != 401 {
		t.Errorf("the revoked session's URL: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}
	h.ok("event-types", "delete", "--tenant", "acme", "order.created")
	h.fail(3, "not found", "event-types", "delete", "--tenant", "acme", "order.created")
}
