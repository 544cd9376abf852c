package controlplane

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// inprocConn lets the REST gateway call unary gRPC methods of this server
// without the loopback connection: no HTTP/2 framing, no protobuf encoding
// and decoding, no socket round trip. It is a grpc.ServiceRegistrar (the
// services are registered on it as on the grpc.Server) and a
// grpc.ClientConnInterface (the gateway's generated clients call it).
//
// A call takes the same path as one that arrived over the network:
//   - the gateway's outgoing metadata (authorization, content type,
//     Idempotency-Key, traceparent, ...) becomes the incoming metadata,
//     checked with the rules the gRPC client applies before sending;
//   - the request is copied into a fresh message, as decoding would;
//   - the same unary interceptors run in the same order (authentication,
//     rate limit, validation, tracing: whatever the server is built with);
//   - headers and trailers the handler sets (grpc.SetHeader, e.g. the rate
//     limiter's retry-after) reach the gateway's grpc.Header/grpc.Trailer
//     call options;
//   - an error that is not a gRPC status becomes one the way the gRPC
//     server converts it (context errors to Canceled/DeadlineExceeded,
//     anything else to Unknown).
//
// Streaming methods are not served: NewStream answers Unimplemented, so
// register only services whose REST methods are all unary.
type inprocConn struct {
	intercept grpc.UnaryServerInterceptor // the chain; nil: none
	methods   map[string]inprocMethod     // by full method name
}

type inprocMethod struct {
	impl    any
	handler grpc.MethodHandler
}

var (
	_ grpc.ServiceRegistrar      = (*inprocConn)(nil)
	_ grpc.ClientConnInterface   = (*inprocConn)(nil)
	_ grpc.ServerTransportStream = (*inprocStream)(nil)
)

// newInprocConn returns a connection whose calls pass interceptors in
// order, the first outermost, as grpc.ChainUnaryInterceptor does.
func newInprocConn(interceptors []grpc.UnaryServerInterceptor) *inprocConn {
	return &inprocConn{intercept: chainUnary(interceptors), methods: map[string]inprocMethod{}}
}

// chainUnary composes interceptors into one, the first outermost.
func chainUnary(ics []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	switch len(ics) {
	case 0:
		return nil
	case 1:
		return ics[0]
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, final grpc.UnaryHandler) (any, error) {
		var next func(i int) grpc.UnaryHandler
		next = func(i int) grpc.UnaryHandler {
			if i == len(ics) {
				return final
			}
			return func(ctx context.Context, req any) (any, error) {
				return ics[i](ctx, req, info, next(i+1))
			}
		}
		return ics[0](ctx, req, info, next(1))
	}
}

// RegisterService records the unary methods of a service.
func (c *inprocConn) RegisterService(desc *grpc.ServiceDesc, impl any) {
	for _, m := range desc.Methods {
		c.methods["/"+desc.ServiceName+"/"+m.MethodName] = inprocMethod{impl: impl, handler: m.Handler}
	}
}

// Invoke runs a unary method in process.
func (c *inprocConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	m, ok := c.methods[method]
	if !ok {
		return status.Errorf(codes.Unimplemented, "method %s is not served in process", method)
	}
	in, ok := args.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "in-process call %s: request is %T, not a protobuf message", method, args)
	}
	out, ok := reply.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "in-process call %s: reply is %T, not a protobuf message", method, reply)
	}
	md, _ := metadata.FromOutgoingContext(ctx) // keys in lower case, as the gateway sets them
	if err := checkMetadata(md); err != nil {
		// What the gRPC client answers before sending such metadata.
		return status.Error(codes.Unknown, err.Error())
	}
	st := &inprocStream{method: method}
	sctx := metadata.NewIncomingContext(metadata.NewOutgoingContext(ctx, nil), md)
	sctx = grpc.NewContextWithServerTransportStream(sctx, st)
	dec := func(v any) error {
		msg, ok := v.(proto.Message)
		if !ok {
			return status.Errorf(codes.Internal, "in-process call %s: handler wants %T, not a protobuf message", method, v)
		}
		proto.Merge(msg, in)
		return nil
	}
	resp, err := m.handler(m.impl, sctx, dec, c.intercept)

	header, trailer := st.metadata()
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = trailer
		}
	}
	if err != nil {
		if s, ok := status.FromError(err); ok {
			return s.Err()
		}
		return status.FromContextError(err).Err()
	}
	r, ok := resp.(proto.Message)
	if !ok || !r.ProtoReflect().IsValid() {
		return status.Errorf(codes.Internal, "in-process call %s: handler returned %T, not a protobuf message", method, resp)
	}
	proto.Merge(out, r)
	return nil
}

// NewStream refuses: only unary methods are served in process.
func (c *inprocConn) NewStream(_ context.Context, _ *grpc.StreamDesc, method string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Errorf(codes.Unimplemented, "streaming method %s is not served in process", method)
}

// checkMetadata applies the gRPC client's rules for outgoing metadata:
// keys of [0-9a-z-_.], and values of printable ASCII unless the key ends
// in "-bin".
func checkMetadata(md metadata.MD) error {
	for k, vals := range md {
		if k == "" {
			return fmt.Errorf("there is an empty key in the header")
		}
		if k[0] == ':' {
			continue
		}
		for i := 0; i < len(k); i++ {
			c := k[i]
			if !(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '.' && c != '-' && c != '_' {
				return fmt.Errorf("header key %q contains illegal characters not in [0-9a-z-_.]", k)
			}
		}
		if len(k) > 4 && k[len(k)-4:] == "-bin" {
			continue
		}
		for _, v := range vals {
			for i := 0; i < len(v); i++ {
				if v[i] < 0x20 || v[i] > 0x7e {
					return fmt.Errorf("header key %q contains value with non-printable ASCII characters", k)
				}
			}
		}
	}
	return nil
}

// inprocStream collects the header and trailer metadata a handler sets.
type inprocStream struct {
	method string

	mu      sync.Mutex
	header  metadata.MD
	trailer metadata.MD
	sent    bool
}

func (s *inprocStream) Method() string { return s.method }

func (s *inprocStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent {
		return status.Error(codes.Internal, "transport: SendHeader called multiple times")
	}
	s.header = metadata.Join(s.header, md)
	return nil
}

func (s *inprocStream) SendHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent {
		return status.Error(codes.Internal, "transport: SendHeader called multiple times")
	}
	s.header = metadata.Join(s.header, md)
	s.sent = true
	return nil
}

func (s *inprocStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

func (s *inprocStream) metadata() (header, trailer metadata.MD) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.header.Copy(), s.trailer.Copy()
}
