package check_test

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/identity"
)

// upstreamView applies an allow's header mutations to the request's headers
// the way Envoy does (set by overwrite, then remove), and returns what the
// upstream receives.
func upstreamView(t *testing.T, sent map[string]string, resp *authv3.CheckResponse) map[string]string {
	t.Helper()
	set := setHeaders(t, resp)
	out := map[string]string{}
	for k, v := range sent {
		out[strings.ToLower(k)] = v
	}
	for k, v := range set {
		out[k] = v
	}
	for _, r := range resp.GetOkResponse().GetHeadersToRemove() {
		delete(out, strings.ToLower(r))
	}
	return out
}

// TestCheckClaimHeadersBelongToTheSidecar: every header jwt_claims_headers
// names, and every x-pomerium-* header in any spelling, is removed from the
// client's request on every route and set only from the token (contract
// section 8, "Claim headers").
func TestCheckClaimHeadersBelongToTheSidecar(t *testing.T) {
	f := newFixtureWith(t, func(s *check.Snapshot) {
		s.ClaimHeaders = []check.ClaimHeader{
			{Claim: "email", Header: "x-pomerium-claim-email"},
			{Claim: "groups", Header: "x-pomerium-claim-groups"},
			{Claim: "email", Header: "x-email"}, // Pomerium's map form {X-Email: email}
			{Claim: "user", Header: "x-user"},
			{Claim: "name", Header: "x-name"}, // a claim no token here carries
		}
	})
	bob := mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}}) // no user claim: user is the email upstream
	spoofed := map[string]string{
		"x-email":                  "ceo@corp.example",
		"x_email":                  "ceo@corp.example",
		"x-user":                   "ceo",
		"x-name":                   "The CEO",
		"x_name":                   "The CEO",
		"x-pomerium-claim-email":   "ceo@corp.example",
		"x_pomerium-claim-email":   "ceo@corp.example",
		"x-pomerium_jwt_assertion": "forged",
		"x_pomerium_claim_groups":  "admins",
		"X_Pomerium-Claim-Role":    "root",
		"x-pomerium-":              "bare prefix",
	}
	routes := []struct {
		name, url, route string
		token            bool
		want             map[string]string // identity headers the upstream must get; every other spoofed one is gone
	}{
		{"a route passing identity", "https://app.example.com/", "app", true,
			map[string]string{"x-email": "bob@corp.example", "x-user": "bob@corp.example", "x-pomerium-claim-email": "bob@corp.example", "x-pomerium-claim-groups": "engineering"}},
		{"a pass_identity_headers: false route", "https://quiet.example.com/", "quiet", true, nil},
		{"a public route", "https://public.example.com/", "public", false, nil},
		{"a public route with a token", "https://public.example.com/", "public", true, nil},
	}
	for _, r := range routes {
		t.Run("on "+r.name+" no client-sent claim or identity header reaches the upstream", func(t *testing.T) {
			sent := map[string]string{}
			for k, v := range spoofed {
				sent[k] = v
			}
			if r.token {
				sent["authorization"] = "Pomerium " + bob
			}
			resp := f.check(t, envoyRequest("GET", r.url, sent, r.route))
			up := upstreamView(t, sent, resp)
			for k := range spoofed {
				k = strings.ToLower(k)
				if want, ours := r.want[k]; ours {
					if up[k] != want {
						t.Errorf("%s upstream = %q, want %q from the token", k, up[k], want)
					}
				} else if v, ok := up[k]; ok {
					t.Errorf("client-sent %s = %q reached the upstream", k, v)
				}
			}
			if _, ok := up["x-name"]; ok {
				t.Error("x-name is set although no token carries a name claim")
			}
		})
	}
}

// TestCheckRemovesSidecarCookies: the sidecar's own cookies (session, CSRF,
// sign-in flow, binding, authenticate session, with or without __Host-) never
// go upstream; the app's cookies do (contract section 5).
func TestCheckRemovesSidecarCookies(t *testing.T) {
	f := newFixture(t)
	bob := mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}})
	jar := "theme=dark; __Host-_pomerium_csrf=c1; _pomerium_csrf=c2; __Host-_pomerium_oidc_k1=flow; " +
		"_pomerium_signin_k1=bind; __Host-_pomerium_authenticate=authn; lang=en; __Host-app=keep"
	tests := []struct {
		name, url, route string
		headers          map[string]string
	}{
		{"with the session in the cookie", "https://app.example.com/", "", map[string]string{"cookie": jar + "; _pomerium=" + bob}},
		{"with the token in a header", "https://app.example.com/", "", map[string]string{"cookie": jar, "authorization": "Pomerium " + bob}},
		{"on a public route", "https://public.example.com/", "", map[string]string{"cookie": jar}},
		{"on a pass_identity_headers: false route", "https://quiet.example.com/", "quiet", map[string]string{"cookie": jar, "authorization": "Pomerium " + bob}},
	}
	for _, tc := range tests {
		t.Run("the sidecar's cookies are removed and the app's kept "+tc.name, func(t *testing.T) {
			resp := f.check(t, envoyRequest("GET", tc.url, tc.headers, tc.route))
			if got := upstreamView(t, tc.headers, resp)["cookie"]; got != "theme=dark; lang=en; __Host-app=keep" {
				t.Fatalf("cookie upstream = %q", got)
			}
		})
	}
}

// TestCheckRefusesLookAlikeTargets: an impersonation target must be a plain
// ASCII address (contract section 8), whatever the policy would say.
func TestCheckRefusesLookAlikeTargets(t *testing.T) {
	f := newFixture(t)
	targets := map[string]string{
		"full-width letters":  "ｓｅｃｕｒｉｔｙ@corp.example",
		"an accented letter":  "sécurity@corp.example",
		"a Cyrillic е":        "s\u0435curity@corp.example",
		"a full-width at":     "security＠corp.example",
		"a space inside":      "secu rity@corp.example",
		"no at sign":          "security",
		"two at signs":        "security@corp@example",
		"a zero-width joiner": "secu\u200drity@corp.example",
	}
	for what, target := range targets {
		t.Run("an administrator impersonating a target with "+what+" is refused with 403", func(t *testing.T) {
			tok := mint(t, identity.Claims{Email: "alice@corp.example", ImpersonateEmail: target, ImpersonateGroups: []string{"engineering"}})
			resp := f.check(t, envoyRequest("GET", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + tok}, ""))
			d := resp.GetDeniedResponse()
			if d.GetStatus().GetCode() != 403 || !strings.Contains(d.GetBody(), "not a plain address") {
				t.Fatalf("want 403 naming a target that is not a plain address, got %v", resp)
			}
			if strings.Contains(d.GetBody(), target) {
				t.Error("the body echoes the look-alike")
			}
		})
	}
}

// TestCheckTime: impersonate_exp ends exactly; an assertion's exp is
// min(iat + lifetime, the token's exp + leeway, impersonate_exp) and after
// its iat (contract section 8, "Time").
func TestCheckTime(t *testing.T) {
	f := newFixture(t)
	assertionOf := func(t *testing.T, at time.Time, tok string) (iat, exp int64, email string) {
		t.Helper()
		f.setNow(at)
		resp := f.check(t, envoyRequest("GET", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + tok}, ""))
		jws := setHeaders(t, resp)["x-pomerium-jwt-assertion"]
		claims := jwt.MapClaims{}
		if _, _, err := jwt.NewParser().ParseUnverified(jws, claims); err != nil {
			t.Fatal(err)
		}
		if err := verifySignature(f.key, jws); err != nil {
			t.Fatal(err)
		}
		iat, exp = int64(claims["iat"].(float64)), int64(claims["exp"].(float64))
		if exp <= iat {
			t.Fatalf("assertion exp %d is not after its iat %d", exp, iat)
		}
		return iat, exp, claims["email"].(string)
	}

	t.Run("a token accepted within its leeway gets an assertion expiring at its exp plus the leeway", func(t *testing.T) {
		late := mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"},
			RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(-30 * time.Second))}})
		iat, exp, _ := assertionOf(t, now, late)
		if iat != now.Unix() || exp != now.Add(30*time.Second).Unix() {
			t.Fatalf("iat, exp = %d, %d; want %d, %d", iat, exp, now.Unix(), now.Add(30*time.Second).Unix())
		}
	})

	t.Run("a token far from its exp gets an assertion of the full lifetime", func(t *testing.T) {
		bob := mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}})
		_, exp, _ := assertionOf(t, now, bob)
		if exp != now.Add(identity.AssertionLifetime).Unix() {
			t.Fatalf("exp = %d, want %d", exp, now.Add(identity.AssertionLifetime).Unix())
		}
	})

	end := now.Add(10 * time.Second)
	aliceAsBob := mint(t, identity.Claims{Email: "alice@corp.example", Groups: []string{"admins"},
		ImpersonateEmail: "bob@corp.example", ImpersonateGroups: []string{"engineering"}, ImpersonateExp: jwt.NewNumericDate(end)})

	t.Run("an impersonation's assertions never outlive impersonate_exp, cached or not", func(t *testing.T) {
		for _, at := range []time.Time{now, now.Add(4 * time.Second), now.Add(9 * time.Second), now.Add(9*time.Second + 900*time.Millisecond)} {
			_, exp, email := assertionOf(t, at, aliceAsBob)
			if email != "bob@corp.example" || exp > end.Unix() {
				t.Fatalf("at +%s: assertion for %s expires at %d, after impersonate_exp %d", at.Sub(now), email, exp, end.Unix())
			}
		}
	})

	for _, after := range []time.Duration{0, time.Second, 59 * time.Second} {
		t.Run("from impersonate_exp on the administrator acts as themselves (+"+after.String()+")", func(t *testing.T) {
			f.setNow(end.Add(after))
			resp := f.check(t, envoyRequest("GET", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + aliceAsBob}, ""))
			if resp.GetDeniedResponse().GetStatus().GetCode() != 403 {
				t.Fatalf("bob's route still opens after impersonate_exp: %v", resp)
			}
			f.setNow(end.Add(after))
			resp = f.check(t, envoyRequest("GET", "https://admin.example.com/", map[string]string{"authorization": "Pomerium " + aliceAsBob}, ""))
			if setHeaders(t, resp) == nil {
				t.Fatal("alice's own route is closed")
			}
		})
	}
}

func verifySignature(key *identity.SigningKey, jws string) error {
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation()).
		Parse(jws, func(*jwt.Token) (any, error) { return &key.Private.PublicKey, nil })
	return err
}

// rawRequest shapes a CheckRequest the way Envoy 1.40 sends it when its filter
// sets encode_raw_headers: every header line in header_map, values in
// raw_value, and headers empty.
func rawRequest(method, rawURL string, lines [][2]string, route string) *authv3.CheckRequest {
	req := envoyRequest(method, rawURL, nil, route)
	h := req.Attributes.Request.Http
	hm := &corev3.HeaderMap{}
	for _, k := range []string{":authority", ":path", ":method", ":scheme", "x-request-id", "user-agent"} {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(h.Headers[k])})
	}
	for _, l := range lines {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: l[0], RawValue: []byte(l[1])})
	}
	h.Headers = nil
	h.HeaderMap = hm
	return req
}

// TestCheckReadsRawHeaders: with encode_raw_headers, Envoy sends header_map
// (one entry per line, raw bytes) and no headers; Check reads it as it reads
// headers, joining repeated lines with ", " and cookies with "; " (contract
// section 4).
func TestCheckReadsRawHeaders(t *testing.T) {
	f := newFixture(t)
	bob := mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}})
	const browser = "text/html,application/xhtml+xml"

	t.Run("allowed requests read every carrier and strip as with headers", func(t *testing.T) {
		tests := []struct {
			name       string
			lines      [][2]string
			wantCookie string // upstream cookie; "" means the header is removed
		}{
			{"a token in Authorization", [][2]string{{"authorization", "Pomerium " + bob}}, ""},
			{"a token in X-Pomerium-Authorization", [][2]string{{"x-pomerium-authorization", bob}}, ""},
			{"the session cookie on its own cookie line", [][2]string{{"cookie", "theme=dark"}, {"cookie", "_pomerium=" + bob}, {"cookie", "lang=en"}}, "theme=dark; lang=en"},
			{"the session cookie among the sidecar's others on several lines",
				[][2]string{{"cookie", "__Host-_pomerium_csrf=x; theme=dark"}, {"cookie", "_pomerium=" + bob + "; _pomerium_signin_k=y"}}, "theme=dark"},
			{"a non-UTF-8 app cookie beside the session", [][2]string{{"cookie", "legacy=caf\xe9"}, {"cookie", "_pomerium=" + bob}}, "legacy=caf!"},
		}
		for _, tc := range tests {
			t.Run(tc.name+" is allowed with identity and nothing of ours upstream", func(t *testing.T) {
				lines := append([][2]string{
					{"x-pomerium-claim-email", "ceo@corp.example"}, {"x-pomerium-claim-role", "root"}, {"x-pomerium-claim-role", "admin"},
					{"x_pomerium_jwt_assertion", "forged"}, {"x-junk", "\xff\xfe"},
				}, tc.lines...)
				resp := f.check(t, rawRequest("GET", "https://app.example.com/", lines, ""))
				set := setHeaders(t, resp)
				if claims := verifyAssertion(t, f.key, set["x-pomerium-jwt-assertion"]); claims["email"] != "bob@corp.example" {
					t.Errorf("assertion claims = %v", claims)
				}
				if set["x-pomerium-claim-email"] != "bob@corp.example" {
					t.Errorf("claim header = %q", set["x-pomerium-claim-email"])
				}
				removed := resp.GetOkResponse().GetHeadersToRemove()
				for _, h := range []string{"x-pomerium-claim-role", "x_pomerium_jwt_assertion", "x-internal"} {
					if !contains(removed, h) {
						t.Errorf("%s not removed: %v", h, removed)
					}
				}
				for _, l := range tc.lines {
					if l[0] == "authorization" || l[0] == "x-pomerium-authorization" {
						if !contains(removed, l[0]) {
							t.Errorf("%s not removed", l[0])
						}
					}
				}
				if c, ok := set["cookie"]; tc.wantCookie != "" && c != tc.wantCookie {
					t.Errorf("cookie upstream = %q, want %q", c, tc.wantCookie)
				} else if tc.wantCookie == "" && ok {
					t.Errorf("cookie upstream = %q, want none", c)
				}
			})
		}
	})

	denials := []struct {
		name   string
		lines  [][2]string
		status int
		body   string
	}{
		{"no token is 401 with Envoy's request id from the raw header", nil, 401, "req-123"},
		{"a browser without a token is sent to sign in", [][2]string{{"accept", browser}}, 302, ""},
		{"a valid token joined after a bad one on two Authorization lines is a bad token", [][2]string{
			{"authorization", "Pomerium garbage"}, {"authorization", "Pomerium " + bob}}, 401, "malformed"},
	}
	for _, tc := range denials {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.check(t, rawRequest("GET", "https://app.example.com/", tc.lines, ""))
			d := resp.GetDeniedResponse()
			if int(d.GetStatus().GetCode()) != tc.status || !strings.Contains(d.GetBody(), tc.body) {
				t.Fatalf("want %d with %q in the body, got %v", tc.status, tc.body, resp)
			}
		})
	}

	t.Run("the same request in headers and in header_map gets the same answer", func(t *testing.T) {
		lines := [][2]string{{"cookie", "a=1"}, {"cookie", "_pomerium=" + bob}, {"x-dup", "one"}, {"x-dup", "two"}, {"x-pomerium-claim-groups", "forged"}}
		joined := map[string]string{"cookie": "a=1; _pomerium=" + bob, "x-dup": "one, two", "x-pomerium-claim-groups": "forged"}
		raw := upstreamView(t, map[string]string{"cookie": "a=1; _pomerium=" + bob, "x-dup": "one, two", "x-pomerium-claim-groups": "forged"},
			f.check(t, rawRequest("GET", "https://app.example.com/", lines, "")))
		plain := upstreamView(t, joined, f.check(t, envoyRequest("GET", "https://app.example.com/", joined, "")))
		delete(raw, "x-pomerium-jwt-assertion") // signed afresh or from the cache: compared above
		delete(plain, "x-pomerium-jwt-assertion")
		for k, v := range plain {
			if raw[k] != v {
				t.Errorf("%s: header_map gives %q, headers give %q", k, raw[k], v)
			}
		}
		if len(raw) != len(plain) {
			t.Errorf("header_map gives %v, headers give %v", raw, plain)
		}
	})
}

// TestCheckSeveralSessionCookies: with several _pomerium cookies their order
// never decides (contract section 4).
func TestCheckSeveralSessionCookies(t *testing.T) {
	f := newFixture(t)
	bob := mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}})
	carol := mint(t, identity.Claims{Email: "carol@corp.example", Groups: []string{"engineering"}})
	expired := mint(t, identity.Claims{Email: "carol@corp.example", Groups: []string{"engineering"},
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(-time.Hour))}})
	aliceAsBob := mint(t, identity.Claims{Email: "alice@corp.example", ImpersonateEmail: "bob@corp.example", ImpersonateGroups: []string{"engineering"}})
	alice := mint(t, identity.Claims{Email: "alice@corp.example", Groups: []string{"engineering"}})
	tests := []struct {
		name      string
		a, b      string
		status    int
		wantEmail string
	}{
		{"an invalid and a valid cookie use the valid one", expired, bob, 200, "bob@corp.example"},
		{"an empty and a valid cookie use the valid one", "", bob, 200, "bob@corp.example"},
		{"valid cookies of two people are a bad token", bob, carol, 401, ""},
		{"an impersonating and a plain cookie of one administrator are a bad token", aliceAsBob, alice, 401, ""},
	}
	for _, tc := range tests {
		for _, order := range [][2]string{{tc.a, tc.b}, {tc.b, tc.a}} {
			t.Run(tc.name+" in either order", func(t *testing.T) {
				cookie := "theme=dark; _pomerium=" + order[0] + "; _pomerium=" + order[1]
				resp := f.check(t, envoyRequest("GET", "https://app.example.com/", map[string]string{"cookie": cookie}, ""))
				if tc.status != 200 {
					d := resp.GetDeniedResponse()
					if int(d.GetStatus().GetCode()) != tc.status {
						t.Fatalf("want %d, got %v", tc.status, resp)
					}
					if !strings.Contains(d.GetBody(), "disagree") {
						t.Errorf("body %q does not say the cookies disagree", d.GetBody())
					}
					return
				}
				set := setHeaders(t, resp)
				if claims := verifyAssertion(t, f.key, set["x-pomerium-jwt-assertion"]); claims["email"] != tc.wantEmail {
					t.Fatalf("assertion for %v, want %s", claims["email"], tc.wantEmail)
				}
				if set["cookie"] != "theme=dark" {
					t.Errorf("cookie upstream = %q, want every session cookie removed", set["cookie"])
				}
			})
		}
	}
}
