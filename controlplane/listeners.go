package controlplane

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// ListenerLimits bound what a client can hold on the gRPC and REST
// listeners, so slow, idle or too many connections cannot exhaust the
// server's file descriptors or memory. Zero fields take the defaults.
type ListenerLimits struct {
	// HTTPBodyTimeout bounds reading one REST request body (a body sent a
	// byte a second is cut off). Headers have their own 10s limit.
	// Default 60s.
	HTTPBodyTimeout time.Duration
	// HTTPIdleTimeout closes a keep-alive REST connection idle this long
	// between requests. Default 120s.
	HTTPIdleTimeout time.Duration
	// GRPCMaxConnectionIdle closes a gRPC connection that has had no
	// call open for this long (clients reconnect transparently; agent
	// streams are never idle). Default 5m.
	GRPCMaxConnectionIdle time.Duration
	// GRPCHandshakeTimeout bounds a new gRPC connection's TLS handshake
	// and HTTP/2 preface. Default 10s.
	GRPCHandshakeTimeout time.Duration
	// MaxConnections caps the open connections of each listener (gRPC,
	// REST); more are accepted and closed at once, with a log line.
	// Default: a third of the process's open-file limit, between 64 and
	// 16384.
	MaxConnections int
}

func (l ListenerLimits) withDefaults() ListenerLimits {
	if l.HTTPBodyTimeout <= 0 {
		l.HTTPBodyTimeout = 60 * time.Second
	}
	if l.HTTPIdleTimeout <= 0 {
		l.HTTPIdleTimeout = 120 * time.Second
	}
	if l.GRPCMaxConnectionIdle <= 0 {
		l.GRPCMaxConnectionIdle = 5 * time.Minute
	}
	if l.GRPCHandshakeTimeout <= 0 {
		l.GRPCHandshakeTimeout = 10 * time.Second
	}
	if l.MaxConnections <= 0 {
		l.MaxConnections = DefaultMaxConnections()
	}
	return l
}

// DefaultMaxConnections is ListenerLimits.MaxConnections' default: a
// third of the open-file limit (two listeners, and room for the store,
// plugins and outgoing connections), between 64 and 16384.
func DefaultMaxConnections() int {
	var lim syscall.Rlimit
	n := 16384
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur/3 < uint64(n) {
		n = int(lim.Cur / 3)
	}
	return max(n, 64)
}

// grpcOptions are the gRPC server's connection limits: idle connections
// closed, dead peers found by keepalive pings, clients that ping too often
// refused (grpc-go's enforcement), and a bound on the handshake.
func (l ListenerLimits) grpcOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: l.GRPCMaxConnectionIdle,
			Time:              2 * time.Minute,
			Timeout:           20 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.ConnectionTimeout(l.GRPCHandshakeTimeout),
	}
}

// httpServer is the REST listener's server with its timeouts.
func (l ListenerLimits) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           withBodyTimeout(h, l.HTTPBodyTimeout),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       l.HTTPIdleTimeout,
	}
}

// withBodyTimeout gives a request with a body until timeout to send all of
// it. It is a read deadline on the connection set when the handler starts
// and cleared once the body has been read, rather than
// http.Server.ReadTimeout, which would also stop the background read that
// watches a streaming response (tail) and cancel it.
func withBodyTimeout(h http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			h.ServeHTTP(w, r) // not a deadline-capable connection (tests)
			return
		}
		r.Body = &deadlineBody{ReadCloser: r.Body, clear: func() { _ = rc.SetReadDeadline(time.Time{}) }}
		h.ServeHTTP(w, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	once  sync.Once
	clear func()
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		// All of it came in time. (After any other error, a timeout
		// above all, the deadline stays: the server must not then wait
		// for the rest of the body without one.)
		b.once.Do(b.clear)
	}
	return n, err
}

// capListener accepts at most max open connections; one more is accepted
// and closed at once (so the client sees a closed connection rather than
// a queue that never drains), counted and logged at most every 10s.
type capListener struct {
	net.Listener
	name    string
	max     int64
	open    atomic.Int64
	log     *slog.Logger
	refused prometheus.Counter

	mu         sync.Mutex
	lastLog    time.Time
	sinceLog   int
	logEvery   time.Duration
	nowForTest func() time.Time
}

func newCapListener(l net.Listener, name string, max int, log *slog.Logger, m *listenerMetrics) *capListener {
	c := &capListener{Listener: l, name: name, max: int64(max), log: log, logEvery: 10 * time.Second, nowForTest: time.Now}
	if m != nil {
		c.refused = m.refused.WithLabelValues(name)
		m.add(name, c)
	}
	return c
}

func (c *capListener) Accept() (net.Conn, error) {
	for {
		conn, err := c.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c.open.Add(1) <= c.max {
			return &cappedConn{Conn: conn, l: c}, nil
		}
		c.open.Add(-1)
		c.noteRefused() // counted and logged before the client sees the close
		_ = conn.Close()
	}
}

func (c *capListener) noteRefused() {
	if c.refused != nil {
		c.refused.Inc()
	}
	c.mu.Lock()
	c.sinceLog++
	now := c.nowForTest()
	if now.Sub(c.lastLog) < c.logEvery {
		c.mu.Unlock()
		return
	}
	n := c.sinceLog
	c.sinceLog, c.lastLog = 0, now
	c.mu.Unlock()
	c.log.Warn("connection limit reached; closing new connections",
		"listener", c.name, "open", c.open.Load(), "max_connections", c.max, "refused", n,
		"hint", "raise --max-connections (and the open-file limit) or find the client holding connections open")
}

type cappedConn struct {
	net.Conn
	l    *capListener
	once sync.Once
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// listenerMetrics counts connections per listener.
type listenerMetrics struct {
	reg     *prometheus.Registry
	refused *prometheus.CounterVec
}

func newListenerMetrics(reg *prometheus.Registry) *listenerMetrics {
	m := &listenerMetrics{
		reg: reg,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookwire_connections_refused_total", Help: "Connections closed at once because the listener had --max-connections open.",
		}, []string{"listener"}),
	}
	reg.MustRegister(m.refused)
	return m
}

// add exports c's open connections, read at scrape time.
func (m *listenerMetrics) add(name string, c *capListener) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hookwire_connections_open", Help: "Open client connections, by listener (grpc, http).",
		ConstLabels: prometheus.Labels{"listener": name},
	}, func() float64 { return float64(c.open.Load()) }))
}
