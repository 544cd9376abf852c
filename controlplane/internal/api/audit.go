package api

// The audit log: every configuration change is recorded with who made it
// (API key id and scope, never the key), what it was, when, and the
// resource before and after with its secret values removed. Where the
// change is one store write, the record is written in the same
// transaction: the event is built before the write and travels in its
// store command; otherwise it is recorded right after the change.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Audit actions.
const (
	auditSubscriptionCreate  = "subscription.create"
	auditSubscriptionUpdate  = "subscription.update"
	auditSubscriptionDelete  = "subscription.delete"
	auditSubscriptionPause   = "subscription.pause"
	auditSubscriptionResume  = "subscription.resume"
	auditSubscriptionDisable = "subscription.disable"
	auditSubscriptionRotate  = "subscription.rotate_secret"
	auditAPIKeyCreate        = "api_key.create"
	auditAPIKeyRevoke        = "api_key.revoke"
	auditTenantCreate        = "tenant.create"
	auditTenantDelete        = "tenant.delete"
	auditJoinTokenCreate     = "join_token.create"
	auditJoinTokenRevoke     = "join_token.revoke"
	auditAgentDrain          = "agent.drain"
	auditDeliveryRetry       = "delivery.retry"
	auditDeliveryCancel      = "delivery.cancel"
	auditDeliveryResend      = "delivery.resend"
	auditDeliveriesRecover   = "deliveries.recover"
)

// auditScan bounds how many audit records one ListAuditEvents call
// examines, so a filter that matches little cannot make a call run long.
const auditScan = 10000

// Resource names of audit events.
func tenantResource(tenant string) string { return "tenants/" + tenant }
func subscriptionResource(tenant, id string) string {
	return tenantResource(tenant) + "/subscriptions/" + id
}
func apiKeyResource(tenant, id string) string   { return tenantResource(tenant) + "/api-keys/" + id }
func deliveryResource(tenant, id string) string { return tenantResource(tenant) + "/deliveries/" + id }
func joinTokenResource(id string) string        { return "join-tokens/" + id }
func agentResource(id string) string            { return "agents/" + id }

// auditEntry is one change to record.
type auditEntry struct {
	// tenant is the tenant whose resource changed, or store.AuditGlobal.
	tenant, action, resource string
	before, after            proto.Message
	details                  map[string]any
}

// noAudit is the action given to a shared change path
// (changeSubscription) for a change that is bookkeeping, such as
// failing_since, rather than a configuration change: it is not recorded.
const noAudit = ""

// auditActor is who is calling: an API key (by id) or Hookwire itself.
func auditActor(ctx context.Context) *hookwirev1.AuditActor {
	p := principalFrom(ctx)
	if p == nil {
		return &hookwirev1.AuditActor{System: true}
	}
	return &hookwirev1.AuditActor{ApiKeyId: p.keyID, Scope: p.scope}
}

// auditEvent builds the record of e made by the caller in ctx.
func (s *Services) auditEvent(ctx context.Context, e *auditEntry) (*hookwirev1.AuditEvent, error) {
	now := s.cfg.Now()
	ev := &hookwirev1.AuditEvent{
		Id: ids.Format(store.AuditIDPrefix, ids.New(now)), Tenant: e.tenant, Time: timestamppb.New(now),
		Actor: auditActor(ctx), Action: e.action, Resource: e.resource,
	}
	var err error
	if ev.Before, err = auditSnapshot(e.before); err != nil {
		return nil, err
	}
	if ev.After, err = auditSnapshot(e.after); err != nil {
		return nil, err
	}
	if len(e.details) > 0 {
		if ev.Details, err = structpb.NewStruct(e.details); err != nil {
			return nil, fmt.Errorf("audit details of %s: %w", e.action, err)
		}
	}
	return ev, nil
}

// auditDeleted builds the record of a deletion from the record read
// before it; the deletion's command carries it and is refused if the
// record changed since (the before-image is exactly what was deleted).
func (s *Services) auditDeleted(ctx context.Context, tenant, action, resource string, before proto.Message) (*hookwirev1.AuditEvent, error) {
	return s.auditEvent(ctx, &auditEntry{tenant: tenant, action: action, resource: resource, before: before})
}

// auditAfter records a change that made no store write of its own (or
// whose write could not carry the record). The change has happened, so a
// failure to record it is logged rather than returned.
func (s *Services) auditAfter(ctx context.Context, e *auditEntry) {
	ev, err := s.auditEvent(ctx, e)
	if err == nil {
		err = s.cfg.Store.AppendAudit(context.WithoutCancel(ctx), ev)
	}
	if err != nil {
		s.cfg.Logger.Error("record audit event", "action", e.action, "resource", e.resource, "err", err)
	}
}

// secretFields name the fields never recorded in an audit snapshot, in
// any message: the one-time values of signing secrets, API keys and join
// tokens, and stored hashes and sealed keys.
var secretFields = map[protoreflect.Name]bool{
	"signing_secret": true, "key": true, "token": true, "hash": true,
	"sealed_key": true, "signing_keys": true, "sealed_value": true, "sealed_headers": true, "sealed_config": true,
}

// maskedMaps name the map fields whose values are secrets but whose keys
// are not: a snapshot keeps the keys with catalog.RedactedValue. Target
// header values may carry credentials (they are stored masked already).
var maskedMaps = map[protoreflect.FullName]bool{"hookwire.v1.Target.headers": true}

// redact clears the secret fields of m and of every message inside it.
func redact(m protoreflect.Message) {
	var secret []protoreflect.FieldDescriptor
	var masked []protoreflect.Map
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case secretFields[fd.Name()]:
			secret = append(secret, fd)
		case maskedMaps[fd.FullName()]:
			masked = append(masked, v.Map())
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					redact(mv.Message())
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				l := v.List()
				for i := range l.Len() {
					redact(l.Get(i).Message())
				}
			}
		case fd.Message() != nil:
			redact(v.Message())
		}
		return true
	})
	for _, fd := range secret {
		m.Clear(fd)
	}
	for _, mp := range masked {
		var keys []protoreflect.MapKey
		mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
			keys = append(keys, k)
			return true
		})
		for _, k := range keys {
			mp.Set(k, protoreflect.ValueOfString(catalog.RedactedValue))
		}
	}
}

var auditJSON = protojson.MarshalOptions{UseProtoNames: true}

// auditSnapshot is m as its API JSON, secret values removed.
func auditSnapshot(m proto.Message) (*structpb.Struct, error) {
	if m == nil || !m.ProtoReflect().IsValid() {
		return nil, nil
	}
	c := proto.Clone(m)
	redact(c.ProtoReflect())
	data, err := auditJSON.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("audit snapshot of %T: %w", m, err)
	}
	out := &structpb.Struct{}
	if err := protojson.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("audit snapshot of %T: %w", m, err)
	}
	return out, nil
}

// clone copies a message for a before/after snapshot taken inside a write
// (the write goes on changing the original).
func clone[T proto.Message](m T) T { return proto.Clone(m).(T) }

// --- AuditService ---

// auditService implements AuditService.
type auditService struct {
	hookwirev1.UnimplementedAuditServiceServer
	*Services
}

// RegisterAudit adds AuditService to g.
func (s *Services) RegisterAudit(g grpc.ServiceRegistrar) {
	hookwirev1.RegisterAuditServiceServer(g, s.audit)
}

func (a *auditService) ListAuditEvents(ctx context.Context, req *hookwirev1.ListAuditEventsRequest) (*hookwirev1.ListAuditEventsResponse, error) {
	tenant := req.GetTenant()
	all := tenant == store.AuditGlobal
	if all {
		if err := requireAdmin(ctx); err != nil {
			return nil, status.Error(status.Code(err), `the audit log of every tenant (tenant "-") needs the admin key; list your own tenant's with its id`)
		}
	} else if err := authorize(ctx, tenant, accessRead); err != nil {
		return nil, err
	} else if _, err := a.cfg.Store.GetTenant(tenant); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(codes.NotFound, `tenant %q not found (the admin key lists every tenant's audit records, deleted tenants' included, with tenant "-")`, tenant)
		}
		return nil, storeError(err, fmt.Sprintf("tenant %q", tenant))
	}
	f := store.AuditFilter{Action: req.GetAction(), Resource: strings.TrimSuffix(req.GetResource(), "/")}
	if strings.Contains(strings.TrimSuffix(f.Action, ".*"), "*") || f.Action == ".*" {
		return nil, status.Errorf(codes.InvalidArgument, "action %q: give an action such as \"subscription.update\", or \"subscription.*\" for every action on subscriptions", f.Action)
	}
	var err error
	if f.Start, f.End, err = timeRange(req.GetStartTime(), req.GetEndTime()); err != nil {
		return nil, err
	}
	before, err := pageBefore(req.GetPageToken(), store.AuditIDPrefix)
	if err != nil {
		return nil, err
	}
	list, next, err := a.cfg.Store.ListAudit(tenant, all, f, before, pageSize(req.GetPageSize()), auditScan)
	if err != nil {
		return nil, storeError(err, "audit events")
	}
	resp := &hookwirev1.ListAuditEventsResponse{AuditEvents: list}
	if next != nil {
		resp.NextPageToken = ids.Format(store.AuditIDPrefix, *next)
	}
	return resp, nil
}
