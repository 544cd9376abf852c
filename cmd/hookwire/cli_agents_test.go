package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// agentsByID lists agents with `agents list -o json`.
func agentsByID(h *hw) map[string]obj {
	h.t.Helper()
	var doc obj
	h.json(&doc, "agents", "list")
	out := map[string]obj{}
	for _, a := range listOf(h.t, doc, "agents") {
		out[a["id"].(string)] = a
	}
	return out
}

// awaitAgents polls `agents list` until ok accepts it.
func awaitAgents(t *testing.T, h *hw, what string, ok func(map[string]obj) bool) map[string]obj {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		agents := agentsByID(h)
		if ok(agents) {
			return agents
		}
		if time.Now().After(deadline) {
			t.Fatalf("agents list: %s did not happen within 30s: %v", what, agents)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestCLIAgentsAndJoinTokens(t *testing.T) {
	srv := startServer(t, t.TempDir())
	h := newHW(t, srv.grpcAddr)
	if out := h.run("agents", "list"); out.code != 0 || !strings.Contains(out.stderr, "No agents are connected") {
		t.Fatalf("agents list with none: %d %q %q", out.code, out.stdout, out.stderr)
	}
	startAgent(t, srv.grpcAddr, "ops-agent")
	agents := awaitAgents(t, h, "ops-agent connected", func(m map[string]obj) bool {
		return m["ops-agent"]["state"] == "AGENT_STATE_CONNECTED"
	})
	if tr, _ := agents["ops-agent"]["transports"].([]any); len(tr) == 0 {
		t.Errorf("ops-agent hosts no transport: %v", agents["ops-agent"])
	}
	if out := h.ok("agents", "list"); !strings.Contains(out, "ops-agent") || !strings.Contains(out, "connected") || !strings.Contains(out, "TRANSPORTS") {
		t.Errorf("agents list table:\n%s", out)
	}

	// join tokens: create (shown once), list (never the value)
	res := h.run("join-tokens", "create", "--name", "edge", "--label", "region=eu", "--expires", "1h", "-o", "json")
	if res.code != 0 || !strings.Contains(res.stderr, "only time the join token is shown") {
		t.Fatalf("join-tokens create: %d %s", res.code, res.stderr)
	}
	var tok obj
	decodeJSON(t, res.stdout, &tok)
	token, _ := tok["token"].(string)
	tokID, _ := tok["id"].(string)
	if !strings.HasPrefix(token, "hwj_") || tokID == "" || tok["expire_time"] == nil || tok["name"] != "edge" {
		t.Fatalf("join token = %v", tok)
	}
	var tokens obj
	h.json(&tokens, "join-tokens", "list")
	found := false
	for _, jt := range listOf(t, tokens, "join_tokens") {
		if jt["id"] == tokID {
			found = true
			if jt["token"] != nil {
				t.Errorf("join-tokens list shows the token value: %v", jt)
			}
		}
	}
	if !found {
		t.Fatalf("join-tokens list lacks %s: %v", tokID, tokens)
	}
	if out := h.ok("join-tokens", "list"); !strings.Contains(out, tokID) || !strings.Contains(out, "active") || strings.Contains(out, token) {
		t.Errorf("join-tokens list table:\n%s", out)
	}
	h.fail(exitUsage, "--label", "join-tokens", "create", "--label", "novalue")
	h.fail(exitInvalid, "not a valid label", "join-tokens", "create", "--label", "region=e u")

	// an agent joins with the token; revoking the token disconnects it
	p, out := startProc(t, []string{"HOOKWIRE_API_KEY=" + token}, "agent", "--server", srv.grpcAddr, "--id", "joined", "--label", "region=eu")
	go func() {
		for out.Scan() {
		}
	}()
	agents = awaitAgents(t, h, "joined connected", func(m map[string]obj) bool { return m["joined"]["state"] == "AGENT_STATE_CONNECTED" })
	if agents["joined"]["join_token_id"] != tokID {
		t.Errorf("joined agent's token = %v, want %s", agents["joined"]["join_token_id"], tokID)
	}
	var revoked obj
	h.json(&revoked, "join-tokens", "revoke", tokID)
	if revoked["revoked"] != true {
		t.Errorf("revoke = %v", revoked)
	}
	awaitAgents(t, h, "joined disconnected", func(m map[string]obj) bool { return m["joined"]["state"] != "AGENT_STATE_CONNECTED" })
	p.kill(syscall.SIGKILL)
	if out := h.ok("join-tokens", "list"); !strings.Contains(out, "revoked") {
		t.Errorf("join-tokens list after revoke:\n%s", out)
	}
	h.fail(exitNotFound, "not found", "join-tokens", "revoke", "hwj_nope")

	// drain
	if out := h.ok("agents", "drain", "ops-agent", "--reason", "test"); !strings.Contains(out, "Draining ops-agent") {
		t.Errorf("drain output: %q", out)
	}
	awaitAgents(t, h, "ops-agent drained", func(m map[string]obj) bool { return m["ops-agent"]["state"] != "AGENT_STATE_CONNECTED" })
	h.fail(exitNotFound, "not connected", "agents", "drain", "no-such-agent")
	h.fail(exitUsage, "missing ID", "agents", "drain")

	// admin key only
	h.with("HOOKWIRE_API_KEY=wrong-key-0123456789abcdef").fail(exitAuth, "", "agents", "list")
	h.ok("tenants", "create", "acme")
	var key obj
	h.json(&key, "api-keys", "create", "--tenant", "acme", "--name", "ops")
	tenantKey, _ := key["key"].(string)
	if tenantKey == "" {
		t.Fatalf("api-keys create = %v", key)
	}
	h.with("HOOKWIRE_API_KEY="+tenantKey).fail(exitAuth, "", "join-tokens", "list")
}
