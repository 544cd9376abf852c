package controlplane_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The tenant isolation matrix: every public RPC, called by every kind of
// caller, must answer the expected code; another tenant's things must look
// exactly like missing ones; and nothing of another tenant may come back.

// isoAccess is what an RPC requires of its caller.
type isoAccess int

const (
	isoAdminOnly  isoAccess = iota // the admin key only
	isoRead                        // any key of the tenant but publish-only
	isoWrite                       // a tenant-admin key of the tenant
	isoPublish                     // a tenant-admin or publish-only key of the tenant
	isoAgent                       // the admin key or a join token (agents)
	isoPortalOnly                  // a portal token only (the portal page)
	isoAnyKey                      // any valid API key, of any tenant or scope
)

// isoCaller is who calls.
type isoCaller int

const (
	callerOwn           isoCaller = iota // tenant-admin key of the tenant acted on
	callerOther                          // tenant-admin key of another tenant
	callerAdmin                          // the admin key
	callerNone                           // no key at all
	callerRevoked                        // a revoked tenant-admin key of the tenant
	callerExpired                        // an expired tenant-admin key of the tenant
	callerPublish                        // publish-only key of the tenant
	callerReadOnly                       // read-only key of the tenant
	callerPortal                         // portal token of the tenant (whole tenant, every feature)
	callerPortalRevoked                  // revoked portal token of the tenant
	callerPortalExpired                  // expired portal token of the tenant
	numCallers
)

func (c isoCaller) String() string {
	return [...]string{"own-tenant-admin", "other-tenant-admin", "admin", "no-key", "revoked-key", "expired-key", "publish-only", "read-only", "portal", "revoked-portal", "expired-portal"}[c]
}

// isoKind names the kinds of object ids a request can carry.
type isoKind int

const (
	kindSub isoKind = iota
	kindDelivery
	kindEvent
	kindOp
	kindAPIKey
	kindPortalSession
)

func (k isoKind) String() string {
	return [...]string{"subscription", "delivery", "event", "operation", "api-key", "portal-session"}[k]
}

// isoObjects are the things of one tenant a call acts on.
type isoObjects struct {
	tenant                           string
	sub, delivery, event, op, apiKey string
	portalSession                    string
	joinToken                        string // global (admin-only), not a tenant's
	name                             string // a fresh name (event types)
}

func (o isoObjects) get(k isoKind) string {
	return [...]string{o.sub, o.delivery, o.event, o.op, o.apiKey, o.portalSession}[k]
}

func (o isoObjects) with(k isoKind, v string) isoObjects {
	switch k {
	case kindSub:
		o.sub = v
	case kindDelivery:
		o.delivery = v
	case kindEvent:
		o.event = v
	case kindOp:
		o.op = v
	case kindAPIKey:
		o.apiKey = v
	case kindPortalSession:
		o.portalSession = v
	}
	return o
}

// isoRow is one RPC of the matrix.
type isoRow struct {
	access isoAccess
	// uses lists the object ids the request carries, besides the tenant.
	uses []isoKind
	// adminCode is what the admin key gets (default OK).
	adminCode codes.Code
	// portal: a portal token may call it (portalgate.go); every other
	// RPC must refuse portal tokens with PermissionDenied.
	portal bool
	// fresh, if set, makes new objects in tenant for each call, for calls
	// that use up what they act on (delete, revoke, cancel).
	fresh func(e *isoEnv, tenant string) isoObjects
	call  func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error)
}

// expected is the code caller must get from r.
func (r isoRow) expected(caller isoCaller) codes.Code {
	switch caller {
	case callerNone, callerRevoked, callerExpired, callerPortalRevoked, callerPortalExpired:
		return codes.Unauthenticated
	case callerPortal:
		if r.portal {
			return codes.OK
		}
		return codes.PermissionDenied
	}
	if r.access == isoPortalOnly {
		return codes.PermissionDenied
	}
	if caller == callerAdmin {
		return r.adminCode
	}
	if r.access == isoAnyKey {
		return codes.OK
	}
	switch r.access {
	case isoAdminOnly:
		return codes.PermissionDenied
	case isoAgent:
		return codes.Unauthenticated
	}
	if caller == callerOther {
		return codes.NotFound
	}
	switch {
	case caller == callerOwn,
		caller == callerReadOnly && r.access == isoRead,
		caller == callerPublish && r.access == isoPublish:
		return codes.OK
	}
	return codes.PermissionDenied
}

// isoEnv is the running control plane and its fixtures.
type isoEnv struct {
	t     *testing.T
	h     *harness
	clock *clock
	keys  [numCallers]string
	seq   atomic.Int64
}

func (e *isoEnv) ctx(key string) (context.Context, context.CancelFunc) {
	ctx := context.Background()
	if key != "" {
		ctx = authed(ctx, key)
	}
	return context.WithTimeout(ctx, 10*time.Second)
}

func (e *isoEnv) adminCtx() context.Context {
	ctx, cancel := e.ctx(adminKey)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *isoEnv) name(prefix string) string { return fmt.Sprintf("%s-%d", prefix, e.seq.Add(1)) }

func isoTarget() *hookwirev1.Target {
	cfg, _ := structpb.NewStruct(map[string]any{"url": "http://127.0.0.1:1/hook"})
	return &hookwirev1.Target{Transport: "http", Config: cfg}
}

// newSub creates a subscription to iso.* events in tenant.
func (e *isoEnv) newSub(tenant string) string {
	e.t.Helper()
	sub, err := hookwirev1.NewSubscriptionServiceClient(e.h.conn).CreateSubscription(e.adminCtx(), &hookwirev1.CreateSubscriptionRequest{
		Tenant: tenant, Subscription: &hookwirev1.Subscription{EventTypes: []string{"iso.*"}, Target: isoTarget()},
	})
	if err != nil {
		e.t.Fatalf("create subscription in %s: %v", tenant, err)
	}
	return sub.GetId()
}

// newDelivery publishes an event in tenant (which must have one
// subscription to iso.*) and returns the event and its delivery.
func (e *isoEnv) newDelivery(tenant string) (event, delivery string) {
	e.t.Helper()
	ev, err := hookwirev1.NewEventServiceClient(e.h.conn).PublishEvent(e.adminCtx(), &hookwirev1.PublishEventRequest{
		Tenant: tenant, Event: &hookwirev1.Event{Type: "iso.created", Payload: []byte(`{"secret":"` + tenant + `"}`)},
	})
	if err != nil || ev.GetDeliveryCount() != 1 {
		e.t.Fatalf("publish in %s: %v (%d deliveries)", tenant, err, ev.GetDeliveryCount())
	}
	list, err := hookwirev1.NewDeliveryServiceClient(e.h.conn).ListDeliveries(e.adminCtx(), &hookwirev1.ListDeliveriesRequest{Tenant: tenant, EventId: ev.GetId()})
	if err != nil || len(list.GetDeliveries()) != 1 {
		e.t.Fatalf("deliveries of %s: %v %v", ev.GetId(), list, err)
	}
	return ev.GetId(), list.GetDeliveries()[0].GetId()
}

func (e *isoEnv) newKey(tenant string, scope hookwirev1.ApiKeyScope, expire *timestamppb.Timestamp) *hookwirev1.ApiKey {
	e.t.Helper()
	k, err := hookwirev1.NewApiKeyServiceClient(e.h.conn).CreateApiKey(e.adminCtx(), &hookwirev1.CreateApiKeyRequest{
		Tenant: tenant, Name: e.name("key"), Scope: scope, ExpireTime: expire,
	})
	if err != nil {
		e.t.Fatalf("create key in %s: %v", tenant, err)
	}
	return k
}

// setupTenant creates tenant with one of everything.
func (e *isoEnv) setupTenant(tenant string) isoObjects {
	e.t.Helper()
	if _, err := hookwirev1.NewTenantServiceClient(e.h.conn).CreateTenant(e.adminCtx(), &hookwirev1.CreateTenantRequest{Id: tenant}); err != nil {
		e.t.Fatal(err)
	}
	o := isoObjects{tenant: tenant, sub: e.newSub(tenant)}
	o.event, o.delivery = e.newDelivery(tenant)
	op, err := hookwirev1.NewDeliveryServiceClient(e.h.conn).RecoverDeliveries(e.adminCtx(), &hookwirev1.RecoverDeliveriesRequest{Tenant: tenant, SubscriptionId: o.sub})
	if err != nil {
		e.t.Fatal(err)
	}
	o.op = op.GetId()
	o.apiKey = e.newKey(tenant, hookwirev1.ApiKeyScope_API_KEY_SCOPE_READ_ONLY, nil).GetId()
	if _, err := hookwirev1.NewEventTypeServiceClient(e.h.conn).CreateEventType(e.adminCtx(), &hookwirev1.CreateEventTypeRequest{Tenant: tenant,
		EventType: &hookwirev1.EventType{Name: "iso.created", ExamplePayload: `{"test":true}`}}); err != nil {
		e.t.Fatal(err)
	}
	o.portalSession = e.newPortalSession(tenant, 0).GetId()
	return o
}

// freshSub: a subscription of its own (to delete). It matches no event
// the matrix publishes, so each tenant keeps one subscription to iso.*.
func freshSub(e *isoEnv, tenant string) isoObjects {
	sub, err := hookwirev1.NewSubscriptionServiceClient(e.h.conn).CreateSubscription(e.adminCtx(), &hookwirev1.CreateSubscriptionRequest{
		Tenant: tenant, Subscription: &hookwirev1.Subscription{EventTypes: []string{"doomed.*"}, Target: isoTarget()},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return isoObjects{tenant: tenant, sub: sub.GetId()}
}

// freshDelivery: a pending delivery of its own (to cancel). The tenant
// already has exactly one subscription to iso.*.
func freshDelivery(e *isoEnv, tenant string) isoObjects {
	o := isoObjects{tenant: tenant}
	o.event, o.delivery = e.newDelivery(tenant)
	return o
}

// freshName: a fresh name (an event type to create).
func freshName(e *isoEnv, tenant string) isoObjects {
	return isoObjects{tenant: tenant, name: e.name("type")}
}

// freshEventType: an event type of its own (to delete).
func freshEventType(e *isoEnv, tenant string) isoObjects {
	o := freshName(e, tenant)
	if _, err := hookwirev1.NewEventTypeServiceClient(e.h.conn).CreateEventType(e.adminCtx(), &hookwirev1.CreateEventTypeRequest{Tenant: tenant, EventType: &hookwirev1.EventType{Name: "iso." + o.name}}); err != nil {
		e.t.Fatal(err)
	}
	return o
}

// freshPortalSession: a portal session of its own (to revoke).
func freshPortalSession(e *isoEnv, tenant string) isoObjects {
	return isoObjects{tenant: tenant, portalSession: e.newPortalSession(tenant, 0).GetId()}
}

// newPortalSession creates a portal session of the whole tenant with
// every feature (ttl 0: the default).
func (e *isoEnv) newPortalSession(tenant string, ttl time.Duration) *hookwirev1.PortalSession {
	e.t.Helper()
	req := &hookwirev1.CreatePortalSessionRequest{Tenant: tenant, Features: []string{"endpoints.write", "secrets.rotate", "deliveries.resend", "events.test"}}
	if ttl > 0 {
		req.Ttl = durationpb.New(ttl)
	}
	ps, err := hookwirev1.NewPortalServiceClient(e.h.conn).CreatePortalSession(e.adminCtx(), req)
	if err != nil {
		e.t.Fatalf("create portal session in %s: %v", tenant, err)
	}
	return ps
}

// freshKey: an API key of its own (to revoke).
func freshKey(e *isoEnv, tenant string) isoObjects {
	return isoObjects{tenant: tenant, apiKey: e.newKey(tenant, hookwirev1.ApiKeyScope_API_KEY_SCOPE_READ_ONLY, nil).GetId()}
}

// freshTenant: an empty tenant (to delete).
func freshTenant(e *isoEnv, _ string) isoObjects {
	id := e.name("doomed")
	if _, err := hookwirev1.NewTenantServiceClient(e.h.conn).CreateTenant(e.adminCtx(), &hookwirev1.CreateTenantRequest{Id: id}); err != nil {
		e.t.Fatal(err)
	}
	return isoObjects{tenant: id}
}

// freshJoinToken: a join token of its own (to revoke).
func freshJoinToken(e *isoEnv, tenant string) isoObjects {
	jt, err := hookwirev1.NewAgentAdminServiceClient(e.h.conn).CreateJoinToken(e.adminCtx(), &hookwirev1.CreateJoinTokenRequest{Name: e.name("jt")})
	if err != nil {
		e.t.Fatal(err)
	}
	return isoObjects{tenant: tenant, joinToken: jt.GetId()}
}

// isoMatrix has one row per public RPC, keyed by full method name. A new
// RPC must get a row here: TestIsolationMatrixCoversEveryRPC fails until it
// does.
func isoMatrix(e *isoEnv) map[string]isoRow {
	tenants := func(c *grpc.ClientConn) hookwirev1.TenantServiceClient { return hookwirev1.NewTenantServiceClient(c) }
	keys := func(c *grpc.ClientConn) hookwirev1.ApiKeyServiceClient { return hookwirev1.NewApiKeyServiceClient(c) }
	evTypes := func(c *grpc.ClientConn) hookwirev1.EventTypeServiceClient {
		return hookwirev1.NewEventTypeServiceClient(c)
	}
	portal := func(c *grpc.ClientConn) hookwirev1.PortalServiceClient { return hookwirev1.NewPortalServiceClient(c) }
	subs := func(c *grpc.ClientConn) hookwirev1.SubscriptionServiceClient {
		return hookwirev1.NewSubscriptionServiceClient(c)
	}
	events := func(c *grpc.ClientConn) hookwirev1.EventServiceClient { return hookwirev1.NewEventServiceClient(c) }
	dels := func(c *grpc.ClientConn) hookwirev1.DeliveryServiceClient {
		return hookwirev1.NewDeliveryServiceClient(c)
	}
	agents := func(c *grpc.ClientConn) hookwirev1.AgentAdminServiceClient {
		return hookwirev1.NewAgentAdminServiceClient(c)
	}
	ev := func() *hookwirev1.Event { return &hookwirev1.Event{Type: "iso.updated", Payload: []byte(`{}`)} }

	return map[string]isoRow{
		// --- TenantService ---
		hookwirev1.TenantService_CreateTenant_FullMethodName: {access: isoAdminOnly,
			call: func(ctx context.Context, c *grpc.ClientConn, _ isoObjects) (proto.Message, error) {
				return tenants(c).CreateTenant(ctx, &hookwirev1.CreateTenantRequest{Id: e.name("new")})
			}},
		hookwirev1.TenantService_GetTenant_FullMethodName: {access: isoRead,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return tenants(c).GetTenant(ctx, &hookwirev1.GetTenantRequest{Id: o.tenant})
			}},
		hookwirev1.TenantService_ListTenants_FullMethodName: {access: isoAdminOnly,
			call: func(ctx context.Context, c *grpc.ClientConn, _ isoObjects) (proto.Message, error) {
				return tenants(c).ListTenants(ctx, &hookwirev1.ListTenantsRequest{})
			}},
		hookwirev1.TenantService_DeleteTenant_FullMethodName: {access: isoAdminOnly, fresh: freshTenant,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return tenants(c).DeleteTenant(ctx, &hookwirev1.DeleteTenantRequest{Id: o.tenant})
			}},

		// --- ApiKeyService ---
		hookwirev1.ApiKeyService_CreateApiKey_FullMethodName: {access: isoWrite,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return keys(c).CreateApiKey(ctx, &hookwirev1.CreateApiKeyRequest{Tenant: o.tenant, Name: "made-by-matrix", Scope: hookwirev1.ApiKeyScope_API_KEY_SCOPE_READ_ONLY})
			}},
		hookwirev1.ApiKeyService_ListApiKeys_FullMethodName: {access: isoRead,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return keys(c).ListApiKeys(ctx, &hookwirev1.ListApiKeysRequest{Tenant: o.tenant})
			}},
		hookwirev1.ApiKeyService_RevokeApiKey_FullMethodName: {access: isoWrite, uses: []isoKind{kindAPIKey}, fresh: freshKey,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return keys(c).RevokeApiKey(ctx, &hookwirev1.RevokeApiKeyRequest{Tenant: o.tenant, Id: o.apiKey})
			}},

		// --- SubscriptionService ---
		hookwirev1.SubscriptionService_CreateSubscription_FullMethodName: {portal: true, access: isoWrite,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				// An event type nothing publishes, so the fixtures keep
				// exactly one subscription to iso.*.
				return subs(c).CreateSubscription(ctx, &hookwirev1.CreateSubscriptionRequest{Tenant: o.tenant,
					Subscription: &hookwirev1.Subscription{EventTypes: []string{"never.published"}, Target: isoTarget()}})
			}},
		hookwirev1.SubscriptionService_GetSubscription_FullMethodName: {portal: true, access: isoRead, uses: []isoKind{kindSub},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return subs(c).GetSubscription(ctx, &hookwirev1.GetSubscriptionRequest{Tenant: o.tenant, Id: o.sub})
			}},
		hookwirev1.SubscriptionService_ListSubscriptions_FullMethodName: {portal: true, access: isoRead,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return subs(c).ListSubscriptions(ctx, &hookwirev1.ListSubscriptionsRequest{Tenant: o.tenant})
			}},
		hookwirev1.SubscriptionService_UpdateSubscription_FullMethodName: {portal: true, access: isoWrite, uses: []isoKind{kindSub},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return subs(c).UpdateSubscription(ctx, &hookwirev1.UpdateSubscriptionRequest{Tenant: o.tenant,
					Subscription: &hookwirev1.Subscription{Id: o.sub, Description: "changed", EventTypes: []string{"iso.*"}, Target: isoTarget()},
					UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"description"}}})
			}},
		hookwirev1.SubscriptionService_DeleteSubscription_FullMethodName: {portal: true, access: isoWrite, uses: []isoKind{kindSub}, fresh: freshSub,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return subs(c).DeleteSubscription(ctx, &hookwirev1.DeleteSubscriptionRequest{Tenant: o.tenant, Id: o.sub})
			}},
		hookwirev1.SubscriptionService_PauseSubscription_FullMethodName: {portal: true, access: isoWrite, uses: []isoKind{kindSub},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return subs(c).PauseSubscription(ctx, &hookwirev1.PauseSubscriptionRequest{Tenant: o.tenant, Id: o.sub})
			}},
		hookwirev1.SubscriptionService_ResumeSubscription_FullMethodName: {portal: true, access: isoWrite, uses: []isoKind{kindSub},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return subs(c).ResumeSubscription(ctx, &hookwirev1.ResumeSubscriptionRequest{Tenant: o.tenant, Id: o.sub})
			}},
		hookwirev1.SubscriptionService_RotateSubscriptionSecret_FullMethodName: {portal: true, access: isoWrite, uses: []isoKind{kindSub},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return subs(c).RotateSubscriptionSecret(ctx, &hookwirev1.RotateSubscriptionSecretRequest{Tenant: o.tenant, Id: o.sub})
			}},

		// --- EventService ---
		hookwirev1.EventService_PublishEvent_FullMethodName: {access: isoPublish,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return events(c).PublishEvent(ctx, &hookwirev1.PublishEventRequest{Tenant: o.tenant, Event: ev()})
			}},
		hookwirev1.EventService_PublishEvents_FullMethodName: {access: isoPublish,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return events(c).PublishEvents(ctx, &hookwirev1.PublishEventsRequest{Tenant: o.tenant, Events: []*hookwirev1.Event{ev(), ev()}})
			}},
		hookwirev1.EventService_PublishRawEvent_FullMethodName: {access: isoPublish,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return events(c).PublishRawEvent(ctx, &hookwirev1.PublishRawEventRequest{Tenant: o.tenant, Type: "iso.raw",
					Body: &httpbody.HttpBody{ContentType: "text/plain", Data: []byte("raw")}})
			}},
		hookwirev1.EventService_GetEvent_FullMethodName: {access: isoRead, uses: []isoKind{kindEvent},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return events(c).GetEvent(ctx, &hookwirev1.GetEventRequest{Tenant: o.tenant, Id: o.event})
			}},
		hookwirev1.EventService_ListEvents_FullMethodName: {access: isoRead,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return events(c).ListEvents(ctx, &hookwirev1.ListEventsRequest{Tenant: o.tenant, View: hookwirev1.EventView_EVENT_VIEW_FULL})
			}},

		// --- DeliveryService ---
		hookwirev1.DeliveryService_ListDeliveries_FullMethodName: {portal: true, access: isoRead, uses: []isoKind{kindSub, kindEvent},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return dels(c).ListDeliveries(ctx, &hookwirev1.ListDeliveriesRequest{Tenant: o.tenant, SubscriptionId: o.sub, EventId: o.event})
			}},
		hookwirev1.DeliveryService_GetDelivery_FullMethodName: {portal: true, access: isoRead, uses: []isoKind{kindDelivery},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return dels(c).GetDelivery(ctx, &hookwirev1.GetDeliveryRequest{Tenant: o.tenant, Id: o.delivery})
			}},
		hookwirev1.DeliveryService_ListAttempts_FullMethodName: {portal: true, access: isoRead, uses: []isoKind{kindDelivery},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return dels(c).ListAttempts(ctx, &hookwirev1.ListAttemptsRequest{Tenant: o.tenant, DeliveryId: o.delivery})
			}},
		hookwirev1.DeliveryService_RetryDelivery_FullMethodName: {portal: true, access: isoWrite, uses: []isoKind{kindDelivery},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return dels(c).RetryDelivery(ctx, &hookwirev1.RetryDeliveryRequest{Tenant: o.tenant, Id: o.delivery})
			}},
		hookwirev1.DeliveryService_CancelDelivery_FullMethodName: {access: isoWrite, uses: []isoKind{kindDelivery}, fresh: freshDelivery,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return dels(c).CancelDelivery(ctx, &hookwirev1.CancelDeliveryRequest{Tenant: o.tenant, Id: o.delivery})
			}},
		hookwirev1.DeliveryService_ResendEvent_FullMethodName: {portal: true, access: isoWrite, uses: []isoKind{kindEvent, kindSub},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return dels(c).ResendEvent(ctx, &hookwirev1.ResendEventRequest{Tenant: o.tenant, EventId: o.event, SubscriptionId: o.sub})
			}},
		hookwirev1.DeliveryService_RecoverDeliveries_FullMethodName: {access: isoWrite, uses: []isoKind{kindSub},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return dels(c).RecoverDeliveries(ctx, &hookwirev1.RecoverDeliveriesRequest{Tenant: o.tenant, SubscriptionId: o.sub})
			}},
		hookwirev1.DeliveryService_GetOperation_FullMethodName: {access: isoRead, uses: []isoKind{kindOp},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return dels(c).GetOperation(ctx, &hookwirev1.GetOperationRequest{Tenant: o.tenant, Id: o.op})
			}},
		hookwirev1.DeliveryService_WatchOperation_FullMethodName: {access: isoRead, uses: []isoKind{kindOp},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				ctx, cancel := context.WithCancel(ctx)
				defer cancel()
				stream, err := dels(c).WatchOperation(ctx, &hookwirev1.WatchOperationRequest{Tenant: o.tenant, Id: o.op})
				if err != nil {
					return nil, err
				}
				return stream.Recv() // the first state, or the refusal
			}},

		hookwirev1.DeliveryService_TailDeliveries_FullMethodName: {access: isoRead, uses: []isoKind{kindSub},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return tailOpens(ctx, c, &hookwirev1.TailDeliveriesRequest{Tenant: o.tenant, SubscriptionId: o.sub})
			}},

		// --- EventTypeService ---
		hookwirev1.EventTypeService_CreateEventType_FullMethodName: {access: isoWrite, fresh: freshName,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return evTypes(c).CreateEventType(ctx, &hookwirev1.CreateEventTypeRequest{Tenant: o.tenant, EventType: &hookwirev1.EventType{Name: "iso." + o.name}})
			}},
		hookwirev1.EventTypeService_GetEventType_FullMethodName: {portal: true, access: isoRead,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return evTypes(c).GetEventType(ctx, &hookwirev1.GetEventTypeRequest{Tenant: o.tenant, Name: "iso.created"})
			}},
		hookwirev1.EventTypeService_ListEventTypes_FullMethodName: {portal: true, access: isoRead,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return evTypes(c).ListEventTypes(ctx, &hookwirev1.ListEventTypesRequest{Tenant: o.tenant})
			}},
		hookwirev1.EventTypeService_UpdateEventType_FullMethodName: {access: isoWrite,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return evTypes(c).UpdateEventType(ctx, &hookwirev1.UpdateEventTypeRequest{Tenant: o.tenant,
					EventType: &hookwirev1.EventType{Name: "iso.created", Description: "changed"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}}})
			}},
		hookwirev1.EventTypeService_DeleteEventType_FullMethodName: {access: isoWrite, fresh: freshEventType,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return evTypes(c).DeleteEventType(ctx, &hookwirev1.DeleteEventTypeRequest{Tenant: o.tenant, Name: "iso." + o.name})
			}},

		// --- PortalService ---
		hookwirev1.PortalService_CreatePortalSession_FullMethodName: {access: isoWrite,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return portal(c).CreatePortalSession(ctx, &hookwirev1.CreatePortalSessionRequest{Tenant: o.tenant, Labels: map[string]string{"customer": "c1"}})
			}},
		hookwirev1.PortalService_ListPortalSessions_FullMethodName: {access: isoRead,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return portal(c).ListPortalSessions(ctx, &hookwirev1.ListPortalSessionsRequest{Tenant: o.tenant})
			}},
		hookwirev1.PortalService_RevokePortalSession_FullMethodName: {access: isoWrite, uses: []isoKind{kindPortalSession}, fresh: freshPortalSession,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return portal(c).RevokePortalSession(ctx, &hookwirev1.RevokePortalSessionRequest{Tenant: o.tenant, Id: o.portalSession})
			}},
		hookwirev1.PortalService_GetPortalSettings_FullMethodName: {access: isoRead,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return portal(c).GetPortalSettings(ctx, &hookwirev1.GetPortalSettingsRequest{Tenant: o.tenant})
			}},
		hookwirev1.PortalService_UpdatePortalSettings_FullMethodName: {access: isoWrite,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return portal(c).UpdatePortalSettings(ctx, &hookwirev1.UpdatePortalSettingsRequest{Tenant: o.tenant,
					Settings: &hookwirev1.PortalSettings{FrameAncestors: []string{"https://app.example.com"}, PrimaryColor: "#336699"}})
			}},
		hookwirev1.PortalService_GetPortalContext_FullMethodName: {portal: true, access: isoPortalOnly,
			call: func(ctx context.Context, c *grpc.ClientConn, _ isoObjects) (proto.Message, error) {
				return portal(c).GetPortalContext(ctx, &hookwirev1.GetPortalContextRequest{})
			}},
		hookwirev1.PortalService_SendTestEvent_FullMethodName: {portal: true, access: isoWrite, uses: []isoKind{kindSub},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return portal(c).SendTestEvent(ctx, &hookwirev1.SendTestEventRequest{Tenant: o.tenant, SubscriptionId: o.sub, EventType: "iso.created"})
			}},

		// --- ClusterService ---
		hookwirev1.ApiKeyService_GetCaller_FullMethodName: {access: isoAnyKey,
			call: func(ctx context.Context, c *grpc.ClientConn, _ isoObjects) (proto.Message, error) {
				return hookwirev1.NewApiKeyServiceClient(c).GetCaller(ctx, &hookwirev1.GetCallerRequest{})
			}},
		hookwirev1.ClusterService_GetClusterStatus_FullMethodName: {access: isoAdminOnly,
			call: func(ctx context.Context, c *grpc.ClientConn, _ isoObjects) (proto.Message, error) {
				return hookwirev1.NewClusterServiceClient(c).GetClusterStatus(ctx, &hookwirev1.GetClusterStatusRequest{})
			}},
		hookwirev1.ClusterService_RemovePeer_FullMethodName: {access: isoAdminOnly, adminCode: codes.NotFound,
			call: func(ctx context.Context, c *grpc.ClientConn, _ isoObjects) (proto.Message, error) {
				return hookwirev1.NewClusterServiceClient(c).RemovePeer(ctx, &hookwirev1.RemovePeerRequest{Id: "no-such-node"})
			}},
		hookwirev1.ClusterService_SaveSnapshot_FullMethodName: {access: isoAdminOnly,
			call: func(ctx context.Context, c *grpc.ClientConn, _ isoObjects) (proto.Message, error) {
				stream, err := hookwirev1.NewClusterServiceClient(c).SaveSnapshot(ctx, &hookwirev1.SaveSnapshotRequest{})
				if err != nil {
					return nil, err
				}
				return stream.Recv() // the first chunk, or the refusal
			}},
		// A body that is not a snapshot: the admin passes authorization
		// and is told so; nothing is restored.
		hookwirev1.ClusterService_RestoreSnapshot_FullMethodName: {access: isoAdminOnly, adminCode: codes.InvalidArgument,
			call: func(ctx context.Context, c *grpc.ClientConn, _ isoObjects) (proto.Message, error) {
				stream, err := hookwirev1.NewClusterServiceClient(c).RestoreSnapshot(ctx)
				if err != nil {
					return nil, err
				}
				_ = stream.Send(&hookwirev1.SnapshotChunk{Data: []byte("not a snapshot")})
				return stream.CloseAndRecv()
			}},

		// --- AuditService ---
		hookwirev1.AuditService_ListAuditEvents_FullMethodName: {access: isoRead,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return hookwirev1.NewAuditServiceClient(c).ListAuditEvents(ctx, &hookwirev1.ListAuditEventsRequest{Tenant: o.tenant})
			}},

		// --- StatsService ---
		hookwirev1.StatsService_GetDeliveryStats_FullMethodName: {access: isoRead, uses: []isoKind{kindSub},
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return hookwirev1.NewStatsServiceClient(c).GetDeliveryStats(ctx, &hookwirev1.GetDeliveryStatsRequest{Tenant: o.tenant, SubscriptionId: o.sub})
			}},

		// --- AgentAdminService ---
		hookwirev1.AgentAdminService_ListAgents_FullMethodName: {access: isoAdminOnly,
			call: func(ctx context.Context, c *grpc.ClientConn, _ isoObjects) (proto.Message, error) {
				return agents(c).ListAgents(ctx, &hookwirev1.ListAgentsRequest{})
			}},
		// No agent is connected: the admin passes authorization and learns
		// that the agent is not there.
		hookwirev1.AgentAdminService_DrainAgent_FullMethodName: {access: isoAdminOnly, adminCode: codes.NotFound,
			call: func(ctx context.Context, c *grpc.ClientConn, _ isoObjects) (proto.Message, error) {
				return agents(c).DrainAgent(ctx, &hookwirev1.DrainAgentRequest{Id: "no-such-agent"})
			}},
		hookwirev1.AgentAdminService_CreateJoinToken_FullMethodName: {access: isoAdminOnly,
			call: func(ctx context.Context, c *grpc.ClientConn, _ isoObjects) (proto.Message, error) {
				return agents(c).CreateJoinToken(ctx, &hookwirev1.CreateJoinTokenRequest{Name: "matrix"})
			}},
		hookwirev1.AgentAdminService_ListJoinTokens_FullMethodName: {access: isoAdminOnly,
			call: func(ctx context.Context, c *grpc.ClientConn, _ isoObjects) (proto.Message, error) {
				return agents(c).ListJoinTokens(ctx, &hookwirev1.ListJoinTokensRequest{})
			}},
		hookwirev1.AgentAdminService_RevokeJoinToken_FullMethodName: {access: isoAdminOnly, fresh: freshJoinToken,
			call: func(ctx context.Context, c *grpc.ClientConn, o isoObjects) (proto.Message, error) {
				return agents(c).RevokeJoinToken(ctx, &hookwirev1.RevokeJoinTokenRequest{Id: o.joinToken})
			}},

		// --- AgentService ---
		hookwirev1.AgentService_Connect_FullMethodName: {access: isoAgent,
			call: func(ctx context.Context, c *grpc.ClientConn, _ isoObjects) (proto.Message, error) {
				ctx, cancel := context.WithCancel(ctx)
				defer cancel() // closes the stream: the agent leaves at once
				stream, err := hookwirev1.NewAgentServiceClient(c).Connect(ctx)
				if err != nil {
					return nil, err
				}
				// A transport nothing uses, so no fixture delivery is
				// assigned to this agent.
				_ = stream.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Hello{Hello: &hookwirev1.Hello{
					AgentId: e.name("matrix-agent"), MaxInFlight: 1,
					Transports: []*hookwirev1.TransportInfo{{Name: "matrix-none", ApiVersions: []uint32{1}}},
				}}})
				m, err := stream.Recv()
				if err != nil {
					return nil, err
				}
				if m.GetWelcome() == nil {
					return nil, fmt.Errorf("want Welcome, got %v", m)
				}
				return m, nil
			}},
	}
}

// tailOpens opens a tail and reports whether the server accepted it: an
// accepted tail sends its headers at once and then waits for events (nil,
// nil here); a refused one ends with the refusal.
func tailOpens(ctx context.Context, c *grpc.ClientConn, req *hookwirev1.TailDeliveriesRequest) (proto.Message, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := hookwirev1.NewDeliveryServiceClient(c).TailDeliveries(ctx, req)
	if err != nil {
		return nil, err
	}
	// Header returns when the server sent headers (accepted) or ended the
	// call (refused: a trailers-only answer carrying the status).
	if _, err := stream.Header(); err != nil {
		return nil, err
	}
	cancel()
	_, err = stream.Recv()
	if status.Code(err) == codes.Canceled {
		return nil, nil // accepted; we hung up
	}
	return nil, err
}

// publicMethods lists every RPC of every service in package hookwire.v1,
// from the generated descriptors.
func publicMethods() []string {
	var out []string
	protoregistry.GlobalFiles.RangeFilesByPackage("hookwire.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				out = append(out, fmt.Sprintf("/%s/%s", sd.FullName(), sd.Methods().Get(j).Name()))
			}
		}
		return true
	})
	slices.Sort(out)
	return out
}

func TestIsolationMatrixCoversEveryRPC(t *testing.T) {
	methods := publicMethods()
	if len(methods) < 30 {
		t.Fatalf("found only %d RPCs in hookwire.v1: %v", len(methods), methods)
	}
	rows := isoMatrix(&isoEnv{t: t})
	var missing, stale []string
	for _, m := range methods {
		if _, ok := rows[m]; !ok {
			missing = append(missing, m)
		}
	}
	for m := range rows {
		if !slices.Contains(methods, m) {
			stale = append(stale, m)
		}
	}
	slices.Sort(stale)
	if len(missing) > 0 {
		t.Errorf("these RPCs have no row in isoMatrix (controlplane/isolation_test.go); add one saying who may call them:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(stale) > 0 {
		t.Errorf("isoMatrix has rows for RPCs that no longer exist: %v", stale)
	}
}

// normalize replaces the names in msg with placeholders, so errors about
// different ids can be compared.
func normalize(msg string, names map[string]string) string {
	for from, to := range names {
		if from != "" {
			msg = strings.ReplaceAll(msg, from, to)
		}
	}
	return msg
}

// assertNothingOf fails if resp mentions any of o's ids or its tenant.
func assertNothingOf(t *testing.T, what string, resp proto.Message, o isoObjects) {
	t.Helper()
	if resp == nil {
		return
	}
	text, err := protojson.Marshal(resp)
	if err != nil {
		t.Fatalf("%s: marshal response: %v", what, err)
	}
	for _, s := range []string{`"` + o.tenant + `"`, o.sub, o.delivery, o.event, o.op, o.apiKey, `\"secret\":\"` + o.tenant} {
		if s != "" && strings.Contains(string(text), s) {
			t.Errorf("%s: response leaks %q of tenant %s: %s", what, s, o.tenant, text)
		}
	}
}

func TestIsolationMatrix(t *testing.T) {
	c := &clock{}
	h := start(t, t.TempDir(), controlplane.Config{Now: c.now})
	e := &isoEnv{t: t, h: h, clock: c}

	acme := e.setupTenant("acme")
	globex := e.setupTenant("globex")

	tenantAdmin := hookwirev1.ApiKeyScope_API_KEY_SCOPE_TENANT_ADMIN
	e.keys[callerOwn] = e.newKey("acme", tenantAdmin, nil).GetKey()
	e.keys[callerOther] = e.newKey("globex", tenantAdmin, nil).GetKey()
	e.keys[callerAdmin] = adminKey
	e.keys[callerPublish] = e.newKey("acme", hookwirev1.ApiKeyScope_API_KEY_SCOPE_PUBLISH, nil).GetKey()
	e.keys[callerReadOnly] = e.newKey("acme", hookwirev1.ApiKeyScope_API_KEY_SCOPE_READ_ONLY, nil).GetKey()
	revoked := e.newKey("acme", tenantAdmin, nil)
	if _, err := hookwirev1.NewApiKeyServiceClient(h.conn).RevokeApiKey(e.adminCtx(), &hookwirev1.RevokeApiKeyRequest{Tenant: "acme", Id: revoked.GetId()}); err != nil {
		t.Fatal(err)
	}
	e.keys[callerRevoked] = revoked.GetKey()
	// Expires in an hour on the server's clock; then the clock moves two.
	e.keys[callerExpired] = e.newKey("acme", tenantAdmin, timestamppb.New(c.now().Add(time.Hour))).GetKey()
	e.keys[callerPortalExpired] = e.newPortalSession("acme", time.Hour).GetToken()
	revokedPortal := e.newPortalSession("acme", 0)
	if _, err := hookwirev1.NewPortalServiceClient(h.conn).RevokePortalSession(e.adminCtx(), &hookwirev1.RevokePortalSessionRequest{Tenant: "acme", Id: revokedPortal.GetId()}); err != nil {
		t.Fatal(err)
	}
	e.keys[callerPortalRevoked] = revokedPortal.GetToken()
	c.advance(2 * time.Hour)
	e.keys[callerPortal] = e.newPortalSession("acme", 24*time.Hour).GetToken()

	// The operations must be done so WatchOperation answers at once.
	waitOpDone(t, h, acme)
	waitOpDone(t, h, globex)

	rows := isoMatrix(e)
	methods := make([]string, 0, len(rows))
	for m := range rows {
		methods = append(methods, m)
	}
	slices.Sort(methods)

	for _, method := range methods {
		row := rows[method]
		t.Run(strings.TrimPrefix(method, "/hookwire.v1."), func(t *testing.T) {
			for caller := isoCaller(0); caller < numCallers; caller++ {
				objs := acme
				if row.fresh != nil {
					objs = row.fresh(e, "acme")
				}
				ctx, cancel := e.ctx(e.keys[caller])
				resp, err := row.call(ctx, h.conn, objs)
				cancel()
				want := row.expected(caller)
				if got := status.Code(err); got != want {
					t.Errorf("%s: got %v (%v), want %v", caller, got, err, want)
					continue
				}
				// An isoAnyKey answer describes the caller's own key, which for
				// callerOther is globex's.
				if caller != callerAdmin && caller != callerOwn && (row.access != isoAnyKey || caller != callerOther) {
					assertNothingOf(t, caller.String(), resp, globex)
				}
				if caller == callerOther || caller == callerNone || caller == callerRevoked || caller == callerExpired || caller == callerPortalRevoked || caller == callerPortalExpired {
					assertNothingOf(t, caller.String(), resp, acme)
				}
				if caller != callerOther || want != codes.NotFound {
					continue
				}
				// Another tenant's tenant answers exactly like one that
				// does not exist.
				ghost := objs
				ghost.tenant = "nosuch"
				ctx, cancel = e.ctx(e.keys[caller])
				_, gerr := row.call(ctx, h.conn, ghost)
				cancel()
				got := normalize(status.Convert(err).Message(), map[string]string{"acme": "T"})
				missing := normalize(status.Convert(gerr).Message(), map[string]string{"nosuch": "T"})
				if status.Code(gerr) != codes.NotFound || got != missing {
					t.Errorf("other tenant's tenant: %v %q; missing tenant: %v %q (must be the same)", status.Code(err), got, status.Code(gerr), missing)
				}
			}

			// Another tenant's object ids through the caller's own tenant
			// answer exactly like random ids, and return nothing of theirs.
			for _, kind := range row.uses {
				own := globex
				if row.fresh != nil {
					own = row.fresh(e, "globex")
				}
				foreign := own.with(kind, acme.get(kind))
				random := own.with(kind, randomID(kind))
				ctx, cancel := e.ctx(e.keys[callerOther])
				fresp, ferr := row.call(ctx, h.conn, foreign)
				cancel()
				ctx, cancel = e.ctx(e.keys[callerOther])
				_, rerr := row.call(ctx, h.conn, random)
				cancel()
				fmsg := normalize(status.Convert(ferr).Message(), map[string]string{acme.get(kind): "ID"})
				rmsg := normalize(status.Convert(rerr).Message(), map[string]string{random.get(kind): "ID"})
				if status.Code(ferr) != status.Code(rerr) || fmsg != rmsg {
					t.Errorf("another tenant's %s id: %v %q; random id: %v %q (must be the same)", kind, status.Code(ferr), fmsg, status.Code(rerr), rmsg)
				}
				assertNothingOf(t, "another tenant's "+kind.String()+" id", fresp, acme)
			}
		})
	}

	// The admin's view was not narrowed by any of this: acme's things are
	// all still there and untouched by globex.
	sub, err := hookwirev1.NewSubscriptionServiceClient(h.conn).GetSubscription(e.adminCtx(), &hookwirev1.GetSubscriptionRequest{Tenant: "acme", Id: acme.sub})
	if err != nil || sub.GetTenant() != "acme" {
		t.Fatalf("acme's subscription after the matrix: %v %v", sub, err)
	}
	d, err := hookwirev1.NewDeliveryServiceClient(h.conn).GetDelivery(e.adminCtx(), &hookwirev1.GetDeliveryRequest{Tenant: "acme", Id: acme.delivery})
	if err != nil || d.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING {
		t.Fatalf("acme's delivery after the matrix: %v %v", d, err)
	}
}

// randomID is a well-formed id of kind that names nothing.
func randomID(k isoKind) string {
	id := ids.New(time.Now())
	switch k {
	case kindSub:
		return ids.Format(ids.Subscription, id)
	case kindDelivery:
		return ids.Format(ids.Delivery, id)
	case kindEvent:
		return ids.Format(ids.Event, id)
	case kindOp:
		return "op_" + id.String()
	case kindPortalSession:
		return "hwp_" + strings.ToLower(id.String()[:16])
	default:
		return "hwk_" + strings.ToLower(id.String()[:16])
	}
}

func waitOpDone(t *testing.T, h *harness, o isoObjects) {
	t.Helper()
	ctx, cancel := context.WithTimeout(authed(context.Background(), adminKey), 10*time.Second)
	defer cancel()
	stream, err := hookwirev1.NewDeliveryServiceClient(h.conn).WatchOperation(ctx, &hookwirev1.WatchOperationRequest{Tenant: o.tenant, Id: o.op})
	if err != nil {
		t.Fatal(err)
	}
	for {
		op, err := stream.Recv()
		if err != nil {
			t.Fatalf("watch %s: %v", o.op, err)
		}
		if op.GetDone() {
			return
		}
	}
}

// TestTenantKeyCannotMintAdminKey: a tenant-admin key asking for an admin
// key is refused, and no key it can get acts outside its tenant.
func TestTenantKeyCannotMintAdminKey(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	h.setup("acme")
	keys := hookwirev1.NewApiKeyServiceClient(h.conn)
	k, err := keys.CreateApiKey(h.ctx(), &hookwirev1.CreateApiKeyRequest{Tenant: "acme", Name: "ta"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = keys.CreateApiKey(authedCtx(t, k.GetKey()), &hookwirev1.CreateApiKeyRequest{Tenant: "acme", Name: "escalate", Scope: hookwirev1.ApiKeyScope_API_KEY_SCOPE_ADMIN})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "scope") {
		t.Fatalf("tenant key asking for an admin key: %v, want InvalidArgument naming scope", err)
	}
	list, err := keys.ListApiKeys(h.ctx(), &hookwirev1.ListApiKeysRequest{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range list.GetApiKeys() {
		if x.GetScope() == hookwirev1.ApiKeyScope_API_KEY_SCOPE_ADMIN || x.GetKey() != "" {
			t.Errorf("listed key %v: no admin scope and no key value may appear", x)
		}
	}
}

// TestIsolationOverREST checks a subset of the matrix through the REST
// gateway: the HTTP statuses follow the gRPC codes, and another tenant's
// things answer like missing ones, body included.
func TestIsolationOverREST(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	acme := h.setup("acme")
	h.setup("globex")
	keys := hookwirev1.NewApiKeyServiceClient(h.conn)
	key := func(tenant string, scope hookwirev1.ApiKeyScope) string {
		k, err := keys.CreateApiKey(h.ctx(), &hookwirev1.CreateApiKeyRequest{Tenant: tenant, Name: "rest", Scope: scope})
		if err != nil {
			t.Fatal(err)
		}
		return k.GetKey()
	}
	own := key("acme", hookwirev1.ApiKeyScope_API_KEY_SCOPE_TENANT_ADMIN)
	other := key("globex", hookwirev1.ApiKeyScope_API_KEY_SCOPE_TENANT_ADMIN)
	publish := key("acme", hookwirev1.ApiKeyScope_API_KEY_SCOPE_PUBLISH)
	read := key("acme", hookwirev1.ApiKeyScope_API_KEY_SCOPE_READ_ONLY)

	type errBody struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	cases := []struct {
		name, method, path, key, body string
		want                          int
	}{
		{"own get", "GET", "/v1/tenants/acme/subscriptions/" + acme.GetId(), own, "", http.StatusOK},
		{"read-only get", "GET", "/v1/tenants/acme/subscriptions/" + acme.GetId(), read, "", http.StatusOK},
		{"publish-only get", "GET", "/v1/tenants/acme/subscriptions/" + acme.GetId(), publish, "", http.StatusForbidden},
		{"no key", "GET", "/v1/tenants/acme/subscriptions/" + acme.GetId(), "", "", http.StatusUnauthorized},
		{"other tenant", "GET", "/v1/tenants/acme/subscriptions/" + acme.GetId(), other, "", http.StatusNotFound},
		{"other tenant list", "GET", "/v1/tenants/acme/subscriptions", other, "", http.StatusNotFound},
		{"read-only publish", "POST", "/v1/tenants/acme/events", read, `{"type":"order.created","payload":{}}`, http.StatusForbidden},
		{"publish-only publish", "POST", "/v1/tenants/acme/events", publish, `{"type":"order.created","payload":{}}`, http.StatusOK},
		{"other tenant publish", "POST", "/v1/tenants/acme/events", other, `{"type":"order.created","payload":{}}`, http.StatusNotFound},
		{"tenant key, admin RPC", "GET", "/v1/tenants", own, "", http.StatusForbidden},
		{"tenant key, agents", "GET", "/v1/agents", own, "", http.StatusForbidden},
		{"admin get", "GET", "/v1/tenants/acme/subscriptions/" + acme.GetId(), adminKey, "", http.StatusOK},
	}
	for _, tc := range cases {
		var out map[string]any
		if code := h.rest(tc.method, tc.path, tc.key, "application/json", []byte(tc.body), &out); code != tc.want {
			t.Errorf("%s: %s %s: HTTP %d %v, want %d", tc.name, tc.method, tc.path, code, out, tc.want)
		}
	}

	// Same answer, byte for byte apart from the id, for another tenant's
	// subscription through the caller's own tenant and for a random id.
	var foreign, random errBody
	fc := h.rest("GET", "/v1/tenants/globex/subscriptions/"+acme.GetId(), other, "", nil, &foreign)
	rid := randomID(kindSub)
	rc := h.rest("GET", "/v1/tenants/globex/subscriptions/"+rid, other, "", nil, &random)
	if fc != http.StatusNotFound || rc != fc || foreign.Code != random.Code ||
		strings.ReplaceAll(foreign.Message, acme.GetId(), "ID") != strings.ReplaceAll(random.Message, rid, "ID") {
		t.Errorf("foreign id: %d %+v; random id: %d %+v (must be the same)", fc, foreign, rc, random)
	}
	// And for another tenant's tenant and a tenant that does not exist.
	var theirs, none errBody
	tc := h.rest("GET", "/v1/tenants/acme/deliveries", other, "", nil, &theirs)
	nc := h.rest("GET", "/v1/tenants/nosuch/deliveries", other, "", nil, &none)
	if tc != http.StatusNotFound || nc != tc || strings.ReplaceAll(theirs.Message, "acme", "T") != strings.ReplaceAll(none.Message, "nosuch", "T") {
		t.Errorf("other tenant: %d %+v; missing tenant: %d %+v (must be the same)", tc, theirs, nc, none)
	}
	// Listing globex's own deliveries filtered by acme's subscription
	// returns none of acme's.
	var list struct {
		Deliveries []map[string]any `json:"deliveries"`
	}
	if code := h.rest("GET", "/v1/tenants/globex/deliveries?subscription_id="+acme.GetId(), other, "", nil, &list); code != http.StatusOK || len(list.Deliveries) != 0 {
		t.Errorf("globex listing by acme's subscription: HTTP %d %v", code, list.Deliveries)
	}
}
