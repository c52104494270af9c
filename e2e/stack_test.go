// Package e2e_test drives the real thing: the extauthz binary on a config
// file, a real Envoy 1.40 running the bundled envoy/envoy.yaml (only ports
// rewritten), and an upstream that echoes what it received.
package e2e_test

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/identity"
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
	config  string // the sidecar's config file, which serve reloads on change
	sidecar *exec.Cmd
	logs    *syncBuffer
	done    chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const stackConfig = `shared_secret: %s
signing_key: %s
grpc_address: 127.0.0.1:%d
http_address: 127.0.0.1:%d
authenticate_service_url: http://authenticate.localhost:%[5]d
cookie_secure: false
administrators: [alice@corp.example]
impersonation_protected: [security@corp.example]
jwt_claims_headers: [email, groups]
policy:
  - name: app
    from: http://app.localhost:%[5]d
    allowed_groups: [engineering]
  - name: admin
    from: http://admin.localhost:%[5]d
    allowed_groups: [admins]
  - name: wiki
    from: http://wiki.localhost:%[5]d
    allowed_domains: [corp.example]
  - name: public
    from: http://public.localhost:%[5]d
    allow_public_unauthenticated_access: true
`

func startStack(t *testing.T) *stack {
	t.Helper()
	envoytest.RequireBinary(t)
	// The listen port is picked here: the policy's from URLs carry it, the
	// public port that sign-in redirects must use exactly.
	listen, grpcPort, httpPort, upstreamPort := envoytest.FreePort(t), envoytest.FreePort(t), envoytest.FreePort(t), envoytest.FreePort(t)
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	secret := base64.StdEncoding.EncodeToString(raw)
	key, err := identity.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	encodedKey, err := identity.EncodeSigningKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(stackConfig, secret, encodedKey, grpcPort, httpPort, listen)), 0o600); err != nil {
		t.Fatal(err)
	}
	startEcho(t, upstreamPort)

	s := &stack{secret: secret, config: cfgPath, logs: &syncBuffer{}, done: make(chan struct{})}
	s.sidecar = exec.Command(binary, "serve", "--config", cfgPath, "--log-format", "json")
	s.sidecar.Stdout, s.sidecar.Stderr = s.logs, s.logs
	if err := s.sidecar.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.sidecar.Wait(); close(s.done) }()
	t.Cleanup(s.stopSidecar)
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", httpPort), s)

	s.envoy = envoytest.Start(t, envoytest.Options{ListenPort: listen, GRPCPort: grpcPort, HTTPPort: httpPort, UpstreamPort: upstreamPort})
	return s
}

func (s *stack) stopSidecar() {
	if s.sidecar.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.sidecar.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.sidecar.Process.Kill()
		<-s.done
	}
}

func waitHTTP(t *testing.T, url string, s *stack) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-s.done:
			t.Fatalf("the sidecar exited:\n%s", s.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("the sidecar did not become ready at %s:\n%s", url, s.logs.String())
}

// mint signs a token with the stack's secret for the demo hosts.
func (s *stack) mint(t *testing.T, c identity.Claims) string {
	t.Helper()
	now := time.Now()
	c.Issuer = "authenticate.localhost"
	if c.Audience == nil {
		c.Audience = jwt.ClaimStrings{"app.localhost", "admin.localhost", "wiki.localhost"}
	}
	c.ExpiresAt = jwt.NewNumericDate(now.Add(time.Hour))
	c.IssuedAt = jwt.NewNumericDate(now)
	c.NotBefore = jwt.NewNumericDate(now)
	tok, err := identity.Mint(&c, s.secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
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

// auditEntries returns the sidecar's audit log lines, decoded.
func (s *stack) auditEntries(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["logger"] == "audit" {
			out = append(out, m)
		}
	}
	return out
}
