package main

// Tests of the client commands: the real binary (built in TestMain) runs
// against a real `hookwire server` on 127.0.0.1. Each test group starts one
// server and runs many commands against it.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
)

// hw runs the hookwire binary as an API client with a clean environment:
// no HOOKWIRE_* variables from the caller, HOME and the config file in a
// temporary directory.
type hw struct {
	t   *testing.T
	env []string
	dir string
}

// newHW returns a client for the server at addr with the admin key (addr ""
// for none).
func newHW(t *testing.T, addr string) *hw {
	t.Helper()
	dir := t.TempDir()
	h := &hw{t: t, dir: dir, env: []string{
		"HOME=" + dir,
		"XDG_CONFIG_HOME=",
		"HOOKWIRE_CONFIG=" + filepath.Join(dir, "config.yaml"),
	}}
	if addr != "" {
		h.env = append(h.env, "HOOKWIRE_ADDR="+addr, "HOOKWIRE_API_KEY="+e2eAdminKey)
	}
	return h
}

// with returns a client with more environment (later entries win).
func (h *hw) with(env ...string) *hw {
	return &hw{t: h.t, dir: h.dir, env: append(append([]string(nil), h.env...), env...)}
}

func (h *hw) configPath() string { return filepath.Join(h.dir, "config.yaml") }

type cliResult struct {
	stdout, stderr string
	code           int
}

func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOOKWIRE_") {
			out = append(out, kv)
		}
	}
	return out
}

// exec runs the binary; stdin nil leaves stdin at /dev/null.
func (h *hw) exec(stdin *string, args ...string) cliResult {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hookwireBin, args...)
	cmd.Env = append(cleanEnv(), h.env...)
	if stdin != nil {
		cmd.Stdin = strings.NewReader(*stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		h.t.Fatalf("hookwire %s: %v", strings.Join(args, " "), err)
	}
	return res
}

func (h *hw) run(args ...string) cliResult {
	h.t.Helper()
	empty := ""
	return h.exec(&empty, args...)
}

func (h *hw) runIn(stdin string, args ...string) cliResult {
	h.t.Helper()
	return h.exec(&stdin, args...)
}

// ok runs a command that must succeed and returns its stdout.
func (h *hw) ok(args ...string) string {
	h.t.Helper()
	return h.mustOK(h.run(args...), args)
}

func (h *hw) okIn(stdin string, args ...string) string {
	h.t.Helper()
	return h.mustOK(h.runIn(stdin, args...), args)
}

func (h *hw) mustOK(r cliResult, args []string) string {
	h.t.Helper()
	if r.code != 0 {
		h.t.Fatalf("hookwire %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fail runs a command that must fail with code, with want in its "error:"
// line(s) on stderr and nothing on stdout.
func (h *hw) fail(code int, want string, args ...string) cliResult {
	h.t.Helper()
	return h.mustFail(h.run(args...), code, want, args)
}

func (h *hw) failIn(stdin string, code int, want string, args ...string) cliResult {
	h.t.Helper()
	return h.mustFail(h.runIn(stdin, args...), code, want, args)
}

func (h *hw) mustFail(r cliResult, code int, want string, args []string) cliResult {
	h.t.Helper()
	if r.code != code || !strings.HasPrefix(r.stderr, "error: ") && !strings.Contains(r.stderr, "\nerror: ") || !strings.Contains(r.stderr, want) {
		h.t.Fatalf("hookwire %s: exit %d, want %d with %q on stderr\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, want, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "Error: ") {
		h.t.Errorf("hookwire %s: cobra printed its own error too:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r
}

// json runs a command with -o json and decodes its output into v.
func (h *hw) json(v any, args ...string) {
	h.t.Helper()
	decodeJSON(h.t, h.ok(append(args, "-o", "json")...), v)
}

func (h *hw) jsonIn(stdin string, v any, args ...string) {
	h.t.Helper()
	decodeJSON(h.t, h.okIn(stdin, append(args, "-o", "json")...), v)
}

func decodeJSON(t *testing.T, data string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(data))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("output is not one JSON document: %v\n%s", err, data)
	}
	if dec.More() {
		t.Fatalf("output has more than one JSON document:\n%s", data)
	}
}

type obj = map[string]any

func listOf(t *testing.T, doc obj, field string) []obj {
	t.Helper()
	raw, ok := doc[field].([]any)
	if !ok {
		t.Fatalf("document has no list %q: %v", field, doc)
	}
	out := make([]obj, len(raw))
	for i, x := range raw {
		out[i] = x.(obj)
	}
	return out
}

func ids(list []obj) []string {
	out := make([]string, len(list))
	for i, x := range list {
		out[i], _ = x["id"].(string)
	}
	return out
}

func TestCLITenantsAndAPIKeys(t *testing.T) {
	srv := startServer(t, t.TempDir())
	h := newHW(t, srv.grpcAddr)

	// tenants create / get / list
	var acme obj
	h.json(&acme, "tenants", "create", "acme", "--display-name", "Acme Corp")
	if acme["id"] != "acme" || acme["display_name"] != "Acme Corp" || acme["create_time"] == nil {
		t.Fatalf("created tenant = %v", acme)
	}
	if out := h.ok("tenants", "create", "globex"); !strings.Contains(out, "ID:") || !strings.Contains(out, "globex") {
		t.Errorf("text create output:\n%s", out)
	}
	h.fail(exitConflict, `tenant "acme" already exists`, "tenants", "create", "acme")
	h.fail(exitInvalid, "id: does not match regex pattern", "tenants", "create", "Not_Valid")
	h.fail(exitUsage, "missing ID", "tenants", "create")
	h.fail(exitUsage, `unexpected argument "two"`, "tenants", "create", "one", "two")

	var got obj
	h.json(&got, "tenants", "get", "acme")
	if !reflect.DeepEqual(got, acme) {
		t.Errorf("get = %v, want what create returned: %v", got, acme)
	}
	var y obj
	if err := yaml.Unmarshal([]byte(h.ok("tenants", "get", "acme", "-o", "yaml")), &y); err != nil || y["id"] != "acme" || y["display_name"] != "Acme Corp" {
		t.Errorf("get -o yaml = %v (%v)", y, err)
	}
	r := h.fail(exitNotFound, `tenant "nope" not found`, "tenants", "get", "nope")
	if !strings.Contains(r.stderr, "hint: ") {
		t.Errorf("no hint for NotFound:\n%s", r.stderr)
	}

	for _, id := range []string{"t1", "t2", "t3"} {
		h.ok("tenants", "create", id)
	}
	var page1, page2, all obj
	h.json(&page1, "tenants", "list", "--limit", "2")
	if got := ids(listOf(t, page1, "tenants")); !reflect.DeepEqual(got, []string{"acme", "globex"}) || page1["next_page_token"] == nil {
		t.Fatalf("first page = %v", page1)
	}
	h.json(&page2, "tenants", "list", "--limit", "2", "--page-token", page1["next_page_token"].(string))
	if got := ids(listOf(t, page2, "tenants")); !reflect.DeepEqual(got, []string{"t1", "t2"}) {
		t.Fatalf("second page = %v", page2)
	}
	h.json(&all, "tenants", "list", "--all")
	if got := ids(listOf(t, all, "tenants")); !reflect.DeepEqual(got, []string{"acme", "globex", "t1", "t2", "t3"}) || all["next_page_token"] != nil {
		t.Fatalf("--all = %v", all)
	}
	table := h.run("tenants", "list", "--limit", "2")
	if lines := strings.Split(strings.TrimSpace(table.stdout), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[1], "Acme Corp") {
		t.Errorf("table:\n%s", table.stdout)
	}
	if !strings.Contains(table.stderr, "--page-token") {
		t.Errorf("a cut list should say how to get more; stderr:\n%s", table.stderr)
	}
	h.fail(exitUsage, "--limit 0", "tenants", "list", "--limit", "0")

	var deleted obj
	h.json(&deleted, "tenants", "delete", "t3")
	if deleted["id"] != "t3" || deleted["deleted"] != true {
		t.Errorf("delete -o json = %v", deleted)
	}
	h.fail(exitNotFound, `tenant "t3" not found`, "tenants", "delete", "t3")
	if out := h.ok("tenants", "delete", "t2"); !strings.Contains(out, `Deleted tenant "t2"`) {
		t.Errorf("delete output: %q", out)
	}
	h.ok("subscriptions", "create", "--tenant", "t1", "--event-type", "a.b", "--url", "http://127.0.0.1:9/x")
	r = h.fail(exitConflict, "still has subscriptions", "tenants", "delete", "t1")
	if !strings.Contains(r.stderr, "hookwire subscriptions list --tenant t1") {
		t.Errorf("no hint to list the subscriptions:\n%s", r.stderr)
	}

	// api-keys create / list / revoke, and the keys at work
	var key obj
	res := h.run("api-keys", "create", "--tenant", "acme", "--name", "reader", "--scope", "read-only", "-o", "json")
	if res.code != 0 {
		t.Fatalf("api-keys create: %d %s", res.code, res.stderr)
	}
	decodeJSON(t, res.stdout, &key)
	if !strings.Contains(res.stderr, "warning: this is the only time the API key is shown") {
		t.Errorf("no warning to store the key; stderr: %q", res.stderr)
	}
	readKey, _ := key["key"].(string)
	if !strings.HasPrefix(readKey, key["id"].(string)+"_") || key["scope"] != "API_KEY_SCOPE_READ_ONLY" || key["tenant"] != "acme" || key["name"] != "reader" {
		t.Fatalf("created key = %v", key)
	}
	var expiring obj
	h.json(&expiring, "api-keys", "create", "--tenant", "acme", "--expires-in", "1h")
	if exp, err := time.Parse(time.RFC3339Nano, fmt.Sprint(expiring["expire_time"])); err != nil || exp.Before(time.Now().Add(50*time.Minute)) || exp.After(time.Now().Add(70*time.Minute)) {
		t.Errorf("--expires-in 1h gave expire_time %v (%v)", expiring["expire_time"], err)
	}
	if out := h.ok("api-keys", "create", "--tenant", "acme", "--scope", "publish"); !strings.Contains(out, "Key:") || !strings.Contains(out, "publish") {
		t.Errorf("text create output:\n%s", out)
	}
	h.fail(exitUsage, "--scope admin", "api-keys", "create", "--tenant", "acme", "--scope", "admin")
	h.fail(exitUsage, `--scope "owner"`, "api-keys", "create", "--tenant", "acme", "--scope", "owner")
	h.fail(exitUsage, "no tenant", "api-keys", "create")
	h.fail(exitNotFound, `tenant "nope" not found`, "api-keys", "create", "--tenant", "nope")
	h.fail(exitUsage, "--expires-at", "api-keys", "create", "--tenant", "acme", "--expires-at", "tomorrow")

	var keys obj
	h.json(&keys, "api-keys", "list", "--tenant", "acme")
	listed := listOf(t, keys, "api_keys")
	if len(listed) != 3 {
		t.Fatalf("listed keys = %v", keys)
	}
	for _, k := range listed {
		if k["key"] != nil {
			t.Errorf("list shows a key value: %v", k)
		}
	}
	if out := h.ok("api-keys", "list", "--tenant", "acme"); !strings.Contains(out, key["id"].(string)) || !strings.Contains(out, "read-only") || strings.Contains(out, readKey) {
		t.Errorf("api-keys list table:\n%s", out)
	}

	reader := h.with("HOOKWIRE_API_KEY=" + readKey)
	reader.ok("tenants", "get", "acme")
	reader.ok("subscriptions", "list", "--tenant", "acme")
	reader.fail(exitAuth, "read-only", "subscriptions", "create", "--tenant", "acme", "--event-type", "a", "--url", "http://127.0.0.1:9/")
	r = reader.fail(exitAuth, "admin key", "tenants", "list")
	if !strings.Contains(r.stderr, "from HOOKWIRE_API_KEY") || strings.Contains(r.stderr, readKey) {
		t.Errorf("PermissionDenied hint should name the key's source, masked:\n%s", r.stderr)
	}
	reader.fail(exitNotFound, "not found", "subscriptions", "list", "--tenant", "globex")

	var revoked obj
	h.json(&revoked, "api-keys", "revoke", "--tenant", "acme", key["id"].(string))
	if revoked["id"] != key["id"] || revoked["revoked"] != true {
		t.Errorf("revoke -o json = %v", revoked)
	}
	h.json(&keys, "api-keys", "list", "--tenant", "acme")
	for _, k := range listOf(t, keys, "api_keys") {
		if k["id"] == key["id"] && k["revoked"] != true {
			t.Errorf("revoked key listed as %v", k)
		}
	}
	reader.fail(exitAuth, "revoked", "tenants", "get", "acme")
	h.fail(exitNotFound, `API key "hwk_nope" not found`, "api-keys", "revoke", "--tenant", "acme", "hwk_nope")
	h.fail(exitUsage, "missing KEY_ID", "api-keys", "revoke", "--tenant", "acme")

	// authentication failures
	anon := newHW(t, "").with("HOOKWIRE_ADDR=" + srv.grpcAddr)
	r = anon.fail(exitAuth, "missing API key", "tenants", "list")
	if !strings.Contains(r.stderr, "HOOKWIRE_API_KEY") {
		t.Errorf("Unauthenticated hint should name HOOKWIRE_API_KEY:\n%s", r.stderr)
	}
	anon.fail(exitAuth, "invalid API key", "tenants", "list", "--api-key", "wrong-key-0123456789")

	// completion of tenant ids asks the server
	comp := h.ok("__complete", "tenants", "get", "")
	if !strings.Contains(comp, "acme\tAcme Corp") || !strings.Contains(comp, "globex") {
		t.Errorf("tenant completion:\n%s", comp)
	}
}

func TestCLISubscriptions(t *testing.T) {
	srv := startServer(t, t.TempDir())
	h := newHW(t, srv.grpcAddr)
	h.ok("tenants", "create", "acme")

	// create from flags
	res := h.run("subscriptions", "create", "--tenant", "acme", "--event-type", "order.*", "--event-type", "refund.created",
		"--url", "http://127.0.0.1:9/orders", "--timeout", "10s", "--description", "billing",
		"--metadata", "team=billing", "--metadata", "note=a=b,c", "-o", "json")
	if res.code != 0 {
		t.Fatalf("create: %d %s", res.code, res.stderr)
	}
	if !strings.Contains(res.stderr, "warning: this is the only time the signing secret is shown") {
		t.Errorf("no warning to store the secret: %q", res.stderr)
	}
	var flagSub obj
	decodeJSON(t, res.stdout, &flagSub)
	want := obj{
		"tenant": "acme", "description": "billing", "status": "SUBSCRIPTION_STATUS_ENABLED",
		"event_types": []any{"order.*", "refund.created"},
		"target":      obj{"transport": "http", "config": obj{"url": "http://127.0.0.1:9/orders"}, "timeout": "10s"},
		"metadata":    obj{"team": "billing", "note": "a=b,c"},
	}
	for k, v := range want {
		if !reflect.DeepEqual(flagSub[k], v) {
			t.Errorf("created %s = %#v, want %#v", k, flagSub[k], v)
		}
	}
	if s, _ := flagSub["signing_secret"].(string); !strings.HasPrefix(s, "whsec_") {
		t.Errorf("signing_secret = %q", s)
	}
	subID := flagSub["id"].(string)

	// get shows the same, without the secret
	var got obj
	h.json(&got, "subscriptions", "get", "--tenant", "acme", subID)
	delete(flagSub, "signing_secret")
	if !reflect.DeepEqual(got, flagSub) {
		t.Errorf("get = %v\nwant %v", got, flagSub)
	}
	text := h.ok("subscriptions", "get", "--tenant", "acme", subID)
	for _, s := range []string{"ID:", subID, "Status:", "enabled", "URL:", "http://127.0.0.1:9/orders", "Timeout:", "10s", "team=billing"} {
		if !strings.Contains(text, s) {
			t.Errorf("get text lacks %q:\n%s", s, text)
		}
	}
	if strings.Contains(text, "whsec_") {
		t.Errorf("get shows a secret:\n%s", text)
	}

	// create from a YAML file and from JSON on stdin
	file := filepath.Join(t.TempDir(), "sub.yaml")
	os.WriteFile(file, []byte(`description: From YAML
event_types: ["invoice.*"]
target:
  transport: http
  config:
    url: http://127.0.0.1:9/invoices
    headers: {x-team: ops}
  timeout: 5s
metadata:
  team: ops
`), 0o600)
	var yamlSub obj
	h.json(&yamlSub, "subscriptions", "create", "--tenant", "acme", "-f", file)
	if yamlSub["description"] != "From YAML" || !reflect.DeepEqual(yamlSub["target"], obj{"transport": "http", "timeout": "5s",
		"config": obj{"url": "http://127.0.0.1:9/invoices", "headers": obj{"x-team": "ops"}}}) {
		t.Fatalf("created from YAML: %v", yamlSub)
	}
	var stdinSub obj
	h.jsonIn(`{"event_types":["user.deleted"],"target":{"transport":"http","config":{"url":"http://127.0.0.1:9/users"}}}`,
		&stdinSub, "subscriptions", "create", "--tenant", "acme", "-f", "-")
	if !reflect.DeepEqual(stdinSub["event_types"], []any{"user.deleted"}) {
		t.Fatalf("created from stdin: %v", stdinSub)
	}
	// A subscription exported as YAML can be created again, in another tenant.
	h.ok("tenants", "create", "globex")
	exported := h.ok("subscriptions", "get", "--tenant", "acme", subID, "-o", "yaml")
	var copied obj
	h.jsonIn(exported, &copied, "subscriptions", "create", "--tenant", "globex", "-f", "-")
	if copied["tenant"] != "globex" || copied["id"] == subID || !reflect.DeepEqual(copied["target"], got["target"]) {
		t.Errorf("re-created from exported YAML: %v", copied)
	}
	text = h.ok("subscriptions", "create", "--tenant", "acme", "--event-type", "x.y", "--url", "http://127.0.0.1:9/text")
	if !strings.Contains(text, "Signing secret:") || !strings.Contains(text, "whsec_") {
		t.Errorf("text create output lacks the secret:\n%s", text)
	}

	// create errors
	h.fail(exitUsage, "--event-type", "subscriptions", "create", "--tenant", "acme", "--url", "http://127.0.0.1:9/")
	h.fail(exitUsage, "pass --url", "subscriptions", "create", "--tenant", "acme", "--event-type", "a")
	h.fail(exitInvalid, "invalid target", "subscriptions", "create", "--tenant", "acme", "--event-type", "a", "--url", "not-a-url")
	h.fail(exitInvalid, "event_types[0]", "subscriptions", "create", "--tenant", "acme", "--event-type", "bad type", "--url", "http://127.0.0.1:9/")
	h.fail(exitUsage, "--config", "subscriptions", "create", "--tenant", "acme", "--event-type", "a", "--config", "{not json")
	h.fail(exitUsage, "--url is for the http transport", "subscriptions", "create", "--tenant", "acme", "--event-type", "a", "--transport", "kafka", "--url", "http://x/")
	h.fail(exitUsage, "cannot be combined with -f", "subscriptions", "create", "--tenant", "acme", "-f", file, "--url", "http://127.0.0.1:9/")
	h.failIn(`{"event_typez":["a"]}`, exitInvalid, `unknown field "event_typez"`, "subscriptions", "create", "--tenant", "acme", "-f", "-")
	h.failIn("- just\n- a list\n", exitInvalid, "want a subscription object", "subscriptions", "create", "--tenant", "acme", "-f", "-")
	h.fail(exitGeneric, "no such file", "subscriptions", "create", "--tenant", "acme", "-f", filepath.Join(t.TempDir(), "missing.yaml"))
	h.fail(exitNotFound, `tenant "nope" not found`, "subscriptions", "create", "--tenant", "nope", "--event-type", "a", "--url", "http://127.0.0.1:9/")
	h.fail(exitUsage, "no tenant", "subscriptions", "create", "--event-type", "a", "--url", "http://127.0.0.1:9/")

	// list
	var list obj
	h.json(&list, "subscriptions", "list", "--tenant", "acme")
	if got := ids(listOf(t, list, "subscriptions")); len(got) != 4 || got[0] != subID || got[1] != yamlSub["id"] {
		t.Fatalf("list = %v", got)
	}
	table := h.ok("subscriptions", "list", "--tenant", "acme")
	if !strings.HasPrefix(table, "ID ") || !strings.Contains(table, "order.*,refund.created") || !strings.Contains(table, "http://127.0.0.1:9/invoices") {
		t.Errorf("list table:\n%s", table)
	}
	h.json(&list, "subscriptions", "list", "--tenant", "acme", "--limit", "1")
	if got := ids(listOf(t, list, "subscriptions")); len(got) != 1 || list["next_page_token"] == nil {
		t.Errorf("--limit 1 = %v", list)
	}
	var empty obj
	h.ok("tenants", "create", "initech")
	h.json(&empty, "subscriptions", "list", "--tenant", "initech")
	if l := listOf(t, empty, "subscriptions"); len(l) != 0 {
		t.Errorf("empty list = %v", empty)
	}

	// update: only the named fields, keeping the rest of target and metadata
	yamlID := yamlSub["id"].(string)
	var upd obj
	h.json(&upd, "subscriptions", "update", "--tenant", "acme", yamlID,
		"--url", "http://127.0.0.1:9/v2", "--timeout", "20s", "--metadata", "owner=ann", "--remove-metadata", "team", "--description", "moved")
	wantTarget := obj{"transport": "http", "timeout": "20s", "config": obj{"url": "http://127.0.0.1:9/v2", "headers": obj{"x-team": "ops"}}}
	if !reflect.DeepEqual(upd["target"], wantTarget) || !reflect.DeepEqual(upd["metadata"], obj{"owner": "ann"}) ||
		upd["description"] != "moved" || !reflect.DeepEqual(upd["event_types"], yamlSub["event_types"]) {
		t.Errorf("updated = %v", upd)
	}
	h.json(&upd, "subscriptions", "update", "--tenant", "acme", yamlID, "--event-type", "invoice.paid,invoice.voided")
	if !reflect.DeepEqual(upd["event_types"], []any{"invoice.paid", "invoice.voided"}) || upd["description"] != "moved" {
		t.Errorf("updated event types = %v", upd)
	}
	h.json(&upd, "subscriptions", "update", "--tenant", "acme", yamlID, "--config", `{"url":"http://127.0.0.1:9/v3"}`)
	if !reflect.DeepEqual(upd["target"], obj{"transport": "http", "timeout": "20s", "config": obj{"url": "http://127.0.0.1:9/v3"}}) {
		t.Errorf("--config replaces the config: %v", upd["target"])
	}
	h.fail(exitUsage, "nothing to update", "subscriptions", "update", "--tenant", "acme", yamlID)
	h.fail(exitInvalid, "event_types[0]", "subscriptions", "update", "--tenant", "acme", yamlID, "--event-type", "no spaces")
	h.fail(exitInvalid, "invalid target", "subscriptions", "update", "--tenant", "acme", yamlID, "--url", "ftp://x")
	h.fail(exitUsage, "keeps the transport it was created with", "subscriptions", "update", "--tenant", "acme", yamlID, "--transport", "kafka", "--config", "{}")
	h.fail(exitUsage, `--remove-metadata "absent"`, "subscriptions", "update", "--tenant", "acme", yamlID, "--remove-metadata", "absent")
	r := h.fail(exitNotFound, `subscription "sub_nope" not found`, "subscriptions", "update", "--tenant", "acme", "sub_nope", "--description", "x")
	if !strings.Contains(r.stderr, "hookwire subscriptions list --tenant acme") {
		t.Errorf("NotFound hint:\n%s", r.stderr)
	}

	// pause / resume
	var paused obj
	h.json(&paused, "subscriptions", "pause", "--tenant", "acme", subID)
	if paused["status"] != "SUBSCRIPTION_STATUS_PAUSED" {
		t.Errorf("pause: %v", paused)
	}
	if out := h.ok("subscriptions", "resume", "--tenant", "acme", subID); !strings.Contains(out, "is now enabled") {
		t.Errorf("resume text: %q", out)
	}
	h.json(&got, "subscriptions", "get", "--tenant", "acme", subID)
	if got["status"] != "SUBSCRIPTION_STATUS_ENABLED" {
		t.Errorf("after resume: %v", got["status"])
	}
	h.fail(exitNotFound, "not found", "subscriptions", "pause", "--tenant", "acme", "sub_nope")
	h.fail(exitNotFound, "not found", "subscriptions", "resume", "--tenant", "globex", subID)

	// delete
	var del obj
	h.json(&del, "subscriptions", "delete", "--tenant", "acme", subID)
	if del["id"] != subID || del["deleted"] != true {
		t.Errorf("delete -o json = %v", del)
	}
	h.fail(exitNotFound, "not found", "subscriptions", "get", "--tenant", "acme", subID)
	h.fail(exitNotFound, "not found", "subscriptions", "delete", "--tenant", "acme", subID)
	h.fail(exitUsage, "missing ID", "subscriptions", "delete", "--tenant", "acme")

	// completion of subscription ids for the resolved tenant
	comp := h.with("HOOKWIRE_TENANT=acme").ok("__complete", "subscriptions", "get", "")
	if !strings.Contains(comp, yamlID+"\tmoved") || strings.Contains(comp, subID) {
		t.Errorf("subscription completion:\n%s", comp)
	}
}

func TestCLIEventsAndDeliveries(t *testing.T) {
	sk := newSink(t)
	srv := startServer(t, t.TempDir())
	startAgent(t, srv.grpcAddr, "cli-agent")
	h := newHW(t, srv.grpcAddr).with("HOOKWIRE_TENANT=acme")
	h.ok("tenants", "create", "acme")
	var sub obj
	h.json(&sub, "subscriptions", "create", "--event-type", "order.*", "--url", sk.url)
	subID := sub["id"].(string)
	published := 0

	// one event from --data, --file and stdin; raw bytes with a content type
	var pub obj
	h.json(&pub, "events", "publish", "--type", "order.created", "--data", `{"id": 1, "n": 12345678901234567890}`)
	evtID, _ := pub["id"].(string)
	if !strings.HasPrefix(evtID, "evt_") || pub["delivery_count"] != float64(1) {
		t.Fatalf("publish = %v", pub)
	}
	payloadFile := filepath.Join(t.TempDir(), "order.json")
	os.WriteFile(payloadFile, []byte(`{"id": 2}`), 0o600)
	if out := h.ok("events", "publish", "--type", "order.paid", "--file", payloadFile); !strings.Contains(out, "Published evt_") || !strings.Contains(out, "1 delivery") {
		t.Errorf("text publish: %q", out)
	}
	h.okIn(`{"id": 3}`, "events", "publish", "--type", "order.shipped")
	xmlFile := filepath.Join(t.TempDir(), "order.xml")
	os.WriteFile(xmlFile, []byte(`<order id="4"/>`), 0o600)
	h.ok("events", "publish", "--type", "order.exported", "--file", xmlFile, "--content-type", "application/xml", "--metadata", "region=eu")
	var unmatched obj
	h.json(&unmatched, "events", "publish", "--type", "user.created", "--data", `{}`) // matches no subscription
	if !strings.HasPrefix(fmt.Sprint(unmatched["id"]), "evt_") || unmatched["delivery_count"] != nil {
		t.Errorf("unmatched publish = %v", unmatched)
	}
	published += 4
	sk.await(4, 30*time.Second)
	bodies := map[string]string{}
	for _, rs := range sk.all() {
		bodies[string(rs[0].body)] = rs[0].headers.Get("Content-Type")
	}
	for body, ct := range map[string]string{`{"id": 1, "n": 12345678901234567890}`: "application/json", `{"id": 2}`: "application/json",
		`{"id": 3}`: "application/json", `<order id="4"/>`: "application/xml"} {
		if got, ok := bodies[body]; !ok || got != ct {
			t.Errorf("sink got body %q with content type %q (present %v); all: %v", body, got, ok, bodies)
		}
	}

	// publish errors
	h.fail(exitInvalid, "not valid JSON", "events", "publish", "--type", "order.created", "--data", "{nope")
	h.failIn("", exitInvalid, "empty", "events", "publish", "--type", "order.created")
	h.fail(exitUsage, "--type", "events", "publish", "--data", "{}")
	h.fail(exitUsage, "not both", "events", "publish", "--type", "a", "--data", "{}", "--file", payloadFile)
	h.fail(exitInvalid, "event.type", "events", "publish", "--type", "bad type", "--data", "{}")
	h.fail(exitUsage, "--metadata", "events", "publish", "--type", "a", "--data", "{}", "--metadata", "novalue")
	r := h.exec(nil, "events", "publish", "--type", "order.created") // stdin is /dev/null, not a pipe
	if r.code != exitUsage || !strings.Contains(r.stderr, "no payload") {
		t.Errorf("publish with no payload source: %d %s", r.code, r.stderr)
	}
	h.with("HOOKWIRE_TENANT=").fail(exitUsage, "no tenant", "events", "publish", "--type", "a", "--data", "{}")

	// --batch: 50 events in requests of 20
	var ndjson strings.Builder
	for i := range 50 {
		fmt.Fprintf(&ndjson, `{"type":"order.batch","payload":{"n":%d}}`+"\n", i)
		if i == 10 {
			ndjson.WriteString("\n") // blank lines are skipped
		}
	}
	var batch obj
	h.jsonIn(ndjson.String(), &batch, "events", "publish", "--batch", "--batch-size", "20")
	results := listOf(t, batch, "results")
	if len(results) != 50 {
		t.Fatalf("batch results: %d", len(results))
	}
	seen := map[string]bool{}
	for _, r := range results {
		seen[r["id"].(string)] = true
		if r["delivery_count"] != float64(1) {
			t.Errorf("batch result %v", r)
		}
	}
	if len(seen) != 50 {
		t.Errorf("batch gave %d distinct ids", len(seen))
	}
	published += 50
	ndFile := filepath.Join(t.TempDir(), "events.ndjson")
	os.WriteFile(ndFile, []byte(`{"type":"order.file","payload":[1,2]}`+"\n"+`{"type":"order.file","payload":"text","content_type":"text/plain"}`+"\n"), 0o600)
	if out := h.ok("events", "publish", "--batch", "--file", ndFile); !strings.Contains(out, "Published 2 events (2 deliveries) in 1 request.") {
		t.Errorf("batch text output: %q", out)
	}
	published += 2

	// A bad line anywhere: nothing is published.
	bad := strings.Replace(ndjson.String(), `{"type":"order.batch","payload":{"n":37}}`, `{"type":"order batch","payload":{"n":37}}`, 1)
	h.failIn(bad, exitInvalid, "stdin line 39: type: does not match", "events", "publish", "--batch")
	h.failIn(`{"type":"a.b"}`, exitInvalid, `line 1: missing "payload"`, "events", "publish", "--batch")
	h.failIn(`{"type":"a.b","payload":1,"colour":"red"}`, exitInvalid, `unknown field "colour"`, "events", "publish", "--batch")
	h.failIn("\n\n", exitInvalid, "no events", "events", "publish", "--batch")
	h.fail(exitUsage, "cannot be combined with --batch", "events", "publish", "--batch", "--type", "a", "--file", ndFile)
	h.fail(exitUsage, "--batch-size 1001", "events", "publish", "--batch", "--batch-size", "1001", "--file", ndFile)
	// The server refuses the second request (a payload over its 1 MiB
	// limit): the first stays published, the error names the line.
	var partial strings.Builder
	for i := range 25 {
		if i == 22 {
			fmt.Fprintf(&partial, `{"type":"order.big","payload":"%s"}`+"\n", strings.Repeat("x", 1<<20+10))
			continue
		}
		fmt.Fprintf(&partial, `{"type":"order.partial","payload":{"n":%d}}`+"\n", i)
	}
	r = h.runIn(partial.String(), "events", "publish", "--batch", "--batch-size", "20", "-o", "json")
	if r.code != exitInvalid || !strings.Contains(r.stderr, "error: request 2 of 2 (lines 21-25): payload is") ||
		!strings.Contains(r.stderr, "20 events (input lines up to 20) were published before the failure; lines from 21 on were not") {
		t.Fatalf("partial batch: exit %d\n%s", r.code, r.stderr)
	}
	var partialDoc obj
	decodeJSON(t, r.stdout, &partialDoc)
	if n := len(listOf(t, partialDoc, "results")); n != 20 {
		t.Errorf("partial batch printed %d results, want the 20 published", n)
	}
	published += 20

	// deliveries list: filters, paging, --all
	var all obj
	h.json(&all, "deliveries", "list", "--all")
	if n := len(listOf(t, all, "deliveries")); n != published {
		t.Fatalf("deliveries list --all: %d, want %d", n, published)
	}
	var one obj
	h.json(&one, "deliveries", "list", "--event", evtID)
	dl := listOf(t, one, "deliveries")
	if len(dl) != 1 || dl[0]["event_id"] != evtID || dl[0]["subscription_id"] != subID || dl[0]["event_type"] != "order.created" {
		t.Fatalf("deliveries of %s: %v", evtID, one)
	}
	dlvID := dl[0]["id"].(string)
	var bySub, p1, p2 obj
	h.json(&bySub, "deliveries", "list", "--subscription", subID, "--limit", "1000")
	if n := len(listOf(t, bySub, "deliveries")); n != published {
		t.Errorf("deliveries of %s: %d", subID, n)
	}
	h.json(&p1, "deliveries", "list", "--limit", "5")
	h.json(&p2, "deliveries", "list", "--limit", "5", "--page-token", p1["next_page_token"].(string))
	first, second := ids(listOf(t, p1, "deliveries")), ids(listOf(t, p2, "deliveries"))
	if len(first) != 5 || len(second) != 5 || first[4] >= first[0] || second[0] >= first[4] {
		t.Errorf("pages are not newest first and disjoint: %v then %v", first, second)
	}
	if all := ids(listOf(t, all, "deliveries")); !reflect.DeepEqual(all[:10], append(first, second...)) {
		t.Errorf("paging by 5 disagrees with --all: %v %v", all[:10], append(first, second...))
	}

	// Wait for the first deliveries to succeed, through the CLI.
	deadline := time.Now().Add(30 * time.Second)
	var succeeded obj
	for {
		h.json(&succeeded, "deliveries", "list", "--status", "succeeded", "--event", evtID)
		if len(listOf(t, succeeded, "deliveries")) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling the API for an eventually recorded result
	}
	if len(listOf(t, succeeded, "deliveries")) != 1 {
		t.Fatalf("delivery %s never listed as succeeded", dlvID)
	}
	table := h.ok("deliveries", "list", "--event", evtID)
	if !strings.HasPrefix(table, "ID ") || !strings.Contains(table, dlvID) || !strings.Contains(table, "succeeded") || !strings.Contains(table, "success") {
		t.Errorf("deliveries table:\n%s", table)
	}
	h.fail(exitUsage, `--status "bogus"`, "deliveries", "list", "--status", "bogus")
	h.fail(exitInvalid, "event_id", "deliveries", "list", "--event", "not-an-id")

	// deliveries get and attempts list
	var d obj
	h.json(&d, "deliveries", "get", dlvID)
	if d["id"] != dlvID || d["status"] != "DELIVERY_STATUS_SUCCEEDED" || d["attempt_count"] != float64(1) || d["last_outcome"] != "OUTCOME_SUCCESS" {
		t.Errorf("delivery = %v", d)
	}
	if text := h.ok("deliveries", "get", dlvID); !strings.Contains(text, "Status:") || !strings.Contains(text, "succeeded") || !strings.Contains(text, "hookwire attempts list --tenant acme "+dlvID) {
		t.Errorf("deliveries get text:\n%s", text)
	}
	h.fail(exitNotFound, "not found", "deliveries", "get", "dlv_01J00000000000000000000000")
	var attempts obj
	h.json(&attempts, "attempts", "list", dlvID)
	al := listOf(t, attempts, "attempts")
	if len(al) != 1 || al[0]["number"] != float64(1) || al[0]["outcome"] != "OUTCOME_SUCCESS" || al[0]["status_code"] != float64(204) || al[0]["agent_id"] != "cli-agent" {
		t.Errorf("attempts = %v", attempts)
	}
	if text := h.ok("attempts", "list", dlvID); !strings.Contains(text, "OUTCOME") || !strings.Contains(text, "success") || !strings.Contains(text, "204") {
		t.Errorf("attempts table:\n%s", text)
	}
	r = h.fail(exitNotFound, "not found", "attempts", "list", "dlv_01J00000000000000000000000")
	if !strings.Contains(r.stderr, "hookwire deliveries list --tenant acme") {
		t.Errorf("attempts NotFound hint:\n%s", r.stderr)
	}
	h.fail(exitUsage, "missing DELIVERY_ID", "attempts", "list")
}

func TestCLIContextsAndPrecedence(t *testing.T) {
	srv := startServer(t, t.TempDir())
	admin := newHW(t, srv.grpcAddr)
	admin.ok("tenants", "create", "acme")
	admin.ok("tenants", "create", "globex")
	admin.ok("subscriptions", "create", "--tenant", "acme", "--event-type", "a.b", "--url", "http://127.0.0.1:9/acme")

	const down = "127.0.0.1:1" // nothing listens there
	h := newHW(t, "")
	os.WriteFile(h.configPath(), []byte(fmt.Sprintf(`current_context: broken
contexts:
  good:
    addr: %s
    api_key: %s
    tenant: acme
  broken:
    addr: %s
    api_key: wrong-key-0123456789
  wrongkey:
    addr: %s
    api_key: wrong-key-0123456789
  nokey:
    addr: %s
`, srv.grpcAddr, e2eAdminKey, down, srv.grpcAddr, srv.grpcAddr)), 0o600)

	// The current context from the file applies...
	r := h.fail(exitUnavailable, "cannot connect to "+down, "tenants", "list")
	if !strings.Contains(r.stderr, `from context "broken"`) {
		t.Errorf("hint should say where the address came from:\n%s", r.stderr)
	}
	// ...unless --context names another, or HOOKWIRE_CONTEXT does.
	h.ok("tenants", "list", "--context", "good")
	h.with("HOOKWIRE_CONTEXT=good").ok("tenants", "list")
	// The environment beats the current context...
	h.with("HOOKWIRE_ADDR="+srv.grpcAddr, "HOOKWIRE_API_KEY="+e2eAdminKey).ok("tenants", "list")
	// ...flags beat the environment...
	r = h.with("HOOKWIRE_ADDR="+srv.grpcAddr, "HOOKWIRE_API_KEY="+e2eAdminKey).fail(exitUnavailable, "cannot connect", "tenants", "list", "--addr", down)
	if !strings.Contains(r.stderr, "from --addr") {
		t.Errorf("hint should name --addr:\n%s", r.stderr)
	}
	h.with("HOOKWIRE_ADDR="+srv.grpcAddr, "HOOKWIRE_API_KEY="+e2eAdminKey).fail(exitAuth, "invalid API key", "tenants", "list", "--api-key", "wrong-key-0123456789")
	// ...and a context named with --context beats the environment.
	h.with("HOOKWIRE_ADDR="+down, "HOOKWIRE_API_KEY=wrong-key-0123456789").ok("tenants", "list", "--context", "good")
	// Settings a context lacks fall through to the environment.
	h.with("HOOKWIRE_API_KEY="+e2eAdminKey).ok("tenants", "list", "--context", "nokey")
	h.fail(exitAuth, "missing API key", "tenants", "list", "--context", "nokey")
	h.with("HOOKWIRE_API_KEY="+e2eAdminKey).fail(exitAuth, "invalid API key", "tenants", "list", "--context", "wrongkey")
	h.ok("tenants", "list", "--context", "wrongkey", "--api-key", e2eAdminKey)

	// The tenant: flag > named context > HOOKWIRE_TENANT > current context.
	var subs obj
	h.json(&subs, "subscriptions", "list", "--context", "good")
	if len(listOf(t, subs, "subscriptions")) != 1 {
		t.Errorf("tenant from the context: %v", subs)
	}
	h.json(&subs, "subscriptions", "list", "--context", "good", "--tenant", "globex")
	if len(listOf(t, subs, "subscriptions")) != 0 {
		t.Errorf("--tenant should beat the context's tenant: %v", subs)
	}
	h.with("HOOKWIRE_CONTEXT=good", "HOOKWIRE_TENANT=globex").json(&subs, "subscriptions", "list")
	if len(listOf(t, subs, "subscriptions")) != 0 {
		t.Errorf("HOOKWIRE_TENANT should beat the current context's tenant: %v", subs)
	}

	h.fail(exitUsage, `context "nope" (from --context) is not in`, "tenants", "list", "--context", "nope")
	h.with("HOOKWIRE_CONTEXT=nope").fail(exitUsage, `context "nope" (from HOOKWIRE_CONTEXT)`, "tenants", "list")

	// context set / use / list / current / delete on a fresh file
	c := newHW(t, "")
	c.fail(exitNotFound, "no current context", "context", "current")
	if r := c.run("context", "list"); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "No contexts") {
		t.Errorf("empty context list: %+v", r)
	}
	out := c.ok("context", "set", "local", "--addr", srv.grpcAddr, "--api-key", e2eAdminKey, "--tenant", "acme")
	if !strings.Contains(out, `Created context "local"`) || !strings.Contains(out, "current context") {
		t.Errorf("context set: %q", out)
	}
	c.okIn(e2eAdminKey+"\n", "context", "set", "other", "--addr", down, "--api-key", "-")
	c.ok("subscriptions", "list") // local is current: its address, key and tenant
	if got := strings.TrimSpace(c.ok("context", "current")); got != "local" {
		t.Errorf("context current = %q", got)
	}
	st, err := os.Stat(c.configPath())
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("config file mode: %v %v", st.Mode(), err)
	}
	var written cliConfig
	data, _ := os.ReadFile(c.configPath())
	if err := yaml.Unmarshal(data, &written); err != nil || written.CurrentContext != "local" || written.Contexts["other"].APIKey != e2eAdminKey || written.Contexts["local"].Tenant != "acme" {
		t.Errorf("written config: %+v (%v)\n%s", written, err, data)
	}
	table := c.ok("context", "list")
	var listed struct {
		ConfigFile     string `json:"config_file"`
		CurrentContext string `json:"current_context"`
		Contexts       []struct {
			Name    string `json:"name"`
			Current bool   `json:"current"`
			Addr    string `json:"addr"`
			APIKey  string `json:"api_key"`
		} `json:"contexts"`
	}
	c.json(&listed, "context", "list")
	if strings.Contains(table, e2eAdminKey) || strings.Contains(fmt.Sprint(listed), e2eAdminKey) {
		t.Errorf("context list shows a key in full:\n%s\n%+v", table, listed)
	}
	if !strings.Contains(table, "e2e-…cdef") || !strings.Contains(table, "*") || len(listed.Contexts) != 2 ||
		listed.Contexts[0].Name != "local" || !listed.Contexts[0].Current || listed.Contexts[1].Addr != down || listed.CurrentContext != "local" || listed.ConfigFile != c.configPath() {
		t.Errorf("context list:\n%s\n%+v", table, listed)
	}
	c.ok("context", "use", "other")
	c.fail(exitUnavailable, "cannot connect", "tenants", "list")
	out = c.ok("context", "set", "other", "--addr", srv.grpcAddr)
	if !strings.Contains(out, `Updated context "other"`) {
		t.Errorf("context set existing: %q", out)
	}
	c.ok("tenants", "list") // other kept its key, got the new address
	c.fail(exitUsage, "nothing to change", "context", "set", "other")
	c.fail(exitUsage, "context name", "context", "set", "bad name", "--addr", "x:1")
	c.fail(exitNotFound, `context "nope" is not in`, "context", "use", "nope")
	c.fail(exitNotFound, `context "nope" is not in`, "context", "delete", "nope")
	if out := c.ok("context", "delete", "other"); !strings.Contains(out, "no current context") {
		t.Errorf("deleting the current context: %q", out)
	}
	c.fail(exitNotFound, "no current context", "context", "current")
	h.fail(exitUsage, "--api-key -: stdin was empty", "context", "set", "x", "--api-key", "-")

	comp := h.ok("__complete", "tenants", "list", "--context", "")
	if !strings.Contains(comp, "good\nnokey\nwrongkey\n") {
		t.Errorf("context completion:\n%s", comp)
	}

	// A broken config file is reported, not ignored.
	os.WriteFile(h.configPath(), []byte("contexts:\n  x:\n    api-key: oops\n"), 0o600)
	h.fail(exitGeneric, "api-key", "tenants", "list")
}

func TestCLIUsageAndConnectionErrors(t *testing.T) {
	h := newHW(t, "")

	h.fail(exitUsage, `unknown command "frobnicate" for "hookwire tenants"`, "tenants", "frobnicate")
	r := h.fail(exitUsage, "did you mean", "subscriptions", "creat")
	if !strings.Contains(r.stderr, "create") {
		t.Errorf("no suggestion: %s", r.stderr)
	}
	h.fail(exitUsage, "unknown flag: --frob", "tenants", "list", "--frob")
	h.fail(exitUsage, `--output "xml"`, "tenants", "list", "-o", "xml")
	h.fail(exitUsage, "invalid argument", "tenants", "list", "--limit", "many")
	h.fail(exitUsage, "missing NAME", "context", "use")

	// A noun alone prints its help and succeeds.
	if out := h.ok("deliveries"); !strings.Contains(out, "Available Commands:") || !strings.Contains(out, "list") {
		t.Errorf("deliveries alone:\n%s", out)
	}
	if out := h.ok("subscriptions", "create", "--help"); !strings.Contains(out, "Examples:") || !strings.Contains(out, "--event-type") {
		t.Errorf("subscriptions create --help:\n%s", out)
	}
	if out := h.ok("help", "exit-codes"); !strings.Contains(out, "4    not authenticated") || !strings.Contains(out, "6    unavailable") {
		t.Errorf("help exit-codes:\n%s", out)
	}
	if out := h.ok("tenants", "--help"); !strings.Contains(out, "hookwire help exit-codes") {
		t.Errorf("tenants --help does not point at the exit codes:\n%s", out)
	}
	if out := h.ok("help", "environment"); !strings.Contains(out, "HOOKWIRE_CONFIG") {
		t.Errorf("help environment:\n%s", out)
	}

	// Nothing listening: Unavailable, with the address and where it came from.
	r = h.with("HOOKWIRE_ADDR=127.0.0.1:1").fail(exitUnavailable, "cannot connect to 127.0.0.1:1", "tenants", "list")
	if !strings.Contains(r.stderr, "hint: is the control plane running at 127.0.0.1:1 (from HOOKWIRE_ADDR)") {
		t.Errorf("Unavailable hint:\n%s", r.stderr)
	}
	// A peer that accepts but never answers: the request timeout.
	lis := listenSilently(t)
	r = h.fail(exitUnavailable, "deadline exceeded", "tenants", "list", "--addr", lis, "--request-timeout", "300ms")
	if !strings.Contains(r.stderr, "within --request-timeout 300ms") {
		t.Errorf("DeadlineExceeded hint:\n%s", r.stderr)
	}

	// Shell completion: cobra's scripts, and values for enum flags.
	if out := h.ok("completion", "bash"); !strings.Contains(out, "hookwire") {
		t.Errorf("completion bash: %.200s", out)
	}
	if out := h.ok("__complete", "deliveries", "list", "--status", ""); !strings.Contains(out, "pending\nsucceeded\ndead\ncancelled\n") {
		t.Errorf("--status completion:\n%s", out)
	}
	if out := h.ok("__complete", "tenants", "list", "-o", ""); !strings.Contains(out, "table\njson\nyaml\n") {
		t.Errorf("-o completion:\n%s", out)
	}
}

// listenSilently accepts connections on 127.0.0.1 and never answers.
func listenSilently(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return lis.Addr().String()
}

// tenantStub answers ListTenants and records the authorization header. The
// control plane has no TLS listener yet, so TLS is tested against it.
type tenantStub struct {
	hookwirev1.UnimplementedTenantServiceServer
	mu   sync.Mutex
	auth []string
}

func (s *tenantStub) ListTenants(ctx context.Context, _ *hookwirev1.ListTenantsRequest) (*hookwirev1.ListTenantsResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.auth = append(s.auth, md.Get("authorization")...)
	s.mu.Unlock()
	return &hookwirev1.ListTenantsResponse{Tenants: []*hookwirev1.Tenant{{Id: "over-tls"}}}, nil
}

// startTLSStub serves the stub with a fresh self-signed certificate for
// 127.0.0.1 and returns its address and the certificate's PEM file.
func startTLSStub(t *testing.T, stub *tenantStub) (addr, caFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hookwire test"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})))
	hookwirev1.RegisterTenantServiceServer(srv, stub)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), caFile
}

func TestCLITLS(t *testing.T) {
	stub := &tenantStub{}
	addr, caFile := startTLSStub(t, stub)
	h := newHW(t, "").with("HOOKWIRE_ADDR="+addr, "HOOKWIRE_API_KEY=tls-key-0123456789abcdef")

	var list obj
	h.json(&list, "tenants", "list", "--ca-file", caFile)
	if got := ids(listOf(t, list, "tenants")); !reflect.DeepEqual(got, []string{"over-tls"}) {
		t.Errorf("tenants over TLS = %v", list)
	}
	stub.mu.Lock()
	auth := append([]string(nil), stub.auth...)
	stub.mu.Unlock()
	if !reflect.DeepEqual(auth, []string{"Bearer tls-key-0123456789abcdef"}) {
		t.Errorf("authorization sent = %q", auth)
	}

	r := h.fail(exitUnavailable, "certificate", "tenants", "list", "--tls")
	if !strings.Contains(r.stderr, "TLS handshake") {
		t.Errorf("untrusted certificate hint:\n%s", r.stderr)
	}
	r = h.fail(exitUnavailable, "cannot connect", "tenants", "list")
	if !strings.Contains(r.stderr, "pass --tls") {
		t.Errorf("plaintext to a TLS server hint:\n%s", r.stderr)
	}
	h.fail(exitUsage, "no PEM certificate", "tenants", "list", "--ca-file", os.Args[0])

	// A context keeps TLS settings; the CA path is stored absolute.
	c := newHW(t, "")
	c.ok("context", "set", "secure", "--addr", addr, "--api-key", "ctx-key-0123456789abcdef", "--ca-file", caFile)
	c.json(&list, "tenants", "list")
	if got := ids(listOf(t, list, "tenants")); !reflect.DeepEqual(got, []string{"over-tls"}) {
		t.Errorf("tenants over TLS from a context = %v", list)
	}
	c.fail(exitUnavailable, "cannot connect", "tenants", "list", "--ca-file", "", "--tls=false")
	// The context's TLS settings do not follow an address from elsewhere.
	srv := startServer(t, t.TempDir())
	c.with("HOOKWIRE_ADDR="+srv.grpcAddr, "HOOKWIRE_API_KEY="+e2eAdminKey).ok("tenants", "list")
}

// --header sets target headers, whose values the server never shows again;
// an update of another target field keeps them, --remove-header drops one.
func TestCLISubscriptionHeaders(t *testing.T) {
	srv := startServer(t, t.TempDir())
	h := newHW(t, srv.grpcAddr)
	h.ok("tenants", "create", "acme")
	var sub obj
	h.json(&sub, "subscriptions", "create", "--tenant", "acme", "--event-type", "order.*", "--url", "http://127.0.0.1:9/orders",
		"--header", "Authorization=Bearer s3cr3t-token", "--header", "x-team=billing")
	headers := func(s obj) any { return s["target"].(obj)["headers"] }
	want := obj{"Authorization": "<redacted>", "x-team": "<redacted>"}
	if !reflect.DeepEqual(headers(sub), want) {
		t.Fatalf("created headers = %#v, want %#v", headers(sub), want)
	}
	id := sub["id"].(string)

	// Changing the timeout sends the target back: the headers stay.
	var got obj
	h.json(&got, "subscriptions", "update", "--tenant", "acme", id, "--timeout", "5s")
	if !reflect.DeepEqual(headers(got), want) {
		t.Fatalf("headers after --timeout = %#v, want %#v", headers(got), want)
	}
	// Replace one (case-insensitively), remove the other.
	h.json(&got, "subscriptions", "update", "--tenant", "acme", id, "--header", "authorization=Bearer new", "--remove-header", "X-Team")
	if want := (obj{"authorization": "<redacted>"}); !reflect.DeepEqual(headers(got), want) {
		t.Fatalf("headers after update = %#v, want %#v", headers(got), want)
	}
	if out := h.ok("subscriptions", "get", "--tenant", "acme", id); strings.Contains(out, "s3cr3t") || !strings.Contains(out, "authorization=<redacted>") {
		t.Fatalf("get shows:\n%s", out)
	}
	h.fail(exitUsage, `--remove-header "x-nope": the subscription has no such header`, "subscriptions", "update", "--tenant", "acme", id, "--remove-header", "x-nope")
	h.fail(exitUsage, `--header "bad": expected key=value`, "subscriptions", "update", "--tenant", "acme", id, "--header", "bad")
}
