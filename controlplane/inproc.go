package controlplane

import (
	"context"
	"io"
	"sync"

	"github.com/fullstorydev/grpchan"
	"github.com/fullstorydev/grpchan/inprocgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// inproc is how the REST gateway reaches the API: an in-process gRPC
// channel (grpchan's inprocgrpc) on which the services are registered as
// on the grpc.Server. A call costs no socket, no HTTP/2 framing and no
// protobuf encoding; requests and responses are deep-copied (grpchan's
// default ProtoCloner), so neither side shares a message with the other,
// as after a decode.
//
// A call takes the same path as one that arrived over the network:
//   - the gateway's outgoing metadata becomes the handler's incoming
//     metadata. The gRPC client's rules for it (printable ASCII values) are
//     kept by the gateway: grpc-gateway drops headers that break them, and
//     newGateway refuses the ones it passes on itself (checkHeaders);
//   - the server's interceptors run in the same order, for unary methods
//     and streams alike (grpchan.WithUnaryInterceptors and
//     WithStreamInterceptors chain them, the first outermost);
//   - header and trailer metadata the handler sets (grpc.SetHeader, e.g.
//     the rate limiter's retry-after) reach the gateway's grpc.Header and
//     grpc.Trailer call options and the client stream's Header/Trailer;
//   - an error that is not a gRPC status becomes one as grpc.Server
//     converts it (context errors to Canceled/DeadlineExceeded, anything
//     else to Unknown), after every interceptor has seen it as returned.
//
// inprocgrpc runs each handler on a goroutine of its own, which a caller
// that gives up (an HTTP client that disconnects) no longer waits for.
// stop does what grpc.Server.GracefulStop does for network calls: it
// refuses new calls and waits for the running ones, so the server closes
// nothing under a handler.
type inproc struct {
	reg  grpc.ServiceRegistrar    // the channel, behind the interceptors
	conn grpc.ClientConnInterface // what the gateway's clients call

	mu      sync.Mutex
	idle    *sync.Cond // signalled when running drops to 0
	running int
	stopped bool
}

var _ grpc.ServiceRegistrar = (*inproc)(nil)

// newInproc returns a channel whose calls pass unary or stream, in order,
// the first outermost, as grpc.ChainUnaryInterceptor and
// grpc.ChainStreamInterceptor do.
func newInproc(unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor) *inproc {
	p := &inproc{}
	p.idle = sync.NewCond(&p.mu)
	ch := &inprocgrpc.Channel{}
	p.reg = grpchan.WithStreamInterceptors(
		grpchan.WithUnaryInterceptors(ch, append([]grpc.UnaryServerInterceptor{p.unary}, unary...)...),
		append([]grpc.StreamServerInterceptor{p.stream}, stream...)...)
	p.conn = inprocConn{ch}
	return p
}

// inprocConn is the channel as the gateway's clients call it. It keeps one
// more rule of grpc-go's client streams: for a method whose client sends
// one request (a server stream), SendMsg never reports io.EOF; the
// stream's status comes from RecvMsg. inprocgrpc returns io.EOF when the
// handler has already ended, which happens when an interceptor refuses
// the call (no API key) before the generated client has sent its request:
// the gateway then answered HTTP 500 "EOF" instead of the refusal.
type inprocConn struct{ *inprocgrpc.Channel }

func (c inprocConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := c.Channel.NewStream(ctx, desc, method, opts...)
	if err != nil || desc.ClientStreams {
		return s, err
	}
	return oneRequestStream{s}, nil
}

// oneRequestStream is a client stream whose client sends one request.
type oneRequestStream struct{ grpc.ClientStream }

func (s oneRequestStream) SendMsg(m any) error {
	if err := s.ClientStream.SendMsg(m); err != io.EOF {
		return err
	}
	return nil // the handler has ended; RecvMsg returns how
}

// RegisterService serves a service on the channel.
func (p *inproc) RegisterService(desc *grpc.ServiceDesc, impl any) {
	p.reg.RegisterService(desc, impl)
}

// stop refuses new calls with Unavailable and waits for running handlers.
func (p *inproc) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	for p.running > 0 {
		p.idle.Wait()
	}
}

var errInprocStopped = status.Error(codes.Unavailable, "the control plane is shutting down; retry against a running one")

func (p *inproc) begin() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	p.running++
	return true
}

func (p *inproc) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running--; p.running == 0 {
		p.idle.Broadcast()
	}
}

// unary is the outermost unary interceptor: it counts the call and
// converts its error.
func (p *inproc) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !p.begin() {
		return nil, errInprocStopped
	}
	defer p.end()
	resp, err := handler(ctx, req)
	return resp, statusError(err)
}

// stream is the outermost stream interceptor: it counts the stream and
// converts its error.
func (p *inproc) stream(impl any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !p.begin() {
		return errInprocStopped
	}
	defer p.end()
	return statusError(handler(impl, ss))
}

// statusError is err as grpc.Server sends it.
func statusError(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		return s.Err()
	}
	return status.FromContextError(err).Err()
}
