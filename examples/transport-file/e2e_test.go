package main

// End to end: this example is built as its own binary into a plugin
// directory, a real agent discovers it there (pinned by checksum) and
// delivers a published event through it, from a real control plane.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/hookwire/hookwire/agent"
	"github.com/hookwire/hookwire/agent/pluginhost"
	"github.com/hookwire/hookwire/controlplane"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/hookwire/hookwire/plugins/sdk"
)

const e2eAdminKey = "file-transport-e2e-admin-key-0123456789"

// buildPlugin builds this package into dir under the plugin naming
// convention and returns the binary's path and SHA-256.
func buildPlugin(t *testing.T, dir string) (string, string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to build the plugin: %v", err)
	}
	bin := filepath.Join(dir, pluginhost.PluginPrefix+name)
	build := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -o %s .: %v\n%s", bin, err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return bin, hex.EncodeToString(sum[:])
}

// observed hands the agent the plugin host's transports unchanged, and
// reports each result the plugin returns, so the test knows when the
// delivery has happened without polling.
type observed struct {
	agent.TransportSource
	results chan *transportv1.DeliveryResult
}

func (o *observed) Transport(name string) (sdk.Transport, bool) {
	t, ok := o.TransportSource.Transport(name)
	if !ok {
		return nil, false
	}
	return reporting{Transport: t, results: o.results}, true
}

type reporting struct {
	sdk.Transport
	results chan<- *transportv1.DeliveryResult
}

func (r reporting) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	res := r.Transport.Deliver(ctx, req)
	r.results <- res
	return res
}

func TestAgentDeliversThroughBuiltPlugin(t *testing.T) {
	pluginDir, outDir := t.TempDir(), t.TempDir()
	_, sum := buildPlugin(t, pluginDir)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}

	// The control plane, and a tenant with a subscription to the file
	// transport, which only the agent knows.
	srv, err := controlplane.Start(context.Background(), controlplane.Config{
		DataDir:  t.TempDir(),
		GRPCAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0",
		AdminKey: e2eAdminKey,
		Logger:   logger,
		MasterKey: func() *controlplane.MasterKey {
			k, err := controlplane.ParseMasterKey("ZmlsZS10cmFuc3BvcnQtZTJlLW1hc3Rlci1rZXktMDE=")
			if err != nil {
				t.Fatal(err)
			}
			return k
		}(),
	})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close control plane: %v", err)
		}
	})
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+e2eAdminKey), 60*time.Second)
	defer cancel()
	if _, err := hookwirev1.NewTenantServiceClient(conn).CreateTenant(ctx, &hookwirev1.CreateTenantRequest{Id: "acme"}); err != nil {
		t.Fatalf("create tenant: %v", err)
	}
	sub, err := hookwirev1.NewSubscriptionServiceClient(conn).CreateSubscription(ctx, &hookwirev1.CreateSubscriptionRequest{
		Tenant: "acme",
		Subscription: &hookwirev1.Subscription{
			EventTypes: []string{"order.*"},
			Target:     &hookwirev1.Target{Transport: name, Config: cfg(t, map[string]any{"file": "acme/orders.jsonl"})},
		},
	})
	if err != nil {
		t.Fatalf("create subscription: %v", err)
	}

	// The agent's plugin host runs what it discovers in the plugin
	// directory, pinned to the binary just built.
	specs, err := pluginhost.Discover(pluginDir, map[string]string{name: sum})
	if err != nil || len(specs) != 1 || specs[0].SHA256 != sum {
		t.Fatalf("discover %s = %+v, %v, want the pinned file plugin", pluginDir, specs, err)
	}
	specs[0].Env = []string{envDir + "=" + outDir}
	host := pluginhost.New(logger)
	t.Cleanup(host.Close)
	if err := host.Start(ctx, specs); err != nil {
		t.Fatalf("start discovered plugin: %v", err)
	}
	if infos := host.Infos(); len(infos) != 1 || infos[0].Name != name || infos[0].Version != version {
		t.Fatalf("host runs %+v, want the file plugin %s", infos, version)
	}

	source := &observed{TransportSource: host, results: make(chan *transportv1.DeliveryResult, 16)}
	a, err := agent.New(agent.Config{
		ServerAddr: srv.GRPCAddr(),
		APIKey:     e2eAdminKey,
		AgentID:    "file-e2e-agent",
		Transports: source,
		Logger:     logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopAgent := context.WithCancel(context.Background())
	defer stopAgent()
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(runCtx) }()

	payload := []byte(`{"order": 42,  "note": "h\u00e9llo wörld", "total": 12.50}`)
	pub, err := hookwirev1.NewEventServiceClient(conn).PublishEvent(ctx, &hookwirev1.PublishEventRequest{
		Tenant: "acme",
		Event:  &hookwirev1.Event{Type: "order.created", Payload: payload, ContentType: "application/json"},
	})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if pub.GetDeliveryCount() != 1 {
		t.Fatalf("publish fanned out to %d deliveries, want 1", pub.GetDeliveryCount())
	}

	select {
	case res := <-source.results:
		if res.GetOutcome() != transportv1.Outcome_OUTCOME_SUCCESS {
			t.Fatalf("delivery through the plugin = %v %q, want SUCCESS", res.GetOutcome(), res.GetError())
		}
	case err := <-runErr:
		t.Fatalf("agent stopped before delivering: %v", err)
	case <-ctx.Done():
		t.Fatal("no delivery through the plugin within 60s")
	}
	// Stopping drains the agent: it returns once the control plane has
	// acknowledged the result, so the delivery's state is final.
	stopAgent()
	if err := <-runErr; err != nil {
		t.Fatalf("agent run: %v", err)
	}
	if s := a.Stats(); s.Acked != 1 {
		t.Errorf("agent stats after drain = %+v, want one acknowledged result", s)
	}

	lines := readLines(t, filepath.Join(outDir, "acme", "orders.jsonl"))
	if len(lines) != 1 {
		t.Fatalf("the file has %d lines, want 1: %+v", len(lines), lines)
	}
	got := lines[0]
	if string(got.body()) != string(payload) {
		t.Errorf("body written = %q, want byte-for-byte %q", got.body(), payload)
	}
	if got.ContentType != "application/json" || got.EventType != "order.created" {
		t.Errorf("content type %q, event type %q", got.ContentType, got.EventType)
	}
	id, ts := got.Headers["webhook-id"], got.Headers["webhook-timestamp"]
	if !strings.HasPrefix(id, "dlv_") || id != got.DeliveryID || ts == "" {
		t.Errorf("headers %v, delivery id %q: want webhook-id = the delivery id and a timestamp", got.Headers, got.DeliveryID)
	}
	verifySignature(t, sub.GetSigningSecret(), id, ts, got.body(), got.Headers["webhook-signature"])

	list, err := hookwirev1.NewDeliveryServiceClient(conn).ListDeliveries(ctx, &hookwirev1.ListDeliveriesRequest{Tenant: "acme", EventId: pub.GetId()})
	if err != nil {
		t.Fatalf("list deliveries: %v", err)
	}
	if d := list.GetDeliveries(); len(d) != 1 || d[0].GetId() != id || d[0].GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED || d[0].GetAttemptCount() != 1 {
		t.Errorf("deliveries = %v, want %s SUCCEEDED after one attempt", d, id)
	}
}

// verifySignature checks a Standard Webhooks v1 signature on its own,
// without Hookwire's signing package.
func verifySignature(t *testing.T, secret, id, ts string, body []byte, header string) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("signing secret %q: %v", secret, err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.", id, ts)
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(header) {
		if sig == want {
			return
		}
	}
	t.Errorf("webhook-signature %q does not contain %q", header, want)
}
