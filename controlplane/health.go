package controlplane

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/store"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Health and readiness.
//
// Liveness (/healthz on the admin address) answers as long as the process
// serves HTTP. Readiness says whether the control plane can do its work:
// today that is whether the store accepts writes (a full disk makes it
// refuse them until it recovers by itself; see the store package); a
// replicated control plane will add "no leader". Readiness is reported
// three ways: gRPC health (grpc.health.v1, service "") SERVING or
// NOT_SERVING, GET /readyz on the admin address (200, or 503 with the
// reason), and the metric hookwire_store_writable (1 or 0) next to
// hookwire_store_commit_failures_total.

// Ready returns nil when the control plane can serve writes, or the reason
// it cannot.
func (s *Server) Ready() error {
	if s.store == nil {
		return store.ErrClosed
	}
	if ok, reason, _ := s.store.Writable(); !ok {
		return reason
	}
	if s.node != nil {
		if _, ok := s.node.LeaderInfo(); !ok {
			return errNoLeader
		}
	}
	return nil
}

// errNoLeader: readiness needs a cluster leader to take writes.
var errNoLeader = errors.New("the cluster has no leader (an election is running, or this server cannot reach a quorum)")

// watchHealth keeps the gRPC health status in step with the store's
// writability until ctx ends.
func (s *Server) watchHealth(ctx context.Context, hs *health.Server) {
	// Leadership changes have no notification here: look again every
	// second as well.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := ""
	for {
		_, _, changed := s.store.Writable()
		err := s.Ready()
		if err == nil {
			hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		} else {
			hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
			if err.Error() != last {
				s.cfg.Logger.Warn("not ready", "reason", err)
			}
		}
		last = ""
		if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// serveReady answers GET /readyz: 200 "ready", or 503 with the reason.
func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.Ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// registerStoreMetrics adds the store's writability and failed commits to
// reg; they are read at scrape time.
func (s *Server) registerStoreMetrics(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hookwire_store_writable",
			Help: "1 while the store accepts writes, 0 while it refuses them after a failed commit (e.g. a full disk) and retries.",
		}, func() float64 {
			if s.store == nil {
				return 0
			}
			if ok, _, _ := s.store.Writable(); ok {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "hookwire_store_commit_failures_total",
			Help: "Store commits that failed (a full disk, an I/O error), including failed attempts to write again afterwards.",
		}, func() float64 {
			if s.store == nil {
				return 0
			}
			return float64(s.store.Stats().Failures)
		}),
	)
}
