package agent

import (
	"context"
	"errors"
	"fmt"
	"github.com/hookwire/hookwire/internal/multiaddr"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hookwire/hookwire/agent/internal/backoff"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"github.com/hookwire/hookwire/plugins/sdk/vtcodec"
)

// Limits of one Results message. The control plane's default gRPC receive
// limit is 4 MiB; a batch stays well under it (a single oversized result is
// still sent alone).
const (
	maxBatchItems = 512
	maxBatchBytes = 1 << 20
)

type stream = grpc.BidiStreamingClient[hookwirev1.AgentMessage, hookwirev1.ControlMessage]

// fatalError marks errors that reconnecting cannot fix.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }
func (e fatalError) Unwrap() error { return e.err }

// refusedForGood reports whether the control plane rejected the agent in a
// way a retry will not change.
func refusedForGood(err error) bool {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.Unimplemented:
		return true
	}
	return false
}

// connectLoop runs streams one after another until life ends (nil) or the
// control plane refuses the agent for good (error).
func (a *Agent) connectLoop(life context.Context) error {
	log := a.cfg.Logger
	bo := backoff.New(a.cfg.BackoffBase, a.cfg.BackoffMax)
	for {
		up, err := a.session(life)
		if life.Err() != nil {
			return nil
		}
		if fe := (fatalError{}); errors.As(err, &fe) {
			return fe.err
		}
		switch {
		case up < 0:
			a.failedConnects.Add(1)
		case up >= stableStream:
			bo.Reset()
		}
		wait := bo.Next()
		log.Warn("control plane stream ended; reconnecting",
			"server", a.cfg.ServerAddr, "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-life.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// session runs one stream from dial to break. up is how long the stream
// stayed up after the control plane accepted the agent on it (negative: it
// did not).
func (a *Agent) session(life context.Context) (up time.Duration, err error) {
	addr := a.cfg.ServerAddr
	target, multi, err := multiaddr.Dial(addr)
	if err != nil {
		return -1, fatalError{fmt.Errorf("agent: %w", err)}
	}
	conn, err := grpc.NewClient(target, append(multi, a.dialOpts...)...)
	if err != nil {
		return -1, fatalError{fmt.Errorf("agent: create gRPC client for %s: %w", addr, err)}
	}
	defer conn.Close()

	ctx, cancel := context.WithCancel(life)
	defer cancel()
	if a.cfg.APIKey != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+a.cfg.APIKey)
	}
	// The stream's messages go through the vtproto codec (generated
	// encoders; the control plane picks it by content-subtype, and one
	// that predates it reads the same bytes with the standard codec).
	s, err := hookwirev1.NewAgentServiceClient(conn).Connect(ctx, grpc.ForceCodecV2(vtcodec.Codec{}))
	if err != nil {
		return -1, a.classify(fmt.Errorf("open stream to %s: %w", addr, err))
	}

	hello, heldInFlight := a.helloState()
	sentAt := time.Now()
	hsTimer := time.AfterFunc(handshakeTimeout, cancel)
	w, err := handshake(s, hello)
	timedOut := !hsTimer.Stop()
	if err != nil {
		if timedOut {
			err = fmt.Errorf("no Welcome from %s within %v", addr, handshakeTimeout)
		}
		return -1, a.classify(fmt.Errorf("handshake with %s: %w", addr, err))
	}
	welcomedAt := time.Now()
	every := a.welcomed(w, sentAt, welcomedAt, heldInFlight)
	defer a.setConnected(false)

	errc := make(chan error, 2)
	go func() { errc <- a.sendLoop(ctx, s, every) }()
	go func() { errc <- a.recvLoop(s) }()
	err = <-errc
	cancel()
	<-errc
	return time.Since(welcomedAt), err
}

func (a *Agent) classify(err error) error {
	if refusedForGood(err) {
		return fatalError{fmt.Errorf("agent: control plane refused agent %s: %w", a.cfg.AgentID, err)}
	}
	return err
}

// handshake sends Hello and waits for Welcome.
func handshake(s stream, hello *hookwirev1.AgentMessage) (*hookwirev1.Welcome, error) {
	if err := s.Send(hello); err != nil {
		if errors.Is(err, io.EOF) {
			// The server ended the stream; Recv carries its status.
			_, err = s.Recv()
		}
		return nil, fmt.Errorf("send Hello: %w", err)
	}
	msg, err := s.Recv()
	if err != nil {
		return nil, fmt.Errorf("wait for Welcome: %w", err)
	}
	w := msg.GetWelcome()
	if w == nil {
		return nil, fmt.Errorf("control plane sent %T before Welcome", msg.GetMsg())
	}
	return w, nil
}

// welcomed records an accepted stream: clock offset, connected state, and
// cancels held in-flight leases the control plane no longer honours. It
// returns the heartbeat interval.
func (a *Agent) welcomed(w *hookwirev1.Welcome, sentAt, recvAt time.Time, heldInFlight []string) time.Duration {
	if st := w.GetServerTime(); st != nil && st.IsValid() {
		mid := sentAt.Add(recvAt.Sub(sentAt) / 2)
		a.clockOffset.Store(int64(st.AsTime().Sub(mid)))
	} else {
		a.clockOffset.Store(0)
	}
	honoured := make(map[string]struct{}, len(w.GetHonouredLeaseIds()))
	for _, id := range w.GetHonouredLeaseIds() {
		honoured[id] = struct{}{}
	}
	var dropped []string
	a.mu.Lock()
	a.connected = true
	for _, id := range heldInFlight {
		if _, ok := honoured[id]; ok {
			continue
		}
		if l := a.inflight[id]; l != nil {
			l.cancel()
			dropped = append(dropped, id)
		}
	}
	a.mu.Unlock()
	a.sessions.Add(1)

	every := time.Duration(w.GetHeartbeatIntervalMs()) * time.Millisecond
	if every <= 0 {
		every = defaultHeartbeat
	}
	a.cfg.Logger.Info("connected to control plane", "server", a.cfg.ServerAddr,
		"agent_id", a.cfg.AgentID, "held", len(heldInFlight), "not_honoured", len(dropped),
		"clock_offset", time.Duration(a.clockOffset.Load()))
	if len(dropped) > 0 {
		a.cfg.Logger.Debug("cancelled leases the control plane no longer honours", "lease_ids", dropped)
	}
	signal(a.sendSignal) // resend the outbox
	return every
}

func (a *Agent) setConnected(v bool) {
	a.mu.Lock()
	a.connected = v
	a.mu.Unlock()
}

// sendLoop is the only goroutine sending on s: transport status, results,
// credit, heartbeats; it also resends results the control plane asked to
// get again later.
func (a *Agent) sendLoop(ctx context.Context, s stream, every time.Duration) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	arm := func() {
		if at := a.retryTime(); !at.IsZero() {
			retry.Reset(time.Until(at))
		}
	}
	arm()
	var batch []*hookwirev1.Result
	for {
		if err := a.flush(s, &batch); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-a.sendSignal:
		case <-a.retryKick:
			arm()
		case now := <-retry.C:
			if !a.releaseRetries(now) {
				arm() // rescheduled meanwhile
			}
		case <-tick.C:
			a.mu.Lock()
			n := len(a.inflight)
			a.mu.Unlock()
			err := s.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Heartbeat{
				Heartbeat: &hookwirev1.Heartbeat{InFlight: uint32(n)},
			}})
			if err != nil {
				return fmt.Errorf("send heartbeat: %w", err)
			}
		}
	}
}

// flush sends everything pending: changes of transport availability
// first (so the control plane stops assigning for a transport before it
// sees what was handed back for it), then Results in batches, then one
// Credit for the deliveries they freed.
func (a *Agent) flush(s stream, batch *[]*hookwirev1.Result) error {
	for {
		if h := a.hooks.beforeTake; h != nil {
			h()
		}
		statuses, items, credit := a.takeBatch()
		if len(statuses) == 0 && len(items) == 0 && credit == 0 {
			return nil
		}
		for _, st := range statuses {
			err := s.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_TransportStatus{TransportStatus: st}})
			if err != nil {
				return fmt.Errorf("send status of transport %s: %w", st.GetName(), err)
			}
		}
		if len(items) > 0 {
			err := s.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Results{
				Results: &hookwirev1.Results{Items: items},
			}})
			if err != nil {
				return fmt.Errorf("send %d results: %w", len(items), err)
			}
		}
		if credit > 0 {
			err := s.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Credit{
				Credit: &hookwirev1.Credit{Amount: credit},
			}})
			if err != nil {
				return fmt.Errorf("send credit %d: %w", credit, err)
			}
		}
	}
}

// takeBatch takes the transport status changes not yet sent, the next
// batch of pending results, and the credit to grant once nothing is pending
// any more.
func (a *Agent) takeBatch() ([]*hookwirev1.TransportStatus, []*hookwirev1.Result, uint32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	statuses := a.statusChangesLocked()
	var items []*hookwirev1.Result
	size, i := 0, 0
	for ; i < len(a.pending) && len(items) < maxBatchItems; i++ {
		l := a.pending[i]
		if l.acked {
			continue
		}
		if len(items) > 0 && size+l.size > maxBatchBytes {
			break
		}
		if items == nil {
			items = make([]*hookwirev1.Result, 0, min(len(a.pending)-i, maxBatchItems))
		}
		items = append(items, &l.result)
		size += l.size
	}
	n := copy(a.pending, a.pending[i:])
	clear(a.pending[n:])
	a.pending = a.pending[:n]

	var credit uint32
	if len(a.pending) == 0 && a.freed > 0 {
		if !a.draining {
			credit = uint32(a.freed)
		}
		a.freed = 0
	}
	return statuses, items, credit
}

// recvLoop handles control messages until the stream breaks.
func (a *Agent) recvLoop(s stream) error {
	for {
		msg, err := s.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("control plane closed the stream")
			}
			return fmt.Errorf("receive: %w", err)
		}
		switch m := msg.GetMsg().(type) {
		case *hookwirev1.ControlMessage_Assignments:
			a.assign(m.Assignments.GetItems())
		case *hookwirev1.ControlMessage_ResultAcks:
			a.ack(m.ResultAcks.GetItems())
		case *hookwirev1.ControlMessage_Cancel:
			a.cancelLease(m.Cancel.GetLeaseId())
		case *hookwirev1.ControlMessage_Drain:
			a.cfg.Logger.Info("control plane asked the agent to drain", "reason", m.Drain.GetReason())
			a.Drain()
		case *hookwirev1.ControlMessage_Welcome:
			a.cfg.Logger.Warn("ignoring a second Welcome on the same stream")
		default:
			a.cfg.Logger.Debug("ignoring an unknown control message", "type", fmt.Sprintf("%T", m))
		}
	}
}
