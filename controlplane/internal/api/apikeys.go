package api

// ApiKeyService: a tenant's API keys. Only the key's hash is stored; its
// value is shown once, in the answer that creates it (auth.go).

import (
	"context"

	"github.com/hookwire/hookwire/controlplane/internal/store"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// apiKeyService implements ApiKeyService.
type apiKeyService struct {
	hookwirev1.UnimplementedApiKeyServiceServer
	*Services
}

func (s *apiKeyService) CreateApiKey(ctx context.Context, req *hookwirev1.CreateApiKeyRequest) (*hookwirev1.ApiKey, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	if _, err := s.cfg.Store.GetTenant(req.GetTenant()); err != nil {
		return nil, storeError(err, "tenant "+quote(req.GetTenant()))
	}
	if exp := req.GetExpireTime(); exp != nil && !exp.AsTime().After(s.cfg.Now()) {
		return nil, status.Error(codes.InvalidArgument, "expire_time is in the past; leave it unset for a key that never expires")
	}
	scope := req.GetScope()
	if scope == hookwirev1.ApiKeyScope_API_KEY_SCOPE_UNSPECIFIED {
		scope = hookwirev1.ApiKeyScope_API_KEY_SCOPE_TENANT_ADMIN
	}
	id, key, err := newKey()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "generate key: %v", err)
	}
	k := &hookwirev1.ApiKey{Id: id, Tenant: req.GetTenant(), Name: req.GetName(), Scope: scope, CreateTime: timestamppb.New(s.cfg.Now()), ExpireTime: req.GetExpireTime()}
	audit, err := s.auditEvent(ctx, &auditEntry{tenant: req.GetTenant(), action: auditAPIKeyCreate, resource: apiKeyResource(req.GetTenant(), id), after: k})
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.PutAPIKey(ctx, &storev1.ApiKeyRecord{ApiKey: k, Hash: hashKey(key)}, audit); err != nil {
		return nil, storeError(err, "API key")
	}
	out := proto.Clone(k).(*hookwirev1.ApiKey)
	out.Key = key
	return out, nil
}

func (s *apiKeyService) ListApiKeys(ctx context.Context, req *hookwirev1.ListApiKeysRequest) (*hookwirev1.ListApiKeysResponse, error) {
	if err := s.authorizeListing(ctx, req.GetTenant()); err != nil {
		return nil, err
	}
	recs, err := s.cfg.Store.ListAPIKeys(func(r *storev1.ApiKeyRecord) bool { return r.GetApiKey().GetTenant() == req.GetTenant() })
	if err != nil {
		return nil, storeError(err, "API keys")
	}
	resp := &hookwirev1.ListApiKeysResponse{}
	for _, r := range recs {
		resp.ApiKeys = append(resp.ApiKeys, r.GetApiKey())
	}
	return resp, nil
}

func (s *apiKeyService) GetCaller(ctx context.Context, _ *hookwirev1.GetCallerRequest) (*hookwirev1.Caller, error) {
	p := principalFrom(ctx)
	if p == nil || p.joinToken != nil {
		return nil, status.Error(codes.Unauthenticated, "missing API key: send \"Authorization: Bearer <key>\"")
	}
	return &hookwirev1.Caller{ApiKeyId: p.keyID, Tenant: p.tenant, Scope: p.scope}, nil
}

func (s *apiKeyService) RevokeApiKey(ctx context.Context, req *hookwirev1.RevokeApiKeyRequest) (*emptypb.Empty, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	// A revoke changes only revoked: the snapshot read before the write is
	// the key it revokes.
	rec, err := s.cfg.Store.GetAPIKey(req.GetId())
	if err == nil && rec.GetApiKey().GetTenant() != req.GetTenant() {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, storeError(err, "API key "+quote(req.GetId()))
	}
	before := rec.GetApiKey()
	after := clone(before)
	after.Revoked = true
	audit, err := s.auditEvent(ctx, &auditEntry{tenant: req.GetTenant(), action: auditAPIKeyRevoke, resource: apiKeyResource(req.GetTenant(), req.GetId()), before: before, after: after})
	if err != nil {
		return nil, err
	}
	err = s.cfg.Store.RevokeAPIKey(ctx, req.GetTenant(), req.GetId(), audit)
	return &emptypb.Empty{}, storeError(err, "API key "+quote(req.GetId()))
}
