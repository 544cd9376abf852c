package agent

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hookwire/hookwire/agent/internal/backoff"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
)

// Agent connects to the control plane and delivers what it is assigned.
// Build one with New and start it with Run.
type Agent struct {
	cfg      Config
	dialOpts []grpc.DialOption

	started   atomic.Bool
	drainOnce sync.Once
	drainCh   chan struct{} // closed when a drain begins

	// work is the parent of every delivery context. It is cancelled at the
	// drain deadline, or when Run returns.
	work       context.Context
	stopWork   context.CancelFunc
	deliveries sync.WaitGroup // delivery workers
	// idleWorkers hands a lease to a delivery worker waiting for one
	// (unbuffered: a send succeeds only if a worker is idle).
	idleWorkers chan *lease

	sendSignal chan struct{} // cap 1: results or credit waiting to be sent
	progress   chan struct{} // cap 1: a delivery finished or a result was acked
	retryKick  chan struct{} // cap 1: retryAt was set
	refused    chan struct{} // cap 1: a transport refused a delivery the source did not report down

	clockOffset atomic.Int64 // control plane clock minus local clock, ns

	mu        sync.Mutex
	draining  bool
	connected bool
	inflight  map[string]*lease // running deliveries by lease id
	outbox    map[string]*lease // finished, not yet acknowledged
	pending   []*lease          // in outbox, not yet sent on the current stream
	seq       uint64            // completion order, to resend in order
	freed     int               // finished since the last Credit on this stream
	// retryWait holds results the control plane could not record
	// (ResultAck.retry): they stay in the outbox and go to pending again at
	// retryAt, chosen by resultBackoff.
	retryWait     []*lease
	retryAt       time.Time
	resultBackoff *backoff.Backoff
	// sentDown is what the current stream was told about unavailable
	// transports (name -> reason); it starts empty with every Hello.
	sentDown map[string]string

	// down is the agent's view of the transports that cannot deliver now
	// (name -> reason; nil or empty: all available). Replaced, never
	// modified, under mu; read without it on the delivery path.
	down atomic.Pointer[map[string]string]

	sessions       atomic.Uint64
	failedConnects atomic.Uint64
	delivered      atomic.Uint64
	acked          atomic.Uint64
	ackRejected    atomic.Uint64
	handedBack     atomic.Uint64
	resultRetries  atomic.Uint64

	tracer *agentTracer // nil: tracing off

	hooks testHooks
}

// testHooks lets tests in this package pause the agent at precise points.
type testHooks struct {
	beforeTake func() // sender, before taking the next batch
	finished   func() // after a result entered the outbox
}

// Stats is a snapshot of the agent's state.
type Stats struct {
	// Connected is true between a Welcome and the end of that stream.
	Connected bool
	// Draining is true once a drain has begun.
	Draining bool
	// InFlight counts deliveries running now.
	InFlight int
	// Outbox counts finished results not yet acknowledged.
	Outbox int
	// Sessions counts streams that reached Welcome.
	Sessions uint64
	// FailedConnects counts attempts that ended before Welcome.
	FailedConnects uint64
	// Delivered counts finished attempts (including rejected assignments).
	Delivered uint64
	// Acked and AckRejected count results the control plane acknowledged as
	// accepted and as stale.
	Acked, AckRejected uint64
	// HandedBack counts deliveries given back without an attempt because
	// their transport was unavailable.
	HandedBack uint64
	// ResultRetries counts results the control plane could not record and
	// asked the agent to send again later.
	ResultRetries uint64
	// Unavailable lists the transports that cannot deliver now, with why.
	Unavailable map[string]string
}

// New checks cfg, applies defaults and returns an Agent ready to Run.
func New(cfg Config) (*Agent, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	opts := make([]grpc.DialOption, 0, 2+len(cfg.DialOptions))
	opts = append(opts,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)),
	)
	opts = append(opts, cfg.DialOptions...)
	work, stopWork := context.WithCancel(context.Background())
	return &Agent{
		cfg:           cfg,
		dialOpts:      opts,
		drainCh:       make(chan struct{}),
		work:          work,
		stopWork:      stopWork,
		sendSignal:    make(chan struct{}, 1),
		idleWorkers:   make(chan *lease),
		progress:      make(chan struct{}, 1),
		retryKick:     make(chan struct{}, 1),
		refused:       make(chan struct{}, 1),
		resultBackoff: backoff.New(resultRetryBase, resultRetryMax),
		inflight:      make(map[string]*lease, cfg.MaxInFlight),
		outbox:        make(map[string]*lease, cfg.MaxInFlight),
		tracer:        newAgentTracer(cfg.TracerProvider),
	}, nil
}

// ID is the agent id announced in Hello.
func (a *Agent) ID() string { return a.cfg.AgentID }

// Drain begins a graceful drain: no more credit is granted, in-flight
// deliveries finish (until DrainTimeout, then they are cancelled), results
// are flushed and acknowledged (until FlushTimeout), then Run returns nil.
// Drain may be called at any time, more than once, from any goroutine.
func (a *Agent) Drain() {
	a.drainOnce.Do(func() {
		a.mu.Lock()
		a.draining = true
		a.freed = 0
		a.mu.Unlock()
		close(a.drainCh)
	})
}

// Stats returns a snapshot of the agent's state.
func (a *Agent) Stats() Stats {
	a.mu.Lock()
	s := Stats{
		Connected: a.connected,
		Draining:  a.draining,
		InFlight:  len(a.inflight),
		Outbox:    len(a.outbox),
	}
	a.mu.Unlock()
	s.Sessions = a.sessions.Load()
	s.FailedConnects = a.failedConnects.Load()
	s.Delivered = a.delivered.Load()
	s.Acked = a.acked.Load()
	s.AckRejected = a.ackRejected.Load()
	s.HandedBack = a.handedBack.Load()
	s.ResultRetries = a.resultRetries.Load()
	if down := a.down.Load(); down != nil && len(*down) > 0 {
		s.Unavailable = maps.Clone(*down)
	}
	return s
}

// Run connects to the control plane and works until drained. It reconnects
// whenever the stream breaks. When ctx ends, or on Drain or the control
// plane's Drain, it drains gracefully and returns nil. It returns an error
// only when the control plane refuses the agent for good (unauthenticated,
// permission denied, no AgentService) or the client cannot be built; then
// in-flight deliveries are cancelled and their results dropped.
//
// Run may be called once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("agent: Run called more than once")
	}
	defer a.stopWork()

	life, stopLife := context.WithCancel(context.Background())
	watching := make(chan struct{})
	defer func() {
		stopLife()
		<-watching
	}()
	go func() {
		defer close(watching)
		a.watchTransports(life)
	}()
	loopDone := make(chan error, 1)
	go func() { loopDone <- a.connectLoop(life) }()

	select {
	case <-ctx.Done():
		a.cfg.Logger.Info("agent stopping: draining", "cause", context.Cause(ctx))
		a.Drain()
	case <-a.drainCh:
	case err := <-loopDone:
		return a.abort(err)
	}

	if err, ended := a.drain(loopDone); ended {
		return a.abort(err)
	}
	stopLife()
	err := <-loopDone
	a.stopWork()
	a.deliveries.Wait()
	return err
}

// abort stops every delivery after the connect loop ended with err.
func (a *Agent) abort(err error) error {
	a.stopWork()
	a.deliveries.Wait()
	return err
}

// drain waits for in-flight deliveries (cancelling them at the drain
// deadline) and then for the outbox to be acknowledged (up to the flush
// timeout). If the connect loop ends meanwhile, it returns its error and
// ended=true.
func (a *Agent) drain(loopDone <-chan error) (err error, ended bool) {
	log := a.cfg.Logger
	deadline := time.NewTimer(a.cfg.DrainTimeout)
	defer deadline.Stop()
	for {
		a.mu.Lock()
		n := len(a.inflight)
		a.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-a.progress:
		case <-deadline.C:
			log.Warn("drain deadline reached: cancelling in-flight deliveries",
				"in_flight", n, "drain_timeout", a.cfg.DrainTimeout)
			a.stopWork()
		case err := <-loopDone:
			return err, true
		}
	}

	flush := time.NewTimer(a.cfg.FlushTimeout)
	defer flush.Stop()
	for {
		a.mu.Lock()
		n := len(a.outbox)
		a.mu.Unlock()
		if n == 0 {
			log.Info("agent drained")
			return nil, false
		}
		select {
		case <-a.progress:
		case <-flush.C:
			log.Warn("drain: control plane did not acknowledge every result in time; their leases will expire and be retried",
				"unacknowledged", n, "flush_timeout", a.cfg.FlushTimeout)
			return nil, false
		case err := <-loopDone:
			return err, true
		}
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// helloState snapshots what a new stream starts from: the Hello to send and
// the in-flight leases it announces. It resets the stream's credit account
// and queues the whole outbox for resending.
func (a *Agent) helloState() (*hookwirev1.AgentMessage, []string) {
	infos := a.cfg.Transports.Infos()
	transports := make([]*hookwirev1.TransportInfo, 0, len(infos))
	for _, in := range infos {
		transports = append(transports, &hookwirev1.TransportInfo{
			Name: in.Name, Version: in.Version, ApiVersions: in.APIVersions,
		})
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	held := make([]string, 0, len(a.inflight)+len(a.outbox))
	for id := range a.inflight {
		held = append(held, id)
	}
	heldInFlight := held[:len(held):len(held)]
	for id := range a.outbox {
		held = append(held, id)
	}
	credit := 0
	if !a.draining {
		credit = max(a.cfg.MaxInFlight-len(a.inflight), 0)
	}
	a.freed = 0
	a.sentDown = nil
	clear(a.pending)
	a.pending = a.pending[:0]
	for _, l := range a.outbox {
		l.waiting = false
		a.pending = append(a.pending, l)
	}
	sortBySeq(a.pending)
	// The new stream gets every unacknowledged result at once; a control
	// plane that still cannot record them says so again.
	clear(a.retryWait)
	a.retryWait = a.retryWait[:0]
	a.retryAt = time.Time{}

	return &hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Hello{Hello: &hookwirev1.Hello{
		AgentId:      a.cfg.AgentID,
		Labels:       a.cfg.Labels,
		Transports:   transports,
		MaxInFlight:  uint32(credit),
		HeldLeaseIds: held,
		Version:      a.cfg.Version,
	}}}, heldInFlight
}
