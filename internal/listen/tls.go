package listen

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Files names the PEM files of a TLS listener. Cert and Key are required;
// ClientCA, when set, makes the listener require a client certificate signed
// by one of its certificates (mutual TLS).
type Files struct {
	Cert, Key, ClientCA string
}

// Field says which of Files a FileError is about.
type Field int

const (
	CertFile Field = iota
	KeyFile
	ClientCAFile
)

// FileError is a problem with one of Files, worded to follow the file's key:
// "grpc_tls_cert_file: /etc/tls.crt does not exist".
type FileError struct {
	Field Field
	Msg   string
}

func (e *FileError) Error() string { return e.Msg }

// Material is Files read and checked: what a handshake uses.
type Material struct {
	// Leaf is the server certificate, for logs (subject, expiry).
	Leaf *x509.Certificate
	// MutualTLS is true when a client certificate is required.
	MutualTLS bool
	config    *tls.Config
}

// maxPEM bounds a certificate, key or CA file.
const maxPEM = 1 << 20

// Load reads and checks f at now: the certificate chain parses and has not
// expired, the key is the certificate's, and the CA file holds at least one
// certificate. It returns every problem found.
func Load(f Files, now time.Time) (*Material, []*FileError) {
	var errs []*FileError
	bad := func(field Field, format string, args ...any) {
		errs = append(errs, &FileError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	certPEM, err := readPEM(f.Cert)
	if err != nil {
		bad(CertFile, "%v", err)
	}
	keyPEM, err := readPEM(f.Key)
	if err != nil {
		bad(KeyFile, "%v", err)
	}
	var leaf *x509.Certificate
	if certPEM != nil {
		leaf, err = firstCertificate(certPEM)
		switch {
		case err != nil:
			bad(CertFile, "%s: %v", f.Cert, err)
		case now.After(leaf.NotAfter):
			bad(CertFile, "%s: the certificate expired on %s", f.Cert, leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	var pair tls.Certificate
	if leaf != nil && keyPEM != nil {
		pair, err = tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			if strings.Contains(err.Error(), "does not match") {
				bad(KeyFile, "%s is not the private key of the certificate in %s", f.Key, f.Cert)
			} else {
				bad(KeyFile, "%s: no usable private key: %s", f.Key, strings.TrimPrefix(err.Error(), "tls: "))
			}
		}
	}
	var pool *x509.CertPool
	if f.ClientCA != "" {
		caPEM, err := readPEM(f.ClientCA)
		if err != nil {
			bad(ClientCAFile, "%v", err)
		} else if pool, err = certPool(caPEM); err != nil {
			bad(ClientCAFile, "%s: %v", f.ClientCA, err)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2"}, // gRPC
		Certificates: []tls.Certificate{pair},
	}
	if pool != nil {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = pool
	}
	return &Material{Leaf: leaf, MutualTLS: pool != nil, config: c}, nil
}

// readPEM reads a regular file of at most maxPEM bytes: a FIFO or a device
// named by mistake must not hang or exhaust a config load.
func readPEM(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s does not exist", path)
	case errors.Is(err, os.ErrPermission):
		return nil, fmt.Errorf("%s cannot be read: permission denied", path)
	case err != nil:
		return nil, fmt.Errorf("%s cannot be read: %v", path, err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", path)
	case fi.Size() > maxPEM:
		return nil, fmt.Errorf("%s is larger than %d KiB; it is not a PEM certificate or key", path, maxPEM>>10)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("%s cannot be read: permission denied", path)
		}
		return nil, fmt.Errorf("%s cannot be read: %v", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEM))
	if err != nil {
		return nil, fmt.Errorf("%s cannot be read: %v", path, err)
	}
	return b, nil
}

// firstCertificate parses every CERTIFICATE block and returns the first.
func firstCertificate(data []byte) (*x509.Certificate, error) {
	var first *x509.Certificate
	n := 0
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		n++
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %v", n, err)
		}
		if first == nil {
			first = c
		}
	}
	if first == nil {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return first, nil
}

func certPool(data []byte) (*x509.CertPool, error) {
	if _, err := firstCertificate(data); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, errors.New("no usable CA certificate found")
	}
	return pool, nil
}

// ServerConfig returns the TLS config of a listener whose every handshake
// uses the Material current returns at that moment, so a rotated
// certificate, key or CA reaches new connections without a restart;
// connections already open keep theirs. When current returns nil (the config
// no longer names TLS files), the last Material keeps serving: a TLS listener
// cannot turn plaintext without a restart, and must never fail open.
func ServerConfig(first *Material, current func() *Material) *tls.Config {
	var last atomic.Pointer[Material]
	last.Store(first)
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			if m := current(); m != nil {
				last.Store(m)
				return m.config, nil
			}
			if m := last.Load(); m != nil {
				return m.config, nil
			}
			return nil, errors.New("no TLS certificate loaded")
		},
	}
}
