package api

// TenantService: tenants are created and deleted by the admin only; a
// deleted tenant's records are purged in the background (tenantpurge.go).

import (
	"context"
	"errors"

	"github.com/hookwire/hookwire/controlplane/internal/store"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// tenantService implements TenantService.
type tenantService struct {
	hookwirev1.UnimplementedTenantServiceServer
	*Services
}

func (s *tenantService) CreateTenant(ctx context.Context, req *hookwirev1.CreateTenantRequest) (*hookwirev1.Tenant, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	t := &hookwirev1.Tenant{Id: req.GetId(), DisplayName: req.GetDisplayName(), CreateTime: timestamppb.New(s.cfg.Now())}
	audit, err := s.auditEvent(ctx, &auditEntry{tenant: store.AuditGlobal, action: auditTenantCreate, resource: tenantResource(t.GetId()), after: t})
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.CreateTenant(ctx, t, audit); err != nil {
		if errors.Is(err, store.ErrTenantPurging) {
			return nil, status.Errorf(codes.FailedPrecondition, "tenant %s was deleted and its deletion is still in progress (its events, deliveries and audit records are being purged); retry the create later", quote(req.GetId()))
		}
		return nil, storeError(err, "tenant "+quote(req.GetId()))
	}
	return t, nil
}

func (s *tenantService) GetTenant(ctx context.Context, req *hookwirev1.GetTenantRequest) (*hookwirev1.Tenant, error) {
	if err := authorize(ctx, req.GetId(), accessRead); err != nil {
		return nil, err
	}
	t, err := s.cfg.Store.GetTenant(req.GetId())
	return t, storeError(err, "tenant "+quote(req.GetId()))
}

func (s *tenantService) ListTenants(ctx context.Context, req *hookwirev1.ListTenantsRequest) (*hookwirev1.ListTenantsResponse, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	limit := pageSize(req.GetPageSize())
	list, err := s.cfg.Store.ListTenants(req.GetPageToken(), limit+1)
	if err != nil {
		return nil, storeError(err, "tenants")
	}
	resp := &hookwirev1.ListTenantsResponse{Tenants: list}
	if len(list) > limit {
		resp.Tenants = list[:limit]
		resp.NextPageToken = list[limit-1].GetId()
	}
	return resp, nil
}

func (s *tenantService) DeleteTenant(ctx context.Context, req *hookwirev1.DeleteTenantRequest) (*emptypb.Empty, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	// A tenant record never changes once created: the one read is the one
	// the deletion removes.
	before, err := s.cfg.Store.GetTenant(req.GetId())
	if err != nil {
		return nil, storeError(err, "tenant "+quote(req.GetId()))
	}
	audit, err := s.auditDeleted(ctx, store.AuditGlobal, auditTenantDelete, tenantResource(req.GetId()), before)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.DeleteTenant(ctx, req.GetId(), s.cfg.Now(), audit); err != nil {
		return nil, storeError(err, "tenant "+quote(req.GetId()))
	}
	// Its events, deliveries, attempts and audit events go in the
	// background (RunTenantPurges); the id is free again once they are gone.
	s.wakeTenantPurges()
	return &emptypb.Empty{}, nil
}
