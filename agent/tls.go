package agent

import (
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/hookwire/hookwire/internal/tlsutil"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// TLSFiles configures TLS to the control plane from PEM files.
type TLSFiles struct {
	// CAFile is the CA bundle the server certificate must chain to; empty:
	// the system roots.
	CAFile string
	// CertFile and KeyFile are the client certificate and key presented
	// for mTLS; both or neither.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the server certificate
	// (default: the host part of the server address).
	ServerName string
}

// DialOption loads the files and returns TLS transport credentials for
// Config.DialOptions.
func (f TLSFiles) DialOption() (grpc.DialOption, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.CAFile != "" {
		pool, err := tlsutil.LoadCAPool(f.CAFile, "TLS CA bundle")
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("a TLS client certificate needs both the certificate and its key (--tls-cert and --tls-key)")
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load TLS client certificate %s and key %s: %w", f.CertFile, f.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(cfg)), nil
}
