package check_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/impersonation"
	"github.com/extauthz/extauthz/internal/policy"
	"github.com/extauthz/extauthz/internal/testkit"
)

const secret = "dGhpcyBpcyBhIHRlc3Qgc2VjcmV0IG9mIGF0IGxlYXN0IDMyIGJ5dGVz" // 41 bytes decoded

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type fixture struct {
	client authv3.AuthorizationClient
	health healthpb.HealthClient
	key    *identity.SigningKey
	logs   *observer.ObservedLogs
	srv    *check.Server
	clock  atomic.Int64 // the server's now, in Unix nanoseconds
}

// setNow moves the server's clock.
func (f *fixture) setNow(t time.Time) { f.clock.Store(t.UnixNano()) }

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, nil) }

// newFixtureWith is newFixture with the snapshot changed by edit first.
func newFixtureWith(t *testing.T, edit func(*check.Snapshot)) *fixture {
	t.Helper()
	no := false
	pol, err := policy.Compile([]policy.RouteSpec{
		{Name: "app", From: "https://app.example.com", AllowedGroups: []string{"engineering"},
			SetRequestHeaders: map[string]string{"X-Team": "core"}, RemoveRequestHeaders: []string{"X-Internal"}},
		{Name: "admin", From: "https://admin.example.com", AllowedUsers: []string{"alice@corp.example"}},
		{Name: "public", From: "https://public.example.com", AllowPublicUnauthenticatedAccess: true},
		{Name: "quiet", From: "https://quiet.example.com", AllowAnyAuthenticatedUser: true, PassIdentityHeaders: &no},
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := identity.NewVerifier(identity.VerifierOptions{Secrets: []string{secret}, Issuer: "authenticate.example.com", Leeway: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	key, err := identity.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	snap := &check.Snapshot{
		Engine: &decision.Engine{Policy: pol, Verifier: v, CookieName: "_pomerium",
			Rules: impersonation.NewRules([]string{"alice@corp.example"}, []string{"security@corp.example"}, identity.AccessReadWrite, time.Minute)},
		Key:          key,
		Issuer:       "authenticate.example.com",
		ClaimHeaders: []check.ClaimHeader{{Claim: "email", Header: "x-pomerium-claim-email"}, {Claim: "groups", Header: "x-pomerium-claim-groups"}},
		Assertions:   check.NewAssertionCache(1000),
	}
	if edit != nil {
		edit(snap)
	}
	core, logs := observer.New(zap.DebugLevel)
	srv := check.New(snap, zap.New(core))
	f := &fixture{}
	f.clock.Store(now.UnixNano())
	// Read atomically: tests move the clock between Checks served on
	// another goroutine.
	srv.SetClock(func() time.Time { return time.Unix(0, f.clock.Load()).UTC() })
	// The production server: ServerOptions decodes Check lean (codec.go).
	conn := testkit.ServeCheck(t, srv, 0, check.ServerOptions()...)
	f.client, f.health, f.key, f.logs, f.srv = authv3.NewAuthorizationClient(conn), healthpb.NewHealthClient(conn), key, logs, srv
	return f
}

func mint(t *testing.T, c identity.Claims) string {
	t.Helper()
	return testkit.Mint(t, secret, testkit.Fill(c, "authenticate.example.com", now,
		"app.example.com", "admin.example.com", "quiet.example.com", "public.example.com"))
}

// envoyRequest shapes a CheckRequest the way Envoy 1.40 sends it.
func envoyRequest(method, rawURL string, headers map[string]string, route string) *authv3.CheckRequest {
	u, _ := url.Parse(rawURL)
	h := map[string]string{":authority": u.Host, ":path": u.RequestURI(), ":method": method, ":scheme": u.Scheme,
		"x-request-id": "req-123", "user-agent": "test"}
	for k, v := range headers {
		h[strings.ToLower(k)] = v
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "12345", Method: method, Headers: h, Path: u.RequestURI(), Host: u.Host, Scheme: u.Scheme, Protocol: "HTTP/1.1",
		}},
	}}
	if route != "" {
		req.Attributes.ContextExtensions = map[string]string{"route": route}
	}
	return req
}

func (f *fixture) check(t *testing.T, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := f.client.Check(ctx, req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

func setHeaders(t *testing.T, resp *authv3.CheckResponse) map[string]string {
	t.Helper()
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("want an allow, got %v", resp)
	}
	m := map[string]string{}
	for _, h := range ok.GetHeaders() {
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("header %s is not set by overwrite", h.GetHeader().GetKey())
		}
		if _, dup := m[h.GetHeader().GetKey()]; dup {
			t.Errorf("header %s set twice", h.GetHeader().GetKey())
		}
		m[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	for _, r := range ok.GetHeadersToRemove() {
		if _, both := m[r]; both {
			t.Errorf("header %s is both set and removed; Envoy would remove ours", r)
		}
	}
	return m
}

func verifyAssertion(t *testing.T, key *identity.SigningKey, jws string) map[string]any {
	t.Helper()
	claims := jwt.MapClaims{}
	tok, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(func() time.Time { return now })).
		ParseWithClaims(jws, claims, func(*jwt.Token) (any, error) { return &key.Private.PublicKey, nil })
	if err != nil {
		t.Fatalf("assertion does not verify: %v", err)
	}
	if tok.Header["kid"] != key.ID || tok.Header["typ"] != "JWT" {
		t.Errorf("assertion header = %v, want kid %s and typ JWT", tok.Header, key.ID)
	}
	return claims
}

func TestCheckAllowsAndPassesIdentity(t *testing.T) {
	f := newFixture(t)
	bob := mint(t, identity.Claims{Email: "bob@corp.example", User: "bob", Groups: []string{"engineering", "staff"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u-bob"}})

	carriers := map[string]map[string]string{
		"an Authorization: Pomerium header":         {"authorization": "Pomerium " + bob},
		"a lower-case pomerium scheme":              {"authorization": "pomerium " + bob},
		"an Authorization: Bearer Pomerium- header": {"authorization": "Bearer Pomerium-" + bob},
		"an X-Pomerium-Authorization header":        {"x-pomerium-authorization": bob},
		"the session cookie among others":           {"cookie": "theme=dark; _pomerium=" + bob + "; lang=en"},
	}
	for name, headers := range carriers {
		t.Run("a valid token in "+name+" is allowed with identity headers", func(t *testing.T) {
			resp := f.check(t, envoyRequest("GET", "https://app.example.com:8443/reports?q=1", headers, ""))
			set := setHeaders(t, resp)
			claims := verifyAssertion(t, f.key, set["x-pomerium-jwt-assertion"])
			if claims["email"] != "bob@corp.example" || claims["sub"] != "u-bob" || claims["user"] != "bob" ||
				claims["aud"] != "app.example.com" || claims["iss"] != "authenticate.example.com" {
				t.Errorf("assertion claims = %v", claims)
			}
			if _, ok := claims["act"]; ok {
				t.Errorf("act present without impersonation")
			}
			if set["x-pomerium-claim-email"] != "bob@corp.example" || set["x-pomerium-claim-groups"] != "engineering,staff" {
				t.Errorf("claim headers = %v", set)
			}
			if set["x-team"] != "core" {
				t.Errorf("set_request_headers not applied: %v", set)
			}
			removed := resp.GetOkResponse().GetHeadersToRemove()
			if _, ok := headers["cookie"]; ok {
				if set["cookie"] != "theme=dark; lang=en" {
					t.Errorf("cookie upstream = %q, want other cookies kept", set["cookie"])
				}
			}
			if _, ok := headers["authorization"]; ok && !contains(removed, "authorization") {
				t.Errorf("authorization not removed: %v", removed)
			}
			if _, ok := headers["x-pomerium-authorization"]; ok && !contains(removed, "x-pomerium-authorization") {
				t.Errorf("x-pomerium-authorization not removed: %v", removed)
			}
			if !contains(removed, "x-internal") {
				t.Errorf("remove_request_headers not applied: %v", removed)
			}
		})
	}

	t.Run("client-sent x-pomerium headers are removed or overwritten", func(t *testing.T) {
		resp := f.check(t, envoyRequest("GET", "https://app.example.com/", map[string]string{
			"authorization":            "Pomerium " + bob,
			"x-pomerium-jwt-assertion": "forged",
			"x-pomerium-claim-email":   "ceo@corp.example",
			"x-pomerium-claim-role":    "root",
			"x_pomerium_claim_email":   "ceo@corp.example",
		}, ""))
		set := setHeaders(t, resp)
		if set["x-pomerium-jwt-assertion"] == "forged" || set["x-pomerium-claim-email"] != "bob@corp.example" {
			t.Errorf("forged headers survived: %v", set)
		}
		removed := resp.GetOkResponse().GetHeadersToRemove()
		for _, h := range []string{"x-pomerium-claim-role", "x_pomerium_claim_email"} {
			if !contains(removed, h) {
				t.Errorf("%s not removed: %v", h, removed)
			}
		}
	})

	t.Run("an app's own Bearer token is left for the app", func(t *testing.T) {
		resp := f.check(t, envoyRequest("GET", "https://app.example.com/", map[string]string{
			"authorization": "Bearer app-token", "cookie": "_pomerium=" + bob}, ""))
		setHeaders(t, resp)
		if contains(resp.GetOkResponse().GetHeadersToRemove(), "authorization") {
			t.Error("the app's Authorization header was removed")
		}
		if !contains(resp.GetOkResponse().GetHeadersToRemove(), "cookie") {
			t.Error("a cookie header holding only our session must be removed")
		}
	})

	t.Run("pass_identity_headers false sends no identity but still strips credentials", func(t *testing.T) {
		resp := f.check(t, envoyRequest("GET", "https://quiet.example.com/", map[string]string{"authorization": "Pomerium " + bob}, "quiet"))
		set := setHeaders(t, resp)
		if _, ok := set["x-pomerium-jwt-assertion"]; ok {
			t.Errorf("assertion sent on a route without identity headers")
		}
		if !contains(resp.GetOkResponse().GetHeadersToRemove(), "authorization") {
			t.Error("token not removed")
		}
	})

	t.Run("a public route allows without a token and passes no identity", func(t *testing.T) {
		resp := f.check(t, envoyRequest("POST", "https://public.example.com/x", map[string]string{"x-pomerium-claim-email": "forged"}, ""))
		set := setHeaders(t, resp)
		if len(set) != 0 {
			t.Errorf("public route set headers %v", set)
		}
		if !contains(resp.GetOkResponse().GetHeadersToRemove(), "x-pomerium-claim-email") {
			t.Error("forged header not removed on a public route")
		}
	})
}

func TestCheckDenials(t *testing.T) {
	f := newFixture(t)
	bob := mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}})
	expired := mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"},
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(-2 * time.Minute))}})
	carol := mint(t, identity.Claims{Email: "carol@corp.example", ImpersonateEmail: "bob@corp.example"})
	const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

	tests := []struct {
		name       string
		url        string
		headers    map[string]string
		route      string
		status     int
		wantInBody string
		header     [2]string
	}{
		{"a browser without a token is sent to sign in", "https://app.example.com/a?b=c", map[string]string{"accept": browser}, "", 302, "",
			[2]string{"location", "/.pomerium/sign_in?pomerium_redirect_uri=" + url.QueryEscape("https://app.example.com/a?b=c")}},
		{"a browser with an expired session cookie is sent to sign in", "https://app.example.com/", map[string]string{"accept": browser, "cookie": "_pomerium=" + expired}, "", 302, "", [2]string{}},
		{"curl without a token gets 401 and a challenge", "https://app.example.com/", nil, "", 401, "no Pomerium token", [2]string{"www-authenticate", "Pomerium"}},
		{"an expired token is 401 naming the reason", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + expired}, "", 401, "token expired", [2]string{"www-authenticate", "Pomerium"}},
		{"a browser with a bad Authorization header gets 401, not a redirect", "https://app.example.com/", map[string]string{"accept": browser, "authorization": "Pomerium garbage"}, "", 401, "malformed", [2]string{}},
		{"a token for another host is 401", "https://other.app.example.com/", map[string]string{"authorization": "Pomerium " + bob}, "app", 401, "audience", [2]string{}},
		{"a policy deny is 403 naming the route", "https://admin.example.com/", map[string]string{"authorization": "Pomerium " + bob}, "", 403, `policy of route "admin"`, [2]string{}},
		{"impersonation by a non-administrator is 403", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + carol}, "", 403, "impersonation requires an administrator", [2]string{}},
		{"an unknown host is 404", "https://nowhere.example.com/", map[string]string{"authorization": "Pomerium " + bob}, "", 404, "no route", [2]string{}},
		{"an unknown route name is 404", "https://app.example.com/", nil, "ghost", 404, "ghost", [2]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.check(t, envoyRequest("GET", tc.url, tc.headers, tc.route))
			d := resp.GetDeniedResponse()
			if d == nil {
				t.Fatalf("want a denial, got %v", resp)
			}
			if got := int(d.GetStatus().GetCode()); got != tc.status {
				t.Fatalf("status = %d, want %d (body %q)", got, tc.status, d.GetBody())
			}
			if resp.GetStatus().GetCode() == 0 {
				t.Error("gRPC status is OK on a denial")
			}
			if !strings.Contains(d.GetBody(), tc.wantInBody) || !strings.Contains(d.GetBody(), "req-123") {
				t.Errorf("body %q lacks %q or the request id", d.GetBody(), tc.wantInBody)
			}
			if strings.Contains(d.GetBody(), secret) || (tc.headers["authorization"] != "" && strings.Contains(d.GetBody(), strings.TrimPrefix(tc.headers["authorization"], "Pomerium "))) {
				t.Error("body leaks the secret or the token")
			}
			if tc.header[0] != "" {
				found := false
				for _, h := range d.GetHeaders() {
					if h.GetHeader().GetKey() == tc.header[0] && h.GetHeader().GetValue() == tc.header[1] {
						found = true
					}
				}
				if !found {
					t.Errorf("missing header %s: %s in %v", tc.header[0], tc.header[1], d.GetHeaders())
				}
			}
		})
	}

	t.Run("JSON clients get a JSON body with the request id", func(t *testing.T) {
		resp := f.check(t, envoyRequest("GET", "https://admin.example.com/", map[string]string{"accept": "application/json", "authorization": "Pomerium " + bob}, ""))
		var body struct{ Error, RequestID string }
		if err := json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &struct {
			Error     *string `json:"error"`
			RequestID *string `json:"request_id"`
		}{&body.Error, &body.RequestID}); err != nil {
			t.Fatalf("body is not JSON: %v", err)
		}
		if body.RequestID != "req-123" || !strings.Contains(body.Error, `policy of route "admin"`) {
			t.Errorf("body = %+v", body)
		}
	})

	t.Run("a browser gets an HTML page that escapes the request id", func(t *testing.T) {
		req := envoyRequest("GET", "https://admin.example.com/", map[string]string{"accept": browser, "authorization": "Pomerium " + bob}, "")
		req.Attributes.Request.Http.Headers["x-request-id"] = "<script>alert(1)</script>"
		body := f.check(t, req).GetDeniedResponse().GetBody()
		if !strings.Contains(body, "<!doctype html>") || strings.Contains(body, "<script>") {
			t.Errorf("page = %q", body)
		}
	})

	t.Run("a request without HTTP attributes fails closed", func(t *testing.T) {
		resp := f.check(t, &authv3.CheckRequest{})
		if resp.GetOkResponse() != nil || resp.GetDeniedResponse() == nil {
			t.Fatalf("want a denial, got %v", resp)
		}
	})
}

func TestCheckImpersonation(t *testing.T) {
	f := newFixture(t)
	aliceAsBob := mint(t, identity.Claims{Email: "alice@corp.example", User: "alice", Groups: []string{"admins"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u-alice", ID: "jti-1"},
		ImpersonateEmail: "bob@corp.example", ImpersonateGroups: []string{"engineering"}, ImpersonateReason: "ticket 42"})

	t.Run("an administrator impersonating is allowed as the target with act naming the administrator", func(t *testing.T) {
		resp := f.check(t, envoyRequest("GET", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + aliceAsBob}, "app"))
		set := setHeaders(t, resp)
		claims := verifyAssertion(t, f.key, set["x-pomerium-jwt-assertion"])
		if claims["email"] != "bob@corp.example" || claims["sub"] != "bob@corp.example" {
			t.Errorf("assertion describes %v, want bob", claims)
		}
		act, _ := claims["act"].(map[string]any)
		if act["email"] != "alice@corp.example" || act["sub"] != "u-alice" {
			t.Errorf("act = %v", claims["act"])
		}
		if set["x-pomerium-claim-email"] != "bob@corp.example" {
			t.Errorf("claim header = %q, want the impersonated email", set["x-pomerium-claim-email"])
		}
	})

	t.Run("the administrator's own access grants nothing while impersonating", func(t *testing.T) {
		resp := f.check(t, envoyRequest("GET", "https://admin.example.com/", map[string]string{"authorization": "Pomerium " + aliceAsBob}, "admin"))
		if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != 403 {
			t.Fatalf("status = %d, want 403", got)
		}
	})

	t.Run("every impersonated decision is audited with the real actor and never the token", func(t *testing.T) {
		entries := f.logs.FilterLoggerName("audit").All()
		if len(entries) < 2 {
			t.Fatalf("want an audit entry per impersonated decision, got %d", len(entries))
		}
		var allow, deny bool
		for _, e := range entries {
			m := e.ContextMap()
			if m["actor_email"] != "alice@corp.example" || m["impersonated_email"] != "bob@corp.example" ||
				m["impersonation_reason"] != "ticket 42" || m["request_id"] != "req-123" || m["token_id"] != "jti-1" ||
				m["sid"] != "jti-1" {
				t.Errorf("audit entry %v", m)
			}
			switch m["decision"] {
			case "allow":
				allow = m["route"] == "app"
			case "deny":
				deny = m["route"] == "admin" && m["status"] == int64(403)
			}
		}
		if !allow || !deny {
			t.Errorf("want one allow on app and one deny on admin audited")
		}
		for _, e := range f.logs.All() {
			for k, v := range e.ContextMap() {
				if s, ok := v.(string); ok && (strings.Contains(s, aliceAsBob) || strings.Contains(s, secret)) {
					t.Errorf("log field %s carries the token or the secret", k)
				}
			}
		}
	})

	t.Run("a read-only impersonation refuses writes", func(t *testing.T) {
		ro := mint(t, identity.Claims{Email: "alice@corp.example", ImpersonateEmail: "bob@corp.example",
			ImpersonateGroups: []string{"engineering"}, ImpersonateAccess: identity.AccessReadOnly})
		resp := f.check(t, envoyRequest("POST", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + ro}, ""))
		if d := resp.GetDeniedResponse(); d.GetStatus().GetCode() != 403 || !strings.Contains(d.GetBody(), "read-only") {
			t.Fatalf("want 403 read-only, got %v", resp)
		}
		resp = f.check(t, envoyRequest("GET", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + ro}, ""))
		setHeaders(t, resp)
	})

	t.Run("after impersonate_exp the administrator acts as themselves again and the end is audited", func(t *testing.T) {
		ended := mint(t, identity.Claims{Email: "alice@corp.example", Groups: []string{"admins"},
			RegisteredClaims: jwt.RegisteredClaims{ID: "jti-ended"},
			ImpersonateEmail: "bob@corp.example", ImpersonateGroups: []string{"engineering"},
			ImpersonateExp: jwt.NewNumericDate(now.Add(-2 * time.Minute))})
		// bob's route no longer opens...
		resp := f.check(t, envoyRequest("GET", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + ended}, ""))
		if resp.GetDeniedResponse().GetStatus().GetCode() != 403 {
			t.Fatalf("ended impersonation still reaches bob's route: %v", resp)
		}
		// ...and alice's own does, with her own identity upstream.
		resp = f.check(t, envoyRequest("GET", "https://admin.example.com/", map[string]string{"authorization": "Pomerium " + ended}, ""))
		claims := verifyAssertion(t, f.key, setHeaders(t, resp)["x-pomerium-jwt-assertion"])
		if claims["email"] != "alice@corp.example" || claims["act"] != nil {
			t.Errorf("assertion after the end = %v", claims)
		}
		var endAudited bool
		for _, e := range f.logs.FilterLoggerName("audit").All() {
			if e.Message == "impersonation_ended" && e.ContextMap()["token_id"] == "jti-ended" {
				endAudited = true
			}
		}
		if !endAudited {
			t.Error("the end of the impersonation is not audited")
		}
	})

	t.Run("a protected target is refused", func(t *testing.T) {
		tok := mint(t, identity.Claims{Email: "alice@corp.example", ImpersonateEmail: "Security@corp.example", ImpersonateGroups: []string{"engineering"}})
		resp := f.check(t, envoyRequest("GET", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + tok}, ""))
		if d := resp.GetDeniedResponse(); d.GetStatus().GetCode() != 403 || !strings.Contains(d.GetBody(), "protected") {
			t.Fatalf("want 403 protected, got %v", resp)
		}
	})
}

func TestHealthServes(t *testing.T) {
	f := newFixture(t)
	resp, err := f.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", resp, err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
