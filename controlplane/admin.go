package controlplane

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/metrics"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newMetrics builds the control plane's metrics; queue depth, backlog and
// store size are read from s at scrape time.
func (s *Server) newMetrics() *metrics.ControlPlane {
	m := metrics.NewControlPlane(func() (int, int, int) {
		d := s.disp.Load()
		if d == nil {
			return 0, 0, 0
		}
		st := d.Stats()
		return st.Ready, st.Leased, st.Agents
	}, func() int64 {
		if s.store == nil {
			return 0
		}
		return s.store.Size()
	})
	s.registerStoreMetrics(m.Registry)
	s.registerClusterMetrics(m.Registry)
	m.WatchBacklog(func() metrics.BacklogCounts {
		d := s.disp.Load()
		if d == nil {
			return metrics.BacklogCounts{}
		}
		b := d.Backlog()
		return metrics.BacklogCounts{WaitingRetry: b.WaitingRetry, WaitingAgent: b.WaitingAgent, Held: b.Held}
	})
	return m
}

// startAdmin serves /metrics (Prometheus), /debug/pprof/, /healthz
// (liveness) and /readyz (readiness, health.go) on Config.AdminAddr. It
// carries no API and needs no key: keep it on a private address.
func (s *Server) startAdmin() error {
	if s.cfg.AdminAddr == "" || s.cfg.AdminAddr == "off" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /healthz/master-key", s.serveMasterKeyStatus)
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	lis, err := net.Listen("tcp", s.cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("listen for the admin endpoint on %s: %w", s.cfg.AdminAddr, err)
	}
	s.adminLis = lis
	s.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.goServe(func() error {
		if err := s.admin.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return nil
}

// AdminAddr is the address of the metrics/pprof endpoint ("" when off).
func (s *Server) AdminAddr() string {
	if s.adminLis == nil {
		return ""
	}
	return s.adminLis.Addr().String()
}
