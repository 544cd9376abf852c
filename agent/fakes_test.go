package agent

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/hookwire/hookwire/plugins/sdk"
)

// failsafe bounds every wait in these tests; reaching it is a failure, not
// a way to synchronise.
const failsafe = 15 * time.Second

// fakeCP is a control plane driven by the test: every accepted stream is
// handed over on conns after its Hello, and the test decides what to send.
type fakeCP struct {
	hookwirev1.UnimplementedAgentServiceServer
	apiKey string // required bearer token when non-empty
	conns  chan *cpConn
}

// cpConn is one agent stream as the fake control plane sees it.
type cpConn struct {
	md    metadata.MD
	hello *hookwirev1.Hello
	in    chan *hookwirev1.AgentMessage // after Hello; closed when the stream ends
	out   chan *hookwirev1.ControlMessage
	kill  chan error
}

func (f *fakeCP) Connect(s grpc.BidiStreamingServer[hookwirev1.AgentMessage, hookwirev1.ControlMessage]) error {
	ctx := s.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	if f.apiKey != "" {
		if v := md.Get("authorization"); len(v) != 1 || v[0] != "Bearer "+f.apiKey {
			return status.Error(codes.Unauthenticated, "invalid API key")
		}
	}
	first, err := s.Recv()
	if err != nil {
		return err
	}
	if first.GetHello() == nil {
		return status.Error(codes.InvalidArgument, "first message must be Hello")
	}
	c := &cpConn{
		md:    md,
		hello: first.GetHello(),
		in:    make(chan *hookwirev1.AgentMessage, 4096),
		out:   make(chan *hookwirev1.ControlMessage, 64),
		kill:  make(chan error, 1),
	}
	go func() {
		defer close(c.in)
		for {
			m, err := s.Recv()
			if err != nil {
				return
			}
			select {
			case c.in <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	select {
	case f.conns <- c:
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		select {
		case m := <-c.out:
			if err := s.Send(m); err != nil {
				return err
			}
		case err := <-c.kill:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// startCP serves a fake control plane on addr ("127.0.0.1:0" for any port).
func startCP(t testing.TB, addr string, cp *fakeCP) (*grpc.Server, string) {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	srv := grpc.NewServer()
	hookwirev1.RegisterAgentServiceServer(srv, cp)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return srv, lis.Addr().String()
}

func newFakeCP() *fakeCP { return &fakeCP{conns: make(chan *cpConn, 4)} }

func (f *fakeCP) accept(t testing.TB) *cpConn {
	t.Helper()
	select {
	case c := <-f.conns:
		return c
	case <-time.After(failsafe):
		t.Fatal("agent did not connect")
		return nil
	}
}

func (c *cpConn) send(t testing.TB, m *hookwirev1.ControlMessage) {
	t.Helper()
	select {
	case c.out <- m:
	case <-time.After(failsafe):
		t.Fatal("control plane send queue is stuck")
	}
}

// next returns the next message that is not a heartbeat.
func (c *cpConn) next(t testing.TB) *hookwirev1.AgentMessage {
	t.Helper()
	for {
		m := c.nextAny(t)
		if m.GetHeartbeat() == nil {
			return m
		}
	}
}

func (c *cpConn) nextAny(t testing.TB) *hookwirev1.AgentMessage {
	t.Helper()
	select {
	case m, ok := <-c.in:
		if !ok {
			t.Fatal("agent stream ended while a message was expected")
		}
		return m
	case <-time.After(failsafe):
		t.Fatal("no message from the agent")
		return nil
	}
}

// results reads until n results have arrived; it returns them by lease id,
// how many Results messages carried them, and the credit granted meanwhile.
func (c *cpConn) results(t testing.TB, n int) (map[string]*hookwirev1.Result, int, uint32) {
	t.Helper()
	got := map[string]*hookwirev1.Result{}
	msgs := 0
	var credit uint32
	for len(got) < n {
		m := c.next(t)
		switch {
		case m.GetResults() != nil:
			msgs++
			for _, r := range m.GetResults().GetItems() {
				if _, dup := got[r.GetLeaseId()]; dup {
					t.Fatalf("result for %s reported twice on one stream", r.GetLeaseId())
				}
				got[r.GetLeaseId()] = r
			}
		case m.GetCredit() != nil:
			credit += m.GetCredit().GetAmount()
		default:
			t.Fatalf("unexpected message while waiting for results: %v", m)
		}
	}
	return got, msgs, credit
}

// credit reads Credit messages until their sum reaches want.
func (c *cpConn) credit(t testing.TB, have, want uint32) {
	t.Helper()
	for have < want {
		m := c.next(t)
		if m.GetCredit() == nil {
			t.Fatalf("got %v while waiting for credit (have %d, want %d)", m, have, want)
		}
		have += m.GetCredit().GetAmount()
	}
	if have != want {
		t.Fatalf("credit granted = %d, want %d", have, want)
	}
}

func welcome(honoured ...string) *hookwirev1.ControlMessage {
	return &hookwirev1.ControlMessage{Msg: &hookwirev1.ControlMessage_Welcome{Welcome: &hookwirev1.Welcome{
		ServerTime: timestamppb.Now(), HonouredLeaseIds: honoured,
	}}}
}

func assignment(id, transport string) *hookwirev1.Assignment {
	return &hookwirev1.Assignment{
		LeaseId:    id,
		LeaseToken: "tok-" + id,
		Deadline:   timestamppb.New(time.Now().Add(time.Minute)),
		DeliveryId: "dlv-" + id,
		Attempt:    1,
		Transport:  transport,
		Request: &transportv1.DeliveryRequest{
			Body:       []byte(id),
			Timeout:    durationpb.New(30 * time.Second),
			DeliveryId: "dlv-" + id,
			Headers:    map[string]string{"webhook-id": "dlv-" + id},
		},
	}
}

func assign(as ...*hookwirev1.Assignment) *hookwirev1.ControlMessage {
	return &hookwirev1.ControlMessage{Msg: &hookwirev1.ControlMessage_Assignments{
		Assignments: &hookwirev1.Assignments{Items: as},
	}}
}

func assignIDs(transport string, ids ...string) *hookwirev1.ControlMessage {
	as := make([]*hookwirev1.Assignment, len(ids))
	for i, id := range ids {
		as[i] = assignment(id, transport)
	}
	return assign(as...)
}

func acks(accepted bool, ids ...string) *hookwirev1.ControlMessage {
	items := make([]*hookwirev1.ResultAck, len(ids))
	for i, id := range ids {
		items[i] = &hookwirev1.ResultAck{LeaseId: id, Accepted: accepted}
	}
	return &hookwirev1.ControlMessage{Msg: &hookwirev1.ControlMessage_ResultAcks{
		ResultAcks: &hookwirev1.ResultAcks{Items: items},
	}}
}

func cancelMsg(id string) *hookwirev1.ControlMessage {
	return &hookwirev1.ControlMessage{Msg: &hookwirev1.ControlMessage_Cancel{Cancel: &hookwirev1.Cancel{LeaseId: id}}}
}

// fakeTransport is an in-process sdk.Transport whose behaviour is a func.
type fakeTransport struct {
	name    string
	deliver func(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult
	calls   atomic.Int64
	cur     atomic.Int64
	peak    atomic.Int64
}

var _ sdk.Transport = (*fakeTransport)(nil)

func (f *fakeTransport) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: f.name, Version: "1.2.3", APIVersions: []uint32{1}}, nil
}

func (f *fakeTransport) Validate(context.Context, *structpb.Struct) ([]string, error) {
	return nil, nil
}

func (f *fakeTransport) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	f.calls.Add(1)
	n := f.cur.Add(1)
	defer f.cur.Add(-1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return f.deliver(ctx, req)
}

// echo succeeds at once, returning the request body.
func echo(_ context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	return &transportv1.DeliveryResult{
		Outcome: transportv1.Outcome_OUTCOME_SUCCESS, StatusCode: 200, ResponseBody: req.GetBody(),
	}
}

// gated is a transport behaviour: bodies listed in block signal started and
// wait for release (or for ctx, reporting a timeout with ctx's error); others
// succeed at once.
type gated struct {
	block   map[string]bool
	started chan string
	release chan struct{}
}

func newGated(block ...string) *gated {
	g := &gated{block: map[string]bool{}, started: make(chan string, 64), release: make(chan struct{})}
	for _, b := range block {
		g.block[b] = true
	}
	return g
}

func (g *gated) deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	if !g.block[string(req.GetBody())] {
		return echo(ctx, req)
	}
	g.started <- string(req.GetBody())
	select {
	case <-g.release:
		return echo(ctx, req)
	case <-ctx.Done():
		return &transportv1.DeliveryResult{
			Outcome: transportv1.Outcome_OUTCOME_TIMEOUT, Error: ctx.Err().Error(),
		}
	}
}

func (g *gated) waitStarted(t testing.TB, want ...string) {
	t.Helper()
	seen := map[string]bool{}
	for len(seen) < len(want) {
		select {
		case b := <-g.started:
			seen[b] = true
		case <-time.After(failsafe):
			t.Fatalf("deliveries started: %v, want %v", seen, want)
		}
	}
	for _, w := range want {
		if !seen[w] {
			t.Fatalf("deliveries started: %v, want %v", seen, want)
		}
	}
}

// testConfig is a config for addr with fast backoff and the given transports.
func testConfig(t testing.TB, addr string, ts ...sdk.Transport) Config {
	t.Helper()
	src, err := StaticTransports(context.Background(), ts...)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		ServerAddr:   addr,
		AgentID:      "agent-test",
		MaxInFlight:  8,
		Transports:   src,
		BackoffBase:  5 * time.Millisecond,
		BackoffMax:   40 * time.Millisecond,
		DrainTimeout: 10 * time.Second,
		FlushTimeout: 10 * time.Second,
		Logger:       testLogger(t),
	}
}

// running is an Agent whose Run executes in the background.
type running struct {
	*Agent
	cancel context.CancelFunc
	done   chan error
}

func startAgent(t testing.TB, cfg Config, hooks testHooks) *running {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	a.hooks = hooks
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Agent: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		a.stopWork() // do not wait for deliveries a failed test left blocked
		select {
		case <-r.done:
		case <-time.After(failsafe + a.cfg.FlushTimeout):
			t.Error("Run did not return after cleanup")
		}
	})
	return r
}

// wait returns Run's result.
func (r *running) wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // keep it for cleanup
		return err
	case <-time.After(failsafe):
		t.Fatal("Run did not return")
		return errors.New("unreachable")
	}
}
