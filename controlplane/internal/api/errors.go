package api

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"buf.build/go/protovalidate"
	"github.com/hookwire/hookwire/controlplane/internal/store"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ReasonPayloadTooLarge marks the error for an oversized payload, so the
// REST gateway can answer 413.
const ReasonPayloadTooLarge = "PAYLOAD_TOO_LARGE"

// ErrorDomain is the domain of Hookwire's ErrorInfo details.
const ErrorDomain = "hookwire.dev"

func payloadTooLarge(size, limit int) error {
	st := status.Newf(codes.InvalidArgument, "payload is %d bytes; the limit is %d bytes (server flag --max-payload-bytes)", size, limit)
	st, _ = st.WithDetails(&errdetails.ErrorInfo{Reason: ReasonPayloadTooLarge, Domain: ErrorDomain})
	return st.Err()
}

// storeError maps a store error to a gRPC status; what names the object.
func storeError(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return status.Errorf(codes.NotFound, "%s not found", what)
	case errors.Is(err, store.ErrAlreadyExists):
		return status.Errorf(codes.AlreadyExists, "%s already exists", what)
	case errors.Is(err, store.ErrTenantNotEmpty):
		return status.Errorf(codes.FailedPrecondition, "%s still has subscriptions; delete them first", what)
	case errors.Is(err, store.ErrUnavailable):
		// The message says why (e.g. no space left on device) and that
		// the server retries by itself; REST answers 503.
		return status.Error(codes.Unavailable, unavailableMessage(err))
	case errors.Is(err, store.ErrClosed):
		return status.Error(codes.Unavailable, "the server is shutting down; retry against a running server")
	case errors.Is(err, store.ErrCorrupt):
		return status.Errorf(codes.DataLoss, "%s: stored data is damaged and was not served; the operator should stop the server and run 'hookwire store check' on its data directory", what)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Errorf(codes.Internal, "%s: %v", what, err)
}

// validator checks requests against the protovalidate rules in the protos.
type validator struct {
	v protovalidate.Validator
}

func newValidator() (*validator, error) {
	v, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("build request validator: %w", err)
	}
	return &validator{v: v}, nil
}

func (v *validator) check(req any) error {
	m, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	err := v.v.Validate(m)
	if err == nil {
		if err := checkSemantics(m); err != nil {
			return inputStatus(err)
		}
		return nil
	}
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		return status.Errorf(codes.Internal, "validate request: %v", err)
	}
	return violationsError("", verr.Violations)
}

// violationsError is InvalidArgument listing the violations, with a
// BadRequest detail; prefix ("subscription.") goes before each field.
func violationsError(prefix string, violations []*protovalidate.Violation) error {
	br := &errdetails.BadRequest{}
	msgs := make([]string, 0, len(violations))
	for _, viol := range violations {
		field := prefix + protovalidate.FieldPathString(viol.Proto.GetField())
		msg := viol.Proto.GetMessage()
		msgs = append(msgs, field+": "+msg)
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: field, Description: msg})
	}
	st := status.New(codes.InvalidArgument, "invalid request: "+strings.Join(msgs, "; "))
	if withDetails, err := st.WithDetails(br); err == nil {
		st = withDetails
	}
	return st.Err()
}

// badRequest is a BadRequest detail for one field.
func badRequest(field, problem string) *errdetails.BadRequest {
	return &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: problem}}}
}

// changed checks after, a resource as a partial update would leave it,
// against the proto rules. It reports a violation when the update touches
// its field (touches gets the field's path without list and map
// subscripts) or when before, the stored resource, does not have it: a
// field the update leaves alone is never the reason it is refused, yet
// the result stays valid as a whole. name is the request field holding
// the resource.
func (v *validator) changed(name string, before, after proto.Message, touches func(path []string) bool) error {
	had := map[string]bool{}
	for _, viol := range v.violations(before) {
		had[violationKey(viol)] = true
	}
	var report []*protovalidate.Violation
	for _, viol := range v.violations(after) {
		if touches(violationPath(viol)) || !had[violationKey(viol)] {
			report = append(report, viol)
		}
	}
	if len(report) == 0 {
		return nil
	}
	return violationsError(name+".", report)
}

func (v *validator) violations(m proto.Message) []*protovalidate.Violation {
	var verr *protovalidate.ValidationError
	if err := v.v.Validate(m); errors.As(err, &verr) {
		return verr.Violations
	}
	return nil
}

func violationKey(viol *protovalidate.Violation) string {
	return protovalidate.FieldPathString(viol.Proto.GetField()) + " " + viol.Proto.GetRuleId()
}

// violationPath is the violation's field path by field names only.
func violationPath(viol *protovalidate.Violation) []string {
	var out []string
	for _, e := range viol.Proto.GetField().GetElements() {
		out = append(out, e.GetFieldName())
	}
	return out
}

func (v *validator) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := v.check(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// stream validates the request of server-streaming methods (TailDeliveries,
// WatchOperation) like unary ones. Client streams (the agent's Connect)
// are checked by their handlers message by message instead: validating
// every message of the delivery path here would cost it dearly.
func (v *validator) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.IsClientStream {
		return handler(srv, ss)
	}
	return handler(srv, &validatedStream{ServerStream: ss, v: v})
}

// validatedStream checks each message the client sends.
type validatedStream struct {
	grpc.ServerStream
	v *validator
}

func (s *validatedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.v.check(m)
}

// unavailableMessage is the store's reason for refusing a write ("the
// store cannot accept writes: write: no space left on device; retrying"),
// with what the caller should do.
func unavailableMessage(err error) string {
	msg := store.ErrUnavailable.Error()
	var ue *store.UnavailableError
	if errors.As(err, &ue) {
		msg = ue.Error()
	}
	return msg + "; try again later"
}
