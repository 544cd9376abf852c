// Package tlsutil loads the CA bundles the server, the cluster, the agent
// and the CLI trust, with one wording for what went wrong.
package tlsutil

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrNoCertificate: the file holds no PEM certificate.
var ErrNoCertificate = errors.New("holds no PEM certificate")

// LoadCAPool reads the PEM bundle at path into a pool; what names the
// bundle in errors ("client CA bundle").
func LoadCAPool(path, what string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s %s %w", what, path, ErrNoCertificate)
	}
	return pool, nil
}
