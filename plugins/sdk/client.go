package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/sdk/vtcodec"
)

// Client is the host side of a transport plugin: a Transport implemented
// over gRPC. Hosts get one from go-plugin (Dispense(PluginName)); it is
// exported so hosts and tests can also build one over their own connection.
//
// All deliveries share ONE long-lived Deliver stream: each call gets a
// request id, is sent on the stream, and waits for the result with the same
// id, so many deliveries are in flight at once and finish in any order.
// When the stream breaks (the plugin crashed or exited), every pending call
// completes at once with OUTCOME_CONNECTION_ERROR; the next call opens a new
// stream if the connection still works.
//
// A Client is safe for concurrent use.
type Client struct {
	rpc transportv1.TransportServiceClient

	ctx    context.Context // ends when the plugin is gone or Close is called
	cancel context.CancelFunc
	recv   sync.WaitGroup // receive loops

	nextID atomic.Uint64

	cur atomic.Pointer[session] // current stream; replaced once broken
	mu  sync.Mutex              // serialises opening streams
}

// NewClient returns a Client for the TransportService behind conn. ctx
// bounds the client's life: when it ends (go-plugin cancels it when the
// plugin process exits) every pending delivery fails at once and later ones
// fail immediately.
func NewClient(ctx context.Context, conn grpc.ClientConnInterface) *Client {
	cctx, cancel := context.WithCancel(ctx)
	return &Client{
		rpc:    transportv1.NewTransportServiceClient(conn),
		ctx:    cctx,
		cancel: cancel,
	}
}

var _ Transport = (*Client)(nil)

// Done is closed when the plugin is gone (its process exited, or the
// context given to NewClient ended) or Close was called.
func (c *Client) Done() <-chan struct{} { return c.ctx.Done() }

// Close ends the Deliver stream, fails pending deliveries, and waits for the
// client's goroutines. It does not stop the plugin process; go-plugin does
// that. Close is idempotent.
func (c *Client) Close() error {
	c.cancel()
	c.recv.Wait()
	return nil
}

// Describe asks the plugin who it is.
func (c *Client) Describe(ctx context.Context) (Info, error) {
	resp, err := c.rpc.Describe(ctx, &transportv1.DescribeRequest{HostApiVersions: []uint32{APIVersion}})
	if err != nil {
		return Info{}, fmt.Errorf("describe transport plugin: %w", err)
	}
	return Info{
		Name:         resp.GetName(),
		Version:      resp.GetVersion(),
		APIVersions:  resp.GetApiVersions(),
		TargetSchema: resp.GetTargetSchema(),
		ConfigFields: configFieldsFromProto(resp.GetConfigFields()),
	}, nil
}

// Validate asks the plugin to check a target configuration.
func (c *Client) Validate(ctx context.Context, config *structpb.Struct) ([]string, error) {
	resp, err := c.rpc.Validate(ctx, &transportv1.ValidateRequest{Config: config})
	if err != nil {
		return nil, fmt.Errorf("validate target config in transport plugin: %w", err)
	}
	return resp.GetProblems(), nil
}

// Deliver sends req on the shared stream and waits for its result, for ctx
// to end, or for the stream to break, whichever comes first. If ctx has a
// deadline sooner than req's timeout, the plugin is told the shorter timeout
// so it gives up at the same time. req is not modified.
func (c *Client) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	if err := ctx.Err(); err != nil {
		return abandonedResult(err)
	}
	s, err := c.session()
	if err != nil {
		return &transportv1.DeliveryResult{
			Outcome: transportv1.Outcome_OUTCOME_CONNECTION_ERROR,
			Error:   err.Error(),
		}
	}
	wire := req
	if dl, ok := ctx.Deadline(); ok {
		wire = withTimeout(req, time.Until(dl))
	}

	id := c.nextID.Add(1)
	cl := callPool.Get().(*call)
	if err := s.add(id, cl); err != nil {
		callPool.Put(cl)
		return crashedResult(err)
	}
	s.sendMu.Lock()
	err = s.stream.Send(&transportv1.DeliverRequest{RequestId: id, Request: wire})
	s.sendMu.Unlock()
	if err != nil && !errors.Is(err, io.EOF) {
		// io.EOF means the stream has ended and the receive loop is about to
		// report why; anything else we report ourselves.
		s.fail(fmt.Errorf("send delivery request: %w", err))
	}

	select {
	case res := <-cl.ch:
		callPool.Put(cl)
		return res
	case <-ctx.Done():
		if !s.remove(id) {
			// The result arrived at the same moment: the receive loop has
			// taken the call and is handing it over (the channel is
			// buffered, so that never blocks). Prefer the real result.
			res := <-cl.ch
			callPool.Put(cl)
			return res
		}
		callPool.Put(cl)
		return abandonedResult(ctx.Err())
	}
}

// session returns the current stream, opening one if there is none or the
// last one broke.
func (c *Client) session() (*session, error) {
	if s := c.cur.Load(); s != nil && !s.broken.Load() {
		return s, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.cur.Load(); s != nil && !s.broken.Load() {
		return s, nil
	}
	if err := c.ctx.Err(); err != nil {
		return nil, errors.New("transport plugin is not running (it exited or crashed, or the agent is shutting it down)")
	}
	sctx, cancel := context.WithCancel(c.ctx)
	// The vtproto codec (generated encoders, content-subtype "vtproto"):
	// the plugin's gRPC server picks it by that subtype. A plugin built
	// with an SDK that predates it reads the same bytes with the standard
	// codec.
	stream, err := c.rpc.Deliver(sctx, grpc.ForceCodecV2(vtcodec.Codec{}))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open deliver stream to transport plugin (it may have exited or crashed): %w", err)
	}
	s := &session{stream: stream, cancel: cancel, pending: make(map[uint64]*call, 64)}
	c.cur.Store(s)
	c.recv.Add(1)
	go c.receive(s)
	return s, nil
}

// receive hands each result to the call waiting for it until the stream
// ends, then fails everything still pending.
func (c *Client) receive(s *session) {
	defer c.recv.Done()
	defer s.cancel()
	for {
		resp, err := s.stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the plugin closed the deliver stream")
			} else if c.ctx.Err() != nil {
				err = fmt.Errorf("plugin process exited or was stopped: %w", err)
			}
			s.fail(err)
			return
		}
		s.mu.Lock()
		cl, ok := s.pending[resp.GetRequestId()]
		if ok {
			delete(s.pending, resp.GetRequestId())
		}
		s.mu.Unlock()
		if !ok {
			continue // the caller gave up (ctx ended); drop the late result
		}
		res := resp.GetResult()
		if res == nil {
			res = &transportv1.DeliveryResult{
				Outcome: transportv1.Outcome_OUTCOME_FAILED,
				Error:   "transport plugin sent an empty result",
			}
		}
		cl.ch <- res
	}
}

// session is one Deliver stream and the calls waiting on it.
type session struct {
	stream grpc.BidiStreamingClient[transportv1.DeliverRequest, transportv1.DeliverResponse]
	cancel context.CancelFunc
	sendMu sync.Mutex // gRPC allows one sender at a time
	broken atomic.Bool

	mu      sync.Mutex
	pending map[uint64]*call // nil once broken
	err     error
}

func (s *session) add(id uint64, cl *call) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.pending[id] = cl
	return nil
}

// remove forgets a call and reports whether it was still pending.
func (s *session) remove(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[id]; !ok {
		return false
	}
	delete(s.pending, id)
	return true
}

// fail marks the stream broken and completes every pending call with a
// retryable connection error. Only the first call has an effect.
func (s *session) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	s.broken.Store(true)
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	s.cancel()
	for _, cl := range pending {
		cl.ch <- crashedResult(err)
	}
}

// call is one delivery waiting for its result. Calls are pooled: a call is
// put back only once nobody can send on its channel any more.
type call struct {
	ch chan *transportv1.DeliveryResult
}

var callPool = sync.Pool{New: func() any {
	return &call{ch: make(chan *transportv1.DeliveryResult, 1)}
}}

// crashedResult is what a delivery in flight on a broken stream gets.
func crashedResult(err error) *transportv1.DeliveryResult {
	return &transportv1.DeliveryResult{
		Outcome: transportv1.Outcome_OUTCOME_CONNECTION_ERROR,
		Error: "transport plugin exited or crashed before answering; " +
			"the target may or may not have received the delivery: " + err.Error(),
	}
}

// abandonedResult is what a delivery gets when the caller's context ends
// before the plugin answers.
func abandonedResult(err error) *transportv1.DeliveryResult {
	if errors.Is(err, context.DeadlineExceeded) {
		return &transportv1.DeliveryResult{
			Outcome: transportv1.Outcome_OUTCOME_TIMEOUT,
			Error:   "the transport plugin did not answer before the deadline: " + err.Error(),
		}
	}
	return &transportv1.DeliveryResult{
		Outcome: transportv1.Outcome_OUTCOME_CONNECTION_ERROR,
		Error:   "delivery canceled before the transport plugin answered: " + err.Error(),
	}
}

// withTimeout returns req, or a shallow copy of it whose timeout is
// remaining when that is shorter than what req asks for. Only the top-level
// struct is new; body, headers and config are shared, never modified.
func withTimeout(req *transportv1.DeliveryRequest, remaining time.Duration) *transportv1.DeliveryRequest {
	if remaining <= 0 {
		remaining = time.Millisecond
	}
	want := DefaultTimeout
	if d := req.GetTimeout(); d != nil {
		if t := d.AsDuration(); t > 0 {
			want = t
		}
	}
	if remaining >= want {
		return req
	}
	// Keep this list in step with the DeliveryRequest message; a test
	// compares it against the message descriptor.
	return &transportv1.DeliveryRequest{
		Config:      req.GetConfig(),
		Body:        req.GetBody(),
		ContentType: req.GetContentType(),
		Headers:     req.GetHeaders(),
		Timeout:     durationpb.New(remaining),
		DeliveryId:  req.GetDeliveryId(),
		EventType:   req.GetEventType(),
		Traceparent: req.GetTraceparent(),
		Tracestate:  req.GetTracestate(),
	}
}
