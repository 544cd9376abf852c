package main

// Tests of the agent's plugin and egress flags: the policy flags reach the
// http plugin process as arguments, --plugin-dir adds discovered plugins to
// the built-ins, pins are enforced, and mistakes fail fast with a message
// that says what to fix.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hookwire/hookwire/agent/pluginhost"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/builtin"
	httptransport "github.com/hookwire/hookwire/plugins/http"
	"github.com/hookwire/hookwire/plugins/sdk"
)

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestEgressPolicyFromFlags(t *testing.T) {
	p, err := (&agentFlags{allowCIDRs: []string{"10.20.0.0/16", "fd00::/8"}}).egressPolicy()
	if err != nil {
		t.Fatal(err)
	}
	if p.AllowInsecureHTTP || len(p.AllowCIDRs) != 2 || p.AllowCIDRs[0].String() != "10.20.0.0/16" {
		t.Errorf("policy = %+v, want https only with the two networks", p)
	}

	p, err = (&agentFlags{allowInsecureHTTP: true}).egressPolicy()
	if err != nil || !p.AllowInsecureHTTP || len(p.AllowCIDRs) != 0 {
		t.Errorf("--allow-insecure-http alone = %+v, %v", p, err)
	}

	// `hookwire dev`: loopback over plain http, on top of the flags.
	p, err = (&agentFlags{dev: true, allowCIDRs: []string{"192.168.5.0/24"}}).egressPolicy()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"192.168.5.0/24", "127.0.0.0/8", "::1/128"}
	var got []string
	for _, c := range p.AllowCIDRs {
		got = append(got, c.String())
	}
	if !p.AllowInsecureHTTP || !slices.Equal(got, want) {
		t.Errorf("dev policy = insecure %v, %v; want insecure and %v", p.AllowInsecureHTTP, got, want)
	}

	if _, err := (&agentFlags{allowCIDRs: []string{"10.1.2.3/8"}}).egressPolicy(); err == nil || !strings.Contains(err.Error(), "--allow-cidr") || !strings.Contains(err.Error(), "10.0.0.0/8") {
		t.Errorf("bad --allow-cidr = %v, want an error naming the flag and the likely fix", err)
	}
}

func TestBuiltinSpecsPassPolicyToEveryBuiltin(t *testing.T) {
	specs, err := builtinSpecs(httptransport.Policy{
		AllowInsecureHTTP: true,
		AllowCIDRs:        []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		want := []string{"plugin", s.Name, "--allow-cidr=10.0.0.0/8", "--allow-cidr=::1/128"}
		if s.Name == httptransport.Name {
			want = append(want, "--allow-insecure-http")
		}
		if !slices.Equal(s.Command[1:], want) {
			t.Errorf("%s command = %q, want the binary then %q", s.Name, s.Command, want)
		}
		if env := []string{sdk.EgressEnv + "=10.0.0.0/8,::1/128"}; !slices.Equal(s.Env, env) {
			t.Errorf("%s env = %q, want %q", s.Name, s.Env, env)
		}
	}
	specs, _ = builtinSpecs(httptransport.Policy{})
	for _, s := range specs {
		if len(s.Command) != 3 || !slices.Equal(s.Env, []string{sdk.EgressEnv + "="}) {
			t.Errorf("%s with the default policy: command %q, env %q; want no policy arguments and %s set empty", s.Name, s.Command, s.Env, sdk.EgressEnv)
		}
	}
}

// executable writes a small executable file.
func executable(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestPluginSpecs(t *testing.T) {
	dir := t.TempDir()
	executable(t, filepath.Join(dir, "hookwire-transport-file"))
	executable(t, filepath.Join(dir, "hookwire-transport-sms"))
	data, _ := os.ReadFile(filepath.Join(dir, "hookwire-transport-file"))
	sum := sha256.Sum256(data)
	pin := hex.EncodeToString(sum[:])

	egress := httptransport.Policy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	specs, err := pluginSpecs(discardLog(), agentFlags{pluginDir: dir, pluginPins: []string{"file=" + pin}}, egress)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
		if env := []string{sdk.EgressEnv + "=10.0.0.0/8"}; !slices.Equal(s.Env, env) {
			t.Errorf("%s env = %q, want the agent's egress policy %q", s.Name, s.Env, env)
		}
		if s.Name == "file" && (s.SHA256 != pin || s.Command[0] != filepath.Join(dir, "hookwire-transport-file")) {
			t.Errorf("file spec = %+v, want the pinned binary from the plugin dir", s)
		}
	}
	if want := append(builtin.Names(), "file", "sms"); !slices.Equal(names, want) {
		t.Errorf("specs = %v, want the built-ins then the discovered plugins %v", names, want)
	}

	if specs, err := pluginSpecs(discardLog(), agentFlags{}, httptransport.Policy{}); err != nil || len(specs) != len(builtin.Names()) {
		t.Errorf("without --plugin-dir = %d specs, %v; want the built-ins", len(specs), err)
	}

	shadow := t.TempDir()
	executable(t, filepath.Join(shadow, "hookwire-transport-http"))
	tests := []struct {
		name string
		f    agentFlags
		want []string
	}{
		{"shadows a built-in", agentFlags{pluginDir: shadow}, []string{"hookwire-transport-http", `would replace the built-in "http" transport`, "remove or rename"}},
		{"pin without dir", agentFlags{pluginPins: []string{"file=" + pin}}, []string{"--plugin-sha256", "no --plugin-dir"}},
		{"pin of a built-in", agentFlags{pluginDir: dir, pluginPins: []string{"http=" + pin}}, []string{`"http" is built into hookwire`}},
		{"malformed pin", agentFlags{pluginDir: dir, pluginPins: []string{"file"}}, []string{`--plugin-sha256 "file": expected name=HEX`}},
		{"pinned twice", agentFlags{pluginDir: dir, pluginPins: []string{"file=" + pin, "file=" + pin}}, []string{"pinned twice"}},
		{"pin of a missing plugin", agentFlags{pluginDir: dir, pluginPins: []string{"fax=" + pin}}, []string{`"fax" is pinned but will not run`}},
		{"missing dir", agentFlags{pluginDir: filepath.Join(dir, "nope")}, []string{"--plugin-dir", "nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pluginSpecs(discardLog(), tt.f, httptransport.Policy{})
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("pluginSpecs = %v, want an error containing %q", err, w)
				}
			}
		})
	}
}

// TestHTTPPluginEnforcesPolicyArgs runs the real `hookwire plugin http`
// process under the plugin host with the arguments builtinSpecs builds, and
// delivers to a loopback server: the policy must reach the process.
func TestHTTPPluginEnforcesPolicyArgs(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(srv.Close)
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := []struct {
		name    string
		policy  httptransport.Policy
		outcome transportv1.Outcome
		mention string
	}{
		{"default", httptransport.Policy{}, transportv1.Outcome_OUTCOME_REJECTED, "--allow-insecure-http"},
		{"plain http only", httptransport.Policy{AllowInsecureHTTP: true}, transportv1.Outcome_OUTCOME_REJECTED, "--allow-cidr 127.0.0.0/8"},
		{"loopback only", httptransport.Policy{AllowCIDRs: loopback}, transportv1.Outcome_OUTCOME_REJECTED, "plain http"},
		{"both", httptransport.Policy{AllowInsecureHTTP: true, AllowCIDRs: loopback}, transportv1.Outcome_OUTCOME_SUCCESS, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := builtinSpecs(tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(specs, func(s pluginhost.Spec) bool { return s.Name == httptransport.Name })
			spec := specs[i]
			spec.Command[0] = hookwireBin // the test binary is not hookwire
			h := pluginhost.New(discardLog())
			t.Cleanup(h.Close)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := h.Start(ctx, []pluginhost.Spec{spec}); err != nil {
				t.Fatalf("start %q: %v", spec.Command, err)
			}
			tr, _ := h.Transport(httptransport.Name)
			cfg, _ := structpb.NewStruct(map[string]any{"url": srv.URL + "/hook"})
			res := tr.Deliver(ctx, &transportv1.DeliveryRequest{Config: cfg, Body: []byte("{}"), DeliveryId: "dlv_1", Timeout: durationpb.New(10 * time.Second)})
			if res.GetOutcome() != tt.outcome || !strings.Contains(res.GetError(), tt.mention) {
				t.Errorf("delivery to %s = %v %q, want %v mentioning %q", srv.URL, res.GetOutcome(), res.GetError(), tt.outcome, tt.mention)
			}
		})
	}
}

// runHookwire runs the hookwire binary to completion.
func runHookwire(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hookwireBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &out
	err := cmd.Run()
	return out.String(), err
}

func TestPluginCommandRefusesBadPolicyArgs(t *testing.T) {
	out, err := runHookwire(t, nil, "plugin", "http", "--allow-cidr", "intranet")
	if err == nil || !strings.Contains(out, "--allow-cidr") || !strings.Contains(out, `"intranet"`) {
		t.Errorf("plugin http --allow-cidr intranet = %v: %s", err, out)
	}
	for _, name := range builtin.Names() {
		out, err := runHookwire(t, nil, "plugin", name, "--allow-cidr", "10.1.2.3/8")
		if err == nil || !strings.Contains(out, "--allow-cidr") || !strings.Contains(out, "10.0.0.0/8") {
			t.Errorf("plugin %s --allow-cidr 10.1.2.3/8 = %v: %s", name, err, out)
		}
		out, err = runHookwire(t, []string{sdk.EgressEnv + "=intranet"}, "plugin", name)
		if err == nil || !strings.Contains(out, sdk.EgressEnv) || !strings.Contains(out, `"intranet"`) {
			t.Errorf("plugin %s with %s=intranet = %v: %s", name, sdk.EgressEnv, err, out)
		}
		if name == httptransport.Name {
			continue
		}
		out, err = runHookwire(t, nil, "plugin", name, "--allow-insecure-http")
		if err == nil || !strings.Contains(out, "applies only to the http transport") {
			t.Errorf("plugin %s --allow-insecure-http = %v: %s", name, err, out)
		}
	}
}

// TestAgentRefusesBadPluginSetup: mistakes in the plugin flags stop the
// agent at once, before it connects anywhere, saying what to fix.
func TestAgentRefusesBadPluginSetup(t *testing.T) {
	shadow := t.TempDir()
	executable(t, filepath.Join(shadow, "hookwire-transport-http"))
	pinned := t.TempDir()
	executable(t, filepath.Join(pinned, "hookwire-transport-file"))
	key := []string{"HOOKWIRE_API_KEY=" + e2eAdminKey}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"shadowing", []string{"--plugin-dir", shadow}, `would replace the built-in "http" transport`},
		{"wrong pin", []string{"--plugin-dir", pinned, "--plugin-sha256", "file=" + strings.Repeat("0", 64)}, "does not match the pinned sha256"},
		{"bad cidr", []string{"--allow-cidr", "10.0.0.0/33"}, "--allow-cidr"},
		{"pprof without listener", []string{"--pprof"}, "--pprof serves the profiles on --metrics-addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runHookwire(t, key, append([]string{"agent", "--server", "127.0.0.1:1"}, tt.args...)...)
			if err == nil || !strings.Contains(out, tt.want) {
				t.Errorf("hookwire agent %q = %v, want an error containing %q; stderr:\n%s", tt.args, err, tt.want, out)
			}
		})
	}
}

// TestAgentPluginDirAndEgressFlags runs `hookwire agent` with a plugin
// directory holding the example file transport, pinned, and the egress
// flags that let the http transport reach a loopback sink: one event fans
// out to both, through a real server.
func TestAgentPluginDirAndEgressFlags(t *testing.T) {
	pluginDir, outDir := t.TempDir(), t.TempDir()
	bin := filepath.Join(pluginDir, "hookwire-transport-file")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/transport-file").CombinedOutput(); err != nil {
		t.Fatalf("build the example file transport: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)

	sk := newSink(t)
	srv := startServer(t, t.TempDir())
	p, out := startProc(t, []string{"HOOKWIRE_API_KEY=" + e2eAdminKey, "HOOKWIRE_FILE_TRANSPORT_DIR=" + outDir},
		"agent", "--server", srv.grpcAddr, "--id", "flags-agent",
		"--allow-cidr", "127.0.0.0/8", "--allow-insecure-http",
		"--plugin-dir", pluginDir, "--plugin-sha256", "file="+hex.EncodeToString(sum[:]))
	go func() {
		for out.Scan() {
		}
	}()

	createSubscription(t, srv.httpAddr, "acme", sk.url)
	fileSub := `{"event_types":["order.*"],"target":{"transport":"file","config":{"file":"orders.jsonl"}}}`
	if code := restCall(t, srv.httpAddr, "POST", "/v1/tenants/acme/subscriptions", fileSub, nil); code != 200 {
		t.Fatalf("create file subscription: HTTP %d", code)
	}
	publishREST(t, srv.httpAddr, "acme", `{"type":"order.created","payload":{"n":1}}`)
	sk.await(1, 30*time.Second)

	// The file delivery is recorded by the server once the agent reports it.
	var list struct {
		Deliveries []struct{} `json:"deliveries"`
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		restCall(t, srv.httpAddr, "GET", "/v1/tenants/acme/deliveries?status=DELIVERY_STATUS_SUCCEEDED", "", &list)
		if len(list.Deliveries) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 2 deliveries succeeded within 30s; agent stderr:\n%s", len(list.Deliveries), p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond) // polling the API for a result recorded by other processes
	}
	written, err := os.ReadFile(filepath.Join(outDir, "orders.jsonl"))
	if err != nil || !bytes.Contains(written, []byte(`"body":"{\"n\":1}"`)) {
		t.Errorf("file transport wrote %q, %v", written, err)
	}
	if log := p.stderr.String(); !strings.Contains(log, "transport plugin discovered") || !strings.Contains(log, "pinned=true") {
		t.Errorf("agent log does not report the pinned discovered plugin:\n%s", log)
	}
}
