package webui_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookwire/hookwire/agent"
	"github.com/hookwire/hookwire/controlplane"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	httptransport "github.com/hookwire/hookwire/plugins/http"
	"github.com/hookwire/hookwire/plugins/sdk/sdktest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

const adminKey = "console-test-admin-key-0123456789"

// testMasterKey is 32 bytes, base64.
const testMasterKey = "dGVzdC1tYXN0ZXIta2V5LTAxMjM0NTY3ODlhYmNkZWY="

// env is a control plane with a real agent (the http transport over
// go-plugin's gRPC machinery) and a receiver, as `hookwire dev` runs them.
type env struct {
	t    testing.TB
	srv  *controlplane.Server
	conn *grpc.ClientConn
	recv *receiver
	base string // http://127.0.0.1:port
}

// receiver is a webhook target; it answers fail (e.g. 500) until ok is set.
type receiver struct {
	*httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	hits   int
	body   string // answer body
	header string // answer header X-Echo value
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits
}

func startEnv(t testing.TB, withAgent bool) *env {
	t.Helper()
	mk, err := controlplane.ParseMasterKey(testMasterKey)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := controlplane.Start(context.Background(), controlplane.Config{
		DataDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", AdminKey: adminKey, MasterKey: mk,
	})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	rc := &receiver{}
	rc.status.Store(200)
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rc.mu.Lock()
		rc.hits++
		body, hdr := rc.body, rc.header
		rc.mu.Unlock()
		if hdr != "" {
			w.Header().Set("X-Echo", hdr)
		}
		w.WriteHeader(int(rc.status.Load()))
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(rc.Close)
	e := &env{t: t, srv: srv, conn: conn, recv: rc, base: "http://" + srv.HTTPAddr()}
	if withAgent {
		e.startAgent("agent-1")
	}
	return e
}

// startAgent runs a real agent in this process; its http transport is
// served over go-plugin's gRPC, as with the plugin process.
func (e *env) startAgent(id string) {
	t := e.t
	impl := httptransport.New(httptransport.WithPolicy(httptransport.DevPolicy()))
	t.Cleanup(impl.CloseIdleConnections)
	tt, ok := t.(*testing.T)
	if !ok {
		t.Fatal("startAgent needs a *testing.T")
	}
	src, err := agent.StaticTransports(context.Background(), sdktest.Connect(tt, impl))
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{ServerAddr: e.srv.GRPCAddr(), APIKey: adminKey, AgentID: id, Labels: map[string]string{"region": "test"}, Transports: src})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("agent: %v", err)
		}
	})
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+adminKey), 30*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *env) tenant(id string) {
	e.t.Helper()
	if _, err := hookwirev1.NewTenantServiceClient(e.conn).CreateTenant(e.ctx(), &hookwirev1.CreateTenantRequest{Id: id, DisplayName: "Acme Inc."}); err != nil {
		e.t.Fatal(err)
	}
}

// apiKey creates a tenant key of scope and returns its value.
func (e *env) apiKey(tenant string, scope hookwirev1.ApiKeyScope) string {
	e.t.Helper()
	k, err := hookwirev1.NewApiKeyServiceClient(e.conn).CreateApiKey(e.ctx(), &hookwirev1.CreateApiKeyRequest{Tenant: tenant, Name: "console test", Scope: scope})
	if err != nil {
		e.t.Fatal(err)
	}
	return k.GetKey()
}

// rest sends a REST request with extra headers and returns status and body.
func (e *env) rest(method, path, body string, hdr map[string]string) (int, string, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// publish publishes an event as the admin over REST and returns its id.
func (e *env) publish(tenant, typ, payload string) string {
	e.t.Helper()
	code, body, _ := e.rest("POST", "/v1/tenants/"+tenant+"/events", `{"type":"`+typ+`","payload":`+payload+`}`, map[string]string{"Authorization": "Bearer " + adminKey})
	if code != 200 {
		e.t.Fatalf("publish: %d %s", code, body)
	}
	var out struct{ ID string }
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		e.t.Fatal(err)
	}
	return out.ID
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
