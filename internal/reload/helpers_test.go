package reload_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/metrics"
	"github.com/extauthz/extauthz/internal/reload"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/internal/web"
)

var (
	secretA = base64.StdEncoding.EncodeToString([]byte("reload test shared secret A, 32 bytes"))
	secretB = base64.StdEncoding.EncodeToString([]byte("reload test shared secret B, 32 bytes"))
)

const (
	appHost    = "app.corp.example"
	publicHost = "public.corp.example"
	issuerURL  = "https://authenticate.corp.example"
	issuer     = "authenticate.corp.example"
)

// spec is what a test config varies; render writes it as YAML.
type spec struct {
	Gen             string // marks answers: a route header on allows, a group name in denial reasons
	Secret          string
	PreviousSecrets []string
	Key             string // encoded signing key; "" leaves signing_key out
	PreviousKeys    []string
	Revoked         []string
	MaxLifetime     string
	AppGroups       []string // allowed_groups of the app route
	GRPCAddress     string
	Extra           string // appended verbatim (top-level keys)
}

func (s spec) render() string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	list := func(key string, vals []string) {
		if len(vals) == 0 {
			return
		}
		line("%s:", key)
		for _, v := range vals {
			line("  - %q", v)
		}
	}
	secret := s.Secret
	if secret == "" {
		secret = secretA
	}
	line("shared_secret: %s", secret)
	list("previous_shared_secrets", s.PreviousSecrets)
	if s.Key != "" {
		line("signing_key: %s", s.Key)
	}
	list("previous_signing_keys", s.PreviousKeys)
	line("administrators: [alice@corp.example]")
	line("authenticate_service_url: %s", issuerURL)
	list("revoked_token_ids", s.Revoked)
	if s.MaxLifetime != "" {
		line("max_service_account_lifetime: %s", s.MaxLifetime)
	}
	if s.GRPCAddress != "" {
		line("grpc_address: %s", s.GRPCAddress)
	}
	b.WriteString(s.Extra)
	groups := s.AppGroups
	if groups == nil {
		groups = []string{"engineering"}
	}
	gen := s.Gen
	if gen == "" {
		gen = "A"
	}
	line("policy:")
	line("  - name: app")
	line("    from: https://%s", appHost)
	line("    allowed_groups: [%s, gen-%s-marker]", strings.Join(groups, ", "), strings.ToLower(gen))
	line("    set_request_headers: {X-Config-Gen: %q}", gen)
	line("  - name: public")
	line("    from: https://%s", publicHost)
	line("    allow_public_unauthenticated_access: true")
	line("    set_request_headers: {X-Config-Gen: %q}", gen)
	return b.String()
}

// stack is the sidecar as serve wires it, minus the signals: a Check server
// on loopback gRPC, the pages over HTTP, metrics, and a Reloader on a file.
type stack struct {
	t        *testing.T
	path     string
	checker  *check.Server
	pages    *web.Server
	http     *httptest.Server
	metrics  *metrics.Metrics
	reloader *reload.Reloader
	client   authv3.AuthorizationClient
	logs     *observer.ObservedLogs
	clock    *testkit.Clock
}

func newStack(t *testing.T, s spec) *stack {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(s.render()), 0o600); err != nil {
		t.Fatal(err)
	}
	return newStackAt(t, path)
}

func newStackAt(t *testing.T, path string) *stack {
	t.Helper()
	noEnv := func(string) (string, bool) { return "", false }
	cfg, data, err := reload.Load(path, noEnv)
	if err != nil {
		t.Fatalf("initial config: %v", err)
	}
	snap, settings, err := reload.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	m := metrics.New()
	checker := check.New(snap, log)
	checker.Observe = m.ObserveCheck
	pages := web.New(settings, log)
	pages.Metrics = m.Handler()
	clk := testkit.NewClock(time.Now())
	r := reload.New(cfg, reload.Options{Path: path, Check: checker, Web: pages, Metrics: m, Log: log, LookupEnv: noEnv, Now: clk.Now, Content: data})
	t.Cleanup(r.Close)

	conn := testkit.ServeCheck(t, checker, 0)
	hs := httptest.NewServer(pages)
	t.Cleanup(hs.Close)
	return &stack{t: t, path: path, checker: checker, pages: pages, http: hs, metrics: m, reloader: r,
		client: authv3.NewAuthorizationClient(conn), logs: logs, clock: clk}
}

// write replaces the config file atomically (write a temporary file, rename
// it over), as editors and config management do.
func (s *stack) write(content string) {
	s.t.Helper()
	writeAtomic(s.t, s.path, content)
}

func writeAtomic(t testing.TB, path, content string) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}

// apply writes the config and reloads it as SIGHUP would.
func (s *stack) apply(sp spec) error {
	s.t.Helper()
	s.write(sp.render())
	return s.reloader.Reload("test")
}

func mint(t testing.TB, secret string, c identity.Claims) string {
	t.Helper()
	now := time.Now()
	if c.Audience == nil {
		c.Audience = jwt.ClaimStrings{appHost, publicHost}
	}
	if c.ExpiresAt == nil {
		c.ExpiresAt = jwt.NewNumericDate(now.Add(time.Hour))
	}
	if c.IssuedAt == nil {
		c.IssuedAt = jwt.NewNumericDate(now.Add(-time.Minute))
	}
	if c.Issuer == "" {
		c.Issuer = issuer
	}
	tok, err := identity.Mint(&c, secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// request is a CheckRequest shaped as Envoy sends it.
func request(host, path string, headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{":authority": host, ":path": path, ":method": "GET", ":scheme": "https",
		"x-request-id": "req-1", "accept": "*/*"}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Id: "1", Method: "GET", Host: host, Path: path, Scheme: "https",
			Protocol: "HTTP/1.1", Headers: h},
	}}}
}

func bearer(tok string) map[string]string {
	return map[string]string{"authorization": "Pomerium " + tok}
}

// answer is what a Check said, reduced to what the tests compare.
type answer struct {
	status int
	gen    string // x-config-gen on an allow
	reason string // the denial's reason
}

func (a answer) String() string {
	if a.status == 200 && a.gen == "" {
		return "allow"
	}
	if a.status == 200 {
		return "allow gen " + a.gen
	}
	return fmt.Sprintf("%d %q", a.status, a.reason)
}

func summarize(resp *authv3.CheckResponse) answer {
	if ok := resp.GetOkResponse(); ok != nil && resp.GetStatus().GetCode() == 0 {
		a := answer{status: 200}
		for _, h := range ok.GetHeaders() {
			if h.GetHeader().GetKey() == "x-config-gen" {
				a.gen = h.GetHeader().GetValue()
			}
		}
		return a
	}
	d := resp.GetDeniedResponse()
	return answer{status: int(d.GetStatus().GetCode()), reason: resp.GetStatus().GetMessage()}
}

// wantToken checks what a Check on appHost with the token tok gets: status,
// and on a deny the reason; what names the token in the failure.
func (s *stack) wantToken(what, tok string, status int, reason string) {
	s.t.Helper()
	got := s.check(request(appHost, "/", bearer(tok)))
	if got.status != status || got.reason != reason {
		s.t.Errorf("%s gets %v, want %v", what, got, answer{status: status, reason: reason})
	}
}

func (s *stack) check(req *authv3.CheckRequest) answer {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := s.client.Check(ctx, req)
	if err != nil {
		s.t.Fatalf("Check: %v", err)
	}
	return summarize(resp)
}

func (s *stack) jwks() jose.JSONWebKeySet {
	s.t.Helper()
	resp, err := http.Get(s.http.URL + "/.well-known/pomerium/jwks.json")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		s.t.Fatal(err)
	}
	return set
}

func kids(set jose.JSONWebKeySet) []string {
	out := make([]string, len(set.Keys))
	for i, k := range set.Keys {
		out[i] = k.KeyID
	}
	return out
}

func (s *stack) reloads(result string) float64 {
	return counterValue(s.t, s.metrics, "extauthz_config_reloads_total", map[string]string{"result": result})
}

// counterValue sums the series of a counter or gauge whose labels include labels.
func counterValue(t testing.TB, m *metrics.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	var sum float64
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, mt := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range mt.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			if c := mt.GetCounter(); c != nil {
				sum += c.GetValue()
			}
			if g := mt.GetGauge(); g != nil {
				sum += g.GetValue()
			}
		}
	}
	return sum
}

// assertion returns the x-pomerium-jwt-assertion an allowed Check sets.
func (s *stack) assertion(tok string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := s.client.Check(ctx, request(appHost, "/", bearer(tok)))
	if err != nil {
		s.t.Fatal(err)
	}
	for _, h := range resp.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() == check.HeaderAssertion {
			return h.GetHeader().GetValue()
		}
	}
	s.t.Fatalf("no assertion in %v", resp)
	return ""
}

// verifyWith checks that jws verifies with the key of set its kid names, and
// that the kid is want.
func verifyWith(t *testing.T, set jose.JSONWebKeySet, jws, want string) {
	t.Helper()
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"})).Parse(jws, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		if kid != want {
			return nil, fmt.Errorf("kid %s, want %s", kid, want)
		}
		for _, k := range set.Keys {
			if k.KeyID == kid {
				return k.Key, nil
			}
		}
		return nil, fmt.Errorf("kid %s is not in the JWKS", kid)
	})
	if err != nil {
		t.Errorf("assertion does not verify against the JWKS: %v", err)
	}
}
