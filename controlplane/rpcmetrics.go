package controlplane

import (
	"context"
	"strings"
	"time"

	"github.com/hookwire/hookwire/internal/buildinfo"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// rpcMetrics counts API calls by surface (grpc, rest), method and status
// code, and times unary calls. Labels are bounded: the methods of the
// registered services and the gRPC codes; never a tenant or an id.
type rpcMetrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newRPCMetrics(reg prometheus.Registerer) *rpcMetrics {
	m := &rpcMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookwire_api_requests_total",
			Help: "API calls finished, by surface (grpc, rest), method (service/method) and gRPC status code (REST answers map to HTTP statuses from it).",
		}, []string{"api", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookwire_api_request_duration_seconds",
			Help:    "Time to answer a unary API call, by surface and method (streams are not timed).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"api", "method"}),
	}
	reg.MustRegister(m.calls, m.duration)
	return m
}

// methodLabel turns "/hookwire.v1.EventService/PublishEvent" into
// "hookwire.v1.EventService/PublishEvent".
func methodLabel(full string) string { return strings.TrimPrefix(full, "/") }

func (m *rpcMetrics) unary(api string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		method := methodLabel(info.FullMethod)
		m.duration.WithLabelValues(api, method).Observe(time.Since(start).Seconds())
		m.calls.WithLabelValues(api, method, status.Code(err).String()).Inc()
		return resp, err
	}
}

func (m *rpcMetrics) stream(api string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		m.calls.WithLabelValues(api, methodLabel(info.FullMethod), status.Code(err).String()).Inc()
		return err
	}
}

// registerBuildInfo exports hookwire_build_info{version, commit,
// build_date, goversion} = 1: which build is running (internal/buildinfo:
// the release build's -ldflags values, or what the go tool stamped).
func registerBuildInfo(reg prometheus.Registerer) {
	in := buildinfo.Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hookwire_build_info",
		Help: "Always 1; the labels say which build of Hookwire is running.",
		ConstLabels: prometheus.Labels{
			"version": in.Version, "commit": in.Commit, "build_date": in.BuildDate, "goversion": in.GoVersion,
		},
	})
	g.Set(1)
	reg.MustRegister(g)
}
