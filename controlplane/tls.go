package controlplane

import (
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/hookwire/hookwire/internal/tlsutil"
)

// TLSConfig makes the control plane serve TLS.
type TLSConfig struct {
	// CertFile and KeyFile are the PEM server certificate (chain) and key,
	// used by the gRPC and REST listeners. Both required.
	CertFile, KeyFile string
	// ClientCAFile, if set, is a PEM bundle of CAs: the gRPC listener then
	// requires a client certificate signed by one of them (mTLS for
	// agents and API clients). The REST listener does not ask for one.
	ClientCAFile string
}

// tlsSetup holds the listener configurations. The REST gateway reaches
// the API in process (see inproc), so it needs no client configuration.
type tlsSetup struct {
	grpc, http *tls.Config
}

func loadTLS(c *TLSConfig) (*tlsSetup, error) {
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("TLS needs both a certificate and a key (--tls-cert and --tls-key)")
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", c.CertFile, c.KeyFile, err)
	}
	setup := &tlsSetup{
		grpc: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		http: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}
	if c.ClientCAFile != "" {
		pool, err := tlsutil.LoadCAPool(c.ClientCAFile, "client CA bundle")
		if err != nil {
			return nil, err
		}
		setup.grpc.ClientCAs = pool
		setup.grpc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return setup, nil
}
