// Package tlstest creates throwaway certificates for tests of TLS and mTLS
// deployments: a CA, a server certificate for 127.0.0.1/localhost and
// client certificates, all written as PEM files.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Files names a certificate and its key on disk.
type Files struct {
	Cert, Key string
}

// Set is a CA with one server and one client certificate, and a peer
// certificate for servers that are each other's clients (a cluster).
type Set struct {
	CA     string // the CA certificate (PEM)
	Server Files  // for 127.0.0.1, ::1 and localhost
	Client Files  // client authentication
	Peer   Files  // server and client authentication, for 127.0.0.1, ::1 and localhost
}

type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// New writes a fresh Set under t.TempDir().
func New(t testing.TB) Set {
	t.Helper()
	dir := t.TempDir()
	ca := newCA(t, dir, "ca", "hookwire test CA")
	return Set{
		CA:     filepath.Join(dir, "ca.pem"),
		Server: ca.issue(t, dir, "server", false),
		Client: ca.issue(t, dir, "client", true),
		Peer:   ca.issue(t, dir, "peer", true, true),
	}
}

// NewCA writes another CA (for "wrong CA" tests) and a client certificate
// it signed; it returns the CA file and the client files.
func NewCA(t testing.TB, name string) (string, Files) {
	t.Helper()
	dir := t.TempDir()
	ca := newCA(t, dir, "ca", name)
	return filepath.Join(dir, "ca.pem"), ca.issue(t, dir, "client", true)
}

func newCA(t testing.TB, dir, file, name string) *issuer {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, file+".pem"), "CERTIFICATE", der)
	return &issuer{cert: cert, key: key}
}

// issue writes a certificate: a client certificate, a server certificate
// for the loopback names, or (client and server) both in one.
func (ca *issuer) issue(t testing.TB, dir, name string, client bool, server ...bool) Files {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	if !client || len(server) > 0 && server[0] {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := Files{Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem")}
	writePEM(t, f.Cert, "CERTIFICATE", der)
	writePEM(t, f.Key, "PRIVATE KEY", keyDER)
	return f
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 100))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
