package agent

import "time"

// workerIdle is how long a delivery worker waits for its next lease before
// it exits.
const workerIdle = 10 * time.Second

// startDelivery runs l on an idle delivery worker, or on a new one if none
// is idle.
//
// Workers are reused rather than started per delivery because a delivery
// goroutine's stack grows while it encodes the request for the plugin
// stream; a fresh goroutine per delivery paid for that growth (copying
// the stack) every time. Workers live until they have been idle for
// workerIdle or the agent's work context ends, and are counted in
// Agent.deliveries, so Run returns only after every one has exited.
func (a *Agent) startDelivery(l *lease) {
	select {
	case a.idleWorkers <- l:
	default:
		a.deliveries.Add(1)
		go a.worker(l)
	}
}

// worker delivers l, then every lease handed to it, until idle.
func (a *Agent) worker(l *lease) {
	defer a.deliveries.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		a.deliver(l)
		idle.Reset(workerIdle)
		select {
		case l = <-a.idleWorkers:
		case <-idle.C:
			return
		case <-a.work.Done():
			return
		}
	}
}
