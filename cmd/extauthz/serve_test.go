//go:build unix

package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/proc"
	"github.com/extauthz/extauthz/internal/testkit"
)

// server is a running `extauthz serve` child process.
type server struct {
	*proc.Proc
	cmd            *exec.Cmd
	stdout, stderr *testkit.SyncBuffer
	done           <-chan struct{} // closed when the process has exited
	grpc, http     string          // listener addresses, from the "serving" log line
}

// startServe starts `extauthz serve args...` and stops it (SIGTERM, then
// SIGKILL) when the test ends, failing the test if the binary reported a race.
func startServe(t *testing.T, env map[string]string, args ...string) *server {
	t.Helper()
	s := &server{stdout: &testkit.SyncBuffer{}, stderr: &testkit.SyncBuffer{}}
	s.cmd = exec.Command(binExtauthz, append([]string{"serve"}, args...)...)
	s.cmd.Env = baseEnv(env)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	var err error
	if s.Proc, err = proc.Start(s.cmd); err != nil {
		t.Fatalf("starting serve: %v", err)
	}
	s.done = s.Done()
	t.Cleanup(func() {
		s.Stop(syscall.SIGTERM, 30*time.Second)
		checkNoRace(t, s.stderr.String())
	})
	return s
}

func (s *server) exited() bool { return s.Exited() }

// exitCode waits up to d for the process to exit and returns its code.
func (s *server) exitCode(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-s.done:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("serve still running after %s\nstderr:\n%s", d, s.stderr)
		return -1
	}
}

func (s *server) String() string {
	return fmt.Sprintf("--- serve stdout:\n%s--- serve stderr:\n%s", s.stdout, s.stderr)
}

// waitFor polls cond until it holds, the process exits, or a minute passes
// (a race-enabled binary starts slowly on a busy machine).
func (s *server) waitFor(cond func() bool) bool {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		if s.exited() {
			return cond()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// waitServing waits for the JSON "serving" log line (--log-format json) and
// takes the listener addresses from it, so configs may listen on port 0.
func (s *server) waitServing(t *testing.T) {
	t.Helper()
	ok := s.waitFor(func() bool {
		sc := bufio.NewScanner(strings.NewReader(s.stderr.String()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var entry struct {
				Msg  string `json:"msg"`
				GRPC string `json:"grpc_address"`
				HTTP string `json:"http_address"`
			}
			if json.Unmarshal(sc.Bytes(), &entry) == nil && entry.Msg == "serving" && entry.GRPC != "" {
				s.grpc, s.http = entry.GRPC, entry.HTTP
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("serve did not log \"serving\" with its addresses\n%s", s)
	}
}

// checkOutput is what `extauthz check` printed, parsed.
type checkOutput struct {
	decision string            // ALLOW or DENY
	status   int               // 200 on allow
	reason   string            // the gRPC status message, on deny
	headers  map[string]string // set upstream (allow) or sent to the client (deny)
	removed  []string          // removed before upstream (allow)
	body     string            // deny body
	raw      string
}

var checkLine = regexp.MustCompile(`^(decision|status|reason):\s+(.*)$`)

func parseCheck(t *testing.T, out string) checkOutput {
	t.Helper()
	c := checkOutput{headers: map[string]string{}, raw: out}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if m := checkLine.FindStringSubmatch(l); m != nil {
			switch m[1] {
			case "decision":
				c.decision = m[2]
			case "status":
				n, err := strconv.Atoi(strings.Fields(m[2])[0])
				if err != nil {
					t.Fatalf("status line %q has no code", l)
				}
				c.status = n
			case "reason":
				c.reason = m[2]
			}
			continue
		}
		switch {
		case l == "body:":
			c.body = strings.Join(lines[i+1:], "\n")
			return c
		case strings.HasPrefix(l, "  set    "):
			name, value, _ := strings.Cut(strings.TrimPrefix(l, "  set    "), ": ")
			c.headers[name] = value
		case strings.HasPrefix(l, "  remove "):
			c.removed = append(c.removed, strings.TrimPrefix(l, "  remove "))
		case strings.HasPrefix(l, "  "):
			name, value, _ := strings.Cut(strings.TrimSpace(l), ": ")
			c.headers[name] = value
		}
	}
	return c
}

// check runs `extauthz check` against addr and parses its answer.
func runCheck(t *testing.T, addr string, args ...string) checkOutput {
	t.Helper()
	r := execBin(t, invocation{args: append([]string{"check", "--addr", addr}, args...)})
	if r.code != exitOK && r.code != exitDenied || r.stderr != "" {
		t.Fatalf("check failed\n%s", r)
	}
	c := parseCheck(t, r.stdout)
	// The exit code is the answer: 0 allowed, 1 denied.
	if allowed := c.decision == "ALLOW"; allowed != (r.code == exitOK) {
		t.Fatalf("check printed %s but exited %d\n%s", c.decision, r.code, r)
	}
	return c
}

// verifyAssertion checks the ES256 x-pomerium-jwt-assertion against the key
// and returns its claims.
func verifyAssertion(t *testing.T, tok string, key *ecdsa.PublicKey) (kid string, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("assertion %q is not a compact JWS", tok)
	}
	var header struct{ Alg, Kid, Typ string }
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if err := json.Unmarshal(hb, &header); err != nil || header.Alg != "ES256" || header.Kid == "" || header.Typ != "JWT" {
		t.Fatalf("assertion header = %s, want alg ES256, a kid and typ JWT", hb)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("assertion signature is not 64 bytes of r||s")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(key, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("the assertion does not verify with the configured signing key")
	}
	pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(pb, &claims); err != nil {
		t.Fatalf("assertion claims: %v", err)
	}
	return header.Kid, claims
}

// forgeHS256 signs claims with key, for tokens the CLI would never mint.
func forgeHS256(claims map[string]any, key []byte) string {
	enc := base64.RawURLEncoding
	payload, _ := json.Marshal(claims)
	in := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(payload)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(in))
	return in + "." + enc.EncodeToString(mac.Sum(nil))
}

// e2eConfig listens on ephemeral loopback ports.
func e2eConfig(secret, signingKey string) string {
	return fmt.Sprintf(`shared_secret: %s
signing_key: %s
grpc_address: 127.0.0.1:0
http_address: 127.0.0.1:0
authenticate_service_url: https://authenticate.example.com
cookie_secure: false
administrators: [alice@corp.example]
jwt_claims_headers: [email, groups]
policy:
  - name: app
    from: http://app.example.com
    allowed_groups: [engineering]
  - name: public
    from: http://public.example.com
    allow_public_unauthenticated_access: true
`, secret, signingKey)
}

func TestServeAndCheckEndToEnd(t *testing.T) {
	secret := testkit.Secret(t)
	key, signingKey := newSigningKey(t)
	path := testkit.WriteFile(t, "e2e.yaml", e2eConfig(secret, signingKey))
	s := startServe(t, nil, "--config", path, "--log-format", "json")
	s.waitServing(t)

	var (
		mu     sync.Mutex
		tokens []string // every token used, none of which may be logged
	)
	token := func(t *testing.T, args ...string) string {
		t.Helper()
		base := []string{"-iss", "authenticate.example.com", "-aud", "app.example.com"}
		tok, _ := mint(t, invocation{args: append(append(base, args...), secret)})
		mu.Lock()
		tokens = append(tokens, tok.raw)
		mu.Unlock()
		return tok.raw
	}
	bob := []string{"-email", "bob@corp.example", "-user", "bob", "-groups", "engineering"}
	carol := []string{"-email", "carol@corp.example", "-groups", "sales"}
	aliceAsBob := []string{"-email", "alice@corp.example", "-groups", "admins",
		"-impersonate_email", "bob@corp.example", "-impersonate_groups", "engineering", "-impersonate_reason", "ticket 7"}
	now := time.Now().Unix()

	tests := []struct {
		name         string
		args         func(t *testing.T) []string // check flags besides --addr
		wantDecision string
		wantStatus   int
		wantHeaders  map[string]string // a subset, exact values
		wantHas      string            // in the reason or body
		wantAssert   map[string]any    // a subset of the upstream assertion's claims
		wantNoAssert bool
		wantOut      string // in check's printout
	}{
		{
			name: "an engineer's token is allowed and the engineer's identity goes upstream",
			args: func(t *testing.T) []string {
				return []string{"--url", "http://app.example.com/reports?q=1", "--token", token(t, bob...)}
			},
			wantDecision: "ALLOW", wantStatus: 200,
			wantHeaders: map[string]string{"x-pomerium-claim-email": "bob@corp.example", "x-pomerium-claim-groups": "engineering"},
			wantAssert: map[string]any{"email": "bob@corp.example", "user": "bob", "groups": []any{"engineering"},
				"aud": "app.example.com", "iss": "authenticate.example.com"},
		},
		{
			name: "someone outside the allowed group is denied with 403 and a request id",
			args: func(t *testing.T) []string {
				return []string{"--url", "http://app.example.com/", "--token", token(t, carol...)}
			},
			wantDecision: "DENY", wantStatus: 403, wantHas: "request id",
		},
		{
			name: "an administrator impersonating an engineer is allowed as the engineer",
			args: func(t *testing.T) []string {
				return []string{"--url", "http://app.example.com/", "--token", token(t, aliceAsBob...)}
			},
			wantDecision: "ALLOW", wantStatus: 200,
			wantHeaders: map[string]string{"x-pomerium-claim-email": "bob@corp.example", "x-pomerium-claim-groups": "engineering"},
			wantAssert: map[string]any{"email": "bob@corp.example", "groups": []any{"engineering"},
				// alice's token has no sub: act.sub is her email (decision.UpstreamIdentity).
				"act": map[string]any{"email": "alice@corp.example", "sub": "alice@corp.example"}},
			wantOut: "actor:    alice@corp.example (impersonating)",
		},
		{
			name: "a non-administrator asking to impersonate is denied with 403",
			args: func(t *testing.T) []string {
				return []string{"--url", "http://app.example.com/", "--token",
					token(t, append(slices.Clone(carol), "-impersonate_email", "bob@corp.example", "-impersonate_groups", "engineering")...)}
			},
			wantDecision: "DENY", wantStatus: 403, wantHas: "administrator",
		},
		{
			name: "a read-only impersonation may GET",
			args: func(t *testing.T) []string {
				return []string{"--url", "http://app.example.com/", "--token", token(t, append(slices.Clone(aliceAsBob), "-impersonate_access", "read_only")...)}
			},
			wantDecision: "ALLOW", wantStatus: 200,
			wantHeaders: map[string]string{"x-pomerium-claim-email": "bob@corp.example"},
			wantAssert:  map[string]any{"email": "bob@corp.example", "act": map[string]any{"email": "alice@corp.example", "sub": "alice@corp.example"}},
		},
		{
			name: "a read-only impersonation may not POST",
			args: func(t *testing.T) []string {
				return []string{"--method", "post", "--url", "http://app.example.com/", "--token", token(t, append(slices.Clone(aliceAsBob), "-impersonate_access", "read_only")...)}
			},
			wantDecision: "DENY", wantStatus: 403, wantHas: "read",
		},
		{
			name:         "a request without a token is 401 with WWW-Authenticate: Pomerium",
			args:         func(t *testing.T) []string { return []string{"--url", "http://app.example.com/"} },
			wantDecision: "DENY", wantStatus: 401,
			wantHeaders: map[string]string{"www-authenticate": "Pomerium"},
		},
		{
			name: "a browser without a token is redirected to sign in",
			args: func(t *testing.T) []string {
				return []string{"--url", "http://app.example.com/x?y=1", "--accept", "text/html,application/xhtml+xml"}
			},
			wantDecision: "DENY", wantStatus: 302,
		},
		{
			name: "a token signed with the secret's decoded bytes is refused with 401",
			args: func(t *testing.T) []string {
				raw, _ := base64.StdEncoding.DecodeString(secret)
				tok := forgeHS256(map[string]any{"iss": "authenticate.example.com", "aud": []string{"app.example.com"},
					"email": "bob@corp.example", "groups": []string{"engineering"}, "iat": now, "nbf": now, "exp": now + 600, "jti": "forged-1"}, raw)
				return []string{"--url", "http://app.example.com/", "--token", tok}
			},
			wantDecision: "DENY", wantStatus: 401,
		},
		{
			name: "a token minted for another audience is refused with 401",
			args: func(t *testing.T) []string {
				tok, _ := mint(t, invocation{args: []string{"-iss", "authenticate.example.com", "-aud", "other.example.com",
					"-email", "bob@corp.example", "-groups", "engineering", secret}})
				return []string{"--url", "http://app.example.com/", "--token", tok.raw}
			},
			wantDecision: "DENY", wantStatus: 401,
		},
		{
			name:         "a public route is allowed without a token and passes no identity",
			args:         func(t *testing.T) []string { return []string{"--url", "http://public.example.com/"} },
			wantDecision: "ALLOW", wantStatus: 200, wantNoAssert: true,
		},
		{
			name:         "a host no route serves is 404",
			args:         func(t *testing.T) []string { return []string{"--url", "http://nowhere.example.com/"} },
			wantDecision: "DENY", wantStatus: 404,
		},
		{
			name: "Envoy's x-request-id is the request id of a denial",
			args: func(t *testing.T) []string {
				return []string{"--url", "http://app.example.com/", "--token", token(t, carol...), "-H", "x-request-id: req-e2e-1"}
			},
			wantDecision: "DENY", wantStatus: 403,
			wantHeaders: map[string]string{"x-request-id": "req-e2e-1"}, wantHas: "req-e2e-1",
		},
		{
			name: "--route names the route as Envoy's context extension would",
			args: func(t *testing.T) []string {
				tok, _ := mint(t, invocation{args: append([]string{"-iss", "authenticate.example.com", "-aud", "alias.example.com"}, append(slices.Clone(bob), secret)...)})
				return []string{"--url", "http://alias.example.com/", "--route", "app", "--token", tok.raw}
			},
			wantDecision: "ALLOW", wantStatus: 200,
			wantHeaders: map[string]string{"x-pomerium-claim-email": "bob@corp.example"},
		},
	}
	t.Run("check", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				c := runCheck(t, s.grpc, tt.args(t)...)
				if c.decision != tt.wantDecision || c.status != tt.wantStatus {
					t.Fatalf("got %s %d, want %s %d\n%s", c.decision, c.status, tt.wantDecision, tt.wantStatus, c.raw)
				}
				for name, want := range tt.wantHeaders {
					if got, ok := c.headers[name]; !ok || got != want {
						t.Errorf("header %s = %q (present %t), want %q\n%s", name, got, ok, want, c.raw)
					}
				}
				if !strings.Contains(c.raw, tt.wantOut) {
					t.Errorf("check's printout lacks %q\n%s", tt.wantOut, c.raw)
				}
				if tt.wantHas != "" && !strings.Contains(c.reason+"\n"+c.body, tt.wantHas) {
					t.Errorf("neither reason nor body mentions %q\n%s", tt.wantHas, c.raw)
				}
				assertion, hasAssertion := c.headers["x-pomerium-jwt-assertion"]
				if tt.wantNoAssert && hasAssertion {
					t.Errorf("an identity assertion went upstream:\n%s", c.raw)
				}
				if c.decision == "ALLOW" && !tt.wantNoAssert {
					if !slices.Contains(c.removed, "authorization") {
						t.Errorf("the Pomerium Authorization header is not removed before upstream:\n%s", c.raw)
					}
					if _, set := c.headers["authorization"]; set {
						t.Errorf("authorization both set and removed:\n%s", c.raw)
					}
					if !hasAssertion {
						t.Fatalf("no x-pomerium-jwt-assertion on an allow:\n%s", c.raw)
					}
					_, claims := verifyAssertion(t, assertion, &key.PublicKey)
					for k, want := range tt.wantAssert {
						if got := claims[k]; !jsonEqual(got, want) {
							t.Errorf("assertion claim %s = %s, want %s", k, mustJSON(got), mustJSON(want))
						}
					}
					if _, act := claims["act"]; act && tt.wantAssert["act"] == nil {
						t.Errorf("assertion carries act without impersonation: %s", mustJSON(claims))
					}
				}
				if c.status == 302 {
					loc := c.headers["location"]
					if !strings.Contains(loc, "/.pomerium/sign_in") || !strings.Contains(loc, "pomerium_redirect_uri=http%3A%2F%2Fapp.example.com%2Fx%3Fy%3D1") {
						t.Errorf("location = %q, want the sign-in page with the original URL", loc)
					}
				}
			})
		}
	})

	t.Run("a JSON Accept gets a JSON body whose request_id matches the header", func(t *testing.T) {
		c := runCheck(t, s.grpc, "--url", "http://app.example.com/", "--token", token(t, carol...), "--accept", "application/json")
		var body struct {
			Error     string `json:"error"`
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal([]byte(c.body), &body); err != nil {
			t.Fatalf("body is not JSON: %v\n%s", err, c.raw)
		}
		if c.status != 403 || body.Error == "" || body.RequestID == "" || body.RequestID != c.headers["x-request-id"] {
			t.Errorf("want 403 with error and the request id of the x-request-id header\n%s", c.raw)
		}
	})

	t.Run("the JWKS on the HTTP listener publishes the assertion key", func(t *testing.T) {
		c := runCheck(t, s.grpc, "--url", "http://app.example.com/", "--token", token(t, bob...))
		kid, _ := verifyAssertion(t, c.headers["x-pomerium-jwt-assertion"], &key.PublicKey)
		resp, err := http.Get("http://" + s.http + "/.well-known/pomerium/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var jwks struct {
			Keys []struct{ Kid, Kty, Crv, X, Y string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil || resp.StatusCode != 200 {
			t.Fatalf("JWKS: status %d, %v", resp.StatusCode, err)
		}
		enc := base64.RawURLEncoding
		for _, k := range jwks.Keys {
			if k.Kid == kid {
				if k.Kty != "EC" || k.Crv != "P-256" || k.X != enc.EncodeToString(key.X.FillBytes(make([]byte, 32))) ||
					k.Y != enc.EncodeToString(key.Y.FillBytes(make([]byte, 32))) {
					t.Errorf("JWKS key %s is not the configured public key: %+v", kid, k)
				}
				return
			}
		}
		t.Errorf("no JWKS key has the assertion's kid %s: %+v", kid, jwks.Keys)
	})

	t.Run("the impersonated allow is audited with the real actor", func(t *testing.T) {
		runCheck(t, s.grpc, "--url", "http://app.example.com/audited", "--token", token(t, aliceAsBob...))
		ok := s.waitFor(func() bool { return auditEntry(s.stderr.String(), "/audited") != nil })
		entry := auditEntry(s.stderr.String(), "/audited")
		if !ok || entry == nil {
			t.Fatalf("no audit entry for the impersonated request\n%s", s)
		}
		for k, want := range map[string]any{"actor_email": "alice@corp.example", "impersonated_email": "bob@corp.example",
			"route": "app", "decision": "allow", "impersonation_reason": "ticket 7"} {
			if !jsonEqual(entry[k], want) {
				t.Errorf("audit %s = %s, want %s\nentry: %s", k, mustJSON(entry[k]), mustJSON(want), mustJSON(entry))
			}
		}
	})

	t.Run("the logs never contain the secret or a token", func(t *testing.T) {
		logs := s.stderr.String() + s.stdout.String()
		if strings.Contains(logs, secret) {
			t.Error("the shared secret is in the server's output")
		}
		mu.Lock()
		defer mu.Unlock()
		for _, tok := range tokens {
			if strings.Contains(logs, tok) || strings.Contains(logs, tok[strings.LastIndexByte(tok, '.')+1:]) {
				t.Errorf("a token (or its signature) is in the server's output: %.20s...", tok)
			}
		}
	})
}

// auditEntry returns the JSON audit log entry whose path is path.
func auditEntry(logs, path string) map[string]any {
	for _, l := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["logger"] == "audit" && m["path"] == path {
			return m
		}
	}
	return nil
}

func jsonEqual(a, b any) bool { return mustJSON(a) == mustJSON(b) }

func TestCheckUsageAndFailures(t *testing.T) {
	usage := []struct {
		name string
		args []string
		want string
	}{
		{"a missing -url", []string{"check", "--addr", "127.0.0.1:1"}, "-url is required"},
		{"a -url without a scheme", []string{"check", "--url", "app.example.com/"}, "-url must be an absolute http or https URL"},
		{"a -H that is not Name: value", []string{"check", "--url", "http://a/", "-H", "novalue"}, `invalid value "novalue" for flag -H`},
		{"a stray argument", []string{"check", "--url", "http://a/", "extra"}, `unexpected argument "extra"`},
		{"an unknown flag", []string{"check", "--insecure"}, "unknown flag -insecure"},
	}
	for _, tt := range usage {
		t.Run(tt.name+" is a usage error", func(t *testing.T) {
			t.Parallel()
			assertUsageError(t, execBin(t, invocation{args: tt.args}), tt.want)
		})
	}
	t.Run("a server that is not there could not be asked, exit 3", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		r := execBin(t, invocation{args: []string{"check", "--addr", addr, "--url", "http://app.example.com/", "--timeout", "3s"}})
		if r.code != exitNotAsked || r.stdout != "" || !strings.Contains(r.stderr, addr) {
			t.Errorf("want exit 3 naming the address on stderr\n%s", r)
		}
	})
}

func TestHealthcheck(t *testing.T) {
	secret := testkit.Secret(t)
	_, signingKey := newSigningKey(t)
	s := startServe(t, nil, "--config", testkit.WriteFile(t, "h.yaml", e2eConfig(secret, signingKey)), "--log-format", "json")
	s.waitServing(t)
	t.Run("a serving sidecar answers SERVING, exit 0", func(t *testing.T) {
		r := execBin(t, invocation{args: []string{"healthcheck", "--addr", s.grpc}})
		if r.code != exitOK || !strings.Contains(r.stdout, "SERVING") {
			t.Errorf("want exit 0 and SERVING\n%s", r)
		}
	})
	t.Run("no sidecar at the address is exit 1 naming it", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		r := execBin(t, invocation{args: []string{"healthcheck", "--addr", addr, "--timeout", "2s"}})
		if r.code != exitFailure || !strings.Contains(r.stderr, addr) {
			t.Errorf("want exit 1 naming %s\n%s", addr, r)
		}
	})
	t.Run("a draining sidecar is not SERVING, exit 1", func(t *testing.T) {
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// Between the signal and the exit, health says NOT_SERVING; after the
		// exit nothing answers. Either way the probe must fail.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			r := execBin(t, invocation{args: []string{"healthcheck", "--addr", s.grpc, "--timeout", "2s"}})
			if r.code == exitFailure {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Error("healthcheck kept answering SERVING after SIGTERM")
	})
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		t.Run(strings.Join(args, " ")+" prints the build's version and exits 0", func(t *testing.T) {
			r := execBin(t, invocation{args: args})
			if r.code != exitOK || !strings.HasPrefix(r.stdout, "extauthz ") || r.stderr != "" {
				t.Errorf("want exit 0 and \"extauthz <version>\"\n%s", r)
			}
		})
	}
}

func TestServeSignals(t *testing.T) {
	for name, sig := range map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT} {
		t.Run("serve drains and exits 0 on "+name, func(t *testing.T) {
			t.Parallel()
			secret := testkit.Secret(t)
			_, signingKey := newSigningKey(t)
			s := startServe(t, nil, "--config", testkit.WriteFile(t, "c.yaml", e2eConfig(secret, signingKey)), "--log-format", "json")
			s.waitServing(t)
			if c := runCheck(t, s.grpc, "--url", "http://public.example.com/"); c.decision != "ALLOW" {
				t.Fatalf("the server does not answer before the signal:\n%s", c.raw)
			}
			if err := s.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := s.exitCode(t, 30*time.Second); code != exitOK {
				t.Fatalf("exit code = %d, want 0\n%s", code, s)
			}
			for _, addr := range []string{s.grpc, s.http} {
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					c.Close()
					t.Errorf("%s still accepts connections after exit", addr)
				}
			}
		})
	}
}

func TestServeRefusesBadInput(t *testing.T) {
	secret := testkit.Secret(t)
	_, signingKey := newSigningKey(t)
	t.Run("a config with problems exits 1 with every problem located, and never listens", func(t *testing.T) {
		t.Parallel()
		content := "shared_secret: AAECAw==\nbogus_key: 1\ngrpc_address: 127.0.0.1:0\nhttp_address: 127.0.0.1:0\npolicy:\n  - from: http://app.example.com\n    regex: \"([a-z\"\n    allow_any_authenticated_user: true\n"
		path := testkit.WriteFile(t, "bad.yaml", content)
		s := startServe(t, nil, "--config", path, "--log-format", "json")
		if code := s.exitCode(t, 30*time.Second); code != exitFailure {
			t.Fatalf("exit code = %d, want 1\n%s", code, s)
		}
		for _, want := range []string{path + ":1:16: shared_secret: ", path + ":2:1: bogus_key: ", path + ":7:12: policy[0].regex: "} {
			if !strings.Contains(s.stderr.String(), want) {
				t.Errorf("stderr lacks %q\n%s", want, s)
			}
		}
		if s.stdout.String() != "" {
			t.Errorf("stdout = %q, want nothing", s.stdout)
		}
		if strings.Contains(s.stderr.String(), `"msg":"serving"`) {
			t.Errorf("serve logged serving with a bad config\n%s", s)
		}
	})
	t.Run("a config file that does not exist exits 1", func(t *testing.T) {
		t.Parallel()
		r := execBin(t, invocation{args: []string{"serve", "--config", "/nonexistent/extauthz.yaml"}})
		if r.code != exitFailure || !strings.Contains(r.stderr, "/nonexistent/extauthz.yaml") {
			t.Errorf("want exit 1 naming the file\n%s", r)
		}
	})
	t.Run("a listener address already in use exits 1 naming the key", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		content := strings.Replace(e2eConfig(secret, signingKey), "grpc_address: 127.0.0.1:0", "grpc_address: "+l.Addr().String(), 1)
		r := execBin(t, invocation{args: []string{"serve", "--config", testkit.WriteFile(t, "busy.yaml", content), "--log-format", "json"}})
		if r.code != exitFailure || !strings.Contains(r.stderr, "grpc_address") {
			t.Errorf("want exit 1 naming grpc_address\n%s", r)
		}
	})
	usage := []struct {
		name string
		args []string
		want string
	}{
		{"a stray argument", []string{"serve", "extra"}, `unexpected argument "extra"`},
		{"an unknown log format", []string{"serve", "--log-format", "xml"}, "-log-format must be json or console"},
		{"an unknown log level", []string{"serve", "--log-level", "loud"}, "-log-level must be"},
		{"an unknown flag", []string{"serve", "--port", "1"}, "unknown flag -port"},
	}
	for _, tt := range usage {
		t.Run(tt.name+" is a usage error", func(t *testing.T) {
			t.Parallel()
			assertUsageError(t, execBin(t, invocation{args: tt.args}), tt.want)
		})
	}
}

// TestServeDemo runs `extauthz serve` with no config, as the README tells a
// newcomer to, and pastes what it prints into a shell.
func TestServeDemo(t *testing.T) {
	// The demo's addresses are fixed, and examples/local's test runs the
	// same demo behind Envoy: wait for them rather than skip, and under CI
	// never skip.
	for _, addr := range []string{config.DefaultGRPCAddress, config.DefaultHTTPAddress} {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			l, err := net.Listen("tcp", addr)
			if err == nil {
				l.Close()
				break
			}
			if time.Now().After(deadline) {
				if envoytest.InCI() {
					t.Fatalf("the demo listens on %s, which stayed busy: %v", addr, err)
				}
				t.Skipf("the demo listens on %s, which is busy on this machine: %v", addr, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to paste the demo's commands into")
	}
	s := startServe(t, nil)
	checkCmd := regexp.MustCompile(`(?m)^\s+(\S.* check --addr .*?)\s+#\s*(ALLOW|DENY \d+)(.*)$`)
	ready := s.waitFor(func() bool { return len(checkCmd.FindAllString(s.stdout.String(), -1)) >= 3 })
	if !ready {
		if strings.Contains(s.stderr.String(), "address already in use") {
			t.Skipf("the demo ports were taken while starting:\n%s", s.stderr)
		}
		t.Fatalf("the demo did not print three check commands\n%s", s)
	}
	out := s.stdout.String()

	exports := regexp.MustCompile(`(?m)^\s+(export (BOB|ALICE|ALICE_AS_BOB)=(\S+))$`).FindAllStringSubmatch(out, -1)
	var script []string
	tokens := map[string]string{}
	for _, m := range exports {
		script = append(script, m[1])
		tokens[m[2]] = m[3]
	}
	if len(tokens) != 3 {
		t.Fatalf("want export lines for BOB, ALICE and ALICE_AS_BOB, got %v\n%s", tokens, out)
	}
	t.Run("the printed tokens are the CLI's HS256 service-account tokens", func(t *testing.T) {
		for name, tok := range tokens {
			j := splitJWS(t, tok)
			if j.header != `{"alg":"HS256","typ":"JWT"}` {
				t.Errorf("%s header = %s", name, j.header)
			}
		}
		if c := splitJWS(t, tokens["ALICE_AS_BOB"]).claims; c["email"] != "alice@corp.example" || c["impersonate_email"] != "bob@corp.example" {
			t.Errorf("ALICE_AS_BOB claims = %s, want alice impersonating bob", mustJSON(c))
		}
	})

	cmds := checkCmd.FindAllStringSubmatch(out, -1)
	wantOrder := []string{"$BOB", "$ALICE", "$ALICE_AS_BOB"}
	for i, m := range cmds {
		line, want := m[1], m[2]
		t.Run(fmt.Sprintf("pasting check command %d prints %s", i+1, want), func(t *testing.T) {
			if i < len(wantOrder) && !strings.Contains(line, `"`+wantOrder[i]+`"`) {
				t.Errorf("command %d does not use %s: %s", i+1, wantOrder[i], line)
			}
			paste := strings.Join(append(slices.Clone(script), line), "\n")
			cmd := exec.Command(sh, "-c", paste)
			cmd.Env = baseEnv(nil)
			res, err := cmd.CombinedOutput()
			// check's exit code is its answer: 0 allowed, 1 denied.
			wantCode, code := 0, 0
			if strings.HasPrefix(want, "DENY") {
				wantCode = 1
			}
			var exitErr *exec.ExitError
			if errors.As(err, &exitErr) {
				code = exitErr.ExitCode()
			} else if err != nil {
				t.Fatalf("pasted command failed: %v\n%s\n%s", err, paste, res)
			}
			if code != wantCode {
				t.Errorf("pasted command exited %d, want %d\n%s\n%s", code, wantCode, paste, res)
			}
			checkNoRace(t, string(res))
			c := parseCheck(t, string(res))
			got := c.decision
			if c.decision == "DENY" {
				got = fmt.Sprintf("DENY %d", c.status)
			}
			if got != want {
				t.Errorf("the demo says %s, the server answered %s\n%s", want, got, res)
			}
			if strings.Contains(line, "ALICE_AS_BOB") && c.headers["x-pomerium-claim-email"] != "bob@corp.example" {
				t.Errorf("the impersonated allow does not act as bob:\n%s", res)
			}
		})
	}

	t.Run("pasting the mint-your-own command gives a token the server allows", func(t *testing.T) {
		m := regexp.MustCompile(`(?m)^\s+(\S.* service-account .*)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no service-account command in the demo output\n%s", out)
		}
		cmd := exec.Command(sh, "-c", m[1])
		cmd.Env = baseEnv(nil)
		res, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", m[1], err)
		}
		tok := strings.TrimSpace(string(res))
		c := runCheck(t, config.DefaultGRPCAddress, "--url", "http://app.localhost/", "--token", tok)
		if c.decision != "ALLOW" || c.headers["x-pomerium-claim-email"] != "carol@corp.example" {
			t.Errorf("carol's minted token was not allowed as carol:\n%s", c.raw)
		}
	})

	t.Run("the demo exits 0 on SIGTERM", func(t *testing.T) {
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := s.exitCode(t, 30*time.Second); code != exitOK {
			t.Errorf("exit code = %d\n%s", code, s)
		}
	})
}
