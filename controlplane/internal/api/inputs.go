package api

import (
	"errors"
	"fmt"
	"sync"

	"github.com/hookwire/hookwire/controlplane/internal/catalog"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// checkSemantics runs the checks on a request's content that the proto
// rules cannot express (header names Hookwire reserves, control characters,
// totals across a map). It runs after the proto rules, in the same
// interceptor, so every entry point (gRPC and REST) gets it.
func checkSemantics(m proto.Message) error {
	if err := checkFields(m); err != nil {
		return err
	}
	return checkControlChars(m.ProtoReflect())
}

// checkFields checks the fields with rules of their own (with their own,
// more specific messages).
func checkFields(m proto.Message) error {
	switch req := m.(type) {
	case *hookwirev1.CreateSubscriptionRequest:
		return checkSubscription("subscription", req.GetSubscription())
	case *hookwirev1.UpdateSubscriptionRequest:
		// UpdateSubscription checks the fields it changes, on the
		// merged subscription (checkUpdate).
		return nil
	case *hookwirev1.PublishEventRequest:
		return checkEvent("event", req.GetEvent())
	case *hookwirev1.PublishEventsRequest:
		for i, ev := range req.GetEvents() {
			if err := checkEvent(fmt.Sprintf("events[%d]", i), ev); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkSubscription(field string, sub *hookwirev1.Subscription) error {
	if err := catalog.CheckHeaders(field+".target.headers", sub.GetTarget().GetHeaders()); err != nil {
		return err
	}
	return catalog.CheckMetadata(field+".metadata", sub.GetMetadata())
}

func checkEvent(field string, ev *hookwirev1.Event) error {
	return catalog.CheckMetadata(field+".metadata", ev.GetMetadata())
}

// inputStatus turns a catalog.InputError into InvalidArgument with a
// BadRequest detail naming the field.
func inputStatus(err error) error {
	var ie *catalog.InputError
	if !errors.As(err, &ie) {
		return status.Errorf(codes.InvalidArgument, "invalid request: %v", err)
	}
	st := status.New(codes.InvalidArgument, "invalid request: "+ie.Error())
	br := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: ie.Field, Description: ie.Problem}}}
	if withDetails, derr := st.WithDetails(br); derr == nil {
		st = withDetails
	}
	return st.Err()
}

var (
	sharedValidatorOnce sync.Once
	sharedValidator     *validator
	sharedValidatorErr  error
)

// ValidateRequest checks a request exactly as the server's interceptor does
// before any handler runs: the protovalidate rules, then the semantic
// checks. It returns nil or an InvalidArgument status (Internal if the
// rules themselves cannot be compiled). Used by fuzz tests and tools.
func ValidateRequest(m proto.Message) error {
	sharedValidatorOnce.Do(func() { sharedValidator, sharedValidatorErr = newValidator() })
	if sharedValidatorErr != nil {
		return status.Errorf(codes.Internal, "%v", sharedValidatorErr)
	}
	return sharedValidator.check(m)
}
