package e2e_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/listen/certtest"
	"github.com/extauthz/extauthz/internal/testkit"
)

// sidecarName is the name in the sidecar's certificate that envoy-mtls.yaml
// sends as SNI and requires as a subject alternative name.
const sidecarName = "extauthz.internal"

// transportPorts are one sidecar's ports and the Envoy listener its policy
// names.
type transportPorts struct{ listen, http, upstream int }

// startTransportSidecar runs the sidecar on the demo config with grpc_address
// replaced by grpcAddress and extra keys appended, and an echo upstream.
func startTransportSidecar(t *testing.T, grpcAddress, extra string) (*stack, transportPorts) {
	t.Helper()
	envoytest.RequireBinary(t)
	p := transportPorts{envoytest.FreePort(t), envoytest.FreePort(t), envoytest.FreePort(t)}
	cfg, secret := testkit.DemoConfig(t, p.listen, 0, p.http, "")
	if !strings.Contains(cfg, "grpc_address: 127.0.0.1:0\n") {
		t.Fatal("the demo config no longer sets grpc_address as the test kit writes it")
	}
	cfg = strings.Replace(cfg, "grpc_address: 127.0.0.1:0\n", "grpc_address: "+grpcAddress+"\n", 1) + extra
	s := startSidecar(t, cfg, secret, ports{listen: p.listen, http: p.http, upstream: p.upstream})
	return s, p
}

// startEnvoyFrom runs the bundled Envoy config envoy/<file> with every
// occurrence of each replacements key replaced by its value (socket and
// certificate paths), on the sidecar's ports.
func startEnvoyFrom(t *testing.T, file string, replacements map[string]string, p transportPorts, grpcPort int) *envoytest.Envoy {
	t.Helper()
	src := envoytest.ReadConfig(t, file)
	text := string(src)
	for old, repl := range replacements {
		if !strings.Contains(text, old) {
			t.Fatalf("envoy/%s no longer names %q", file, old)
		}
		text = strings.ReplaceAll(text, old, repl)
	}
	return envoytest.Start(t, envoytest.Options{ConfigPath: testkit.WriteFile(t, file, text), ListenPort: p.listen, GRPCPort: grpcPort,
		HTTPPort: p.http, UpstreamPort: p.upstream})
}

// allowedAndDenied checks that s, through Envoy e, lets an engineer's token
// reach the app and refuses no token (401) and the wrong group (403).
func allowedAndDenied(t *testing.T, s *stack, e *envoytest.Envoy) {
	t.Helper()
	s.envoy = e
	bob := s.mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u-bob"}})
	resp, body := s.do(t, "GET", "app.localhost", "/orders", "Authorization: Pomerium "+bob)
	if resp.StatusCode != 200 {
		t.Fatalf("an engineer's request: %d %s", resp.StatusCode, body)
	}
	if saw := upstreamSaw(t, body); saw.Headers["x-pomerium-claim-email"] != "bob@corp.example" {
		t.Errorf("the app saw %v", saw.Headers)
	}
	for _, tc := range []struct {
		name    string
		host    string
		headers []string
		status  int
	}{
		{"no token", "app.localhost", nil, 401},
		{"the wrong group", "admin.localhost", []string{"Authorization: Pomerium " + bob}, 403},
	} {
		resp, body := s.do(t, "GET", tc.host, "/", tc.headers...)
		if resp.StatusCode != tc.status || strings.Contains(body, `"headers"`) {
			t.Errorf("%s: %d %s, want %d from the sidecar", tc.name, resp.StatusCode, body, tc.status)
		}
	}
}

// failsClosed checks that a request through e is refused by Envoy itself
// (the sidecar never answered) and never reaches the app.
func failsClosed(t *testing.T, s *stack, e *envoytest.Envoy) {
	t.Helper()
	s.envoy = e
	bob := s.mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}})
	for range 3 {
		resp, body := s.do(t, "GET", "app.localhost", "/orders", "Authorization: Pomerium "+bob)
		if (resp.StatusCode != 503 && resp.StatusCode != 403) || strings.Contains(body, `"headers"`) {
			t.Fatalf("%d %s; want Envoy to fail closed with 503 or 403", resp.StatusCode, body)
		}
	}
}

func TestTransportsThroughEnvoy(t *testing.T) {
	t.Run("over a Unix socket an allowed and a denied request are answered", func(t *testing.T) {
		dir, err := os.MkdirTemp("", "xa") // short: socket paths are limited to about 100 bytes
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		sock := filepath.Join(dir, "grpc.sock")
		s, p := startTransportSidecar(t, "unix://"+sock, "")
		e := startEnvoyFrom(t, "envoy-uds.yaml", map[string]string{"/run/extauthz/grpc.sock": sock}, p, 0)
		allowedAndDenied(t, s, e)
	})

	// The mutual TLS layout: the sidecar's certificate from serverCA, Envoy's
	// client certificate from envoyCA, which the sidecar trusts.
	dir := t.TempDir()
	serverCA, envoyCA, strangerCA := certtest.NewCA(t, "sidecar CA"), certtest.NewCA(t, "envoy CA"), certtest.NewCA(t, "stranger CA")
	certFile, keyFile := serverCA.Server(t, "sidecar before rotation", sidecarName).Write(t, dir, "server")
	clientCAFile := filepath.Join(dir, "envoy-ca.crt")
	certtest.WriteFile(t, clientCAFile, envoyCA.PEM)
	envoyFiles := func(t *testing.T, client *certtest.CA) string {
		t.Helper()
		d := t.TempDir()
		client.Client(t, "envoy").Write(t, d, "client")
		certtest.WriteFile(t, filepath.Join(d, "extauthz-ca.crt"), serverCA.PEM)
		return d + "/"
	}
	grpcPort := envoytest.FreePort(t)
	s, p := startTransportSidecar(t, fmt.Sprintf("127.0.0.1:%d", grpcPort),
		"grpc_tls_cert_file: "+certFile+"\ngrpc_tls_key_file: "+keyFile+"\ngrpc_client_ca_file: "+clientCAFile+"\n")

	t.Run("over mutual TLS an allowed and a denied request are answered", func(t *testing.T) {
		e := startEnvoyFrom(t, "envoy-mtls.yaml", map[string]string{"/etc/envoy/tls/": envoyFiles(t, envoyCA)}, p, grpcPort)
		defer e.Stop()
		allowedAndDenied(t, s, e)
	})
	t.Run("an Envoy whose client certificate the sidecar does not trust gets no answer and fails closed", func(t *testing.T) {
		e := startEnvoyFrom(t, "envoy-mtls.yaml", map[string]string{"/etc/envoy/tls/": envoyFiles(t, strangerCA)}, p, grpcPort)
		defer e.Stop()
		failsClosed(t, s, e)
	})
	t.Run("a plaintext Envoy against the TLS sidecar fails closed", func(t *testing.T) {
		e := startEnvoyFrom(t, "envoy.yaml", nil, p, grpcPort)
		defer e.Stop()
		failsClosed(t, s, e)
	})
	t.Run("a certificate rotated on disk is served after a reload", func(t *testing.T) {
		next := serverCA.Server(t, "sidecar after rotation", sidecarName)
		certtest.WriteFile(t, certFile, next.CertPEM)
		certtest.WriteFile(t, keyFile, next.KeyPEM)
		if err := s.sidecar.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(serverCA.PEM)
		client := envoyCA.Client(t, "probe")
		pair, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		served := func() string {
			c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", grpcPort), &tls.Config{RootCAs: roots,
				ServerName: sidecarName, Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2"}})
			if err != nil {
				return err.Error()
			}
			defer c.Close()
			return c.ConnectionState().PeerCertificates[0].Subject.CommonName
		}
		deadline := time.Now().Add(10 * time.Second)
		for served() != "sidecar after rotation" && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if got := served(); got != "sidecar after rotation" {
			t.Fatalf("the sidecar serves %q after the reload, want the rotated certificate\n%s", got, s.logs.String())
		}
		// A new Envoy connects with the rotated certificate and is answered.
		e := startEnvoyFrom(t, "envoy-mtls.yaml", map[string]string{"/etc/envoy/tls/": envoyFiles(t, envoyCA)}, p, grpcPort)
		defer e.Stop()
		allowedAndDenied(t, s, e)
	})
}
