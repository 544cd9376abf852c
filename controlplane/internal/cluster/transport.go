package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// The cluster port carries several kinds of connection. The dialler writes
// one byte naming the kind right after connecting (inside TLS when TLS is
// on), as Consul and Nomad do on their RPC port; the listener reads it and
// hands the connection to the matching consumer.
const (
	connRaft byte = 'R' // raft's NetworkTransport
	connRPC  byte = 'C' // this package's join handshake and status RPCs
	// connAPI carries the control plane's own gRPC API between servers: a
	// follower forwards client calls to the leader over it.
	connAPI byte = 'G'
)

// kindTimeout bounds how long an accepted connection may take to finish
// its TLS handshake and send its kind byte.
const kindTimeout = 10 * time.Second

// mux owns the cluster listener and splits accepted connections by kind.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	serverTLS *tls.Config // nil: plain TCP
	log       *slog.Logger

	subs map[byte]*subListener

	// tlsRefused counts connections refused in the TLS handshake.
	tlsRefused atomic.Int64

	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

func newMux(ln net.Listener, advertise net.Addr, serverTLS *tls.Config, log *slog.Logger, kinds ...byte) *mux {
	m := &mux{
		ln:        ln,
		advertise: advertise,
		serverTLS: serverTLS,
		log:       log,
		subs:      make(map[byte]*subListener),
		closing:   make(chan struct{}),
	}
	for _, k := range kinds {
		m.subs[k] = &subListener{addr: advertise, conns: make(chan net.Conn), closed: make(chan struct{}), mux: m}
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

func (m *mux) listener(kind byte) *subListener { return m.subs[kind] }

func (m *mux) acceptLoop() {
	defer m.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closing:
				return
			default:
			}
			// Out of file descriptors and the like: wait a little, doubling.
			m.log.Warn("cluster listener accept failed", "error", err)
			t := time.NewTimer(backoff)
			select {
			case <-m.closing:
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		m.wg.Add(1)
		go m.route(conn)
	}
}

// route finishes the TLS handshake, reads the kind byte and hands the
// connection over, or closes it.
func (m *mux) route(conn net.Conn) {
	defer m.wg.Done()
	_ = conn.SetDeadline(time.Now().Add(kindTimeout))
	if m.serverTLS != nil {
		tc := tls.Server(conn, m.serverTLS)
		if err := tc.Handshake(); err != nil {
			m.tlsRefused.Add(1)
			m.log.Warn("cluster connection refused: TLS handshake failed", "remote", conn.RemoteAddr().String(), "error", err)
			conn.Close()
			return
		}
		conn = tc
	}
	var kind [1]byte
	if _, err := conn.Read(kind[:]); err != nil {
		conn.Close()
		return
	}
	sub, ok := m.subs[kind[0]]
	if !ok {
		m.log.Warn("cluster connection refused: unknown kind", "remote", conn.RemoteAddr().String(), "kind", kind[0])
		conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	t := time.NewTimer(kindTimeout)
	defer t.Stop()
	select {
	case sub.conns <- conn:
	case <-sub.closed:
		conn.Close()
	case <-m.closing:
		conn.Close()
	case <-t.C:
		m.log.Warn("cluster connection dropped: nobody accepted it", "kind", string(kind[0]))
		conn.Close()
	}
}

// Close stops accepting, closes every sub-listener and waits for the
// routing goroutines. Connections already handed over belong to their
// consumers.
func (m *mux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.closing)
		err = m.ln.Close()
		for _, s := range m.subs {
			s.Close()
		}
		m.wg.Wait()
	})
	return err
}

// subListener is the net.Listener for one kind of connection.
type subListener struct {
	addr      net.Addr
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
	mux       *mux
}

func (s *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

func (s *subListener) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

// Addr is the advertised address: raft's NetworkTransport reports it as
// this node's address in every RPC it sends.
func (s *subListener) Addr() net.Addr { return s.addr }

// dialer opens cluster connections of one kind.
type dialer struct {
	dial      func(ctx context.Context, address string) (net.Conn, error)
	clientTLS *tls.Config // nil: plain TCP
}

func (d *dialer) dialKind(ctx context.Context, address string, kind byte) (net.Conn, error) {
	conn, err := d.dial(ctx, address)
	if err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if d.clientTLS != nil {
		cfg := d.clientTLS
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				conn.Close()
				return nil, fmt.Errorf("cluster address %q: %w", address, err)
			}
			cfg.ServerName = host
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", address, err)
		}
		conn = tc
	}
	if _, err := conn.Write([]byte{kind}); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// streamLayer is raft's raft.StreamLayer on the cluster port.
type streamLayer struct {
	*subListener
	d *dialer
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.d.dialKind(ctx, string(address), connRaft)
}

// tlsConfigs derives the listener's and the dialler's configurations from
// the caller's: cluster TLS is always mutual.
func tlsConfigs(c *tls.Config) (server, client *tls.Config, err error) {
	if c == nil {
		return nil, nil, nil
	}
	if len(c.Certificates) == 0 && c.GetCertificate == nil {
		return nil, nil, errors.New("cluster TLS needs a certificate for this node")
	}
	if c.RootCAs == nil && c.ClientCAs == nil {
		return nil, nil, errors.New("cluster TLS needs the CA that signs the cluster's certificates (RootCAs)")
	}
	server = c.Clone()
	if server.ClientCAs == nil {
		server.ClientCAs = server.RootCAs
	}
	server.ClientAuth = tls.RequireAndVerifyClientCert
	if server.MinVersion < tls.VersionTLS12 {
		server.MinVersion = tls.VersionTLS12
	}
	client = c.Clone()
	if client.RootCAs == nil {
		client.RootCAs = client.ClientCAs
	}
	if client.MinVersion < tls.VersionTLS12 {
		client.MinVersion = tls.VersionTLS12
	}
	return server, client, nil
}
