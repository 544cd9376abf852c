package controlplane

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
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

// tlsSetup holds the listener configurations and what the REST gateway
// needs to reach the gRPC listener under them.
type tlsSetup struct {
	grpc, http *tls.Config
	// gateway is the gateway's client configuration: it pins the server's
	// own certificate and, under mTLS, presents a certificate from a
	// throwaway CA created at start and trusted only by this process.
	gateway *tls.Config
}

func loadTLS(c *TLSConfig) (*tlsSetup, error) {
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("TLS needs both a certificate and a key (--tls-cert and --tls-key)")
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", c.CertFile, c.KeyFile, err)
	}
	leaf := cert.Certificate[0]
	setup := &tlsSetup{
		grpc: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		http: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		gateway: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// The gateway dials this process's own listener, whose address
			// need not be in the certificate: it trusts exactly the
			// certificate loaded above instead of a name.
			InsecureSkipVerify: true,
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 || !bytes.Equal(raw[0], leaf) {
					return errors.New("gRPC listener presented an unexpected certificate")
				}
				return nil
			},
		},
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
		gwCert, gwCA, err := gatewayIdentity()
		if err != nil {
			return nil, err
		}
		pool.AddCert(gwCA)
		setup.grpc.ClientCAs = pool
		setup.grpc.ClientAuth = tls.RequireAndVerifyClientCert
		setup.gateway.Certificates = []tls.Certificate{gwCert}
	}
	return setup, nil
}

// gatewayIdentity creates a self-signed CA certificate usable as a client
// certificate; its key lives only in memory.
func gatewayIdentity() (tls.Certificate, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate REST gateway key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "hookwire REST gateway (in-process)"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(100 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("create REST gateway certificate: %w", err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: parsed}, parsed, nil
}
