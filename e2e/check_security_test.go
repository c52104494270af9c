package e2e_test

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/store/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
)

// checkSecurityConfig: Pomerium's map form of jwt_claims_headers (a claim,
// name, that no token here carries), and wiki as a pass_identity_headers:
// false route. Route names match the bundled envoy.yaml's virtual hosts.
const checkSecurityConfig = `shared_secret: %s
signing_key: %s
grpc_address: 127.0.0.1:%d
http_address: 127.0.0.1:%d
authenticate_service_url: http://authenticate.localhost:%[5]d
cookie_secure: false
administrators: [alice@corp.example]
jwt_claims_headers: {X-Email: email, X-Pomerium-Claim-Groups: groups, X-Name: name}
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
    pass_identity_headers: false
  - name: public
    from: http://public.localhost:%[5]d
    allow_public_unauthenticated_access: true
`

// envoyVariant is a change to the bundled envoy.yaml, made in the test.
type envoyVariant struct {
	name string
	// allowUnderscores lets header names with "_" through, as users' own
	// Envoy configs may (the bundled one rejects them).
	allowUnderscores bool
	// rawHeaders sets the ext_authz filter's encode_raw_headers: Envoy then
	// sends header_map (one entry per line, raw bytes), not headers.
	rawHeaders bool
	// module runs envoy/envoy-module.yaml instead: the decision inside Envoy,
	// which reads the request's header lines as they are.
	module bool
}

var failureModeLine = regexp.MustCompile(`(?m)^(\s*)failure_mode_allow: false\s*$`)

// writeEnvoyVariant writes the bundled envoy.yaml changed as v says, and
// fails when a line it must change is not there, so the variant never
// silently runs the bundled config.
func writeEnvoyVariant(t *testing.T, v envoyVariant) string {
	t.Helper()
	path, err := envoytest.BundledConfig()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(src)
	if v.allowUnderscores {
		const reject = "headers_with_underscores_action: REJECT_REQUEST"
		if !strings.Contains(cfg, reject) {
			t.Fatalf("envoy.yaml no longer says %q", reject)
		}
		cfg = strings.Replace(cfg, reject, "headers_with_underscores_action: ALLOW", 1)
	}
	if v.rawHeaders {
		if !failureModeLine.MatchString(cfg) {
			t.Fatal("envoy.yaml has no ext_authz failure_mode_allow line to put encode_raw_headers beside")
		}
		cfg = failureModeLine.ReplaceAllString(cfg, "${1}failure_mode_allow: false\n${1}encode_raw_headers: true")
	}
	return testkit.WriteFile(t, "envoy-"+strings.ReplaceAll(v.name, " ", "-")+".yaml", cfg)
}

// startSecurityStack is startStack on checkSecurityConfig, through a variant
// of the bundled Envoy config.
func startSecurityStack(t *testing.T, v envoyVariant) *stack {
	t.Helper()
	envoytest.RequireBinary(t)
	p := freePorts(t)
	secret := testkit.Secret(t)
	_, key := testkit.SigningKey(t)
	config := fmt.Sprintf(checkSecurityConfig, secret, key, p.grpc, p.http, p.listen)
	if v.module {
		config += storeConfig(redistest.Start(t))
	}
	s := startSidecar(t, config, secret, p)
	if v.module {
		var pairs []string
		if v.allowUnderscores {
			pairs = allowUnderscores
		}
		s.startModule(t, p, pairs...)
	} else {
		s.startEnvoy(t, writeEnvoyVariant(t, v), p)
	}
	return s
}

// TestClaimHeadersThroughEnvoy (issue 14, item 4): through a real Envoy 1.40
// that lets underscores through, a client-sent map-form claim header and
// x-pomerium headers in underscore spellings never reach the upstream, on a
// public route and on a pass_identity_headers: false route; where identity
// is passed, the claim headers come from the token only. Once with Envoy's
// headers, once with encode_raw_headers.
func TestClaimHeadersThroughEnvoy(t *testing.T) {
	forged := []string{
		"X-Email: ceo@corp.example",
		"X-Name: The CEO",
		"x_pomerium-claim-email: ceo@corp.example",
		"x-pomerium_jwt_assertion: forged",
		"X_Pomerium_Claim_Groups: admins",
		"X-Pomerium-Claim-Role: root",
	}
	for _, v := range []envoyVariant{
		{name: "underscores allowed", allowUnderscores: true},
		{name: "underscores allowed and raw headers", allowUnderscores: true, rawHeaders: true},
		{name: "underscores allowed and the module deciding", allowUnderscores: true, module: true},
	} {
		t.Run("through Envoy with "+v.name, func(t *testing.T) {
			s := startSecurityStack(t, v)
			bob := s.mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"},
				RegisteredClaims: jwt.RegisteredClaims{Audience: jwt.ClaimStrings{"app.localhost", "wiki.localhost", "public.localhost"}}})
			routes := []struct {
				name, host string
				token      bool
				want       map[string]string // identity headers from the token; every other forged one is absent
			}{
				{"a public route", "public.localhost", false, nil},
				{"a public route with a token", "public.localhost", true, nil},
				{"a pass_identity_headers: false route", "wiki.localhost", true, nil},
				{"a route passing identity", "app.localhost", true,
					map[string]string{"x-email": "bob@corp.example", "x-pomerium-claim-groups": "engineering"}},
			}
			for _, r := range routes {
				t.Run("on "+r.name+" the upstream sees no client-sent claim or identity header", func(t *testing.T) {
					headers := append([]string{}, forged...)
					if r.token {
						headers = append(headers, "Authorization: Pomerium "+bob)
					}
					resp, body := s.do(t, "GET", r.host, "/", headers...)
					if resp.StatusCode != 200 {
						t.Fatalf("status %d: %s", resp.StatusCode, body)
					}
					e := upstreamSaw(t, body)
					for _, h := range forged {
						name := strings.ToLower(strings.TrimSpace(strings.SplitN(h, ":", 2)[0]))
						if want, ours := r.want[name]; ours {
							if e.Headers[name] != want {
								t.Errorf("%s = %q upstream, want %q from the token", name, e.Headers[name], want)
							}
						} else if got, ok := e.Headers[name]; ok {
							t.Errorf("client-sent %s = %q reached the upstream", name, got)
						}
					}
					if r.want != nil {
						if claims := s.verifyWithJWKS(t, e.Headers["x-pomerium-jwt-assertion"]); claims["email"] != "bob@corp.example" {
							t.Errorf("assertion = %v", claims)
						}
					} else if _, ok := e.Headers["x-pomerium-jwt-assertion"]; ok {
						t.Error("an assertion reached a route that passes no identity")
					}
				})
			}
		})
	}
}

// TestCarriersThroughEnvoyWithRawHeaders (issue 14, header_map): the
// carrier and stripping cases of TestThroughEnvoy, again through the bundled
// envoy.yaml with only encode_raw_headers: true added, plus what only raw
// headers show: a session cookie on its own Cookie line. The module reads
// header lines as they are too, so the same cases run through it (issue 20).
func TestCarriersThroughEnvoyWithRawHeaders(t *testing.T) {
	for _, v := range []envoyVariant{{name: "raw headers", rawHeaders: true}, {name: "the module", module: true}} {
		t.Run("through "+v.name, func(t *testing.T) { carriersThroughEnvoy(t, startSecurityStack(t, v)) })
	}
}

func carriersThroughEnvoy(t *testing.T, s *stack) {
	bob := s.mint(t, identity.Claims{Email: "bob@corp.example", User: "bob", Groups: []string{"engineering"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u-bob"}})
	sidecarCookies := "__Host-_pomerium_csrf=c; _pomerium_oidc_k=f; _pomerium_signin_k=b; _pomerium_authenticate=a"

	carriers := []struct {
		name       string
		headers    []string
		wantCookie string
	}{
		{"Authorization: Pomerium", []string{"Authorization: Pomerium " + bob}, ""},
		{"Authorization: Bearer Pomerium-", []string{"Authorization: Bearer Pomerium-" + bob}, ""},
		{"the session cookie", []string{"Cookie: theme=dark; _pomerium=" + bob + "; lang=en"}, "theme=dark; lang=en"},
		{"the session cookie on a second Cookie line", []string{"Cookie: theme=dark", "Cookie: _pomerium=" + bob}, "theme=dark"},
		{"the session cookie beside the sidecar's other cookies", []string{"Cookie: theme=dark; " + sidecarCookies + "; _pomerium=" + bob}, "theme=dark"},
	}
	for _, c := range carriers {
		t.Run("a token in "+c.name+" reaches the app as a verified identity and nothing of ours leaks", func(t *testing.T) {
			headers := append([]string{"X-Pomerium-Jwt-Assertion: forged", "X-Pomerium-Claim-Groups: admins", "X-Email: ceo@corp.example",
				"X-Pomerium-Claim-Role: root", "X-Name: The CEO"}, c.headers...)
			resp, body := s.do(t, "GET", "app.localhost", "/headers?x=1", headers...)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			e := s.seenAsBob(t, body)
			if e.Headers["x-email"] != "bob@corp.example" || e.Headers["x-pomerium-claim-groups"] != "engineering" {
				t.Errorf("claim headers: %v", e.Headers)
			}
			for _, h := range []string{"x-pomerium-claim-role", "x-name", "authorization"} {
				if v, ok := e.Headers[h]; ok {
					t.Errorf("%s = %q reached the app", h, v)
				}
			}
			for name, v := range e.Headers {
				if strings.Contains(v, bob) {
					t.Errorf("the token reached the app in %s", name)
				}
			}
			if got := e.Headers["cookie"]; got != c.wantCookie {
				t.Errorf("cookie upstream = %q, want %q", got, c.wantCookie)
			}
			if e.Path != "/headers?x=1" {
				t.Errorf("path upstream = %q", e.Path)
			}
		})
	}

	t.Run("a header spelled x_pomerium_ never reaches the app", func(t *testing.T) { s.refusesUnderscoredHeader(t, bob) })

	denials := []struct {
		name, host string
		headers    []string
		status     int
		bodyHas    string
	}{
		{"a browser without a token is redirected to sign in", "app.localhost", []string{"Accept: " + browserAccept}, 302, ""},
		{"curl without a token gets 401 with the request id", "app.localhost", nil, 401, "no Pomerium token"},
		{"a bad token is 401", "app.localhost", []string{"Authorization: Pomerium not.a.token"}, 401, "malformed"},
		{"a policy deny is 403", "admin.localhost", []string{"Authorization: Pomerium " + bob}, 403, ""},
		{"two people's session cookies are a bad token", "app.localhost", []string{"Cookie: _pomerium=" + bob,
			"Cookie: _pomerium=" + s.mint(t, identity.Claims{Email: "carol@corp.example", Groups: []string{"engineering"}})}, 401, "disagree"},
	}
	for _, d := range denials {
		t.Run(d.name, func(t *testing.T) {
			resp, body := s.do(t, "GET", d.host, "/", d.headers...)
			if resp.StatusCode != d.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, d.status, body)
			}
			if d.status == 302 {
				if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/.pomerium/sign_in?pomerium_redirect_uri=") {
					t.Errorf("Location = %q", loc)
				}
				return
			}
			if rid := resp.Header.Get("X-Request-Id"); rid == "" || !strings.Contains(body, rid) {
				t.Errorf("body %q does not carry the request id %q Envoy generated", body, rid)
			}
			if !strings.Contains(body, d.bodyHas) {
				t.Errorf("body %q lacks %q", body, d.bodyHas)
			}
		})
	}
}
