package listen_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/listen"
	"github.com/extauthz/extauthz/internal/listen/certtest"
)

func TestLoadReportsEachFile(t *testing.T) {
	f := certtest.NewFiles(t)
	dir, cert, key, otherKey, caFile, empty, missing := f.Dir, f.Cert, f.Key, f.OtherKey, f.CAFile, f.Empty, f.Missing
	expiredCert, expiredKey := f.CA.Expired(t, "old").Write(t, dir, "expired")
	keyOnly := filepath.Join(dir, "key-only.pem")
	certtest.WriteFile(t, keyOnly, must(os.ReadFile(key)))

	for _, tc := range []struct {
		name  string
		files listen.Files
		field listen.Field
		want  string // "" when the files load
	}{
		{"a certificate, its key and a CA load", listen.Files{Cert: cert, Key: key, ClientCA: caFile}, 0, ""},
		{"a certificate and its key load without a CA", listen.Files{Cert: cert, Key: key}, 0, ""},
		{"a missing certificate file is named", listen.Files{Cert: missing, Key: key}, listen.CertFile, missing + " does not exist"},
		{"a directory is not a certificate file", listen.Files{Cert: dir, Key: key}, listen.CertFile, "is not a regular file"},
		{"a certificate file without a certificate is refused", listen.Files{Cert: keyOnly, Key: key}, listen.CertFile, "no PEM CERTIFICATE block"},
		{"an expired certificate is refused", listen.Files{Cert: expiredCert, Key: expiredKey}, listen.CertFile, "expired on"},
		{"another certificate's key is a mismatch", listen.Files{Cert: cert, Key: otherKey}, listen.KeyFile, "is not the private key of the certificate in " + cert},
		{"a key file without a key is refused", listen.Files{Cert: cert, Key: caFile}, listen.KeyFile, "no usable private key"},
		{"a missing key file is named", listen.Files{Cert: cert, Key: missing}, listen.KeyFile, missing + " does not exist"},
		{"a CA file without certificates is refused", listen.Files{Cert: cert, Key: key, ClientCA: empty}, listen.ClientCAFile, "no PEM CERTIFICATE block"},
		{"a CA file holding only a key is refused", listen.Files{Cert: cert, Key: key, ClientCA: keyOnly}, listen.ClientCAFile, "no PEM CERTIFICATE block"},
		{"a missing CA file is named", listen.Files{Cert: cert, Key: key, ClientCA: missing}, listen.ClientCAFile, missing + " does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, errs := listen.Load(tc.files, time.Now())
			if tc.want == "" {
				if len(errs) > 0 || m == nil {
					t.Fatalf("Load: %v", errs)
				}
				if m.MutualTLS != (tc.files.ClientCA != "") {
					t.Errorf("MutualTLS %v with client CA %q", m.MutualTLS, tc.files.ClientCA)
				}
				return
			}
			if m != nil || len(errs) != 1 {
				t.Fatalf("Load = %v, %v; want exactly one problem", m, errs)
			}
			if errs[0].Field != tc.field || !strings.Contains(errs[0].Msg, tc.want) {
				t.Errorf("problem %d %q; want field %d containing %q", errs[0].Field, errs[0].Msg, tc.field, tc.want)
			}
		})
	}
	t.Run("a permission problem is named", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads every file")
		}
		locked := filepath.Join(dir, "locked.crt")
		certtest.WriteFile(t, locked, f.CA.PEM)
		if err := os.Chmod(locked, 0); err != nil {
			t.Fatal(err)
		}
		_, errs := listen.Load(listen.Files{Cert: locked, Key: key}, time.Now())
		if len(errs) != 1 || !strings.Contains(errs[0].Msg, "permission denied") {
			t.Errorf("problems %v; want permission denied", errs)
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// tlsServer accepts TLS connections with cfg and completes each handshake;
// it returns the address.
func tlsServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	acceptEach(t, l, func(c net.Conn) {
		go func() {
			_ = c.(*tls.Conn).Handshake()
			// Hold the connection until the client closes it, so a client
			// certificate refused by the server surfaces on the client's
			// first read.
			_, _ = c.Read(make([]byte, 1))
			c.Close()
		}()
	})
	return l.Addr().String()
}

// acceptEach hands every connection l accepts to handle until the test ends,
// which closes l.
func acceptEach(t *testing.T, l net.Listener, handle func(net.Conn)) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			handle(c)
		}
	}()
}

// handshake dials addr trusting roots, presenting client (if any), and
// returns the server certificate's common name, or the error of the
// handshake or of the first read (TLS 1.3 reports a refused client
// certificate there).
func handshake(addr string, roots *x509.CertPool, client *tls.Certificate) (string, error) {
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{"h2"}}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err != nil {
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			return "", err
		}
	}
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func pool(pems ...[]byte) *x509.CertPool {
	p := x509.NewCertPool()
	for _, b := range pems {
		p.AppendCertsFromPEM(b)
	}
	return p
}

func TestServerConfigFollowsTheCurrentMaterial(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "sidecar CA")
	clientCA := certtest.NewCA(t, "envoy CA")
	strangerCA := certtest.NewCA(t, "stranger CA")
	caFile := filepath.Join(dir, "clients.crt")
	certtest.WriteFile(t, caFile, clientCA.PEM)
	load := func(t *testing.T, cn string, withCA bool) *listen.Material {
		t.Helper()
		cert, key := ca.Server(t, cn).Write(t, t.TempDir(), "server")
		f := listen.Files{Cert: cert, Key: key}
		if withCA {
			f.ClientCA = caFile
		}
		m, errs := listen.Load(f, time.Now())
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		return m
	}
	keyPair := func(p certtest.Pair) *tls.Certificate {
		c, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return &c
	}
	trusted := keyPair(clientCA.Client(t, "envoy"))
	stranger := keyPair(strangerCA.Client(t, "envoy elsewhere"))
	roots := pool(ca.PEM)

	// following serves TLS with first, then with whatever cur holds: a reload
	// stores the new material there.
	following := func(t *testing.T, first *listen.Material) (string, *atomic.Pointer[listen.Material]) {
		var cur atomic.Pointer[listen.Material]
		cur.Store(first)
		return tlsServer(t, listen.ServerConfig(first, cur.Load)), &cur
	}
	t.Run("mutual TLS admits a client certificate from the client CA and no other", func(t *testing.T) {
		m := load(t, "sidecar", true)
		addr := tlsServer(t, listen.ServerConfig(m, func() *listen.Material { return m }))
		if cn, err := handshake(addr, roots, trusted); err != nil || cn != "sidecar" {
			t.Errorf("trusted client: %q, %v", cn, err)
		}
		if _, err := handshake(addr, roots, stranger); err == nil {
			t.Error("a client certificate from another CA was accepted")
		}
		if _, err := handshake(addr, roots, nil); err == nil {
			t.Error("a client without a certificate was accepted")
		}
	})
	t.Run("a rotated certificate serves the next connection", func(t *testing.T) {
		addr, cur := following(t, load(t, "before rotation", false))
		if cn, err := handshake(addr, roots, nil); err != nil || cn != "before rotation" {
			t.Fatalf("before: %q, %v", cn, err)
		}
		cur.Store(load(t, "after rotation", false))
		if cn, err := handshake(addr, roots, nil); err != nil || cn != "after rotation" {
			t.Errorf("after: %q, %v", cn, err)
		}
	})
	t.Run("a client CA added by a reload is required from the next connection", func(t *testing.T) {
		addr, cur := following(t, load(t, "sidecar", false))
		if _, err := handshake(addr, roots, nil); err != nil {
			t.Fatalf("before: %v", err)
		}
		cur.Store(load(t, "sidecar", true))
		if _, err := handshake(addr, roots, nil); err == nil {
			t.Error("a client without a certificate was accepted after the client CA was configured")
		}
	})
	t.Run("a config without TLS files keeps the last certificate instead of failing open", func(t *testing.T) {
		addr, cur := following(t, load(t, "kept", true))
		cur.Store(nil)
		if cn, err := handshake(addr, roots, trusted); err != nil || cn != "kept" {
			t.Errorf("trusted client: %q, %v", cn, err)
		}
		if _, err := handshake(addr, roots, nil); err == nil {
			t.Error("a client without a certificate was accepted once the config named no TLS files")
		}
	})
}
