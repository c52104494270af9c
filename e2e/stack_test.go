// Package e2e_test drives the real thing: the extauthz binary on a config
// file, a real Envoy 1.40 running the bundled envoy/envoy.yaml (only ports
// rewritten), and an upstream that echoes what it received.
package e2e_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/testkit"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "extauthz-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "extauthz")
	build := exec.Command("go", "build", "-o", binary, "github.com/extauthz/extauthz/cmd/extauthz")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building extauthz:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// echoed is what the upstream answers: the request it received.
type echoed struct {
	Method  string            `json:"method"`
	Host    string            `json:"host"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
}

func startEcho(t *testing.T, port int) {
	t.Helper()
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := map[string]string{}
		for k, v := range r.Header {
			h[strings.ToLower(k)] = strings.Join(v, ", ")
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoed{Method: r.Method, Host: r.Host, Path: r.URL.RequestURI(), Headers: h})
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Close() })
}

// stack is one running Envoy + sidecar + echo upstream.
type stack struct {
	envoy   *envoytest.Envoy
	secret  string
	sidecar *testkit.Sidecar
	config  string              // the sidecar's config file, which serve reloads on change
	logs    *testkit.SyncBuffer // the sidecar's
	module  bool                // Envoy decides with the module (envoy-module.yaml), not ext_authz
}

// ports are the ports of one stack: Envoy's listener, the sidecar's gRPC and
// HTTP, and the echo upstream.
type ports struct{ listen, grpc, http, upstream int }

// freePorts picks them. The listen port is picked first: the policy's from
// URLs carry it, the public port that sign-in redirects must use exactly.
func freePorts(t *testing.T) ports {
	return ports{envoytest.FreePort(t), envoytest.FreePort(t), envoytest.FreePort(t), envoytest.FreePort(t)}
}

// startSidecar runs the echo upstream on p.upstream and the sidecar on
// config, whose shared_secret is secret.
func startSidecar(t *testing.T, config, secret string, p ports) *stack {
	t.Helper()
	startEcho(t, p.upstream)
	sc := testkit.StartSidecar(t, binary, config, p.http)
	return &stack{secret: secret, sidecar: sc, config: sc.Config, logs: sc.Logs}
}

// startEnvoy puts an Envoy on envoyConfig ("" for the bundled envoy.yaml) in
// front of the stack.
func (s *stack) startEnvoy(t *testing.T, envoyConfig string, p ports) {
	t.Helper()
	s.envoy = envoytest.Start(t, envoytest.Options{ConfigPath: envoyConfig,
		ListenPort: p.listen, GRPCPort: p.grpc, HTTPPort: p.http, UpstreamPort: p.upstream})
}

// startStack runs the demo config (internal/config/demo.yaml) behind the
// bundled Envoy.
func startStack(t *testing.T) *stack {
	t.Helper()
	envoytest.RequireBinary(t)
	p := freePorts(t)
	config, secret := testkit.DemoConfig(t, p.listen, p.grpc, p.http, "")
	s := startSidecar(t, config, secret, p)
	s.startEnvoy(t, "", p)
	return s
}

func (s *stack) stopSidecar() { s.sidecar.Stop() }

// mint signs a token with the stack's secret for the demo hosts.
func (s *stack) mint(t *testing.T, c identity.Claims) string {
	t.Helper()
	c = testkit.Fill(c, "authenticate.localhost", time.Now(), "app.localhost", "admin.localhost", "wiki.localhost")
	return testkit.Mint(t, s.secret, c)
}

// do sends a request through Envoy to host, with headers given as "Name: value".
func (s *stack) do(t *testing.T, method, host, path string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.envoy.URLFor(host)+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := s.envoy.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// auditEntries returns the sidecar's audit log lines, decoded, and the
// module's (Envoy's stderr) when Envoy decides.
func (s *stack) auditEntries(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	logs := s.logs.String()
	if s.module {
		logs += "\n" + s.envoy.Stderr()
	}
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["logger"] == "audit" {
			out = append(out, m)
		}
	}
	return out
}

// refusesUnderscoredHeader: Envoy (headers_with_underscores_action:
// REJECT_REQUEST) refuses a request with a header spelled x_pomerium_, even
// with a valid token.
func (s *stack) refusesUnderscoredHeader(t *testing.T, token string) {
	t.Helper()
	resp, body := s.do(t, "GET", "app.localhost", "/", "Authorization: Pomerium "+token, "x_pomerium_claim_email: ceo@corp.example")
	if resp.StatusCode == 200 {
		t.Fatalf("Envoy let an underscored header through: %s", body)
	}
}

// seenAsBob is what the app saw, checking that it got bob's identity in an
// assertion for app.localhost that verifies against the JWKS.
func (s *stack) seenAsBob(t *testing.T, body string) echoed {
	t.Helper()
	e := upstreamSaw(t, body)
	claims := s.verifyWithJWKS(t, e.Headers["x-pomerium-jwt-assertion"])
	if claims["email"] != "bob@corp.example" || claims["sub"] != "u-bob" || claims["aud"] != "app.localhost" {
		t.Errorf("assertion claims = %v", claims)
	}
	return e
}
