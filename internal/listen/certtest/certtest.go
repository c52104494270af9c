// Package certtest makes throwaway certificate authorities and certificates
// for tests of TLS listeners, so no test depends on key material checked into
// the repository.
package certtest

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

// CA is a certificate authority that issues server and client certificates.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA certificate, for a client CA file or a client's trust.
	PEM []byte
}

// NewCA makes a CA named name, valid from an hour ago for a day.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := template(t, name, time.Now().Add(24*time.Hour))
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Pair is an issued certificate and its private key, PEM-encoded.
type Pair struct {
	CertPEM, KeyPEM []byte
}

// Server issues a server certificate for 127.0.0.1, localhost and names.
func (ca *CA) Server(t testing.TB, cn string, names ...string) Pair {
	t.Helper()
	return ca.issue(t, cn, x509.ExtKeyUsageServerAuth, time.Now().Add(24*time.Hour), append([]string{"localhost"}, names...))
}

// Client issues a client certificate.
func (ca *CA) Client(t testing.TB, cn string) Pair {
	t.Helper()
	return ca.issue(t, cn, x509.ExtKeyUsageClientAuth, time.Now().Add(24*time.Hour), nil)
}

// Expired issues a server certificate that expired a minute ago.
func (ca *CA) Expired(t testing.TB, cn string) Pair {
	t.Helper()
	return ca.issue(t, cn, x509.ExtKeyUsageServerAuth, time.Now().Add(-time.Minute), []string{"localhost"})
}

func (ca *CA) issue(t testing.TB, cn string, usage x509.ExtKeyUsage, notAfter time.Time, names []string) Pair {
	t.Helper()
	key := newKey(t)
	tmpl := template(t, cn, notAfter)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	tmpl.DNSNames = names
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return Pair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

// template is a certificate named cn, valid from an hour ago (a clock a
// little behind still accepts it) until notAfter.
func template(t testing.TB, cn string, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
	}
}

// Write writes p to dir/name.crt and dir/name.key and returns their paths.
func (p Pair) Write(t testing.TB, dir, name string) (cert, key string) {
	t.Helper()
	cert, key = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	WriteFile(t, cert, p.CertPEM)
	WriteFile(t, key, p.KeyPEM)
	return cert, key
}

// WriteFile writes data to path (mode 0600) by renaming a temporary file over
// it, as a certificate rotation does, so a reader never sees half a file.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Files is a temporary directory of the TLS files that tests of a listener's
// configuration load: a server certificate and its key, the key of another
// certificate (a mismatch), the CA's certificate, an empty file, and a path
// that does not exist.
type Files struct {
	CA                                      *CA
	Dir, Cert, Key, OtherKey, CAFile, Empty string
	Missing                                 string
}

// NewFiles writes Files to a fresh temporary directory.
func NewFiles(t testing.TB) Files {
	t.Helper()
	f := Files{CA: NewCA(t, "sidecar CA"), Dir: t.TempDir()}
	f.Cert, f.Key = f.CA.Server(t, "sidecar").Write(t, f.Dir, "server")
	_, f.OtherKey = f.CA.Server(t, "other").Write(t, f.Dir, "other")
	f.CAFile = filepath.Join(f.Dir, "ca.crt")
	WriteFile(t, f.CAFile, f.CA.PEM)
	f.Empty = filepath.Join(f.Dir, "empty.pem")
	WriteFile(t, f.Empty, nil)
	f.Missing = filepath.Join(f.Dir, "missing.pem")
	return f
}
