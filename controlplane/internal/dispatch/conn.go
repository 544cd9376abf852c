package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var errHelloFirst = errors.New("the first message on the agent stream must be Hello")

// maxCredit bounds what one agent may be owed, whatever it grants.
const maxCredit = 100000

// maxBatch bounds the assignments sent in one message.
const maxBatch = 256

// conn is one agent stream.
type conn struct {
	agentID string
	labels  map[string]string
	// transports are the transports the agent can deliver with now: those
	// its Hello announced, less those it reported unavailable (listed in
	// unavailable with the agent's reason). Scheduling and eligibility
	// read only transports. Both guarded by Dispatcher.mu.
	transports  map[string]bool
	announced   map[string]bool
	unavailable map[string]string
	credit      int // guarded by Dispatcher.mu
	lastSeen    time.Time
	// heard is when the agent last sent anything, on the real clock
	// (liveness must not follow an injected test clock). Guarded by
	// Dispatcher.mu.
	heard     time.Time
	version   string
	connected time.Time
	// token is the id of the join token the agent authenticated with
	// ("" for the admin key).
	token string
	// kill ends the stream with an error (lost, revoked); buffered 1.
	kill chan error

	stream hookwirev1.AgentService_ConnectServer
	sendMu sync.Mutex
	wakeC  chan struct{}
	// results carries Results batches from the receiver to the writer, so
	// the receiver keeps reading Credit while results are being committed.
	results chan []*hookwirev1.Result
	// fair is the stream's slot accounting, fair share and drain state
	// (fairshare.go); guarded by Dispatcher.mu.
	fair fairState
	// holding: the last results could not be recorded and are held for the
	// agent to resend (resultLoop only; for logging the episode once).
	holding bool
}

func (c *conn) wake() {
	select {
	case c.wakeC <- struct{}{}:
	default:
	}
}

func (c *conn) send(m *hookwirev1.ControlMessage) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.stream.Send(m)
}

// Serve runs one agent's stream until it ends. It is the body of
// AgentService.Connect.
func (d *Dispatcher) Serve(stream hookwirev1.AgentService_ConnectServer) error {
	ctx := stream.Context()
	hello, err := d.awaitHello(ctx, stream)
	if err != nil {
		return err
	}
	if hello.GetAgentId() == "" {
		return status.Error(codes.InvalidArgument, "hello.agent_id is required: give each agent a stable id")
	}
	if len(hello.GetTransports()) == 0 {
		return status.Error(codes.InvalidArgument, "hello.transports is empty: the agent hosts no transport plugin, so it cannot deliver anything")
	}
	if err := admissionFrom(ctx).check(hello.GetLabels()); err != nil {
		return err
	}
	c := &conn{
		agentID:     hello.GetAgentId(),
		labels:      hello.GetLabels(),
		transports:  map[string]bool{},
		announced:   map[string]bool{},
		unavailable: map[string]string{},
		credit:      int(hello.GetMaxInFlight()),
		lastSeen:    d.cfg.Now(),
		heard:       time.Now(),
		version:     hello.GetVersion(),
		connected:   d.cfg.Now(),
		token:       admissionFrom(ctx).JoinToken,
		kill:        make(chan error, 1),
		stream:      stream,
		wakeC:       make(chan struct{}, 1),
	}
	for _, t := range hello.GetTransports() {
		c.transports[t.GetName()] = true
		c.announced[t.GetName()] = true
	}

	// Reconcile leases the agent still holds from an earlier stream.
	d.mu.Lock()
	var honoured []string
	for _, id := range hello.GetHeldLeaseIds() {
		if l := d.leases[id]; l != nil && l.conn.agentID == c.agentID {
			d.moveLeaseLocked(l, c)
			honoured = append(honoured, id)
		}
	}
	d.conns[c] = struct{}{}
	delete(d.lost, c.agentID)
	d.agentJoinedLocked(c)
	d.mu.Unlock()
	defer d.disconnect(c)

	if err := c.send(&hookwirev1.ControlMessage{Msg: &hookwirev1.ControlMessage_Welcome{Welcome: &hookwirev1.Welcome{
		ServerTime:          timestamppb.New(d.cfg.Now()),
		HonouredLeaseIds:    honoured,
		HeartbeatIntervalMs: uint32(d.cfg.HeartbeatInterval / time.Millisecond),
	}}}); err != nil {
		return err
	}
	// The credit the agent starts with: c.credit is d.mu's now (Drain
	// may be zeroing it).
	d.log.Info("agent connected", "agent", c.agentID, "labels", c.labels, "transports", transportNames(hello.GetTransports()), "credit", hello.GetMaxInFlight(), "honoured_leases", len(honoured))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.results = make(chan []*hookwirev1.Result, 64)
	errc := make(chan error, 3)
	go func() { errc <- d.assignLoop(ctx, c) }()
	go func() { errc <- d.recvLoop(ctx, c) }()
	go func() { errc <- d.resultLoop(ctx, c) }()
	c.wake()
	select {
	case err := <-errc:
		return err
	case err := <-c.kill:
		return err
	case <-d.stop:
		return status.Error(codes.Unavailable, "control plane is shutting down; reconnect to another or retry")
	}
}

func (d *Dispatcher) awaitHello(ctx context.Context, stream hookwirev1.AgentService_ConnectServer) (*hookwirev1.Hello, error) {
	type recv struct {
		m   *hookwirev1.AgentMessage
		err error
	}
	ch := make(chan recv, 1)
	go func() {
		m, err := stream.Recv()
		ch <- recv{m, err}
	}()
	timer := time.NewTimer(d.cfg.HelloTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		h := r.m.GetHello()
		if h == nil {
			return nil, status.Error(codes.InvalidArgument, errHelloFirst.Error())
		}
		return h, nil
	case <-timer.C:
		return nil, status.Errorf(codes.DeadlineExceeded, "no Hello within %s of connecting", d.cfg.HelloTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *Dispatcher) disconnect(c *conn) {
	d.mu.Lock()
	delete(d.conns, c)
	held := 0
	for _, l := range d.leases {
		if l.conn == c {
			held++
		}
	}
	d.mu.Unlock()
	// Leases stay until they expire: the agent may reconnect and report.
	d.log.Info("agent disconnected", "agent", c.agentID, "leases_outstanding", held)
}

// assignLoop sends assignments whenever the agent has credit and work is
// ready. While the store cannot write it assigns nothing: results could
// not be recorded, so every attempt made meanwhile would only add to what
// has to be resent, or delivered twice.
func (d *Dispatcher) assignLoop(ctx context.Context, c *conn) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.wakeC:
		}
		if ok, _, changed := d.cfg.Store.Writable(); !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
			}
			c.wake() // look again: writable now, or still not
			continue
		}
		for {
			d.mu.Lock()
			n := min(c.credit, maxBatch)
			var leases []*lease
			if n > 0 {
				leases = d.takeLocked(c, n)
				c.credit -= len(leases)
			}
			more := c.credit > 0 && len(leases) == n && n > 0
			d.mu.Unlock()
			if len(leases) == 0 {
				break
			}
			batch := d.prepare(leases)
			if d.cfg.Tracer != nil && len(batch) > 0 {
				d.traceAttempts(c, leases, batch)
			}
			if len(batch) > 0 {
				if err := d.sendAssignments(c, leases, batch); err != nil {
					return fmt.Errorf("send assignments to agent %s: %w", c.agentID, err)
				}
			}
			if !more {
				break
			}
		}
	}
}

func (d *Dispatcher) recvLoop(ctx context.Context, c *conn) error {
	for {
		m, err := c.stream.Recv()
		if err != nil {
			return err
		}
		d.mu.Lock()
		c.lastSeen = d.cfg.Now()
		c.heard = time.Now()
		d.mu.Unlock()
		switch msg := m.GetMsg().(type) {
		case *hookwirev1.AgentMessage_Results:
			d.resultsArrived(c, msg.Results.GetItems())
			select {
			case c.results <- msg.Results.GetItems():
			case <-ctx.Done():
				return nil
			}
		case *hookwirev1.AgentMessage_Credit:
			d.mu.Lock()
			c.credit = min(c.credit+int(msg.Credit.GetAmount()), maxCredit)
			d.mu.Unlock()
			c.wake()
		case *hookwirev1.AgentMessage_Heartbeat:
		case *hookwirev1.AgentMessage_TransportStatus:
			d.transportStatus(c, msg.TransportStatus)
		case *hookwirev1.AgentMessage_Hello:
			return status.Error(codes.InvalidArgument, "Hello may only be sent once per stream")
		}
	}
}

// transportStatus applies an agent's report that one of the transports it
// announced became unavailable (its plugin is down) or available again. An
// unavailable transport is taken out of c.transports, so the agent is
// neither assigned work for it nor counted as able to serve it.
func (d *Dispatcher) transportStatus(c *conn, st *hookwirev1.TransportStatus) {
	name := st.GetName()
	d.mu.Lock()
	if !c.announced[name] {
		d.mu.Unlock()
		d.log.Debug("agent reported the status of a transport it did not announce; ignored", "agent", c.agentID, "transport", name)
		return
	}
	_, wasDown := c.unavailable[name]
	if st.GetAvailable() {
		delete(c.unavailable, name)
		c.transports[name] = true
		if wasDown {
			d.agentJoinedLocked(c) // re-note what waited for a host
		}
	} else {
		c.unavailable[name] = st.GetReason()
		delete(c.transports, name)
	}
	d.mu.Unlock()
	switch {
	case st.GetAvailable() && wasDown:
		d.log.Info("agent reports transport available again", "agent", c.agentID, "transport", name)
		c.wake()
	case !st.GetAvailable() && !wasDown:
		d.log.Warn("agent reports transport unavailable; assigning it no work for it until it is back", "agent", c.agentID, "transport", name, "reason", st.GetReason())
	}
}

// resultLoop records results and acknowledges them once durable. Batches
// that arrive while a commit is running are merged into the next one, so
// an agent's results pipeline into group commits instead of waiting for
// each other (and Credit, read by recvLoop meanwhile, is never held up by
// an fsync). Results that cannot be recorded now are acknowledged with
// retry: the agent keeps them and sends them again after a backoff, and the
// stream stays up.
func (d *Dispatcher) resultLoop(ctx context.Context, c *conn) error {
	const maxMerge = 4096
	for {
		var batch []*hookwirev1.Result
		select {
		case <-ctx.Done():
			return nil
		case batch = <-c.results:
		}
	merge:
		for len(batch) < maxMerge {
			select {
			case more := <-c.results:
				batch = append(batch, more...)
			default:
				break merge
			}
		}
		acks, held := d.complete(ctx, c, batch)
		switch {
		case held != nil && !c.holding:
			c.holding = true
			d.log.Warn("cannot record the agent's results; holding their leases and asking the agent to send them again later",
				"agent", c.agentID, "results", len(batch), "err", held)
		case held == nil && c.holding:
			c.holding = false
			d.log.Info("recording the agent's results again", "agent", c.agentID)
		}
		if err := c.send(&hookwirev1.ControlMessage{Msg: &hookwirev1.ControlMessage_ResultAcks{ResultAcks: &hookwirev1.ResultAcks{Items: acks}}}); err != nil {
			return err
		}
	}
}

// transportNames renders an agent's transports for logs: "http@1.4.0".
func transportNames(ts []*hookwirev1.TransportInfo) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.GetName()
		if v := t.GetVersion(); v != "" {
			out[i] += "@" + v
		}
	}
	return out
}
