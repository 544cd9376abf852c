package controlplane

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// fakeEvents answers PublishEvent with what its test function returns.
type fakeEvents struct {
	hookwirev1.UnimplementedEventServiceServer
	publish func(ctx context.Context, req *hookwirev1.PublishEventRequest) (*hookwirev1.PublishEventResponse, error)
}

func (f *fakeEvents) PublishEvent(ctx context.Context, req *hookwirev1.PublishEventRequest) (*hookwirev1.PublishEventResponse, error) {
	return f.publish(ctx, req)
}

func newFakeEventsClient(ics []grpc.UnaryServerInterceptor, f *fakeEvents) hookwirev1.EventServiceClient {
	c := newInprocConn(ics)
	hookwirev1.RegisterEventServiceServer(c, f)
	return hookwirev1.NewEventServiceClient(c)
}

func TestInprocRunsInterceptorsInOrderWithMetadata(t *testing.T) {
	var order []string
	ic := func(name string) grpc.UnaryServerInterceptor {
		return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if info.FullMethod != hookwirev1.EventService_PublishEvent_FullMethodName {
				t.Errorf("%s: FullMethod %q", name, info.FullMethod)
			}
			order = append(order, name+">")
			resp, err := h(ctx, req)
			order = append(order, "<"+name)
			return resp, err
		}
	}
	sent := &hookwirev1.PublishEventRequest{Tenant: "t1", Event: &hookwirev1.Event{Type: "order.created", Payload: []byte(`{"a":1}`)}}
	f := &fakeEvents{publish: func(ctx context.Context, req *hookwirev1.PublishEventRequest) (*hookwirev1.PublishEventResponse, error) {
		order = append(order, "handler")
		if req == sent || !proto.Equal(req, sent) {
			t.Errorf("handler got %v (same pointer: %v), want a copy of %v", req, req == sent, sent)
		}
		req.Event.Payload[0] = 'X' // must not reach the caller's message
		md, _ := metadata.FromIncomingContext(ctx)
		if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer k" {
			t.Errorf("incoming authorization %q", got)
		}
		if got := md.Get("idempotency-key"); len(got) != 1 || got[0] != "abc" {
			t.Errorf("incoming idempotency-key %q", got)
		}
		if out, _ := metadata.FromOutgoingContext(ctx); len(out) > 0 {
			t.Error("the caller's outgoing metadata leaked into the handler's context")
		}
		if m, _ := grpc.Method(ctx); m != hookwirev1.EventService_PublishEvent_FullMethodName {
			t.Errorf("grpc.Method = %q", m)
		}
		if err := grpc.SetHeader(ctx, metadata.Pairs("x-h", "1")); err != nil {
			t.Error(err)
		}
		if err := grpc.SetTrailer(ctx, metadata.Pairs("x-t", "2")); err != nil {
			t.Error(err)
		}
		return &hookwirev1.PublishEventResponse{Id: "evt_1"}, nil
	}}
	client := newFakeEventsClient([]grpc.UnaryServerInterceptor{ic("a"), ic("b"), ic("c")}, f)

	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("authorization", "Bearer k"))
	ctx = metadata.AppendToOutgoingContext(ctx, "idempotency-key", "abc")
	var header, trailer metadata.MD
	resp, err := client.PublishEvent(ctx, sent, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetId() != "evt_1" {
		t.Errorf("response %v", resp)
	}
	if got := strings.Join(order, " "); got != "a> b> c> handler <c <b <a" {
		t.Errorf("order: %s", got)
	}
	if string(sent.GetEvent().GetPayload()) != `{"a":1}` {
		t.Errorf("the handler's change reached the caller's request: %s", sent.GetEvent().GetPayload())
	}
	if header.Get("x-h")[0] != "1" || trailer.Get("x-t")[0] != "2" {
		t.Errorf("header %v trailer %v", header, trailer)
	}
}

func TestInprocErrorsAsTheGRPCServerSendsThem(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		code    codes.Code
		message string
	}{
		{"status kept", status.Error(codes.PermissionDenied, "no"), codes.PermissionDenied, "no"},
		{"plain error is Unknown", errors.New("boom"), codes.Unknown, "boom"},
		{"canceled", context.Canceled, codes.Canceled, context.Canceled.Error()},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded, context.DeadlineExceeded.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeEvents{publish: func(ctx context.Context, _ *hookwirev1.PublishEventRequest) (*hookwirev1.PublishEventResponse, error) {
				_ = grpc.SetHeader(ctx, metadata.Pairs("retry-after", "3"))
				return nil, tt.err
			}}
			var header metadata.MD
			_, err := newFakeEventsClient(nil, f).PublishEvent(context.Background(), &hookwirev1.PublishEventRequest{}, grpc.Header(&header))
			st := status.Convert(err)
			if st.Code() != tt.code || st.Message() != tt.message {
				t.Errorf("got %v %q, want %v %q", st.Code(), st.Message(), tt.code, tt.message)
			}
			if got := header.Get("retry-after"); len(got) != 1 || got[0] != "3" {
				t.Errorf("headers set before the error: %v", header)
			}
		})
	}
}

func TestInprocRefusesWhatTheGRPCClientRefuses(t *testing.T) {
	called := false
	f := &fakeEvents{publish: func(context.Context, *hookwirev1.PublishEventRequest) (*hookwirev1.PublishEventResponse, error) {
		called = true
		return &hookwirev1.PublishEventResponse{}, nil
	}}
	client := newFakeEventsClient(nil, f)
	for _, md := range []metadata.MD{
		{"idempotency-key": {"caf\u00e9"}},
		{"x-ctl": {"a\x01b"}},
		{"bad key!": {"v"}},
	} {
		ctx := metadata.NewOutgoingContext(context.Background(), md)
		_, err := client.PublishEvent(ctx, &hookwirev1.PublishEventRequest{})
		if status.Code(err) != codes.Unknown || !strings.Contains(status.Convert(err).Message(), "header key") {
			t.Errorf("metadata %v: got %v, want Unknown naming the header key", md, err)
		}
	}
	if called {
		t.Error("the handler ran for metadata the gRPC client would not send")
	}
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.MD{"x-bin": {"\x00\xff"}})
	if _, err := client.PublishEvent(ctx, &hookwirev1.PublishEventRequest{}); err != nil || !called {
		t.Errorf("binary metadata: %v (called %v)", err, called)
	}

	// Methods not registered, and streams, are refused.
	conn := newInprocConn(nil)
	err := conn.Invoke(context.Background(), "/x.Y/Z", &hookwirev1.PublishEventRequest{}, &hookwirev1.PublishEventResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("unknown method: %v", err)
	}
	if _, err := conn.NewStream(context.Background(), &grpc.StreamDesc{}, "/x.Y/S"); status.Code(err) != codes.Unimplemented {
		t.Errorf("stream: %v", err)
	}
}
