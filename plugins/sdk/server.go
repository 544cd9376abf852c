package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
)

// MaxConcurrentDeliveries bounds how many deliveries one Deliver stream runs
// at the same time inside a plugin. When the bound is reached the plugin
// stops reading the stream, and gRPC flow control pushes back on the host.
const MaxConcurrentDeliveries = 1024

// DefaultTimeout bounds an attempt whose request carries no timeout.
const DefaultTimeout = 30 * time.Second

// resultBuffer is how many finished results may wait for the stream's single
// sender before workers block.
const resultBuffer = 256

// workerIdle is how long a Deliver stream's idle worker goroutine waits
// for another request before it exits.
const workerIdle = 10 * time.Second

// NewServer adapts t to the gRPC TransportService. Plugins do not normally
// need it (Serve registers it); it is exported for hosts and tests that run
// a transport behind their own gRPC server.
//
// On the Deliver stream requests run concurrently (at most
// MaxConcurrentDeliveries at once, on reused worker goroutines), each with
// a context whose deadline is the request's timeout (DefaultTimeout when
// unset); results are sent back as they finish, in any order, by a single
// sender. A panic in t.Deliver is recovered and reported as OUTCOME_FAILED
// for that request only.
func NewServer(t Transport) transportv1.TransportServiceServer {
	return &server{impl: t}
}

type server struct {
	transportv1.UnimplementedTransportServiceServer
	impl Transport
}

func (s *server) Describe(ctx context.Context, _ *transportv1.DescribeRequest) (*transportv1.DescribeResponse, error) {
	info, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "describe transport: %v", err)
	}
	versions := info.APIVersions
	if len(versions) == 0 {
		versions = []uint32{APIVersion}
	}
	return &transportv1.DescribeResponse{
		Name:         info.Name,
		Version:      info.Version,
		ApiVersions:  versions,
		TargetSchema: info.TargetSchema,
		ConfigFields: configFieldsToProto(info.ConfigFields),
	}, nil
}

func (s *server) Validate(ctx context.Context, req *transportv1.ValidateRequest) (*transportv1.ValidateResponse, error) {
	problems, err := s.impl.Validate(ctx, req.GetConfig())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "validate target config: %v", err)
	}
	return &transportv1.ValidateResponse{Problems: problems}, nil
}

func (s *server) Deliver(stream grpc.BidiStreamingServer[transportv1.DeliverRequest, transportv1.DeliverResponse]) error {
	ctx := stream.Context()
	results := make(chan *transportv1.DeliverResponse, resultBuffer)
	sendErr := make(chan error, 1)
	senderDone := make(chan struct{})

	// The only goroutine that calls stream.Send. After a send error it keeps
	// draining results so that workers never block.
	go func() {
		defer close(senderDone)
		for r := range results {
			if err := stream.Send(r); err != nil {
				sendErr <- err
				for range results {
				}
				return
			}
		}
	}()

	sem := make(chan struct{}, MaxConcurrentDeliveries)
	// Requests go to an idle worker if there is one (idle is unbuffered),
	// else to a new worker. Workers are reused, not started per request:
	// a delivery's stack grows (HTTP client, encoding), and a fresh
	// goroutine per request paid for copying it every time.
	idle := make(chan *transportv1.DeliverRequest)
	var workers sync.WaitGroup
	worker := func(in *transportv1.DeliverRequest) {
		defer workers.Done()
		timer := time.NewTimer(workerIdle)
		defer timer.Stop()
		for {
			res := s.deliver(ctx, in.GetRequest())
			// Release the slot only once the result is queued, so a slow
			// stream bounds the number of busy workers too.
			results <- &transportv1.DeliverResponse{RequestId: in.GetRequestId(), Result: res}
			<-sem
			timer.Reset(workerIdle)
			var ok bool
			select {
			case in, ok = <-idle:
				if !ok {
					return
				}
			case <-timer.C:
				return
			}
		}
	}
	var recvErr error
recv:
	for {
		in, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				recvErr = err
			}
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			recvErr = ctx.Err()
			break recv
		}
		select {
		case idle <- in:
		default:
			workers.Add(1)
			go worker(in)
		}
	}

	// The host closed its side (io.EOF) or the stream broke: either way every
	// started delivery finishes (a broken stream cancels ctx, so they finish
	// quickly) and its result is sent if the stream still can.
	close(idle)
	workers.Wait()
	close(results)
	<-senderDone
	select {
	case err := <-sendErr:
		return fmt.Errorf("send delivery result: %w", err)
	default:
	}
	if recvErr != nil {
		return fmt.Errorf("receive delivery request: %w", recvErr)
	}
	return nil
}

// deliver runs one attempt with the request's deadline and turns a panic or
// a missing result into a failed result, so one bad request cannot take the
// plugin process (and every other in-flight delivery) down.
func (s *server) deliver(ctx context.Context, req *transportv1.DeliveryRequest) (res *transportv1.DeliveryResult) {
	if req == nil {
		return &transportv1.DeliveryResult{
			Outcome: transportv1.Outcome_OUTCOME_REJECTED,
			Error:   "the plugin received an empty delivery request",
		}
	}
	timeout := DefaultTimeout
	if d := req.GetTimeout(); d != nil {
		if t := d.AsDuration(); t > 0 {
			timeout = t
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			res = &transportv1.DeliveryResult{
				Outcome: transportv1.Outcome_OUTCOME_FAILED,
				Error:   fmt.Sprintf("transport plugin panicked while delivering: %v", r),
			}
		}
	}()
	res = s.impl.Deliver(ctx, req)
	if res == nil {
		res = &transportv1.DeliveryResult{
			Outcome: transportv1.Outcome_OUTCOME_FAILED,
			Error:   "transport plugin returned no result",
		}
	}
	return res
}
