package api

import (
	"context"
	"crypto/subtle"
	"errors"

	"github.com/hookwire/hookwire/controlplane/internal/selector"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Join token format: "hwj_" + 16-char id + "_" + 32-char secret. The id
// part names the token; only SHA-256 of the whole token is stored.
const joinTokenPrefix = "hwj_"

// connectMethod is the only method a join token authenticates.
const connectMethod = "/hookwire.v1.AgentService/Connect"

// authenticateJoin resolves a join token; it is only accepted by
// AgentService.Connect.
func (a *authenticator) authenticateJoin(ctx context.Context, method, token string) (context.Context, error) {
	if method != connectMethod {
		return nil, status.Error(codes.Unauthenticated, "join tokens only authenticate agents (AgentService.Connect); use an API key")
	}
	id, ok := credentialID(joinTokenPrefix, token)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "malformed join token: expected hwj_<id>_<secret> as issued by CreateJoinToken")
	}
	t, hash, err := a.store.GetJoinToken(id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		// Not a verdict on the token: an agent would take Unauthenticated
		// as final and stop, so tell it to retry.
		return nil, status.Errorf(codes.Unavailable, "cannot check the join token now: %v; retry", err)
	}
	if err != nil || subtle.ConstantTimeCompare(hash, hashKey(token)) != 1 {
		return nil, status.Error(codes.Unauthenticated, "invalid join token")
	}
	if t.GetRevoked() {
		return nil, status.Errorf(codes.Unauthenticated, "join token %s has been revoked; create a new one", id)
	}
	if exp := t.GetExpireTime(); exp != nil && !a.now().Before(exp.AsTime()) {
		return nil, errJoinTokenExpired(t)
	}
	return withPrincipal(ctx, &principal{keyID: id, joinToken: t}), nil
}

// errJoinTokenExpired is what an agent gets for a join token past its expiry,
// at connect or when its session ends.
func errJoinTokenExpired(t *hookwirev1.JoinToken) error {
	return status.Errorf(codes.Unauthenticated, "join token %s expired at %s; create a new one", t.GetId(), t.GetExpireTime().AsTime().UTC().Format("2006-01-02T15:04:05Z"))
}

// agentAdmin implements AgentAdminService.
type agentAdmin struct {
	hookwirev1.UnimplementedAgentAdminServiceServer
	*Services
}

// RegisterAgentAdmin adds AgentAdminService to g.
func (s *Services) RegisterAgentAdmin(g grpc.ServiceRegistrar) {
	hookwirev1.RegisterAgentAdminServiceServer(g, s.agentAdmin)
}

func (a *agentAdmin) ListAgents(ctx context.Context, _ *hookwirev1.ListAgentsRequest) (*hookwirev1.ListAgentsResponse, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	d, err := a.leading()
	if err != nil {
		return nil, err
	}
	resp := &hookwirev1.ListAgentsResponse{}
	for _, ag := range d.Agents() {
		state := hookwirev1.AgentState_AGENT_STATE_CONNECTED
		switch {
		case !ag.Connected:
			state = hookwirev1.AgentState_AGENT_STATE_LOST
		case ag.Draining:
			state = hookwirev1.AgentState_AGENT_STATE_DRAINING
		}
		resp.Agents = append(resp.Agents, &hookwirev1.Agent{
			Id: ag.ID, Labels: ag.Labels, Transports: ag.Transports, Version: ag.Version,
			InFlight: int32(ag.InFlight), Credit: int32(ag.Credit), State: state,
			LastSeenTime: timestamppb.New(ag.LastSeen), ConnectTime: timestamppb.New(ag.ConnectAt),
			JoinTokenId: ag.JoinToken,
		})
	}
	return resp, nil
}

func (a *agentAdmin) DrainAgent(ctx context.Context, req *hookwirev1.DrainAgentRequest) (*hookwirev1.DrainAgentResponse, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	reason := req.GetReason()
	if reason == "" {
		reason = "drained by an operator"
	}
	d, err := a.leading()
	if err != nil {
		return nil, err
	}
	if !d.Drain(req.GetId(), reason) {
		return nil, status.Errorf(codes.NotFound, "agent %q is not connected (ListAgents shows the connected agents)", req.GetId())
	}
	a.auditAfter(ctx, &auditEntry{tenant: store.AuditGlobal, action: auditAgentDrain, resource: agentResource(req.GetId()), details: map[string]any{"reason": reason}})
	return &hookwirev1.DrainAgentResponse{}, nil
}

func (a *agentAdmin) CreateJoinToken(ctx context.Context, req *hookwirev1.CreateJoinTokenRequest) (*hookwirev1.JoinToken, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	now := a.cfg.Now()
	if exp := req.GetExpireTime(); exp != nil && !exp.AsTime().After(now) {
		return nil, status.Error(codes.InvalidArgument, "expire_time is in the past; give a future time or none")
	}
	for k, v := range req.GetLabels() {
		// A label requirement must be expressible as a selector term.
		if _, err := selector.Parse(k + "=" + v); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "labels: %q=%q is not a valid label (keys: letters, digits, '.', '_', '-', '/'; values: letters, digits, '.', '_', '-')", k, v)
		}
	}
	id, token, err := newCredential(joinTokenPrefix)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "generate join token: %v", err)
	}
	t := &hookwirev1.JoinToken{Id: id, Name: req.GetName(), Labels: req.GetLabels(), CreateTime: timestamppb.New(now), ExpireTime: req.GetExpireTime()}
	audit, err := a.auditEvent(ctx, &auditEntry{tenant: store.AuditGlobal, action: auditJoinTokenCreate, resource: joinTokenResource(id), after: t})
	if err != nil {
		return nil, err
	}
	if err := a.cfg.Store.PutJoinToken(ctx, t, hashKey(token), audit); err != nil {
		return nil, storeError(err, "join token")
	}
	out := proto.Clone(t).(*hookwirev1.JoinToken)
	out.Token = token
	return out, nil
}

func (a *agentAdmin) ListJoinTokens(ctx context.Context, _ *hookwirev1.ListJoinTokensRequest) (*hookwirev1.ListJoinTokensResponse, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	list, err := a.cfg.Store.ListJoinTokens()
	if err != nil {
		return nil, storeError(err, "join tokens")
	}
	return &hookwirev1.ListJoinTokensResponse{JoinTokens: list}, nil
}

func (a *agentAdmin) RevokeJoinToken(ctx context.Context, req *hookwirev1.RevokeJoinTokenRequest) (*hookwirev1.JoinToken, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	// The snapshot is read before the write; a revoke changes only revoked.
	var audit *hookwirev1.AuditEvent
	if before, _, err := a.cfg.Store.GetJoinToken(req.GetId()); err == nil {
		after := clone(before)
		after.Revoked = true
		if audit, err = a.auditEvent(ctx, &auditEntry{tenant: store.AuditGlobal, action: auditJoinTokenRevoke, resource: joinTokenResource(req.GetId()), before: before, after: after}); err != nil {
			return nil, err
		}
	}
	t, err := a.cfg.Store.RevokeJoinToken(ctx, req.GetId(), audit)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(codes.NotFound, "join token %q not found (ListJoinTokens shows the ids)", req.GetId())
		}
		return nil, storeError(err, "join token "+quote(req.GetId()))
	}
	if d := a.disp.Load(); d == nil {
		// Not leading: no agent is connected here.
	} else if n := d.Disconnect(t.GetId()); n > 0 {
		a.cfg.Logger.Info("join token revoked; disconnected its agents", "join_token", t.GetId(), "streams", n)
	}
	return t, nil
}
