package controlplane

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// fakeAPI answers PublishEvent and TailDeliveries with its test functions.
type fakeAPI struct {
	hookwirev1.UnimplementedEventServiceServer
	hookwirev1.UnimplementedDeliveryServiceServer
	publish func(ctx context.Context, req *hookwirev1.PublishEventRequest) (*hookwirev1.PublishEventResponse, error)
	tail    func(req *hookwirev1.TailDeliveriesRequest, s hookwirev1.DeliveryService_TailDeliveriesServer) error
}

func (f *fakeAPI) PublishEvent(ctx context.Context, req *hookwirev1.PublishEventRequest) (*hookwirev1.PublishEventResponse, error) {
	return f.publish(ctx, req)
}

func (f *fakeAPI) TailDeliveries(req *hookwirev1.TailDeliveriesRequest, s hookwirev1.DeliveryService_TailDeliveriesServer) error {
	return f.tail(req, s)
}

// newFakeInproc serves f on a new channel, stopped when the test ends (as
// the server stops its own), which ends its idle workers.
func newFakeInproc(t *testing.T, f *fakeAPI, unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor) *inproc {
	p := newInproc(unary, stream)
	t.Cleanup(p.stop)
	hookwirev1.RegisterEventServiceServer(p, f)
	hookwirev1.RegisterDeliveryServiceServer(p, f)
	return p
}

// recorder returns interceptors that append to order around the handler.
type recorder struct {
	mu    sync.Mutex
	order []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.order = append(r.order, s)
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.order, " ")
}

func (r *recorder) unary(name string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		r.add(name + ">")
		resp, err := h(ctx, req)
		r.add("<" + name)
		return resp, err
	}
}

func (r *recorder) stream(name string) grpc.StreamServerInterceptor {
	return func(impl any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		r.add(name + ">")
		err := h(impl, ss)
		r.add("<" + name)
		return err
	}
}

func TestInprocUnaryPathMatchesTheNetwork(t *testing.T) {
	rec := &recorder{}
	sent := &hookwirev1.PublishEventRequest{Tenant: "t1", Event: &hookwirev1.Event{Type: "order.created", Payload: []byte(`{"a":1}`)}}
	f := &fakeAPI{publish: func(ctx context.Context, req *hookwirev1.PublishEventRequest) (*hookwirev1.PublishEventResponse, error) {
		rec.add("handler")
		if req == sent || !proto.Equal(req, sent) {
			t.Errorf("handler got %v (same pointer: %v), want a copy of %v", req, req == sent, sent)
		}
		req.Event.Payload[0] = 'X' // must not reach the caller's message
		md, _ := metadata.FromIncomingContext(ctx)
		if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer k" {
			t.Errorf("incoming authorization %q", got)
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
	p := newFakeInproc(t, f, []grpc.UnaryServerInterceptor{rec.unary("a"), rec.unary("b")}, nil)

	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer k")
	var header, trailer metadata.MD
	resp, err := hookwirev1.NewEventServiceClient(p.conn).PublishEvent(ctx, sent, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil || resp.GetId() != "evt_1" {
		t.Fatalf("%v %v", resp, err)
	}
	if got := rec.String(); got != "a> b> handler <b <a" {
		t.Errorf("order: %s", got)
	}
	if string(sent.GetEvent().GetPayload()) != `{"a":1}` {
		t.Errorf("the handler's change reached the caller's request: %s", sent.GetEvent().GetPayload())
	}
	if len(header.Get("x-h")) != 1 || len(trailer.Get("x-t")) != 1 {
		t.Errorf("header %v trailer %v", header, trailer)
	}
}

func TestInprocErrorsAsTheGRPCServerSendsThem(t *testing.T) {
	for _, tt := range []struct {
		name    string
		err     error
		code    codes.Code
		message string
	}{
		{"status kept", status.Error(codes.PermissionDenied, "no"), codes.PermissionDenied, "no"},
		{"plain error is Unknown", errors.New("boom"), codes.Unknown, "boom"},
		{"canceled", context.Canceled, codes.Canceled, context.Canceled.Error()},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded, context.DeadlineExceeded.Error()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var seen error // what the interceptors see: the error as returned
			f := &fakeAPI{
				publish: func(ctx context.Context, _ *hookwirev1.PublishEventRequest) (*hookwirev1.PublishEventResponse, error) {
					_ = grpc.SetHeader(ctx, metadata.Pairs("retry-after", "3"))
					return nil, tt.err
				},
				tail: func(*hookwirev1.TailDeliveriesRequest, hookwirev1.DeliveryService_TailDeliveriesServer) error {
					return tt.err
				},
			}
			see := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				resp, err := h(ctx, req)
				seen = err
				return resp, err
			}
			p := newFakeInproc(t, f, []grpc.UnaryServerInterceptor{see}, nil)
			var header metadata.MD
			_, err := hookwirev1.NewEventServiceClient(p.conn).PublishEvent(context.Background(), &hookwirev1.PublishEventRequest{}, grpc.Header(&header))
			if st := status.Convert(err); st.Code() != tt.code || st.Message() != tt.message {
				t.Errorf("unary: got %v %q, want %v %q", st.Code(), st.Message(), tt.code, tt.message)
			}
			if seen != tt.err {
				t.Errorf("the interceptor saw %v, want %v as returned", seen, tt.err)
			}
			if got := header.Get("retry-after"); len(got) != 1 || got[0] != "3" {
				t.Errorf("headers set before the error: %v", header)
			}
			s, err := hookwirev1.NewDeliveryServiceClient(p.conn).TailDeliveries(context.Background(), &hookwirev1.TailDeliveriesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Recv()
			if st := status.Convert(err); st.Code() != tt.code || st.Message() != tt.message {
				t.Errorf("stream: got %v %q, want %v %q", st.Code(), st.Message(), tt.code, tt.message)
			}
		})
	}
}

func TestInprocStreamPassesInterceptorsAndHeaders(t *testing.T) {
	rec := &recorder{}
	f := &fakeAPI{tail: func(req *hookwirev1.TailDeliveriesRequest, s hookwirev1.DeliveryService_TailDeliveriesServer) error {
		rec.add("handler")
		md, _ := metadata.FromIncomingContext(s.Context())
		if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer k" {
			t.Errorf("incoming authorization %q", got)
		}
		if err := s.SendHeader(metadata.Pairs("x-h", "1")); err != nil {
			return err
		}
		for range 3 {
			if err := s.Send(&hookwirev1.TailDeliveriesResponse{DeliveryId: req.GetTenant()}); err != nil {
				return err
			}
		}
		return nil
	}}
	p := newFakeInproc(t, f, nil, []grpc.StreamServerInterceptor{rec.stream("a"), rec.stream("b")})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer k")
	s, err := hookwirev1.NewDeliveryServiceClient(p.conn).TailDeliveries(ctx, &hookwirev1.TailDeliveriesRequest{Tenant: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := s.Header(); err != nil || len(h.Get("x-h")) != 1 {
		t.Fatalf("header %v %v", h, err)
	}
	n := 0
	for {
		it, err := s.Recv()
		if err != nil {
			if status.Code(err) != codes.OK && err.Error() != "EOF" {
				t.Fatal(err)
			}
			break
		}
		if it.GetDeliveryId() != "t1" {
			t.Fatalf("item %v", it)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("%d items", n)
	}
	if got := rec.String(); got != "a> b> handler <b <a" {
		t.Errorf("order: %s", got)
	}
}

// stop waits, as grpc.Server.GracefulStop does, for a handler whose caller
// has gone, and refuses new calls meanwhile.
func TestInprocStopWaitsForRunningHandlers(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	f := &fakeAPI{publish: func(context.Context, *hookwirev1.PublishEventRequest) (*hookwirev1.PublishEventResponse, error) {
		close(started)
		<-release
		return &hookwirev1.PublishEventResponse{}, nil
	}}
	p := newFakeInproc(t, f, nil, nil)
	client := hookwirev1.NewEventServiceClient(p.conn)
	ctx, cancel := context.WithCancel(context.Background())
	called := make(chan error, 1)
	go func() {
		_, err := client.PublishEvent(ctx, &hookwirev1.PublishEventRequest{})
		called <- err
	}()
	<-started
	cancel() // the caller gives up; the handler runs on
	if err := <-called; status.Code(err) != codes.Canceled {
		t.Fatalf("abandoned call: %v", err)
	}
	stopped := make(chan struct{})
	go func() {
		p.stop()
		close(stopped)
	}()
	// Once stop has begun, new calls are refused.
	for deadline := time.Now().Add(10 * time.Second); ; runtime.Gosched() {
		p.mu.Lock()
		begun := p.stopped
		p.mu.Unlock()
		if begun {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("stop did not begin within 10s")
		}
	}
	if _, err := client.PublishEvent(context.Background(), &hookwirev1.PublishEventRequest{}); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("call during stop: %v, want Unavailable", err)
	}
	select {
	case <-stopped:
		t.Fatal("stop returned while a handler was running")
	default:
	}
	close(release)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return after the handler finished")
	}
}

// A stream refused before the client has sent its one request (an API key
// interceptor does this) reports the refusal, not io.EOF, as grpc-go's
// client does: the gateway answered such a tail with HTTP 500 "EOF".
func TestInprocStreamRefusedBeforeTheRequestReportsTheRefusal(t *testing.T) {
	refused := make(chan context.Context, 1)
	refuse := func(_ any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, _ grpc.StreamHandler) error {
		refused <- ss.Context()
		return status.Error(codes.Unauthenticated, "send a Bearer key")
	}
	f := &fakeAPI{tail: func(*hookwirev1.TailDeliveriesRequest, hookwirev1.DeliveryService_TailDeliveriesServer) error {
		t.Error("the handler ran behind a refusing interceptor")
		return nil
	}}
	p := newFakeInproc(t, f, nil, []grpc.StreamServerInterceptor{refuse})
	desc := &grpc.StreamDesc{StreamName: "TailDeliveries", ServerStreams: true}
	s, err := p.conn.NewStream(context.Background(), desc, hookwirev1.DeliveryService_TailDeliveries_FullMethodName)
	if err != nil {
		t.Fatal(err)
	}
	// The server's context ends after the stream has finished, so the
	// request below is sent to a handler that has already ended (inprocgrpc
	// then picks at random between queueing it and io.EOF: without
	// inprocConn this test failed 13 times in 20).
	<-(<-refused).Done()
	if err := s.SendMsg(&hookwirev1.TailDeliveriesRequest{Tenant: "t1"}); err != nil {
		t.Fatalf("SendMsg: %v, want nil (the status comes from RecvMsg)", err)
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Header(); err != nil {
		t.Fatalf("Header: %v", err)
	}
	err = s.RecvMsg(&hookwirev1.TailDeliveriesResponse{})
	if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message() != "send a Bearer key" {
		t.Fatalf("RecvMsg: %v, want Unauthenticated", err)
	}
}

// A unary handler's context carries the caller's deadline and cancellation
// (with its cause) but none of the caller's values, and ends when the call
// does, as a grpc.Server call's context does.
func TestInprocUnaryHandlerContext(t *testing.T) {
	type key struct{}
	var (
		handlerCtx context.Context
		entered    = make(chan struct{})
		release    = make(chan struct{})
	)
	f := &fakeAPI{publish: func(ctx context.Context, req *hookwirev1.PublishEventRequest) (*hookwirev1.PublishEventResponse, error) {
		handlerCtx = ctx
		if ctx.Value(key{}) != nil {
			t.Error("a value of the caller's context reached the handler")
		}
		if req.GetTenant() == "wait" {
			close(entered)
			<-release
		}
		return &hookwirev1.PublishEventResponse{Id: "evt_1"}, nil
	}}
	p := newFakeInproc(t, f, nil, nil)
	client := hookwirev1.NewEventServiceClient(p.conn)

	deadline := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.WithValue(context.Background(), key{}, "caller's"), deadline)
	defer cancel()
	if _, err := client.PublishEvent(ctx, &hookwirev1.PublishEventRequest{Tenant: "t1"}); err != nil {
		t.Fatal(err)
	}
	if d, ok := handlerCtx.Deadline(); !ok || !d.Equal(deadline) {
		t.Errorf("handler's deadline %v (%v), want the caller's %v", d, ok, deadline)
	}
	select {
	case <-handlerCtx.Done():
	default:
		t.Error("the handler's context was not cancelled when the call ended")
	}
	if ctx.Err() != nil {
		t.Error("ending the call cancelled the caller's context")
	}

	// A caller that gives up with a cause: the handler sees it.
	why := errors.New("the HTTP client went away")
	ctx2, cancel2 := context.WithCancelCause(context.Background())
	called := make(chan error, 1)
	go func() {
		_, err := client.PublishEvent(ctx2, &hookwirev1.PublishEventRequest{Tenant: "wait"})
		called <- err
	}()
	<-entered
	running := handlerCtx
	cancel2(why)
	if err := <-called; status.Code(err) != codes.Canceled {
		t.Errorf("abandoned call: %v, want Canceled", err)
	}
	<-running.Done()
	if got := context.Cause(running); got != why {
		t.Errorf("the handler's cause is %v, want %v", got, why)
	}
	close(release)
}
