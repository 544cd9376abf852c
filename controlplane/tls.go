package controlplane

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
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
		pemData, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read client CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("client CA bundle %s holds no PEM certificate", c.ClientCAFile)
		}
		setup.grpc.ClientCAs = pool
		setup.grpc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return setup, nil
}
