package api

// EventTypeService: a tenant's event catalog, which documents the types it
// publishes (the portal offers them to its customers). It does not limit
// what may be published.

import (
	"context"
	"encoding/json"
	"fmt"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	auditEventTypeCreate = "event_type.create"
	auditEventTypeUpdate = "event_type.update"
	auditEventTypeDelete = "event_type.delete"
)

func eventTypeResource(tenant, name string) string {
	return tenantResource(tenant) + "/event-types/" + name
}

// eventTypeService implements EventTypeService.
type eventTypeService struct {
	hookwirev1.UnimplementedEventTypeServiceServer
	*Services
}

// checkEventType checks what protovalidate cannot: the example is JSON,
// the name is not Hookwire's own.
func checkEventType(et *hookwirev1.EventType) error {
	if ex := et.GetExamplePayload(); ex != "" && !json.Valid([]byte(ex)) {
		return status.Errorf(codes.InvalidArgument, "event_type.example_payload is not valid JSON; give a JSON document such as {\"id\": \"ord_1\"}")
	}
	return reservedType("event_type.name", et.GetName())
}

func (s *eventTypeService) CreateEventType(ctx context.Context, req *hookwirev1.CreateEventTypeRequest) (*hookwirev1.EventType, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	in := req.GetEventType()
	if err := checkEventType(in); err != nil {
		return nil, err
	}
	now := timestamppb.New(s.cfg.Now())
	et := &hookwirev1.EventType{Name: in.GetName(), Tenant: req.GetTenant(), Description: in.GetDescription(),
		ExamplePayload: in.GetExamplePayload(), Deprecated: in.GetDeprecated(), CreateTime: now, UpdateTime: now}
	audit, err := s.auditEvent(ctx, &auditEntry{tenant: req.GetTenant(), action: auditEventTypeCreate, resource: eventTypeResource(req.GetTenant(), et.GetName()), after: et})
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.PutEventType(ctx, et, true, audit); err != nil {
		if _, terr := s.cfg.Store.GetTenant(req.GetTenant()); terr != nil {
			return nil, storeError(terr, "tenant "+quote(req.GetTenant()))
		}
		return nil, storeError(err, "event type "+quote(et.GetName()))
	}
	return et, nil
}

func (s *eventTypeService) GetEventType(ctx context.Context, req *hookwirev1.GetEventTypeRequest) (*hookwirev1.EventType, error) {
	if err := authorize(ctx, req.GetTenant(), accessRead); err != nil {
		return nil, err
	}
	et, err := s.cfg.Store.GetEventType(req.GetTenant(), req.GetName())
	return et, storeError(err, "event type "+quote(req.GetName()))
}

func (s *eventTypeService) ListEventTypes(ctx context.Context, req *hookwirev1.ListEventTypesRequest) (*hookwirev1.ListEventTypesResponse, error) {
	if err := s.authorizeListing(ctx, req.GetTenant()); err != nil {
		return nil, err
	}
	list, err := s.cfg.Store.ListEventTypes(req.GetTenant())
	if err != nil {
		return nil, storeError(err, "event types")
	}
	resp := &hookwirev1.ListEventTypesResponse{EventTypes: []*hookwirev1.EventType{}}
	for _, et := range list {
		if et.GetDeprecated() && !req.GetShowDeprecated() {
			continue
		}
		resp.EventTypes = append(resp.EventTypes, et)
	}
	return resp, nil
}

func (s *eventTypeService) UpdateEventType(ctx context.Context, req *hookwirev1.UpdateEventTypeRequest) (*hookwirev1.EventType, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	in := req.GetEventType()
	before, err := s.cfg.Store.GetEventType(req.GetTenant(), in.GetName())
	if err != nil {
		return nil, storeError(err, "event type "+quote(in.GetName()))
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		paths = []string{"description", "example_payload", "deprecated"}
	}
	after := clone(before)
	for _, p := range paths {
		switch p {
		case "description":
			after.Description = in.GetDescription()
		case "example_payload":
			after.ExamplePayload = in.GetExamplePayload()
		case "deprecated":
			after.Deprecated = in.GetDeprecated()
		default:
			return nil, status.Errorf(codes.InvalidArgument, "update_mask: %q cannot be changed; give description, example_payload or deprecated", p)
		}
	}
	if err := checkEventType(after); err != nil {
		return nil, err
	}
	after.UpdateTime = timestamppb.New(s.cfg.Now())
	audit, err := s.auditEvent(ctx, &auditEntry{tenant: req.GetTenant(), action: auditEventTypeUpdate, resource: eventTypeResource(req.GetTenant(), in.GetName()), before: before, after: after})
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.PutEventType(ctx, after, false, audit); err != nil {
		return nil, storeError(err, "event type "+quote(in.GetName()))
	}
	return after, nil
}

func (s *eventTypeService) DeleteEventType(ctx context.Context, req *hookwirev1.DeleteEventTypeRequest) (*emptypb.Empty, error) {
	if err := authorize(ctx, req.GetTenant(), accessWrite); err != nil {
		return nil, err
	}
	before, err := s.cfg.Store.GetEventType(req.GetTenant(), req.GetName())
	if err != nil {
		return nil, storeError(err, "event type "+quote(req.GetName()))
	}
	audit, err := s.auditDeleted(ctx, req.GetTenant(), auditEventTypeDelete, eventTypeResource(req.GetTenant(), req.GetName()), before)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.DeleteEventType(ctx, req.GetTenant(), req.GetName(), audit); err != nil {
		return nil, storeError(err, fmt.Sprintf("event type %s", quote(req.GetName())))
	}
	return &emptypb.Empty{}, nil
}
