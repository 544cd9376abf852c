package controlplane_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	"github.com/hookwire/hookwire/controlplane/signing"
	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// A raft future queued when its node shut down never resolves; the
// goroutine waiting for it is the one leak cluster.(*Node).wait accepts.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/hookwire/hookwire/controlplane/internal/cluster.(*Node).wait.func1"))
}

const adminKey = "test-admin-key-0123456789"

// testMasterKey is the master key start uses unless the test sets one.
const testMasterKey = "dGVzdC1tYXN0ZXIta2V5LTAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes

func mustMasterKey(t *testing.T, text string) *controlplane.MasterKey {
	t.Helper()
	k, err := controlplane.ParseMasterKey(text)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type harness struct {
	t    *testing.T
	srv  *controlplane.Server
	conn *grpc.ClientConn
	dir  string
}

func start(t *testing.T, dir string, cfg controlplane.Config) *harness {
	t.Helper()
	cfg.DataDir = dir
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.AdminKey = adminKey
	if os.Getenv("HOOKWIRE_TEST_LOG") != "" && cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.MasterKey == nil {
		cfg.MasterKey = mustMasterKey(t, testMasterKey)
	}
	srv, err := controlplane.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, srv: srv, conn: conn, dir: dir}
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.conn != nil {
		h.conn.Close()
		h.conn = nil
	}
	if err := h.srv.Close(); err != nil {
		h.t.Errorf("close: %v", err)
	}
}

func authed(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(authed(context.Background(), adminKey), 10*time.Second)
	h.t.Cleanup(cancel)
	return ctx
}

// restFull sends an admin REST request and returns the body, status and
// response headers.
func (h *harness) restFull(method, path, body string) ([]byte, int, http.Header) {
	h.t.Helper()
	req, err := http.NewRequest(method, "http://"+h.srv.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return data, resp.StatusCode, resp.Header
}

func authedCtx(t *testing.T, key string) context.Context {
	ctx, cancel := context.WithTimeout(authed(context.Background(), key), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// restRaw sends an admin REST request with extra headers.
func (h *harness) restRaw(method, path, body string, headers map[string]string) ([]byte, int) {
	h.t.Helper()
	req, err := http.NewRequest(method, "http://"+h.srv.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return data, resp.StatusCode
}

// rest sends a REST request and decodes the JSON answer into out.
func (h *harness) rest(method, path, key, contentType string, body []byte, out any) int {
	h.t.Helper()
	req, err := http.NewRequest(method, "http://"+h.srv.HTTPAddr()+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

func (h *harness) setup(tenant string) *hookwirev1.Subscription {
	h.t.Helper()
	ctx := h.ctx()
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(ctx, &hookwirev1.CreateTenantRequest{Id: tenant}); err != nil {
		h.t.Fatal(err)
	}
	cfg, _ := structpb.NewStruct(map[string]any{"url": "http://127.0.0.1:1/hook"})
	sub, err := hookwirev1.NewSubscriptionServiceClient(h.conn).CreateSubscription(ctx, &hookwirev1.CreateSubscriptionRequest{
		Tenant: tenant,
		Subscription: &hookwirev1.Subscription{
			EventTypes: []string{"order.*"},
			Target:     &hookwirev1.Target{Transport: "http", Config: cfg},
		},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return sub
}

// fakeAgent speaks the agent protocol by hand.
type fakeAgent struct {
	stream hookwirev1.AgentService_ConnectClient
	cancel context.CancelFunc
	// pending holds assignments that arrived while waiting for acks.
	pending []*hookwirev1.Assignment
}

func (h *harness) connectAgent(id string, credit uint32, held ...string) (*fakeAgent, *hookwirev1.Welcome) {
	h.t.Helper()
	return h.connectAgentFor(id, credit, []string{"http"}, held...)
}

// connectAgentFor is connectAgent for an agent that runs the given
// transports.
func (h *harness) connectAgentFor(id string, credit uint32, transports []string, held ...string) (*fakeAgent, *hookwirev1.Welcome) {
	h.t.Helper()
	infos := make([]*hookwirev1.TransportInfo, len(transports))
	for i, name := range transports {
		infos[i] = &hookwirev1.TransportInfo{Name: name, ApiVersions: []uint32{1}}
	}
	ctx, cancel := context.WithCancel(authed(context.Background(), adminKey))
	stream, err := hookwirev1.NewAgentServiceClient(h.conn).Connect(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := stream.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Hello{Hello: &hookwirev1.Hello{
		AgentId: id, MaxInFlight: credit, HeldLeaseIds: held, Transports: infos,
	}}}); err != nil {
		h.t.Fatal(err)
	}
	m, err := stream.Recv()
	if err != nil || m.GetWelcome() == nil {
		h.t.Fatalf("want Welcome, got %v, %v", m, err)
	}
	a := &fakeAgent{stream: stream, cancel: cancel}
	h.t.Cleanup(cancel)
	return a, m.GetWelcome()
}

func (a *fakeAgent) assignments(t *testing.T, n int) []*hookwirev1.Assignment {
	t.Helper()
	out := a.pending
	a.pending = nil
	for len(out) < n {
		m, err := a.stream.Recv()
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		out = append(out, m.GetAssignments().GetItems()...)
	}
	a.pending = out[n:]
	return out[:n]
}

func (a *fakeAgent) report(t *testing.T, results ...*hookwirev1.Result) []*hookwirev1.ResultAck {
	t.Helper()
	if err := a.stream.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Results{Results: &hookwirev1.Results{Items: results}}}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := a.stream.Recv()
		if err != nil {
			t.Fatalf("recv acks: %v", err)
		}
		if acks := m.GetResultAcks(); acks != nil {
			return acks.GetItems()
		}
		a.pending = append(a.pending, m.GetAssignments().GetItems()...)
	}
}

func ok(a *hookwirev1.Assignment) *hookwirev1.Result {
	return &hookwirev1.Result{LeaseId: a.GetLeaseId(), LeaseToken: a.GetLeaseToken(), Result: &transportv1.DeliveryResult{Outcome: transportv1.Outcome_OUTCOME_SUCCESS, StatusCode: 200}}
}

func TestPublishAssignSignAndRecord(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	sub := h.setup("acme")
	if !strings.HasPrefix(sub.GetSigningSecret(), "whsec_") {
		t.Fatalf("signing secret = %q", sub.GetSigningSecret())
	}
	agent, _ := h.connectAgent("agent-1", 10)

	// gRPC publish with raw bytes.
	pub, err := hookwirev1.NewEventServiceClient(h.conn).PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{
		Tenant: "acme", Event: &hookwirev1.Event{Type: "order.created", Payload: []byte(`{"n": 12345678901234567890}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if pub.GetDeliveryCount() != 1 {
		t.Fatalf("delivery_count = %d", pub.GetDeliveryCount())
	}
	a := agent.assignments(t, 1)[0]
	req := a.GetRequest()
	if string(req.GetBody()) != `{"n": 12345678901234567890}` || req.GetContentType() != "application/json" {
		t.Fatalf("body %q content type %q", req.GetBody(), req.GetContentType())
	}
	if a.GetAttempt() != 1 || req.GetHeaders()["webhook-id"] != a.GetDeliveryId() {
		t.Fatalf("assignment %v", a)
	}
	// The signature verifies with the secret returned at creation.
	key, _ := signing.ParseSecret(sub.GetSigningSecret())
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(req.GetHeaders()["webhook-id"] + "." + req.GetHeaders()["webhook-timestamp"] + "."))
	mac.Write(req.GetBody())
	if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); req.GetHeaders()["webhook-signature"] != want {
		t.Fatalf("signature %q, want %q", req.GetHeaders()["webhook-signature"], want)
	}

	// A wrong token is rejected; the right one is recorded.
	bad := ok(a)
	bad.LeaseToken = "forged"
	if acks := agent.report(t, bad); acks[0].GetAccepted() {
		t.Fatal("result with a forged lease token was accepted")
	}
	if acks := agent.report(t, ok(a)); !acks[0].GetAccepted() {
		t.Fatal("result was not accepted")
	}
	if acks := agent.report(t, ok(a)); acks[0].GetAccepted() {
		t.Fatal("second result for the same lease was accepted")
	}
	d, err := hookwirev1.NewDeliveryServiceClient(h.conn).GetDelivery(h.ctx(), &hookwirev1.GetDeliveryRequest{Tenant: "acme", Id: a.GetDeliveryId()})
	if err != nil {
		t.Fatal(err)
	}
	if d.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED || d.GetAttemptCount() != 1 {
		t.Fatalf("delivery %v", d)
	}
	var attempts struct {
		Attempts []struct {
			Number     int    `json:"number"`
			Outcome    string `json:"outcome"`
			StatusCode int    `json:"status_code"`
			AgentID    string `json:"agent_id"`
		} `json:"attempts"`
	}
	if code := h.rest("GET", "/v1/tenants/acme/deliveries/"+a.GetDeliveryId()+"/attempts", adminKey, "", nil, &attempts); code != 200 {
		t.Fatalf("attempts: HTTP %d", code)
	}
	if len(attempts.Attempts) != 1 || attempts.Attempts[0].Outcome != "OUTCOME_SUCCESS" || attempts.Attempts[0].StatusCode != 200 || attempts.Attempts[0].AgentID != "agent-1" {
		t.Fatalf("attempts %+v", attempts)
	}
}

func TestRESTPublishKeepsJSONBytes(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	h.setup("acme")
	agent, _ := h.connectAgent("agent-1", 10)
	var pub struct {
		ID            string `json:"id"`
		DeliveryCount int    `json:"delivery_count"`
	}
	body := `{"type":"order.created","payload":{"z":1,"a":[1.50,2e3],"big":12345678901234567890}}`
	if code := h.rest("POST", "/v1/tenants/acme/events", adminKey, "application/json", []byte(body), &pub); code != 200 {
		t.Fatalf("publish: HTTP %d", code)
	}
	if !strings.HasPrefix(pub.ID, "evt_") || pub.DeliveryCount != 1 {
		t.Fatalf("publish response %+v", pub)
	}
	a := agent.assignments(t, 1)[0]
	if got := string(a.GetRequest().GetBody()); got != `{"z":1,"a":[1.50,2e3],"big":12345678901234567890}` {
		t.Fatalf("delivered body %q", got)
	}
	// Raw bytes with their content type.
	if code := h.rest("POST", "/v1/tenants/acme/events:publishRaw?type=order.pdf", adminKey, "application/pdf", []byte("%PDF-1.7\x00\xff"), &pub); code != 200 {
		t.Fatalf("raw publish: HTTP %d", code)
	}
	a = agent.assignments(t, 1)[0]
	if got := a.GetRequest(); string(got.GetBody()) != "%PDF-1.7\x00\xff" || got.GetContentType() != "application/pdf" {
		t.Fatalf("raw delivery body %q type %q", got.GetBody(), got.GetContentType())
	}
	// Batch publish.
	var batch struct {
		Results []struct {
			ID string `json:"id"`
		} `json:"results"`
	}
	if code := h.rest("POST", "/v1/tenants/acme/events:batchPublish", adminKey, "application/json",
		[]byte(`{"events":[{"type":"order.a","payload":1},{"type":"order.b","payload":"two"}]}`), &batch); code != 200 || len(batch.Results) != 2 {
		t.Fatalf("batch publish: HTTP %d %+v", code, batch)
	}
	bodies := map[string]bool{}
	for _, a := range agent.assignments(t, 2) {
		bodies[string(a.GetRequest().GetBody())] = true
	}
	if !bodies["1"] || !bodies[`"two"`] {
		t.Fatalf("batch bodies %v", bodies)
	}
}

func TestBadInput(t *testing.T) {
	badURL, _ := structpb.NewStruct(map[string]any{"url": "ftp://example.com"})
	// A target validator like the built-in http transport's.
	h := start(t, t.TempDir(), controlplane.Config{MaxPayloadBytes: 1000, ValidateTarget: func(_ context.Context, transport string, cfg *structpb.Struct) ([]string, bool, error) {
		u := cfg.GetFields()["url"].GetStringValue()
		if transport == "http" && !strings.HasPrefix(u, "http") {
			return []string{"url " + u + " must use http or https"}, true, nil
		}
		return nil, transport == "http", nil
	}})
	h.setup("acme")
	events := hookwirev1.NewEventServiceClient(h.conn)
	subs := hookwirev1.NewSubscriptionServiceClient(h.conn)

	cases := []struct {
		name     string
		grpcCall func() error
		method   string
		path     string
		body     string
		code     codes.Code
		http     int
		msg      string
	}{
		{"unknown tenant",
			func() error {
				_, err := events.PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{Tenant: "nope", Event: &hookwirev1.Event{Type: "a.b", Payload: []byte("{}")}})
				return err
			},
			"POST", "/v1/tenants/nope/events", `{"type":"a.b","payload":{}}`, codes.NotFound, 404, `tenant "nope" not found`},
		{"invalid subscription url",
			func() error {
				_, err := subs.CreateSubscription(h.ctx(), &hookwirev1.CreateSubscriptionRequest{Tenant: "acme", Subscription: &hookwirev1.Subscription{EventTypes: []string{"a"}, Target: &hookwirev1.Target{Transport: "http", Config: badURL}}})
				return err
			},
			"POST", "/v1/tenants/acme/subscriptions", `{"event_types":["a"],"target":{"transport":"http","config":{"url":"ftp://example.com"}}}`, codes.InvalidArgument, 400, "must use http or https"},
		{"empty event type",
			func() error {
				_, err := events.PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{Tenant: "acme", Event: &hookwirev1.Event{Payload: []byte("{}")}})
				return err
			},
			"POST", "/v1/tenants/acme/events", `{"type":"","payload":{}}`, codes.InvalidArgument, 400, "event.type"},
		{"payload over the limit",
			func() error {
				_, err := events.PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{Tenant: "acme", Event: &hookwirev1.Event{Type: "a.b", Payload: []byte(`"` + strings.Repeat("x", 2000) + `"`)}})
				return err
			},
			"POST", "/v1/tenants/acme/events", `{"type":"a.b","payload":"` + strings.Repeat("x", 2000) + `"}`, codes.InvalidArgument, 413, "the limit is 1000 bytes"},
		{"payload not JSON",
			func() error {
				_, err := events.PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{Tenant: "acme", Event: &hookwirev1.Event{Type: "a.b", Payload: []byte("not json")}})
				return err
			},
			"", "", "", codes.InvalidArgument, 0, "not valid JSON"},
	}
	for _, tc := range cases {
		err := tc.grpcCall()
		if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
			t.Errorf("%s over gRPC: got %v, want %v containing %q", tc.name, err, tc.code, tc.msg)
		}
		if tc.method == "" {
			continue
		}
		var body struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if code := h.rest(tc.method, tc.path, adminKey, "application/json", []byte(tc.body), &body); code != tc.http || !strings.Contains(body.Message, tc.msg) {
			t.Errorf("%s over REST: HTTP %d %q, want %d containing %q", tc.name, code, body.Message, tc.http, tc.msg)
		}
	}
}

func TestAuthAndIsolation(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	h.setup("acme")
	h.setup("globex")
	keys := hookwirev1.NewApiKeyServiceClient(h.conn)
	k, err := keys.CreateApiKey(h.ctx(), &hookwirev1.CreateApiKeyRequest{Tenant: "acme", Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.GetKey(), "hwk_") || k.GetScope() != hookwirev1.ApiKeyScope_API_KEY_SCOPE_TENANT_ADMIN {
		t.Fatalf("key %v", k)
	}
	var out map[string]any
	if code := h.rest("GET", "/v1/tenants/acme/subscriptions", "", "", nil, &out); code != 401 {
		t.Errorf("no key: HTTP %d, want 401", code)
	}
	if code := h.rest("GET", "/v1/tenants/acme/subscriptions", "hwk_wrong", "", nil, &out); code != 401 {
		t.Errorf("bad key: HTTP %d, want 401", code)
	}
	if code := h.rest("GET", "/v1/tenants/acme/subscriptions", k.GetKey(), "", nil, &out); code != 200 {
		t.Errorf("own tenant: HTTP %d, want 200", code)
	}
	// Another tenant's objects look exactly like missing ones.
	var e1, e2 struct{ Message string }
	c1 := h.rest("GET", "/v1/tenants/globex/subscriptions", k.GetKey(), "", nil, &e1)
	c2 := h.rest("GET", "/v1/tenants/nosuch/subscriptions", k.GetKey(), "", nil, &e2)
	if c1 != 404 || c2 != 404 || strings.ReplaceAll(e1.Message, "globex", "X") != strings.ReplaceAll(e2.Message, "nosuch", "X") {
		t.Errorf("cross tenant: %d %q vs missing: %d %q", c1, e1.Message, c2, e2.Message)
	}
	if code := h.rest("POST", "/v1/tenants", k.GetKey(), "application/json", []byte(`{"id":"x"}`), &out); code != 403 {
		t.Errorf("tenant key creating a tenant: HTTP %d, want 403", code)
	}
	if _, err := keys.RevokeApiKey(h.ctx(), &hookwirev1.RevokeApiKeyRequest{Tenant: "acme", Id: k.GetId()}); err != nil {
		t.Fatal(err)
	}
	if code := h.rest("GET", "/v1/tenants/acme/subscriptions", k.GetKey(), "", nil, &out); code != 401 {
		t.Errorf("revoked key: HTTP %d, want 401", code)
	}
}

func TestRestartKeepsSubscriptionsAndPendingDeliveries(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, controlplane.Config{})
	sub := h.setup("acme")
	var ids []string
	for range 3 {
		pub, err := hookwirev1.NewEventServiceClient(h.conn).PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{Tenant: "acme", Event: &hookwirev1.Event{Type: "order.created", Payload: []byte(`{}`)}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, pub.GetId())
	}
	h.stop()
	h = start(t, dir, controlplane.Config{})
	got, err := hookwirev1.NewSubscriptionServiceClient(h.conn).GetSubscription(h.ctx(), &hookwirev1.GetSubscriptionRequest{Tenant: "acme", Id: sub.GetId()})
	if err != nil || got.GetSigningSecret() != "" {
		t.Fatalf("subscription after restart: %v, %v", got, err)
	}
	agent, _ := h.connectAgent("agent-1", 10)
	as := agent.assignments(t, 3)
	seen := map[string]bool{}
	for _, a := range as {
		seen[a.GetDeliveryId()] = true
	}
	if len(seen) != 3 {
		t.Fatalf("after restart got %d distinct deliveries", len(seen))
	}
}

func TestLeaseExpiryReassignsAndRejectsLateResult(t *testing.T) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	h := start(t, t.TempDir(), controlplane.Config{Now: clock, LeaseGrace: time.Second})
	h.setup("acme")
	first, _ := h.connectAgent("agent-1", 1)
	if _, err := hookwirev1.NewEventServiceClient(h.conn).PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{Tenant: "acme", Event: &hookwirev1.Event{Type: "order.created", Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	a1 := first.assignments(t, 1)[0]
	second, _ := h.connectAgent("agent-2", 1)
	// The lease outlives the attempt timeout (30s default) plus grace.
	offset.Store(int64(time.Minute))
	h.srv.Tick()
	a2 := second.assignments(t, 1)[0]
	if a2.GetDeliveryId() != a1.GetDeliveryId() || a2.GetLeaseId() == a1.GetLeaseId() {
		t.Fatalf("reassignment %v after %v", a2, a1)
	}
	if acks := first.report(t, ok(a1)); acks[0].GetAccepted() {
		t.Fatal("late result on an expired lease was accepted")
	}
	if acks := second.report(t, ok(a2)); !acks[0].GetAccepted() {
		t.Fatal("result on the new lease was rejected")
	}
}

func TestSecondProcessGetsDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	start(t, dir, controlplane.Config{})
	_, err := controlplane.Start(context.Background(), controlplane.Config{DataDir: dir, GRPCAddr: "127.0.0.1:0", HTTPAddr: "off", MasterKey: mustMasterKey(t, testMasterKey)})
	if !errors.Is(err, controlplane.ErrDataDirInUse) || !strings.Contains(err.Error(), filepath.Base(dir)) {
		t.Fatalf("second open: %v", err)
	}
}

// Server-streaming requests pass the same protovalidate rules as unary ones.
func TestBadStreamRequest(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	h.setup("acme")
	deliveries := hookwirev1.NewDeliveryServiceClient(h.conn)
	stream, err := deliveries.WatchOperation(h.ctx(), &hookwirev1.WatchOperationRequest{Tenant: "acme"})
	if err == nil {
		_, err = stream.Recv()
	}
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "id: must be at least 1 characters") {
		t.Fatalf("WatchOperation without id: %v, want InvalidArgument naming id", err)
	}
}
