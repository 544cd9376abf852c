package controlplane_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// dialAgent opens an agent stream with key and hello and waits for
// Welcome; it returns the stream's error instead when it is refused.
func dialAgent(t *testing.T, conn *grpc.ClientConn, key string, hello *hookwirev1.Hello) (*fakeAgent, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(authed(context.Background(), key))
	t.Cleanup(cancel)
	if hello.Transports == nil {
		hello.Transports = []*hookwirev1.TransportInfo{{Name: "http", ApiVersions: []uint32{1}}}
	}
	stream, err := hookwirev1.NewAgentServiceClient(conn).Connect(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	if err := stream.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Hello{Hello: hello}}); err != nil {
		// The real error comes from Recv.
		_, rerr := stream.Recv()
		cancel()
		return nil, rerr
	}
	m, err := stream.Recv()
	if err != nil {
		cancel()
		return nil, err
	}
	if m.GetWelcome() == nil {
		t.Fatalf("want Welcome, got %v", m)
	}
	return &fakeAgent{stream: stream, cancel: cancel}, nil
}

func mustDialAgent(t *testing.T, conn *grpc.ClientConn, key string, hello *hookwirev1.Hello) *fakeAgent {
	t.Helper()
	a, err := dialAgent(t, conn, key, hello)
	if err != nil {
		t.Fatalf("connect agent %s: %v", hello.GetAgentId(), err)
	}
	return a
}

// noAssignment checks that a has received no assignment: it sends an
// unknown result and reads up to its acknowledgement.
func noAssignment(t *testing.T, a *fakeAgent) {
	t.Helper()
	if len(a.pending) > 0 {
		t.Fatalf("unexpected assignment %v", a.pending[0])
	}
	acks := a.report(t, &hookwirev1.Result{LeaseId: "none", LeaseToken: "none"})
	if len(acks) != 1 || acks[0].GetAccepted() {
		t.Fatalf("acks = %v", acks)
	}
	if len(a.pending) > 0 {
		t.Fatalf("unexpected assignment %v", a.pending[0])
	}
}

func (h *harness) subscribeWith(tenant string, sub *hookwirev1.Subscription) (*hookwirev1.Subscription, error) {
	h.t.Helper()
	if sub.Target == nil {
		cfg, _ := structpb.NewStruct(map[string]any{"url": "http://127.0.0.1:1/hook"})
		sub.Target = &hookwirev1.Target{Transport: "http", Config: cfg}
	}
	if len(sub.EventTypes) == 0 {
		sub.EventTypes = []string{"order.*"}
	}
	return hookwirev1.NewSubscriptionServiceClient(h.conn).CreateSubscription(h.ctx(), &hookwirev1.CreateSubscriptionRequest{Tenant: tenant, Subscription: sub})
}

func (h *harness) publishOne(tenant, typ string) string {
	h.t.Helper()
	resp, err := hookwirev1.NewEventServiceClient(h.conn).PublishEvent(h.ctx(), &hookwirev1.PublishEventRequest{Tenant: tenant, Event: &hookwirev1.Event{Type: typ, Payload: []byte(`{}`)}})
	if err != nil {
		h.t.Fatal(err)
	}
	list, err := hookwirev1.NewDeliveryServiceClient(h.conn).ListDeliveries(h.ctx(), &hookwirev1.ListDeliveriesRequest{Tenant: tenant, EventId: resp.GetId()})
	if err != nil {
		h.t.Fatal(err)
	}
	if len(list.GetDeliveries()) != 1 {
		h.t.Fatalf("want one delivery, got %v", list.GetDeliveries())
	}
	return list.GetDeliveries()[0].GetId()
}

func (h *harness) waitingReason(tenant, id string) string {
	h.t.Helper()
	d, err := hookwirev1.NewDeliveryServiceClient(h.conn).GetDelivery(h.ctx(), &hookwirev1.GetDeliveryRequest{Tenant: tenant, Id: id})
	if err != nil {
		h.t.Fatal(err)
	}
	return d.GetWaitingReason()
}

func TestAgentSelectorRoutesAndExplainsWaiting(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "acme"}); err != nil {
		t.Fatal(err)
	}

	// A selector that does not parse is refused, naming the problem.
	_, err := h.subscribeWith("acme", &hookwirev1.Subscription{AgentSelector: "region in eu"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "expected '('") {
		t.Fatalf("bad selector: %v", err)
	}

	sub, err := h.subscribeWith("acme", &hookwirev1.Subscription{AgentSelector: "region=eu-west,network in (a,b),!canary"})
	if err != nil {
		t.Fatal(err)
	}
	if sub.GetAgentSelector() != "region=eu-west,network in (a,b),!canary" {
		t.Fatalf("selector not kept: %q", sub.GetAgentSelector())
	}

	// No agent at all.
	first := h.publishOne("acme", "order.created")
	if got := h.waitingReason("acme", first); got != `no connected agent hosts transport "http"` {
		t.Fatalf("waiting reason = %q", got)
	}

	// Agents that do not match get nothing, and the reason says why.
	us := mustDialAgent(t, h.conn, adminKey, &hookwirev1.Hello{AgentId: "us", MaxInFlight: 10, Labels: map[string]string{"region": "us-east", "network": "a"}})
	canary := mustDialAgent(t, h.conn, adminKey, &hookwirev1.Hello{AgentId: "canary", MaxInFlight: 10, Labels: map[string]string{"region": "eu-west", "network": "a", "canary": "true"}})
	noAssignment(t, us)
	noAssignment(t, canary)
	got := h.waitingReason("acme", first)
	if !strings.HasPrefix(got, "no connected agent matches selector region=eu-west,network in (a,b),!canary: ") {
		t.Fatalf("waiting reason = %q", got)
	}

	// A matching agent connecting gets the waiting delivery at once.
	eu := mustDialAgent(t, h.conn, adminKey, &hookwirev1.Hello{AgentId: "eu", MaxInFlight: 10, Labels: map[string]string{"region": "eu-west", "network": "b"}})
	a := eu.assignments(t, 1)[0]
	if a.GetDeliveryId() != first {
		t.Fatalf("eu agent got %s, want %s", a.GetDeliveryId(), first)
	}
	if acks := eu.report(t, ok(a)); !acks[0].GetAccepted() {
		t.Fatalf("ack %v", acks)
	}
	second := h.publishOne("acme", "order.created")
	if a := eu.assignments(t, 1)[0]; a.GetDeliveryId() != second {
		t.Fatalf("eu agent got %s, want %s", a.GetDeliveryId(), second)
	}
	noAssignment(t, us)
	noAssignment(t, canary)

	// Other reasons: transport nobody hosts, paused subscription.
	nats, err := h.subscribeWith("acme", &hookwirev1.Subscription{EventTypes: []string{"nats.*"}, Target: &hookwirev1.Target{Transport: "nats", Config: &structpb.Struct{Fields: map[string]*structpb.Value{"subject": structpb.NewStringValue("orders")}}}})
	if err != nil {
		t.Fatal(err)
	}
	natsDel := h.publishOne("acme", "nats.msg")
	if got := h.waitingReason("acme", natsDel); got != `no connected agent hosts transport "nats"` {
		t.Fatalf("waiting reason = %q", got)
	}
	if _, err := hookwirev1.NewSubscriptionServiceClient(h.conn).PauseSubscription(h.ctx(), &hookwirev1.PauseSubscriptionRequest{Tenant: "acme", Id: nats.GetId()}); err != nil {
		t.Fatal(err)
	}
	list, err := hookwirev1.NewDeliveryServiceClient(h.conn).ListDeliveries(h.ctx(), &hookwirev1.ListDeliveriesRequest{Tenant: "acme", SubscriptionId: nats.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetDeliveries()) != 1 || list.GetDeliveries()[0].GetWaitingReason() != "subscription paused" {
		t.Fatalf("deliveries = %v", list.GetDeliveries())
	}

	// Updating the selector re-routes new work.
	if _, err := hookwirev1.NewSubscriptionServiceClient(h.conn).UpdateSubscription(h.ctx(), &hookwirev1.UpdateSubscriptionRequest{
		Tenant: "acme", Subscription: withSelector(sub, "region in (us-east"),
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"agent_selector"}},
	}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "missing ')'") {
		t.Fatalf("bad selector update: %v", err)
	}
	if _, err := hookwirev1.NewSubscriptionServiceClient(h.conn).UpdateSubscription(h.ctx(), &hookwirev1.UpdateSubscriptionRequest{
		Tenant: "acme", Subscription: withSelector(sub, "region=us-east"),
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"agent_selector"}},
	}); err != nil {
		t.Fatal(err)
	}
	fourth := h.publishOne("acme", "order.created")
	if a := us.assignments(t, 1)[0]; a.GetDeliveryId() != fourth {
		t.Fatalf("us agent got %s, want %s", a.GetDeliveryId(), fourth)
	}
}

func TestAgentsWithSameLabelsShareWork(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.subscribeWith("acme", &hookwirev1.Subscription{AgentSelector: "region=eu"}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"region": "eu"}
	a := mustDialAgent(t, h.conn, adminKey, &hookwirev1.Hello{AgentId: "a", MaxInFlight: 2, Labels: labels})
	b := mustDialAgent(t, h.conn, adminKey, &hookwirev1.Hello{AgentId: "b", MaxInFlight: 2, Labels: labels})
	for range 6 {
		h.publishOne("acme", "order.created")
	}
	// Each agent gets exactly its credit; the rest waits.
	got := map[string]bool{}
	take := func(ag *fakeAgent, n int) []*hookwirev1.Assignment {
		t.Helper()
		list := ag.assignments(t, n)
		for _, x := range list {
			if got[x.GetDeliveryId()] {
				t.Fatalf("delivery %s assigned twice", x.GetDeliveryId())
			}
			got[x.GetDeliveryId()] = true
		}
		return list
	}
	fromA, fromB := take(a, 2), take(b, 2)
	noAssignment(t, a)
	noAssignment(t, b)
	// Finishing work and granting credit brings each agent more.
	for _, pair := range []struct {
		ag   *fakeAgent
		done []*hookwirev1.Assignment
	}{{a, fromA}, {b, fromB}} {
		if acks := pair.ag.report(t, ok(pair.done[0]), ok(pair.done[1])); !acks[0].GetAccepted() || !acks[1].GetAccepted() {
			t.Fatalf("acks %v", acks)
		}
		if err := pair.ag.stream.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Credit{Credit: &hookwirev1.Credit{Amount: 1}}}); err != nil {
			t.Fatal(err)
		}
		take(pair.ag, 1)
	}
	if len(got) != 6 {
		t.Fatalf("assigned %d distinct deliveries, want 6", len(got))
	}
}

func withSelector(sub *hookwirev1.Subscription, sel string) *hookwirev1.Subscription {
	c := proto.Clone(sub).(*hookwirev1.Subscription)
	c.AgentSelector = sel
	return c
}

func TestAgentAdminListDrainAndJoinTokens(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	admin := hookwirev1.NewAgentAdminServiceClient(h.conn)
	ctx := h.ctx()

	a := mustDialAgent(t, h.conn, adminKey, &hookwirev1.Hello{AgentId: "edge-1", MaxInFlight: 7, Version: "v1.2.3", Labels: map[string]string{"region": "eu"}})
	list, err := admin.ListAgents(ctx, &hookwirev1.ListAgentsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetAgents()) != 1 {
		t.Fatalf("agents = %v", list.GetAgents())
	}
	got := list.GetAgents()[0]
	if got.GetId() != "edge-1" || got.GetLabels()["region"] != "eu" || got.GetVersion() != "v1.2.3" || got.GetCredit() != 7 ||
		got.GetState() != hookwirev1.AgentState_AGENT_STATE_CONNECTED || len(got.GetTransports()) != 1 || got.GetTransports()[0] != "http" ||
		got.GetConnectTime() == nil || got.GetLastSeenTime() == nil {
		t.Fatalf("agent = %v", got)
	}
	// The REST gateway serves it too.
	if body, code := h.restRaw("GET", "/v1/agents", "", nil); code != 200 || !strings.Contains(string(body), `"edge-1"`) {
		t.Fatalf("GET /v1/agents: %d %s", code, body)
	}

	// Drain reaches the agent's stream.
	if _, err := admin.DrainAgent(ctx, &hookwirev1.DrainAgentRequest{Id: "edge-1", Reason: "maintenance"}); err != nil {
		t.Fatal(err)
	}
	m, err := a.stream.Recv()
	if err != nil || m.GetDrain().GetReason() != "maintenance" {
		t.Fatalf("want Drain, got %v, %v", m, err)
	}
	// Until it disconnects, the agent is listed as draining.
	if list, err := admin.ListAgents(ctx, &hookwirev1.ListAgentsRequest{}); err != nil || len(list.GetAgents()) != 1 || list.GetAgents()[0].GetState() != hookwirev1.AgentState_AGENT_STATE_DRAINING {
		t.Fatalf("after DrainAgent, ListAgents = %v, %v; want edge-1 AGENT_STATE_DRAINING", list, err)
	}
	if _, err := admin.DrainAgent(ctx, &hookwirev1.DrainAgentRequest{Id: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("drain unknown agent: %v", err)
	}

	// Admin only.
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(ctx, &hookwirev1.CreateTenantRequest{Id: "acme"}); err != nil {
		t.Fatal(err)
	}
	key, err := hookwirev1.NewApiKeyServiceClient(h.conn).CreateApiKey(ctx, &hookwirev1.CreateApiKeyRequest{Tenant: "acme", Name: "t", Scope: hookwirev1.ApiKeyScope_API_KEY_SCOPE_TENANT_ADMIN})
	if err != nil {
		t.Fatal(err)
	}
	tctx := authed(context.Background(), key.GetKey())
	if _, err := admin.ListAgents(tctx, &hookwirev1.ListAgentsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("tenant key ListAgents: %v", err)
	}
	if _, err := admin.CreateJoinToken(tctx, &hookwirev1.CreateJoinTokenRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("tenant key CreateJoinToken: %v", err)
	}

	// Join tokens.
	if _, err := admin.CreateJoinToken(ctx, &hookwirev1.CreateJoinTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(-time.Hour))}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("expired join token: %v", err)
	}
	jt, err := admin.CreateJoinToken(ctx, &hookwirev1.CreateJoinTokenRequest{Name: "eu edge", Labels: map[string]string{"region": "eu"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(jt.GetToken(), "hwj_") || !strings.HasPrefix(jt.GetToken(), jt.GetId()+"_") {
		t.Fatalf("join token = %v", jt)
	}
	tokens, err := admin.ListJoinTokens(ctx, &hookwirev1.ListJoinTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens.GetJoinTokens()) != 1 || tokens.GetJoinTokens()[0].GetToken() != "" || tokens.GetJoinTokens()[0].GetLabels()["region"] != "eu" {
		t.Fatalf("join tokens = %v", tokens.GetJoinTokens())
	}

	joined := mustDialAgent(t, h.conn, jt.GetToken(), &hookwirev1.Hello{AgentId: "edge-2", MaxInFlight: 1, Labels: map[string]string{"region": "eu", "zone": "b"}})
	list, _ = admin.ListAgents(ctx, &hookwirev1.ListAgentsRequest{})
	if len(list.GetAgents()) != 2 || list.GetAgents()[1].GetJoinTokenId() != jt.GetId() {
		t.Fatalf("agents = %v", list.GetAgents())
	}
	// The token's labels are required.
	if _, err := dialAgent(t, h.conn, jt.GetToken(), &hookwirev1.Hello{AgentId: "edge-3", MaxInFlight: 1, Labels: map[string]string{"region": "us"}}); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "region=eu") {
		t.Fatalf("join without required label: %v", err)
	}
	// A join token authenticates nothing but Connect.
	if _, err := admin.ListAgents(authed(context.Background(), jt.GetToken()), &hookwirev1.ListAgentsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("join token on ListAgents: %v", err)
	}
	// Anything but the admin key or a join token is refused.
	for _, k := range []string{key.GetKey(), "hwj_aaaaaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "garbage-garbage-garbage", jt.GetToken() + "x"} {
		if _, err := dialAgent(t, h.conn, k, &hookwirev1.Hello{AgentId: "x", MaxInFlight: 1}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("connect with %q: %v", k, err)
		}
	}

	// Revoking the token disconnects the agents that joined with it and
	// refuses new ones; agents on the admin key stay.
	if _, err := admin.RevokeJoinToken(ctx, &hookwirev1.RevokeJoinTokenRequest{Id: jt.GetId()}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := joined.stream.Recv()
		if err != nil {
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("revoked agent stream ended with %v", err)
			}
			break
		}
	}
	if _, err := dialAgent(t, h.conn, jt.GetToken(), &hookwirev1.Hello{AgentId: "edge-2", MaxInFlight: 1, Labels: map[string]string{"region": "eu"}}); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("connect with revoked token: %v", err)
	}
	if _, err := admin.RevokeJoinToken(ctx, &hookwirev1.RevokeJoinTokenRequest{Id: "hwj_nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("revoke unknown: %v", err)
	}
	noAssignment(t, a)
}

func TestSilentAgentIsLostAndItsWorkMoves(t *testing.T) {
	c := &clock{}
	h := start(t, t.TempDir(), controlplane.Config{Now: c.now, HeartbeatInterval: 100 * time.Millisecond})
	if _, err := hookwirev1.NewTenantServiceClient(h.conn).CreateTenant(h.ctx(), &hookwirev1.CreateTenantRequest{Id: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.subscribeWith("acme", &hookwirev1.Subscription{}); err != nil {
		t.Fatal(err)
	}
	silent := mustDialAgent(t, h.conn, adminKey, &hookwirev1.Hello{AgentId: "silent", MaxInFlight: 1})
	id := h.publishOne("acme", "order.created")
	if a := silent.assignments(t, 1)[0]; a.GetDeliveryId() != id {
		t.Fatalf("got %s", a.GetDeliveryId())
	}
	// The agent never heartbeats: its stream is closed.
	for {
		if _, err := silent.stream.Recv(); err != nil {
			if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "heartbeat") {
				t.Fatalf("stream ended with %v", err)
			}
			break
		}
	}
	list, err := hookwirev1.NewAgentAdminServiceClient(h.conn).ListAgents(h.ctx(), &hookwirev1.ListAgentsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetAgents()) != 1 || list.GetAgents()[0].GetState() != hookwirev1.AgentState_AGENT_STATE_LOST || list.GetAgents()[0].GetInFlight() != 1 {
		t.Fatalf("agents = %v", list.GetAgents())
	}

	// A live agent (it heartbeats) takes the delivery once the lease runs out.
	live := mustDialAgent(t, h.conn, adminKey, &hookwirev1.Hello{AgentId: "live", MaxInFlight: 1})
	stop := make(chan struct{})
	done := make(chan struct{})
	defer func() { close(stop); <-done }()
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if live.stream.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Heartbeat{Heartbeat: &hookwirev1.Heartbeat{}}}) != nil {
					return
				}
			}
		}
	}()
	c.advance(time.Hour)
	h.srv.Tick()
	if a := live.assignments(t, 1)[0]; a.GetDeliveryId() != id {
		t.Fatalf("got %s", a.GetDeliveryId())
	}
}

// A join token's expiry ends the sessions it admitted, not just new
// connects: the stream closes with Unauthenticated at the expiry time.
func TestJoinTokenExpiryEndsSessions(t *testing.T) {
	c := &clock{}
	h := start(t, t.TempDir(), controlplane.Config{Now: c.now})
	admin := hookwirev1.NewAgentAdminServiceClient(h.conn)
	jt, err := admin.CreateJoinToken(h.ctx(), &hookwirev1.CreateJoinTokenRequest{Name: "short", ExpireTime: timestamppb.New(c.now().Add(time.Second))})
	if err != nil {
		t.Fatal(err)
	}
	joined := mustDialAgent(t, h.conn, jt.GetToken(), &hookwirev1.Hello{AgentId: "edge-short", MaxInFlight: 1})
	onAdmin := mustDialAgent(t, h.conn, adminKey, &hookwirev1.Hello{AgentId: "edge-admin", MaxInFlight: 1})
	for {
		_, err := joined.stream.Recv() // ends when the token expires, about a second from now
		if err == nil {
			continue
		}
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("session of an expired join token ended with %v", err)
		}
		break
	}
	c.advance(time.Second)
	if _, err := dialAgent(t, h.conn, jt.GetToken(), &hookwirev1.Hello{AgentId: "edge-short", MaxInFlight: 1}); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("reconnect with the expired token: %v", err)
	}
	noAssignment(t, onAdmin) // the admin-key agent's session is untouched
}
