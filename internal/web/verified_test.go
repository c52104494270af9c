package web_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/oidctest"
	"github.com/extauthz/extauthz/internal/web"
)

// mallory signs up at the provider with the administrator's address in
// another case, which the provider has not verified.
const malloryID = "9e8d7c6b-mallory"

func mallory(verified, userinfo any) oidctest.User {
	return oidctest.User{ID: malloryID, Name: "mallory", Email: "Alice@Corp.Example",
		EmailVerified: verified, UserinfoEmailVerified: userinfo}
}

// carolOnWiki checks that a sign-in ended back at target, the wiki, with a
// session there for carol.
func (f *oidcFixture) carolOnWiki(t *testing.T, b *oidcBrowser, target string, last response, chain []string) {
	t.Helper()
	if last.StatusCode != http.StatusFound || last.Header.Get("Location") != target {
		t.Fatalf("ended with %d %q after %v\n%s", last.StatusCode, last.Header.Get("Location"), chain, last.body)
	}
	if c, err := f.settings.Engine.Verifier.Verify(b.Cookie(target, cookieName), wikiHost, f.clock.Now()); err != nil || c.Email != "carol@corp.example" {
		t.Errorf("wiki session: %v %+v", err, c)
	}
}

// unverifiedRefusal checks the page and the log line of a sign-in refused
// because the address is not verified.
func (f *oidcFixture) unverifiedRefusal(t *testing.T, r response, claim string) {
	t.Helper()
	refusedPage(t, r, http.StatusForbidden, "did not confirm that your email address is verified")
	if !strings.Contains(r.body, "idp_allow_unverified_email") {
		t.Errorf("the page does not name idp_allow_unverified_email:\n%s", r.body)
	}
	entries := f.logs.FilterMessage("sign-in refused").FilterField(zap.String("reason", "email not verified")).All()
	if len(entries) == 0 {
		t.Fatal("the refusal is not logged")
	}
	fields := entries[len(entries)-1].ContextMap()
	if fields["request_id"] != r.Header.Get("X-Request-Id") || fields["issuer"] != f.idp.Issuer || fields["email_verified"] != claim {
		t.Errorf("log fields %v: want the page's request id, issuer %s and email_verified %s", fields, f.idp.Issuer, claim)
	}
	for k, v := range fields {
		if s, ok := v.(string); ok && strings.Contains(s, "eyJ") {
			t.Errorf("log field %s carries a token: %s", k, s)
		}
	}
}

func TestOIDCSignInRequiresAVerifiedEmail(t *testing.T) {
	refused := []struct {
		name            string
		token, userinfo any
		claim           string
	}{
		{name: "an ID token saying false is refused", token: false, claim: "false"},
		{name: "an ID token saying the string false is refused", token: "false", claim: `"false"`},
		{name: "an ID token saying True in capitals is refused", token: "True", claim: `"True"`},
		{name: "an ID token saying false is refused even when userinfo says true", token: false, userinfo: true, claim: "false"},
		{name: "no claim in the ID token nor in userinfo is refused", token: oidctest.Absent, claim: "absent"},
		{name: "no claim in the ID token and false in userinfo is refused", token: oidctest.Absent, userinfo: false, claim: "false"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			f := newOIDCFixture(t)
			f.idp.AddUser(mallory(tc.token, tc.userinfo))
			f.idp.AutoLogin("mallory")
			b := f.browser()
			target := "http://" + appHost + "/.pomerium/"
			last, chain := f.signIn(b, appHost, target)
			f.unverifiedRefusal(t, last, tc.claim)
			if !strings.Contains(last.Request.URL.String(), authHost+"/.pomerium/callback") {
				t.Errorf("refused at %s, want the authenticate host's callback (chain %v)", last.Request.URL, chain)
			}
			if b.Cookie(target, cookieName) != "" {
				t.Error("a route session was issued")
			}
			if b.Cookie("http://"+authHost+"/.pomerium/", cookieName+"_authenticate") != "" {
				t.Error("an authenticate session was kept for the unverified address")
			}
		})
	}

	accepted := []struct {
		name            string
		token, userinfo any
	}{
		{name: "an ID token saying true signs in", token: true},
		{name: "an ID token saying the string true signs in", token: "true"},
		{name: "userinfo saying true signs in when the ID token has no claim", token: oidctest.Absent, userinfo: true},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			f := newOIDCFixture(t)
			f.idp.AddUser(oidctest.User{ID: "carol-id", Name: "carol", Email: "carol@corp.example",
				EmailVerified: tc.token, UserinfoEmailVerified: tc.userinfo})
			f.idp.AutoLogin("carol")
			b := f.browser()
			target := "http://" + wikiHost + "/"
			last, chain := f.signIn(b, wikiHost, target)
			f.carolOnWiki(t, b, target, last, chain)
		})
	}
}

// idp_allow_unverified_email is for providers that never send the claim
// (Entra ID): with it, such an account signs in; without it, it does not.
func TestOIDCAllowUnverifiedEmail(t *testing.T) {
	for _, tc := range []struct {
		name    string
		allow   bool
		signsIn bool
	}{
		{name: "an account without the claim is refused by default"},
		{name: "an account without the claim signs in with idp_allow_unverified_email", allow: true, signsIn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newOIDCFixture(t, func(s *web.Settings) { s.IdpAllowUnverifiedEmail = tc.allow })
			f.idp.AddUser(oidctest.User{ID: "carol-id", Name: "carol", Email: "carol@corp.example", EmailVerified: oidctest.Absent})
			f.idp.AutoLogin("carol")
			b := f.browser()
			target := "http://" + wikiHost + "/"
			last, chain := f.signIn(b, wikiHost, target)
			if !tc.signsIn {
				f.unverifiedRefusal(t, last, "absent")
				return
			}
			f.carolOnWiki(t, b, target, last, chain)
		})
	}
}

// When the provider stops vouching for an address, re-reading the identity
// refuses it: on POST /.pomerium/refresh, and when the authenticate host
// re-reads a stale identity to give another host a session.
func TestOIDCRefreshRequiresAVerifiedEmail(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(f *oidcFixture, b *oidcBrowser) response
	}{
		{name: "a refresh from the dashboard is refused", start: func(f *oidcFixture, b *oidcBrowser) response {
			dash := "http://" + appHost + "/.pomerium/"
			return b.do(http.MethodPost, "http://"+appHost+"/.pomerium/refresh", form("_csrf", b.csrf(dash)))
		}},
		{name: "the silent re-read for another host is refused", start: func(f *oidcFixture, b *oidcBrowser) response {
			f.clock.Advance(20 * time.Minute)
			return b.get(signInURL(wikiHost, "http://"+wikiHost+"/"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newOIDCFixture(t)
			f.idp.AutoLogin("bob")
			b := f.browser()
			dash := "http://" + appHost + "/.pomerium/"
			f.signIn(b, appHost, dash)
			before := b.Cookie(dash, cookieName)
			if before == "" {
				t.Fatal("bob did not sign in")
			}
			f.idp.AutoLogin("")
			f.idp.SetEmailVerified("bob", false)

			last, chain := b.follow(tc.start(f, b), nil)
			if f.idp.Refreshes() != 1 {
				t.Fatalf("%d refresh grants, want 1 (chain %v)", f.idp.Refreshes(), chain)
			}
			f.unverifiedRefusal(t, last, "false")
			if b.Cookie(dash, cookieName) != before {
				t.Error("a new route session was issued")
			}
			if b.Cookie("http://"+wikiHost+"/", cookieName) != "" {
				t.Error("the wiki got a session")
			}
			if b.Cookie("http://"+authHost+"/.pomerium/", cookieName+"_authenticate") != "" {
				t.Error("the authenticate session survived: it would hand the address to other hosts")
			}
		})
	}
}
