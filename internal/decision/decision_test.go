package decision_test

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/impersonation"
	"github.com/extauthz/extauthz/internal/policy"
	"github.com/extauthz/extauthz/internal/store"
)

var (
	secret      = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	otherSecret = base64.StdEncoding.EncodeToString([]byte("an entirely different shared key!"))
	now         = time.Unix(1_800_000_000, 0)
)

const (
	appHost = "app.example.com"
	issuer  = "authenticate.example.com"
	adminID = "admin@corp.example"
)

func newEngine(tb testing.TB) *decision.Engine {
	tb.Helper()
	p, err := policy.Compile([]policy.RouteSpec{
		{Name: "public", From: "https://public.example.com", AllowPublicUnauthenticatedAccess: true},
		{Name: "admin", From: "https://app.example.com", Prefix: "/admin", AllowedUsers: []string{adminID}},
		{Name: "finance", From: "https://app.example.com", Prefix: "/finance", AllowedGroups: []string{"finance"}},
		{Name: "app", From: "https://app.example.com", AllowedDomains: []string{"corp.example"}},
		{Name: "partners", From: "https://partners.example.com", AllowedUsers: []string{"bob@partner.example"}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	v, err := identity.NewVerifier(identity.VerifierOptions{Secrets: []string{secret}, Issuer: issuer, Leeway: time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	return &decision.Engine{
		Policy:     p,
		Verifier:   v,
		Rules:      impersonation.NewRules([]string{adminID}, []string{"ceo@corp.example"}, identity.AccessReadWrite, time.Minute),
		CookieName: "_pomerium",
	}
}

// claims of a valid token held by email for aud, changed by edits.
func claims(email string, groups []string, edits ...func(*identity.Claims)) *identity.Claims {
	c := &identity.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   email,
			Audience:  jwt.ClaimStrings{appHost, "partners.example.com", "public.example.com"},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
			IssuedAt:  jwt.NewNumericDate(now.Add(-time.Minute)),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		},
		Email:  email,
		Groups: groups,
	}
	for _, e := range edits {
		e(c)
	}
	return c
}

func mint(tb testing.TB, c *identity.Claims) string {
	tb.Helper()
	tok, err := identity.Mint(c, secret)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func impersonate(email string, groups ...string) func(*identity.Claims) {
	return func(c *identity.Claims) { c.ImpersonateEmail, c.ImpersonateGroups = email, groups }
}

type headers map[string]string

func (h headers) get(name string) string { return h[name] }

func pomerium(tok string) headers { return headers{"authorization": "Pomerium " + tok} }

func request(host, path string, h headers) decision.Request {
	return decision.Request{Host: host, Path: path, Method: "GET", Header: h.get}
}

func TestDecide(t *testing.T) {
	e := newEngine(t)
	admin := mint(t, claims(adminID, []string{"admins"}))
	alice := mint(t, claims("alice@corp.example", []string{"eng"}))
	bob := mint(t, claims("bob@partner.example", nil))
	expired := mint(t, claims("alice@corp.example", nil, func(c *identity.Claims) {
		c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour))
		c.IssuedAt, c.NotBefore = jwt.NewNumericDate(now.Add(-2*time.Hour)), nil
	}))
	browser := func(r decision.Request) decision.Request { r.Browser = true; return r }
	named := func(name string, r decision.Request) decision.Request { r.RouteName = name; return r }
	method := func(m string, r decision.Request) decision.Request { r.Method = m; return r }

	tests := []struct {
		name   string
		req    decision.Request
		status decision.Status
		reason string // substring
		route  string // route chosen, "" for none
		email  string // effective email when a token verified
		source identity.Source
	}{
		{name: "a request no route matches is not found",
			req: request("nowhere.example.com", "/", pomerium(alice)), status: decision.StatusNotFound, reason: "no route matches"},
		{name: "a request naming an unknown route is not found",
			req: named("ghost", request(appHost, "/", pomerium(alice))), status: decision.StatusNotFound, reason: "route ghost is not in the policy"},
		{name: "a named route is used even where the path would pick another",
			req: named("app", request(appHost, "/admin", pomerium(alice))), status: decision.StatusOK, route: "app",
			email: "alice@corp.example", source: identity.SourceAuthorization},

		{name: "a public route is allowed without a token",
			req: request("public.example.com", "/", headers{}), status: decision.StatusOK, reason: decision.ReasonPublic, route: "public"},
		{name: "a public route ignores an invalid token",
			req: request("public.example.com", "/", pomerium("garbage")), status: decision.StatusOK, route: "public"},
		{name: "a public route ignores a valid token and passes no identity",
			req: request("public.example.com", "/", pomerium(alice)), status: decision.StatusOK, route: "public"},
		{name: "a public route ignores a non-administrator's impersonation",
			req:    request("public.example.com", "/", pomerium(mint(t, claims("alice@corp.example", nil, impersonate("bob@partner.example"))))),
			status: decision.StatusOK, route: "public"},

		{name: "a browser without a token is sent to sign in",
			req: browser(request(appHost, "/", headers{})), status: decision.StatusSignIn, reason: "no Pomerium token", route: "app"},
		{name: "a browser with an invalid session cookie is sent to sign in",
			req: browser(request(appHost, "/", headers{"cookie": "_pomerium=garbage"})), status: decision.StatusSignIn,
			reason: identity.ReasonMalformed, route: "app", source: identity.SourceCookie},
		{name: "a browser with an expired session cookie is sent to sign in",
			req: browser(request(appHost, "/", headers{"cookie": "a=b; _pomerium=" + expired})), status: decision.StatusSignIn,
			reason: identity.ReasonExpired, route: "app", source: identity.SourceCookie},
		{name: "a browser with a bad Authorization header is refused rather than redirected",
			req: browser(request(appHost, "/", pomerium("garbage"))), status: decision.StatusUnauthorized,
			reason: identity.ReasonMalformed, route: "app", source: identity.SourceAuthorization},
		{name: "a browser with a bad X-Pomerium-Authorization header is refused rather than redirected",
			req: browser(request(appHost, "/", headers{"x-pomerium-authorization": expired})), status: decision.StatusUnauthorized,
			reason: identity.ReasonExpired, route: "app", source: identity.SourcePomeriumAuthorization},
		{name: "an API client without a token is refused",
			req: request(appHost, "/", headers{}), status: decision.StatusUnauthorized, reason: "no Pomerium token or session", route: "app"},
		{name: "an API client with only an app's own bearer token is refused",
			req: request(appHost, "/", headers{"authorization": "Bearer app-token"}), status: decision.StatusUnauthorized,
			reason: "no Pomerium token", route: "app"},
		{name: "an API client with an invalid cookie is refused",
			req: request(appHost, "/", headers{"cookie": "_pomerium=garbage"}), status: decision.StatusUnauthorized,
			reason: identity.ReasonMalformed, route: "app", source: identity.SourceCookie},

		{name: "a token from a listed domain is allowed",
			req: request(appHost, "/", pomerium(alice)), status: decision.StatusOK, reason: "allowed_domains matched corp.example",
			route: "app", email: "alice@corp.example", source: identity.SourceAuthorization},
		{name: "a Bearer Pomerium- token is read",
			req: request(appHost+":443", "/", headers{"authorization": "Bearer Pomerium-" + alice}), status: decision.StatusOK,
			route: "app", email: "alice@corp.example", source: identity.SourceBearer},
		{name: "an X-Pomerium-Authorization token is read",
			req: request(appHost, "/", headers{"x-pomerium-authorization": alice}), status: decision.StatusOK,
			route: "app", email: "alice@corp.example", source: identity.SourcePomeriumAuthorization},
		{name: "a session cookie is read among others",
			req: browser(request(appHost, "/?q=1", headers{"cookie": "a=1; _pomerium=" + alice + "; b=2"})), status: decision.StatusOK,
			route: "app", email: "alice@corp.example", source: identity.SourceCookie},
		{name: "the Authorization header wins over a session cookie",
			req:    request(appHost, "/", headers{"authorization": "Pomerium " + bob, "cookie": "_pomerium=" + alice}),
			status: decision.StatusForbidden, route: "app", email: "bob@partner.example", source: identity.SourceAuthorization},

		{name: "a user the policy does not list is forbidden",
			req: request(appHost, "/", pomerium(bob)), status: decision.StatusForbidden, reason: "no rule matched",
			route: "app", email: "bob@partner.example", source: identity.SourceAuthorization},
		{name: "a user outside the route's group is forbidden",
			req: request(appHost, "/finance/q3", pomerium(alice)), status: decision.StatusForbidden, reason: "groups finance",
			route: "finance", email: "alice@corp.example", source: identity.SourceAuthorization},
		{name: "an administrator is allowed where listed",
			req: request(appHost, "/admin", pomerium(admin)), status: decision.StatusOK, reason: "allowed_users matched " + adminID,
			route: "admin", email: adminID, source: identity.SourceAuthorization},

		{name: "a non-administrator impersonating is forbidden",
			req:    request(appHost, "/", pomerium(mint(t, claims("alice@corp.example", nil, impersonate("carol@corp.example"))))),
			status: decision.StatusForbidden, reason: "impersonation requires an administrator", route: "app",
			email: "carol@corp.example", source: identity.SourceAuthorization},
		{name: "an administrator impersonating a protected user is forbidden",
			req:    request(appHost, "/", pomerium(mint(t, claims(adminID, nil, impersonate("CEO@corp.example"))))),
			status: decision.StatusForbidden, reason: "is protected", route: "app", email: "CEO@corp.example", source: identity.SourceAuthorization},
		{name: "a read-only impersonation cannot write",
			req: method("POST", request(appHost, "/", pomerium(mint(t, claims(adminID, nil, impersonate("carol@corp.example"),
				func(c *identity.Claims) { c.ImpersonateAccess = identity.AccessReadOnly }))))),
			status: decision.StatusForbidden, reason: "not POST", route: "app", email: "carol@corp.example", source: identity.SourceAuthorization},
		{name: "an impersonation past its impersonate_exp acts as the administrator again",
			req: request(appHost, "/admin", pomerium(mint(t, claims(adminID, nil, impersonate("bob@partner.example"),
				func(c *identity.Claims) { c.ImpersonateExp = jwt.NewNumericDate(now.Add(-time.Hour)) })))),
			status: decision.StatusOK, route: "admin", email: adminID, source: identity.SourceAuthorization},

		{name: "a token for another audience is refused",
			req:    request("partners.example.com", "/", pomerium(mint(t, claims("bob@partner.example", nil, func(c *identity.Claims) { c.Audience = jwt.ClaimStrings{appHost} })))),
			status: decision.StatusUnauthorized, reason: identity.ReasonAudience, route: "partners", source: identity.SourceAuthorization},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Decide(tc.req, now)
			if d.Status != tc.status {
				t.Fatalf("Status = %d (%s), want %d", d.Status, d.Reason, tc.status)
			}
			if d.Allowed() != (tc.status == decision.StatusOK) {
				t.Errorf("Allowed() = %v with status %d", d.Allowed(), d.Status)
			}
			if !strings.Contains(d.Reason, tc.reason) || d.Reason == "" {
				t.Errorf("Reason = %q, want it to contain %q", d.Reason, tc.reason)
			}
			gotRoute := ""
			if d.Route != nil {
				gotRoute = d.Route.Name
			}
			if gotRoute != tc.route {
				t.Errorf("Route = %q, want %q", gotRoute, tc.route)
			}
			if d.Source != tc.source {
				t.Errorf("Source = %v, want %v", d.Source, tc.source)
			}
			if (d.Token != "") != (tc.source != identity.SourceNone) {
				t.Errorf("Token = %q with source %v", d.Token, d.Source)
			}
			if d.Identity.Email != tc.email {
				t.Errorf("Identity.Email = %q, want %q", d.Identity.Email, tc.email)
			}
			if d.Status == decision.StatusUnauthorized || d.Status == decision.StatusSignIn || d.Status == decision.StatusNotFound ||
				gotRoute == "public" {
				if d.Claims != nil {
					t.Errorf("Claims = %+v, want none", d.Claims)
				}
			}
			if d.Token != "" && strings.Contains(d.Reason, d.Token) || strings.Contains(d.Reason, secret) {
				t.Errorf("Reason %q leaks the token or the secret", d.Reason)
			}
		})
	}
}

// TestDecideBadTokens: every kind of bad token is a 401 naming its reason, for
// API clients and for browsers presenting it in a header.
func TestDecideBadTokens(t *testing.T) {
	e := newEngine(t)
	alice := func(edits ...func(*identity.Claims)) *identity.Claims {
		return claims("alice@corp.example", nil, edits...)
	}
	signed := func(m jwt.SigningMethod, key any, c *identity.Claims) string {
		if c.ID == "" {
			c.ID = "id"
		}
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := mint(t, alice())
	parts := strings.Split(good, ".")
	tests := []struct {
		name, token, reason string
	}{
		{"a token signed with another secret is refused", signed(jwt.SigningMethodHS256, []byte(otherSecret), alice()), identity.ReasonSignature},
		{"a token signed with the decoded secret is refused",
			signed(jwt.SigningMethodHS256, []byte("0123456789abcdef0123456789abcdef"), alice()), identity.ReasonSignature},
		{"a token with a swapped payload is refused",
			parts[0] + "." + strings.Split(mint(t, claims(adminID, nil)), ".")[1] + "." + parts[2], identity.ReasonSignature},
		{"an alg none token is refused", signed(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, alice()), identity.ReasonAlgorithm},
		{"an HS512 token is refused", signed(jwt.SigningMethodHS512, []byte(secret), alice()), identity.ReasonAlgorithm},
		{"an expired token is refused", mint(t, alice(func(c *identity.Claims) {
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-2 * time.Minute))
			c.IssuedAt, c.NotBefore = nil, nil
		})), identity.ReasonExpired},
		{"a token not yet valid is refused", mint(t, alice(func(c *identity.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) })), identity.ReasonNotYetValid},
		{"a token issued in the future is refused", mint(t, alice(func(c *identity.Claims) {
			c.IssuedAt, c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)), nil
		})), identity.ReasonIssuedInFuture},
		{"a token without exp is refused", mint(t, alice(func(c *identity.Claims) { c.ExpiresAt = nil })), identity.ReasonMissingExpiry},
		{"a token for another host is refused", mint(t, alice(func(c *identity.Claims) { c.Audience = jwt.ClaimStrings{"other.example.com"} })), identity.ReasonAudience},
		{"a token from another issuer is refused", mint(t, alice(func(c *identity.Claims) { c.Issuer = "evil.example.com" })), identity.ReasonIssuer},
		{"a token without an issuer is refused", mint(t, alice(func(c *identity.Claims) { c.Issuer = "" })), identity.ReasonIssuer},
		{"a malformed token is refused", "not.a.token", identity.ReasonMalformed},
		{"a huge token is refused", strings.Repeat("x", identity.MaxTokenLength+1), identity.ReasonTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []decision.Request{
				request(appHost, "/", pomerium(tc.token)),
				{Host: appHost, Path: "/", Method: "GET", Browser: true, Header: headers{"x-pomerium-authorization": tc.token}.get},
			} {
				d := e.Decide(r, now)
				if d.Status != decision.StatusUnauthorized || d.Reason != tc.reason {
					t.Fatalf("browser=%v: Decide = %d %q, want 401 %q", r.Browser, d.Status, d.Reason, tc.reason)
				}
				if d.Claims != nil || d.Identity.Email != "" || d.AsksToImpersonate() {
					t.Fatalf("a refused token left claims %+v / identity %+v", d.Claims, d.Identity)
				}
			}
		})
	}
}

// TestDecideImpersonation: the effective identity alone decides, so an
// impersonation can open what the administrator cannot, and close what the
// administrator could open.
func TestDecideImpersonation(t *testing.T) {
	e := newEngine(t)
	tests := []struct {
		name        string
		path        string
		adminGroups []string
		admin       decision.Status // the administrator's own token
		impersonate func(*identity.Claims)
		want        decision.Status
		wantEmail   string
		wantGroups  []string
	}{
		{"impersonating a finance member opens a route the administrator cannot use",
			"/finance/q3", []string{"admins"}, decision.StatusForbidden, impersonate("", "finance"), decision.StatusOK, "", []string{"finance"}},
		{"impersonating a user of the allowed domain keeps a route open",
			"/", []string{"admins"}, decision.StatusOK, impersonate("carol@corp.example"), decision.StatusOK, "carol@corp.example", nil},
		{"impersonating a user closes a route only the administrator may use",
			"/admin/users", []string{"admins"}, decision.StatusOK, impersonate("carol@corp.example"), decision.StatusForbidden, "carol@corp.example", nil},
		{"impersonating a user outside every rule closes a route the administrator's domain opens",
			"/", []string{"admins"}, decision.StatusOK, impersonate("dave@elsewhere.example"), decision.StatusForbidden, "dave@elsewhere.example", nil},
		{"impersonating groups only drops the administrator's own finance membership",
			"/finance/q3", []string{"admins", "finance"}, decision.StatusOK, impersonate("", "eng"), decision.StatusForbidden, "", []string{"eng"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			groups := tc.adminGroups
			alone := e.Decide(request(appHost, tc.path, pomerium(mint(t, claims(adminID, groups)))), now)
			if alone.Status != tc.admin {
				t.Fatalf("the administrator alone: %d (%s), want %d", alone.Status, alone.Reason, tc.admin)
			}
			if alone.AsksToImpersonate() || alone.Impersonation.Impersonating {
				t.Fatal("a plain administrator request is marked as impersonation")
			}

			d := e.Decide(request(appHost, tc.path, pomerium(mint(t, claims(adminID, groups, tc.impersonate)))), now)
			if d.Status != tc.want {
				t.Fatalf("impersonating: %d (%s), want %d", d.Status, d.Reason, tc.want)
			}
			if d.Identity.Email != tc.wantEmail || !slices.Equal(d.Identity.Groups, tc.wantGroups) {
				t.Errorf("Identity = %+v, want email %q groups %v", d.Identity, tc.wantEmail, tc.wantGroups)
			}
			if !d.Impersonation.Impersonating || d.Impersonation.Actor.Email != adminID || d.Impersonation.Refusal != "" {
				t.Errorf("Impersonation = %+v, want the administrator as actor", d.Impersonation)
			}
			if !d.AsksToImpersonate() {
				t.Error("an impersonated decision is not audited")
			}
		})
	}
	t.Run("a denied impersonation is still audited", func(t *testing.T) {
		d := e.Decide(request(appHost, "/", pomerium(mint(t, claims("alice@corp.example", nil, impersonate("carol@corp.example"))))), now)
		if d.Status != decision.StatusForbidden || !d.AsksToImpersonate() || d.Impersonation.Actor.Email != "alice@corp.example" {
			t.Fatalf("Decide = %d %q audited=%v actor=%+v", d.Status, d.Reason, d.AsksToImpersonate(), d.Impersonation.Actor)
		}
	})
}

// TestDecideSharedRevocations: a token the replicas' shared revocations
// cover is refused as revoked, whatever verified it, and the rest decide as
// before.
func TestDecideSharedRevocations(t *testing.T) {
	ctx := context.Background()
	open := func(at time.Time) *store.Store {
		st := store.New(store.NewMemory(func() time.Time { return at }), store.Options{Now: func() time.Time { return at }})
		t.Cleanup(func() { _ = st.Close() })
		if err := st.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		return st
	}
	revoked := open(now)
	for _, err := range []error{
		revoked.RevokeSID(ctx, "stolen-session"),
		revoked.Revoke(ctx, store.NewRevocation(store.KindJTI, "stolen-token", now, time.Hour)),
		revoked.RevokeUser(ctx, "Mallory@corp.example"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A revocation of the user made before the token was issued.
	earlier := open(now.Add(-time.Hour))
	if err := earlier.RevokeUser(ctx, "carol@corp.example"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		revs   decision.Revocations
		claims *identity.Claims
		want   decision.Status
		reason string
	}{
		{"a token whose session was revoked is refused", revoked,
			claims("alice@corp.example", nil, func(c *identity.Claims) { c.ID, c.SID = "t1", "stolen-session" }), decision.StatusUnauthorized, identity.ReasonRevoked},
		{"a token revoked by its jti is refused", revoked,
			claims("alice@corp.example", nil, func(c *identity.Claims) { c.ID = "stolen-token" }), decision.StatusUnauthorized, identity.ReasonRevoked},
		{"a token of a user signed out everywhere after it was issued is refused", revoked,
			claims("mallory@corp.example", nil), decision.StatusUnauthorized, identity.ReasonRevoked},
		{"a token issued after its user was signed out everywhere is allowed", earlier,
			claims("carol@corp.example", nil), decision.StatusOK, ""},
		{"a token nothing revoked is allowed", revoked,
			claims("alice@corp.example", nil, func(c *identity.Claims) { c.ID, c.SID = "t2", "another-session" }), decision.StatusOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t)
			e.Revocations = tc.revs
			d := e.Decide(request(appHost, "/", pomerium(mint(t, tc.claims))), now)
			if d.Status != tc.want || (tc.reason != "" && d.Reason != tc.reason) {
				t.Fatalf("Decide = %d %q, want %d %q", d.Status, d.Reason, tc.want, tc.reason)
			}
			if tc.want != decision.StatusOK && (d.Claims != nil || d.Cause != identity.CauseRevoked) {
				t.Fatalf("a revoked token left claims %+v, cause %v", d.Claims, d.Cause)
			}
		})
	}
}
