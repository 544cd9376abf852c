package controlplane

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/hookwire/hookwire/controlplane/internal/cluster"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Any server answers any client: a follower forwards each call of the
// public API (package hookwire.v1) to the leader, over the cluster port
// (cluster.Node.DialAPI; mutual TLS when the cluster has it), and relays
// the answer, streams included (tail, watch, an agent's Connect). The
// leader authenticates the caller's own credentials, which travel in the
// forwarded metadata. Health and reflection are answered locally.
//
// A read may be served by the follower itself from its own copy when the
// caller allows a stale answer (header hookwire-stale-ok: true); Get and
// List calls only.

// staleOKHeader lets a read be answered from a follower's copy.
const staleOKHeader = "hookwire-stale-ok"

// forwardedHeader marks a forwarded call, so a server that is not the
// leader either (leadership moved meanwhile) does not forward it again.
const forwardedHeader = "hookwire-forwarded-by"

// localStatusMethod is answered by the server called: it reports that
// server's own view of the cluster.
const localStatusMethod = "/hookwire.v1.ClusterService/GetClusterStatus"

type forwarder struct {
	node *cluster.Node
	// ready reports whether this server, as leader, has loaded what it
	// serves from (the store caught up, the catalog loaded, the
	// dispatcher running): raft makes it leader before that.
	ready func() bool
	mu    sync.Mutex
	// conns are gRPC clients of other servers' API, by cluster address.
	conns map[string]*grpc.ClientConn
	// relays ends every relayed stream when the server stops, so that its
	// graceful stop does not wait for streams the leader keeps open.
	relays    context.Context
	endRelays context.CancelFunc
}

func newForwarder(node *cluster.Node, ready func() bool) *forwarder {
	f := &forwarder{node: node, ready: ready, conns: map[string]*grpc.ClientConn{}}
	f.relays, f.endRelays = context.WithCancel(context.Background())
	return f
}

// stopRelays ends the streams this server relays to the leader (their
// clients reconnect elsewhere).
func (f *forwarder) stopRelays() { f.endRelays() }

// target decides where a call runs: "" runs it here; otherwise the
// leader's cluster address. A call that cannot run anywhere gets an error.
func (f *forwarder) target(ctx context.Context, method string) (string, error) {
	if !strings.HasPrefix(method, "/hookwire.v1.") || method == localStatusMethod {
		return "", nil
	}
	// ValueFromIncomingContext reads one key without copying the whole
	// metadata, which FromIncomingContext does on every call.
	if staleRead(method, metadata.ValueFromIncomingContext(ctx, staleOKHeader)) {
		return "", nil
	}
	if f.node.IsLeader() {
		if !f.ready() {
			return "", status.Error(codes.Unavailable, "this server was just elected leader and is loading its state; retry")
		}
		return "", nil
	}
	if len(metadata.ValueFromIncomingContext(ctx, forwardedHeader)) > 0 {
		return "", status.Error(codes.Unavailable, "the cluster's leadership is moving; retry")
	}
	leader, ok := f.node.LeaderInfo()
	if !ok || leader.Address == "" {
		return "", status.Error(codes.Unavailable, "the cluster has no leader right now (an election is running, or this server cannot reach a quorum); retry")
	}
	return leader.Address, nil
}

func staleRead(method string, v []string) bool {
	if len(v) == 0 || !strings.EqualFold(v[0], "true") {
		return false
	}
	name := method[strings.LastIndex(method, "/")+1:]
	return strings.HasPrefix(name, "Get") || strings.HasPrefix(name, "List")
}

func (f *forwarder) conn(address string) (*grpc.ClientConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.conns[address]; c != nil {
		return c, nil
	}
	c, err := grpc.NewClient("passthrough:///"+address,
		grpc.WithTransportCredentials(insecure.NewCredentials()), // the cluster dialer adds TLS
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return f.node.DialAPI(ctx, addr) }),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
	)
	if err != nil {
		return nil, err
	}
	f.conns[address] = c
	return c, nil
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for a, c := range f.conns {
		_ = c.Close()
		delete(f.conns, a)
	}
}

// outgoing carries the caller's metadata to the leader.
func (f *forwarder) outgoing(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	out := metadata.MD{}
	for k, v := range md {
		switch {
		case strings.HasPrefix(k, ":"), strings.HasPrefix(k, "grpc-"), k == "content-type", k == "user-agent":
			continue
		}
		out[k] = v
	}
	out.Set(forwardedHeader, f.node.ID())
	return metadata.NewOutgoingContext(ctx, out)
}

// methodTypes caches messages' answer per method (forwarded calls look
// the same few methods up again and again).
var methodTypes sync.Map // full method -> [2]func() proto.Message

// messages returns constructors of a method's request and response types.
func messages(fullMethod string) (in, out func() proto.Message, err error) {
	if t, ok := methodTypes.Load(fullMethod); ok {
		c := t.([2]func() proto.Message)
		return c[0], c[1], nil
	}
	if in, out, err = lookupMessages(fullMethod); err == nil {
		methodTypes.Store(fullMethod, [2]func() proto.Message{in, out})
	}
	return in, out, err
}

func lookupMessages(fullMethod string) (in, out func() proto.Message, err error) {
	svc, name, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !ok {
		return nil, nil, status.Errorf(codes.Unimplemented, "method %q", fullMethod)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, nil, status.Errorf(codes.Unimplemented, "service %q: %v", svc, err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, nil, status.Errorf(codes.Unimplemented, "%q is not a service", svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, nil, status.Errorf(codes.Unimplemented, "method %q", fullMethod)
	}
	typ := func(m protoreflect.MessageDescriptor) (func() proto.Message, error) {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(m.FullName())
		if err != nil {
			return nil, err
		}
		return func() proto.Message { return mt.New().Interface() }, nil
	}
	if in, err = typ(md.Input()); err != nil {
		return nil, nil, err
	}
	if out, err = typ(md.Output()); err != nil {
		return nil, nil, err
	}
	return in, out, nil
}

func (f *forwarder) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	address, err := f.target(ctx, info.FullMethod)
	if err != nil || address == "" {
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
	_, newOut, err := messages(info.FullMethod)
	if err != nil {
		return nil, err
	}
	c, err := f.conn(address)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "forward to the leader at %s: %v", address, err)
	}
	reply := newOut()
	var header, trailer metadata.MD
	err = c.Invoke(f.outgoing(ctx), info.FullMethod, req, reply, grpc.Header(&header), grpc.Trailer(&trailer))
	relayMetadata(ctx, header, trailer)
	if err != nil {
		return nil, err
	}
	return reply, nil
}

func relayMetadata(ctx context.Context, header, trailer metadata.MD) {
	if len(header) > 0 {
		_ = grpc.SetHeader(ctx, header)
	}
	if len(trailer) > 0 {
		_ = grpc.SetTrailer(ctx, trailer)
	}
}

func (f *forwarder) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	address, err := f.target(ss.Context(), info.FullMethod)
	if err != nil || address == "" {
		if err != nil {
			return err
		}
		return handler(srv, ss)
	}
	newIn, newOut, err := messages(info.FullMethod)
	if err != nil {
		return err
	}
	c, err := f.conn(address)
	if err != nil {
		return status.Errorf(codes.Unavailable, "forward to the leader at %s: %v", address, err)
	}
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	defer context.AfterFunc(f.relays, cancel)()
	cs, err := c.NewStream(f.outgoing(ctx), &grpc.StreamDesc{ServerStreams: info.IsServerStream, ClientStreams: info.IsClientStream}, info.FullMethod)
	if err != nil {
		return err
	}
	// Client to leader. This goroutine ends when the client's side does, or
	// when the handler returns (gRPC then ends ss's receive side).
	go func() {
		for {
			m := newIn()
			if err := ss.RecvMsg(m); err != nil {
				if errors.Is(err, io.EOF) {
					_ = cs.CloseSend()
				} else {
					cancel()
				}
				return
			}
			if err := cs.SendMsg(m); err != nil {
				return // the leader's side ended; its status comes from RecvMsg
			}
		}
	}()
	// Leader to client: its headers as soon as it sends them (a tail
	// stream is accepted by its headers, long before its first item),
	// then its messages and trailer.
	if h, err := cs.Header(); err == nil {
		_ = ss.SendHeader(h)
	}
	for {
		m := newOut()
		err := cs.RecvMsg(m)
		if errors.Is(err, io.EOF) {
			ss.SetTrailer(cs.Trailer())
			return nil
		}
		if err != nil {
			ss.SetTrailer(cs.Trailer())
			return err
		}
		if err := ss.SendMsg(m); err != nil {
			return err
		}
	}
}
