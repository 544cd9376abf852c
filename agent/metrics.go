package agent

import "github.com/prometheus/client_golang/prometheus"

// NewMetrics returns a registry with the agent's Prometheus metrics, read
// from Stats at scrape time; pluginRestarts (may be nil) reports restarts
// of crashed transport plugins.
func NewMetrics(a *Agent, pluginRestarts func() uint64) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string, f func(Stats) float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(a.Stats()) }))
	}
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	gauge("hookwire_agent_connected", "1 while a stream to the control plane is up.", func(s Stats) float64 {
		if s.Connected {
			return 1
		}
		return 0
	})
	gauge("hookwire_agent_in_flight", "Deliveries running now.", func(s Stats) float64 { return float64(s.InFlight) })
	gauge("hookwire_agent_outbox", "Finished results not yet acknowledged by the control plane.", func(s Stats) float64 { return float64(s.Outbox) })
	counter("hookwire_agent_sessions_total", "Streams that reached Welcome.", func() float64 { return float64(a.Stats().Sessions) })
	counter("hookwire_agent_failed_connects_total", "Connection attempts that ended before Welcome.", func() float64 { return float64(a.Stats().FailedConnects) })
	counter("hookwire_agent_attempts_total", "Attempts finished (delivered, failed or rejected).", func() float64 { return float64(a.Stats().Delivered) })
	counter("hookwire_agent_results_acked_total", "Results the control plane acknowledged.", func() float64 { return float64(a.Stats().Acked) })
	counter("hookwire_agent_results_rejected_total", "Results the control plane refused (stale or unknown lease).", func() float64 { return float64(a.Stats().AckRejected) })
	counter("hookwire_agent_handed_back_total", "Deliveries given back to the control plane without an attempt because their transport was unavailable (its plugin was down); they cost no retry.", func() float64 { return float64(a.Stats().HandedBack) })
	counter("hookwire_agent_result_retries_total", "Results the control plane could not record (its store could not write) and asked the agent to send again after a backoff.", func() float64 { return float64(a.Stats().ResultRetries) })
	gauge("hookwire_agent_transports_unavailable", "Hosted transports that cannot deliver now (plugin down and restarting).", func(s Stats) float64 { return float64(len(s.Unavailable)) })
	if pluginRestarts != nil {
		counter("hookwire_agent_plugin_restarts_total", "Transport plugin processes restarted after exiting unexpectedly.", func() float64 { return float64(pluginRestarts()) })
	}
	return reg
}
