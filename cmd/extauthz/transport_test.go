package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/extauthz/extauthz/internal/listen/certtest"
	"github.com/extauthz/extauthz/internal/testkit"
)

// shortDir is a temporary directory with a short path: socket paths are
// limited to about 100 bytes, which t.TempDir can exceed.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "xa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestServeOnAUnixSocket(t *testing.T) {
	secret := testkit.Secret(t)
	_, signingKey := newSigningKey(t)
	sock := filepath.Join(shortDir(t), "grpc.sock")
	// A socket left by a sidecar that was killed: nothing answers on it.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	cfg := strings.Replace(e2eConfig(secret, signingKey), "grpc_address: 127.0.0.1:0", "grpc_address: unix://"+sock, 1)
	cfgPath := testkit.WriteFile(t, "uds.yaml", cfg)
	s := startServe(t, nil, "--config", cfgPath, "--log-format", "json")
	s.waitServing(t)

	t.Run("the serving line names the socket", func(t *testing.T) {
		if s.grpc != "unix://"+sock {
			t.Errorf("grpc_address logged as %q, want unix://%s", s.grpc, sock)
		}
	})
	t.Run("the stale socket was replaced by one only the user and group may use", func(t *testing.T) {
		fi, err := os.Lstat(sock)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
			t.Errorf("socket mode %v, want a socket with 0660", fi.Mode())
		}
	})
	for _, addr := range []string{"unix://" + sock, "unix:" + sock} {
		t.Run("check over "+addr+" is answered", func(t *testing.T) {
			if c := runCheck(t, addr, "--url", "http://public.example.com/"); c.decision != "ALLOW" {
				t.Errorf("public route: %s", c.raw)
			}
			if c := runCheck(t, addr, "--url", "http://app.example.com/"); c.decision != "DENY" || c.status != 401 {
				t.Errorf("app without a token: %s", c.raw)
			}
		})
		t.Run("healthcheck over "+addr+" is SERVING", func(t *testing.T) {
			r := execBin(t, invocation{args: []string{"healthcheck", "--addr", addr}})
			if r.code != exitOK || !strings.Contains(r.stdout, "SERVING") {
				t.Errorf("want exit 0 and SERVING\n%s", r)
			}
		})
	}
	t.Run("healthcheck reads the socket from the config", func(t *testing.T) {
		r := execBin(t, invocation{args: []string{"healthcheck", "--config", cfgPath}, env: map[string]string{"SHARED_SECRET": secret}})
		if r.code != exitOK || !strings.Contains(r.stdout, "SERVING") {
			t.Errorf("want exit 0 and SERVING\n%s", r)
		}
	})
	t.Run("a relative socket path is a usage error", func(t *testing.T) {
		assertUsageError(t, execBin(t, invocation{args: []string{"check", "--addr", "unix:grpc.sock", "--url", "http://a/"}}), "must be absolute")
		assertUsageError(t, execBin(t, invocation{args: []string{"healthcheck", "--addr", "unix:grpc.sock"}}), "must be absolute")
	})
	t.Run("the socket is removed on exit", func(t *testing.T) {
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := s.exitCode(t, 30*time.Second); code != 0 {
			t.Fatalf("exit %d\n%s", code, s)
		}
		if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket still there after exit: %v", err)
		}
	})
}

func TestServeWithClientCertificates(t *testing.T) {
	secret := testkit.Secret(t)
	_, signingKey := newSigningKey(t)
	dir := t.TempDir()
	serverCA := certtest.NewCA(t, "sidecar CA")
	envoyCA := certtest.NewCA(t, "envoy CA")
	strangerCA := certtest.NewCA(t, "stranger CA")
	certFile, keyFile := serverCA.Server(t, "sidecar one").Write(t, dir, "server")
	caFile := filepath.Join(dir, "envoy-ca.crt")
	certtest.WriteFile(t, caFile, envoyCA.PEM)
	cfg := e2eConfig(secret, signingKey) + "grpc_tls_cert_file: " + certFile + "\ngrpc_tls_key_file: " + keyFile + "\ngrpc_client_ca_file: " + caFile + "\n"
	s := startServe(t, nil, "--config", testkit.WriteFile(t, "mtls.yaml", cfg), "--log-format", "json")
	s.waitServing(t)

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serverCA.PEM)
	pair := func(p certtest.Pair) []tls.Certificate {
		c, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{c}
	}
	health := func(creds credentials.TransportCredentials) error {
		conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			err = errors.New(resp.GetStatus().String())
		}
		return err
	}
	tlsAs := func(certs []tls.Certificate) credentials.TransportCredentials {
		return credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: certs})
	}
	trusted := pair(envoyCA.Client(t, "envoy"))

	for _, tc := range []struct {
		name  string
		creds credentials.TransportCredentials
		ok    bool
	}{
		{"a client certificate from the client CA is answered", tlsAs(trusted), true},
		{"a client certificate from another CA gets no answer", tlsAs(pair(strangerCA.Client(t, "envoy elsewhere"))), false},
		{"a client without a certificate gets no answer", tlsAs(nil), false},
		{"a plaintext client gets no answer", insecure.NewCredentials(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := health(tc.creds); (err == nil) != tc.ok {
				t.Errorf("health check: %v, want answered: %v", err, tc.ok)
			}
		})
	}
	t.Run("a certificate rotated on disk serves new connections after SIGHUP", func(t *testing.T) {
		next := serverCA.Server(t, "sidecar two")
		certtest.WriteFile(t, certFile, next.CertPEM)
		certtest.WriteFile(t, keyFile, next.KeyPEM)
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		served := func() string {
			c, err := tls.Dial("tcp", s.grpc, &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: trusted, NextProtos: []string{"h2"}})
			if err != nil {
				return err.Error()
			}
			defer c.Close()
			return c.ConnectionState().PeerCertificates[0].Subject.CommonName
		}
		if !s.waitFor(func() bool { return served() == "sidecar two" }) {
			t.Errorf("served %q after the rotation, want \"sidecar two\"\n%s", served(), s)
		}
		if err := health(tlsAs(trusted)); err != nil {
			t.Errorf("health over the rotated certificate: %v", err)
		}
	})
	t.Run("healthcheck --config says it cannot speak TLS", func(t *testing.T) {
		r := execBin(t, invocation{args: []string{"healthcheck", "--config", testkit.WriteFile(t, "h.yaml", cfg)}})
		if r.code != exitFailure || !strings.Contains(r.stderr, "probe http_address's /healthz instead") {
			t.Errorf("want exit 1 pointing at /healthz\n%s", r)
		}
	})
}

func TestValidateNamesTheTLSFileAtFault(t *testing.T) {
	secret := testkit.Secret(t)
	_, signingKey := newSigningKey(t)
	f := certtest.NewFiles(t)
	certFile, otherKey := f.Cert, f.OtherKey
	cfg := e2eConfig(secret, signingKey) + "grpc_tls_cert_file: " + certFile + "\ngrpc_tls_key_file: " + otherKey + "\n"
	path := testkit.WriteFile(t, "tls.yaml", cfg)
	r := execBin(t, invocation{args: []string{"validate", "--config", path}})
	want := path + ":17:20: grpc_tls_key_file: " + otherKey + " is not the private key of the certificate in " + certFile
	if r.code != exitFailure || !strings.Contains(r.stdout+r.stderr, want) {
		t.Errorf("want exit 1 and %q\n%s", want, r)
	}
}
