package controlplane

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/fullstorydev/grpchan"
	"github.com/fullstorydev/grpchan/inprocgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
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
// Each handler runs on a goroutine other than the caller's, which a caller
// that gives up (an HTTP client that disconnects) no longer waits for.
// Streams run on inprocgrpc's goroutine per stream; unary calls, every
// REST publish among them, run here (invoke) on reused worker goroutines,
// whose stacks have already grown to what a handler needs: a new goroutine
// per call grew its stack (copying it) on every publish, and inprocgrpc
// has no way to reuse one.
// stop does what grpc.Server.GracefulStop does for network calls: it
// refuses new calls and waits for the running ones, so the server closes
// nothing under a handler.
type inproc struct {
	reg  grpc.ServiceRegistrar    // the channel, behind the interceptors
	conn grpc.ClientConnInterface // what the gateway's clients call

	// methods holds the unary methods by full name ("/pkg.Service/Method"),
	// their handlers wrapped with the interceptors as on the channel,
	// filled by RegisterService before any call.
	methods map[string]unaryMethod
	// workerCall hands a unary call to an idle worker (unbuffered: a send
	// succeeds only when one is waiting); quit ends idle workers.
	workerCall chan func()
	quit       chan struct{}

	mu      sync.Mutex
	idle    *sync.Cond // signalled when running drops to 0
	running int
	stopped bool
}

// unaryMethod is a registered unary method and the service implementing it.
type unaryMethod struct {
	handler grpc.MethodHandler
	impl    any
}

// inprocWorkerIdle is how long an idle unary worker waits for a call
// before it exits.
const inprocWorkerIdle = 10 * time.Second

var _ grpc.ServiceRegistrar = (*inproc)(nil)

// newInproc returns a channel whose calls pass unary or stream, in order,
// the first outermost, as grpc.ChainUnaryInterceptor and
// grpc.ChainStreamInterceptor do.
func newInproc(unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor) *inproc {
	p := &inproc{methods: map[string]unaryMethod{}, workerCall: make(chan func()), quit: make(chan struct{})}
	p.idle = sync.NewCond(&p.mu)
	ch := &inprocgrpc.Channel{}
	p.reg = grpchan.WithStreamInterceptors(
		grpchan.WithUnaryInterceptors(intercepted{p, ch}, append([]grpc.UnaryServerInterceptor{p.counted}, unary...)...),
		append([]grpc.StreamServerInterceptor{p.stream}, stream...)...)
	p.conn = inprocConn{Channel: ch, p: p}
	return p
}

// intercepted receives each service from grpchan's intercepting view, its
// handlers already wrapped with the interceptors, and serves it on the
// channel (streams) and in p.methods (unary calls, see invoke): one
// wrapping for both paths.
type intercepted struct {
	p  *inproc
	ch *inprocgrpc.Channel
}

func (r intercepted) RegisterService(desc *grpc.ServiceDesc, impl any) {
	r.ch.RegisterService(desc, impl)
	for _, m := range desc.Methods {
		r.p.methods["/"+desc.ServiceName+"/"+m.MethodName] = unaryMethod{handler: m.Handler, impl: impl}
	}
}

// inprocConn is the channel as the gateway's clients call it. It keeps one
// more rule of grpc-go's client streams: for a method whose client sends
// one request (a server stream), SendMsg never reports io.EOF; the
// stream's status comes from RecvMsg. inprocgrpc returns io.EOF when the
// handler has already ended, which happens when an interceptor refuses
// the call (no API key) before the generated client has sent its request:
// the gateway then answered HTTP 500 "EOF" instead of the refusal.
type inprocConn struct {
	*inprocgrpc.Channel
	p *inproc
}

// Invoke calls a unary method: on a worker goroutine (see inproc), with the
// same contract as inprocgrpc's Invoke, which it keeps for methods it does
// not know (their Unimplemented error).
func (c inprocConn) Invoke(ctx context.Context, method string, req, resp any, opts ...grpc.CallOption) error {
	m, known := c.p.methods[method]
	in, isMsg := req.(proto.Message)
	out, outMsg := resp.(proto.Message)
	if !known || !isMsg || !outMsg {
		return c.Channel.Invoke(ctx, method, req, resp, opts...)
	}
	return c.p.invoke(ctx, method, m, in, out, opts)
}

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

// stop refuses new calls with Unavailable, waits for running handlers and
// ends the idle workers.
func (p *inproc) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped {
		close(p.quit)
	}
	p.stopped = true
	for p.running > 0 {
		p.idle.Wait()
	}
}

// unaryResult is what a unary handler returned.
type unaryResult struct {
	resp any
	err  error
}

// invoke runs a unary call as a network call would reach its handler: a
// copy of req, the caller's outgoing metadata as incoming metadata, no
// other value of the caller's context (its deadline and cancellation do
// pass), an in-process peer, grpc.Method and grpc.SetHeader/SetTrailer
// working, the interceptors in order. Headers and trailers reach the
// grpc.Header and grpc.Trailer call options, the response is copied into
// resp. A caller whose context ends gets Canceled or DeadlineExceeded at
// once; the handler runs on with its context ended.
func (p *inproc) invoke(ctx context.Context, method string, m unaryMethod, req, resp proto.Message, opts []grpc.CallOption) error {
	sts := &unaryTransportStream{method: method}
	sctx, end := serverContext(ctx)
	sctx = grpc.NewContextWithServerTransportStream(sctx, sts)
	done := make(chan unaryResult, 1)
	p.run(func() {
		v, err := m.handler(m.impl, sctx, func(into any) error { return copyMessage(into, req) }, nil)
		end() // as grpc.Server does when a call ends: its context is cancelled
		if err == nil {
			if msg, ok := v.(proto.Message); !ok || !msg.ProtoReflect().IsValid() {
				err = status.Error(codes.Internal, "handler returned neither error nor response message")
			}
		}
		sts.finish()
		done <- unaryResult{v, err}
	})
	select {
	case r := <-done:
		header, trailer := sts.metadata()
		for _, o := range opts {
			switch o := o.(type) {
			case grpc.HeaderCallOption:
				if len(header) > 0 {
					*o.HeaderAddr = header
				}
			case grpc.TrailerCallOption:
				if len(trailer) > 0 {
					*o.TrailerAddr = trailer
				}
			case grpc.PeerCallOption:
				*o.PeerAddr = inprocPeer
			}
		}
		if r.err != nil {
			return r.err
		}
		return copyMessage(resp, r.resp)
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// run runs call on an idle worker, or on a new one if none is idle.
func (p *inproc) run(call func()) {
	select {
	case p.workerCall <- call:
	default:
		go p.worker(call)
	}
}

// worker runs call, then every call handed to it, until it has been idle
// for inprocWorkerIdle or stop has been called.
func (p *inproc) worker(call func()) {
	idle := time.NewTimer(inprocWorkerIdle)
	defer idle.Stop()
	for {
		call()
		idle.Reset(inprocWorkerIdle)
		select {
		case call = <-p.workerCall:
		case <-idle.C:
			return
		case <-p.quit:
			return
		}
	}
}

// copyMessage sets into to a deep copy of from (two messages of one type).
func copyMessage(into, from any) error {
	dst, ok := into.(proto.Message)
	src, ok2 := from.(proto.Message)
	if !ok || !ok2 || dst.ProtoReflect().Descriptor() != src.ProtoReflect().Descriptor() {
		return status.Errorf(codes.Internal, "in-process call: cannot copy %T into %T", from, into)
	}
	proto.Reset(dst)
	proto.Merge(dst, src)
	return nil
}

// serverContext is the handler's context for a caller's: its deadline and
// its cancellation (with the cause), none of its values, so nothing of the
// caller's context leaks into the handler's, and its outgoing metadata as
// incoming. It is a new context rather than a wrapper of the caller's that
// hides values: the context package finds a cancellable parent through
// Value, and a child of a wrapper (every context.WithCancel a handler
// makes) would cost a goroutine waiting for the parent. end cancels it
// and releases the link to the caller's.
func serverContext(ctx context.Context) (sctx context.Context, end func()) {
	base := context.Background()
	cancelDeadline := context.CancelFunc(func() {})
	if d, ok := ctx.Deadline(); ok {
		base, cancelDeadline = context.WithDeadline(base, d)
	}
	sctx, cancel := context.WithCancelCause(base)
	stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		sctx = metadata.NewIncomingContext(sctx, md)
	}
	return peer.NewContext(sctx, &inprocPeer), func() {
		stop()
		cancel(context.Canceled)
		cancelDeadline()
	}
}

// inprocPeer is the peer of an in-process call.
var inprocPeer = peer.Peer{Addr: inprocAddr{}, AuthInfo: inprocAddr{}}

type inprocAddr struct{}

func (inprocAddr) Network() string  { return "inproc" }
func (inprocAddr) String() string   { return "0" }
func (inprocAddr) AuthType() string { return "inproc" }

// unaryTransportStream is a unary call's grpc.ServerTransportStream: it
// keeps the headers and trailers the handler sets, for the caller.
type unaryTransportStream struct {
	method string

	mu              sync.Mutex
	header, trailer metadata.MD
	headerSent      bool
	finished        bool
}

var errStreamDone = status.Error(codes.Internal, "the call has ended, or its header was already sent")

func (s *unaryTransportStream) Method() string { return s.method }

func (s *unaryTransportStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.headerSent || s.finished {
		return errStreamDone
	}
	s.header = metadata.Join(s.header, md)
	return nil
}

func (s *unaryTransportStream) SendHeader(md metadata.MD) error {
	if err := s.SetHeader(md); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.headerSent = true
	return nil
}

func (s *unaryTransportStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return errStreamDone
	}
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

func (s *unaryTransportStream) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finished = true
}

func (s *unaryTransportStream) metadata() (header, trailer metadata.MD) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.header, s.trailer
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

// counted is the outermost unary interceptor: it counts the call and
// converts its error.
func (p *inproc) counted(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
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
