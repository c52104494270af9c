package web_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/oidctest"
	"github.com/extauthz/extauthz/internal/policy"
	"github.com/extauthz/extauthz/internal/signin"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/internal/web"
)

// The identity-provider sign-in, end to end against a real OpenID provider
// (zitadel/oidc's op) on loopback: route hosts app.example.test and
// wiki.example.test, the authenticate host authenticate.example.test, all
// served by the pages under test through a dialer that maps them.

const (
	authHost = issuer // authenticate.example.test: the host of authenticate_service_url
	wikiHost = "wiki.example.test"
	clientID = "extauthz"
	bobID    = "0f9b7e52-bob"
	aliceID  = "3c1d2a40-alice"
)

type oidcFixture struct {
	*fixture
	idp *oidctest.Provider
}

func newOIDCFixture(t *testing.T, edit ...func(*web.Settings)) *oidcFixture {
	t.Helper()
	p := oidctest.Start(t, oidctest.Options{
		ClientID:     clientID,
		ClientSecret: "extauthz-test-client-secret",
		RedirectURIs: []string{
			"http://" + authHost + "/.pomerium/callback",
			"http://" + appHost + "/.pomerium/callback",
			"http://" + wikiHost + "/.pomerium/callback",
		},
		Users: []oidctest.User{
			{ID: aliceID, Name: "alice", Email: admin, Groups: []string{"admins"}},
			{ID: bobID, Name: "bob", Email: user, Groups: []string{"engineering"}},
		},
	})
	f := newFixture(t, append([]func(*web.Settings){plainHTTPRoutes(t), func(s *web.Settings) {
		s.AuthenticateServiceURL = "http://" + authHost
		s.IdpProviderURL = p.Issuer
		s.IdpClientID = clientID
		s.IdpClientSecret = "extauthz-test-client-secret"
	}}, edit...)...)
	return &oidcFixture{fixture: f, idp: p}
}

// plainHTTPRoutes serves the test routes over plain HTTP, as the browsers
// of these tests reach them: redirects and handoffs go only to a route's
// exact origin, scheme included.
func plainHTTPRoutes(t *testing.T) func(*web.Settings) {
	return func(s *web.Settings) {
		routes := slices.Clone(testRoutes)
		for i := range routes {
			routes[i].From = strings.Replace(routes[i].From, "https://", "http://", 1)
		}
		pol, err := policy.Compile(routes)
		if err != nil {
			t.Fatal(err)
		}
		s.Engine.Policy = pol
	}
}

// oidcBrowser keeps cookies, reaches *.example.test at the pages under test
// and everything else (the provider) directly, and does not follow redirects
// by itself.
type oidcBrowser struct {
	*testkit.Browser
	t *testing.T
}

// browser reaches every *.example.test host at the pages' server.
// signedIn is a browser in which user signed in at the provider and came
// back to target on appHost.
func (f *oidcFixture) signedIn(user, target string) *oidcBrowser {
	f.t.Helper()
	f.idp.AutoLogin(user)
	b := f.browser()
	f.signIn(b, appHost, target)
	return b
}

func (f *oidcFixture) browser() *oidcBrowser {
	pages := f.srv.Listener.Addr().String()
	return &oidcBrowser{t: f.t, Browser: testkit.NewBrowser(func(host, _ string) string {
		if strings.HasSuffix(host, ".example.test") {
			return pages
		}
		return ""
	})}
}

func (b *oidcBrowser) do(method, rawURL string, form url.Values, header ...string) response {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp, string(data)}
}

func (b *oidcBrowser) get(rawURL string, header ...string) response {
	b.t.Helper()
	return b.do(http.MethodGet, rawURL, nil, header...)
}

// follow answers r's redirects like a browser, until an answer that is not a
// redirect or until stop accepts the next URL (which is then not visited).
// It returns the last answer and every URL visited after r.
func (b *oidcBrowser) follow(r response, stop func(*url.URL) bool) (response, []string) {
	b.t.Helper()
	var chain []string
	for i := 0; i < 25; i++ {
		loc := r.Header.Get("Location")
		if r.StatusCode < 300 || r.StatusCode > 399 || loc == "" {
			return r, chain
		}
		next, err := r.Request.URL.Parse(loc)
		if err != nil {
			b.t.Fatalf("bad Location %q: %v", loc, err)
		}
		if stop != nil && stop(next) {
			return r, chain
		}
		chain = append(chain, next.String())
		r = b.get(next.String())
	}
	b.t.Fatalf("too many redirects: %v", chain)
	return r, chain
}

// csrf scrapes a form's CSRF token from a page of host.
func (b *oidcBrowser) csrf(rawURL string) string {
	b.t.Helper()
	r := b.get(rawURL)
	m := csrfField.FindStringSubmatch(r.body)
	if m == nil {
		b.t.Fatalf("no CSRF field on %s (status %d):\n%s", rawURL, r.StatusCode, r.body)
	}
	return htmlUnescape(m[1])
}

func signInURL(host, target string) string {
	return "http://" + host + "/.pomerium/sign_in?pomerium_redirect_uri=" + url.QueryEscape(target)
}

// signIn runs the whole dance for target on host and returns the answer at
// target and the URLs visited.
func (f *oidcFixture) signIn(b *oidcBrowser, host, target string) (response, []string) {
	f.t.Helper()
	return b.follow(b.get(signInURL(host, target)), func(u *url.URL) bool { return u.String() == target })
}

// decide asks the decision engine, as Check would, about a browser request
// carrying the session cookie.
func (f *oidcFixture) decide(host, session string) decision.Decision {
	return decideBrowser(f.settings.Engine, host, session, f.clock.Now())
}

func hostOf(raw string) string {
	u, _ := url.Parse(raw)
	return u.Host + u.Path
}

func TestOIDCSignInDance(t *testing.T) {
	f := newOIDCFixture(t)
	f.idp.AutoLogin("bob")
	b := f.browser()
	target := "http://" + appHost + "/some/page?x=1"
	last, chain := f.signIn(b, appHost, target)

	// app sign_in -> authenticate sign_in -> provider authorize -> login ->
	// provider callback -> authenticate callback -> app callback (handoff) -> target.
	var steps []string
	for _, u := range chain {
		steps = append(steps, hostOf(u))
	}
	want := []string{
		authHost + "/.pomerium/sign_in",
		strings.TrimPrefix(f.idp.Issuer, "http://") + "/authorize",
		strings.TrimPrefix(f.idp.Issuer, "http://") + "/login",
		strings.TrimPrefix(f.idp.Issuer, "http://") + "/authorize/callback",
		authHost + "/.pomerium/callback",
		appHost + "/.pomerium/callback",
	}
	if !slices.Equal(steps, want) {
		t.Fatalf("redirect chain:\n got %v\nwant %v", steps, want)
	}
	if last.StatusCode != http.StatusFound || last.Header.Get("Location") != target {
		t.Fatalf("the handoff answered %d to %q, want 302 to %s\n%s", last.StatusCode, last.Header.Get("Location"), target, last.body)
	}
	authorize, _ := url.Parse(chain[1])
	q := authorize.Query()
	for k, v := range map[string]string{"response_type": "code", "client_id": clientID, "code_challenge_method": "S256",
		"redirect_uri": "http://" + authHost + "/.pomerium/callback"} {
		if q.Get(k) != v {
			t.Errorf("authorization request %s = %q, want %q", k, q.Get(k), v)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 32 {
			t.Errorf("authorization request %s = %q: want a long random value", k, q.Get(k))
		}
	}

	tok := b.Cookie("http://"+appHost+"/", cookieName)
	if tok == "" {
		t.Fatal("no session cookie on the route host")
	}
	for _, u := range chain {
		// (The provider's authorization code may itself look like a JWT.)
		// On the route host, only the sealed handoff (a compact JWE: five
		// parts, its payload unreadable) may look like one.
		if strings.Contains(u, tok) || strings.HasPrefix(u, "http://"+appHost) && strings.Contains(readableJOSE(u), "eyJ") {
			t.Errorf("a URL of the sign-in carries a token: %s", u)
		}
	}
	c, err := f.settings.Engine.Verifier.Verify(tok, appHost, f.clock.Now())
	if err != nil {
		t.Fatalf("the session does not verify for %s: %v", appHost, err)
	}
	if c.Issuer != issuer || c.Subject != bobID || c.User != bobID || c.Email != user ||
		!slices.Equal(c.Groups, []string{"engineering"}) || !slices.Equal(c.Audience, []string{appHost}) {
		t.Errorf("session claims: iss %q sub %q user %q email %q groups %v aud %v", c.Issuer, c.Subject, c.User, c.Email, c.Groups, c.Audience)
	}
	if got, want := c.ExpiresAt.Time, f.clock.Now().Add(14*time.Hour); !got.Equal(want) {
		t.Errorf("session exp %v, want now + cookie_expire = %v", got, want)
	}
	if c.Impersonating() {
		t.Error("a fresh session impersonates")
	}
	if _, err := f.settings.Engine.Verifier.Verify(tok, wikiHost, f.clock.Now()); err == nil {
		t.Error("the app session also verifies for the wiki: it must be scoped to its route host")
	}
	if d := f.decide(appHost, tok); !d.Allowed() {
		t.Errorf("Check refuses bob on app with the new session: %d %s", d.Status, d.Reason)
	}
	if d := f.decide("admin.example.test", tok); d.Allowed() {
		t.Error("the app session is accepted on admin")
	}
	// The identity-provider session stays on the authenticate host, in a
	// cookie of its own that never reaches a route host or an upstream.
	if b.Cookie("http://"+authHost+"/.pomerium/", cookieName+"_authenticate") == "" {
		t.Error("no authenticate session on the authenticate host")
	}
	if b.Cookie("http://"+appHost+"/.pomerium/", cookieName+"_authenticate") != "" {
		t.Error("the authenticate session reached the route host")
	}
	// The dashboard now shows bob.
	if r := b.get("http://" + appHost + "/.pomerium/"); r.StatusCode != 200 || !strings.Contains(r.body, user) {
		t.Errorf("dashboard after sign-in: %d\n%s", r.StatusCode, r.body)
	}
	if n := f.idp.Logins(); n != 1 {
		t.Errorf("provider login step reached %d times, want 1", n)
	}
}

func TestOIDCSingleSignOnAcrossHosts(t *testing.T) {
	f := newOIDCFixture(t)
	b := f.signedIn("bob", "http://"+appHost+"/")
	f.idp.AutoLogin("") // a second login would now need the form: it must not happen

	target := "http://" + wikiHost + "/docs"
	last, chain := f.signIn(b, wikiHost, target)
	if last.StatusCode != http.StatusFound || last.Header.Get("Location") != target {
		t.Fatalf("signing in to the wiki ended with %d %q after %v\n%s", last.StatusCode, last.Header.Get("Location"), chain, last.body)
	}
	for _, u := range chain {
		if strings.HasPrefix(u, f.idp.Issuer) {
			t.Errorf("the second host went to the provider: %s", u)
		}
	}
	if n := f.idp.Logins(); n != 1 {
		t.Errorf("provider login step reached %d times, want 1 (single sign-on)", n)
	}
	wiki := b.Cookie("http://"+wikiHost+"/", cookieName)
	c, err := f.settings.Engine.Verifier.Verify(wiki, wikiHost, f.clock.Now())
	if err != nil || !slices.Equal(c.Audience, []string{wikiHost}) || c.Email != user {
		t.Fatalf("wiki session: %v %+v", err, c)
	}
	if d := f.decide(wikiHost, wiki); !d.Allowed() {
		t.Errorf("Check refuses bob on the wiki: %s", d.Reason)
	}
	app := b.Cookie("http://"+appHost+"/", cookieName)
	if app == "" || app == wiki {
		t.Error("each route host must have its own session")
	}
	if f.idp.Refreshes() != 0 {
		t.Errorf("a fresh identity was refreshed %d times", f.idp.Refreshes())
	}
}

// An expired route session while the authenticate session lives: the
// sign-in dance gives a new one without the provider's login, re-reading the
// identity with the refresh token when it is stale.
func TestOIDCAutomaticRefresh(t *testing.T) {
	f := newOIDCFixture(t)
	b := f.signedIn("bob", "http://"+appHost+"/")
	f.idp.AutoLogin("")
	f.idp.SetGroups("bob", []string{"engineering", "support"})

	f.clock.Advance(20 * time.Minute)
	// Replace the route session by an expired one, as a browser would still send it.
	expired := f.claims(user, "engineering")
	expired.Audience = []string{appHost}
	expired.ExpiresAt = numeric(f.clock.Now().Add(-time.Hour))
	u, _ := url.Parse("http://" + appHost + "/")
	b.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName, Value: f.mint(expired), Path: "/"}})
	if d := f.decide(appHost, b.Cookie(u.String(), cookieName)); d.Status != decision.StatusSignIn {
		t.Fatalf("Check answers %d for an expired session, want the sign-in redirect", d.Status)
	}

	target := "http://" + appHost + "/again"
	last, chain := f.signIn(b, appHost, target)
	if last.Header.Get("Location") != target {
		t.Fatalf("refresh dance ended with %d %q after %v\n%s", last.StatusCode, last.Header.Get("Location"), chain, last.body)
	}
	if f.idp.Logins() != 1 || f.idp.Refreshes() != 1 {
		t.Errorf("logins %d (want 1), refresh grants %d (want 1)", f.idp.Logins(), f.idp.Refreshes())
	}
	c := f.verify(b.Cookie(u.String(), cookieName))
	if !slices.Equal(c.Groups, []string{"engineering", "support"}) {
		t.Errorf("groups after refresh %v: the identity was not re-read", c.Groups)
	}
}

func TestOIDCRefreshResetsImpersonation(t *testing.T) {
	f := newOIDCFixture(t)
	dash := "http://" + appHost + "/.pomerium/"
	b := f.signedIn("alice", dash)
	f.idp.AutoLogin("")

	r := b.do(http.MethodPost, "http://"+appHost+"/.pomerium/impersonate", form("_csrf", b.csrf(dash),
		"email", user, "groups", "engineering", "access", "read_only", "reason", "ticket 42"))
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("impersonate: %d\n%s", r.StatusCode, r.body)
	}
	if c := f.verify(b.Cookie(dash, cookieName)); c.ImpersonateEmail != user {
		t.Fatalf("not impersonating after the form: %+v", c)
	}
	f.idp.SetGroups("alice", []string{"admins", "security"})

	page := b.get(dash)
	if !strings.Contains(page.body, `action="/.pomerium/refresh"`) {
		t.Fatalf("the dashboard offers no refresh:\n%s", page.body)
	}
	token := htmlUnescape(csrfField.FindStringSubmatch(page.body)[1])
	r = b.do(http.MethodPost, "http://"+appHost+"/.pomerium/refresh", form("_csrf", token))
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("refresh: %d\n%s", r.StatusCode, r.body)
	}
	last, chain := b.follow(r, func(u *url.URL) bool { return u.String() == dash })
	if last.Header.Get("Location") != dash {
		t.Fatalf("refresh ended with %d %q after %v\n%s", last.StatusCode, last.Header.Get("Location"), chain, last.body)
	}
	c := f.verify(b.Cookie(dash, cookieName))
	if c.Impersonating() || c.ImpersonateReason != "" || c.ImpersonateExp != nil {
		t.Errorf("impersonation survived the refresh: %+v", c)
	}
	if c.Email != admin || !slices.Equal(c.Groups, []string{"admins", "security"}) {
		t.Errorf("refreshed identity %s %v", c.Email, c.Groups)
	}
	if f.idp.Refreshes() != 1 || f.idp.Logins() != 1 {
		t.Errorf("refresh grants %d (want 1), logins %d (want 1)", f.idp.Refreshes(), f.idp.Logins())
	}
	if n := len(f.audit("impersonation_stopped")); n != 1 {
		t.Errorf("%d impersonation_stopped audit entries, want 1", n)
	}
	// A refresh without the CSRF token is refused.
	if r := b.do(http.MethodPost, "http://"+appHost+"/.pomerium/refresh", url.Values{}); r.StatusCode != http.StatusForbidden {
		t.Errorf("refresh without CSRF: %d", r.StatusCode)
	}
}

// A refresh token the provider no longer honours sends the browser to sign
// in again, rather than failing.
func TestOIDCRevokedRefreshTokenSignsInAgain(t *testing.T) {
	f := newOIDCFixture(t)
	b := f.signedIn("bob", "http://"+appHost+"/")
	f.idp.RevokeRefreshTokens()
	f.clock.Advance(10 * time.Minute)
	target := "http://" + wikiHost + "/"
	last, _ := f.signIn(b, wikiHost, target)
	if last.Header.Get("Location") != target {
		t.Fatalf("ended with %d %q\n%s", last.StatusCode, last.Header.Get("Location"), last.body)
	}
	if f.idp.Logins() != 2 {
		t.Errorf("logins %d, want 2: a refused refresh signs in at the provider again", f.idp.Logins())
	}
}

// refusedPage checks a clear error page: the status, the message, the
// request id on the page and in the header, and no stack.
func refusedPage(t *testing.T, r response, status int, want string) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("status %d, want %d\n%s", r.StatusCode, status, r.body)
	}
	if loc := r.Header.Get("Location"); loc != "" {
		t.Errorf("a refusal redirects to %s", loc)
	}
	if !strings.Contains(r.body, want) {
		t.Errorf("the page lacks %q:\n%s", want, r.body)
	}
	id := r.Header.Get("X-Request-Id")
	if id == "" || !strings.Contains(r.body, id) {
		t.Errorf("the page does not show the request id %q", id)
	}
	for _, bad := range []string{"goroutine", "panic", ".go:"} {
		if strings.Contains(r.body, bad) {
			t.Errorf("the page shows %q", bad)
		}
	}
}

func TestOIDCOpenRedirectRefused(t *testing.T) {
	f := newOIDCFixture(t)
	f.idp.AutoLogin("bob")
	for _, host := range []string{appHost, authHost} {
		for _, target := range []string{
			"//evil.example.com/",
			"https://evil.example.com/",
			"javascript:alert(1)",
			"https://app.example.test@evil.example.com/",
			"/\\evil.example.com",
			"http://evil.example.com\\@app.example.test/",
			"https:evil.example.com",
			"http://app.example.test.evil.example.com/",
			"data:text/html,hi",
			"ftp://app.example.test/",
			" //evil.example.com",
			"http://app%2eexample%2etest/",
			// Another port or scheme of a route host or of the authenticate
			// host: someone else's server, maybe.
			"http://app.example.test:9000/",
			"http://app.example.test:8080/",
			"https://app.example.test/",
			"http://wiki.example.test:1234/docs",
			"http://authenticate.example.test:9000/.pomerium/",
		} {
			b := f.browser()
			r := b.get(signInURL(host, target))
			refusedPage(t, r, http.StatusBadRequest, "is not allowed")
		}
	}
	if f.idp.Logins() != 0 {
		t.Error("a refused target reached the provider")
	}
	// A page served over https does not send the browser to http.
	b := f.browser()
	r := b.get(signInURL(authHost, "http://"+appHost+"/"), "X-Forwarded-Proto", "https")
	refusedPage(t, r, http.StatusBadRequest, "is not allowed")
}

// dance runs a sign-in on the app until the provider sends the browser back
// to the authenticate host's callback, which is returned, not visited.
func (f *oidcFixture) danceToCallback(b *oidcBrowser) *url.URL {
	f.t.Helper()
	var cb *url.URL
	last, chain := b.follow(b.get(signInURL(appHost, "http://"+appHost+"/")), func(u *url.URL) bool {
		if u.Host == authHost && u.Path == "/.pomerium/callback" {
			cb = u
			return true
		}
		return false
	})
	if cb == nil {
		f.t.Fatalf("never reached the callback: %v\n%d %s", chain, last.StatusCode, last.body)
	}
	return cb
}

func TestOIDCTamperedStateAndCode(t *testing.T) {
	f := newOIDCFixture(t)
	f.idp.AutoLogin("bob")

	t.Run("state", func(t *testing.T) {
		b := f.browser()
		cb := f.danceToCallback(b)
		q := cb.Query()
		state := q.Get("state")
		q.Set("state", state[:len(state)-2]+"xx")
		bad := *cb
		bad.RawQuery = q.Encode()
		refusedPage(t, b.get(bad.String()), http.StatusBadRequest, "state mismatch")
		// The flow is spent: the genuine answer cannot be used after that.
		refusedPage(t, b.get(cb.String()), http.StatusBadRequest, "state mismatch")
	})
	t.Run("code", func(t *testing.T) {
		b := f.browser()
		cb := f.danceToCallback(b)
		q := cb.Query()
		q.Set("code", q.Get("code")+"x")
		bad := *cb
		bad.RawQuery = q.Encode()
		refusedPage(t, b.get(bad.String()), http.StatusBadRequest, "refused this sign-in")
	})
	t.Run("replayed callback", func(t *testing.T) {
		b := f.browser()
		cb := f.danceToCallback(b)
		if r := b.get(cb.String()); r.StatusCode != http.StatusFound {
			t.Fatalf("genuine callback: %d\n%s", r.StatusCode, r.body)
		}
		refusedPage(t, b.get(cb.String()), http.StatusBadRequest, "state mismatch")
	})
	t.Run("another browser", func(t *testing.T) {
		cb := f.danceToCallback(f.browser())
		refusedPage(t, f.browser().get(cb.String()), http.StatusBadRequest, "state mismatch")
	})
	t.Run("expired flow", func(t *testing.T) {
		b := f.browser()
		cb := f.danceToCallback(b)
		f.clock.Advance(11 * time.Minute)
		refusedPage(t, b.get(cb.String()), http.StatusBadRequest, "state mismatch")
	})
	if n := len(f.logs.FilterMessage("sign-in refused").All()); n == 0 {
		t.Error("refusals are not logged")
	}
}

func TestOIDCConsentDenied(t *testing.T) {
	f := newOIDCFixture(t)
	f.idp.AutoDeny()
	b := f.browser()
	last, chain := b.follow(b.get(signInURL(appHost, "http://"+appHost+"/x")), nil)
	if !strings.Contains(chain[len(chain)-1], "error=access_denied") {
		t.Fatalf("the provider did not answer access_denied: %v", chain)
	}
	refusedPage(t, last, http.StatusForbidden, "access_denied")
	if !strings.Contains(last.body, "Try again") {
		t.Error("no way to try again")
	}
	if b.Cookie("http://"+appHost+"/", cookieName) != "" {
		t.Error("a denied sign-in set a session")
	}
}

// handoffURL runs the dance until the authenticate host hands off to the
// app, and returns that URL, not visited.
func (f *oidcFixture) handoffURL(b *oidcBrowser, target string) *url.URL {
	f.t.Helper()
	return f.handoffURLSeeing(b, target, func(*url.URL) {})
}

// handoffURLSeeing is handoffURL, calling see with every URL visited.
func (f *oidcFixture) handoffURLSeeing(b *oidcBrowser, target string, see func(*url.URL)) *url.URL {
	f.t.Helper()
	var h *url.URL
	last, chain := b.follow(b.get(signInURL(appHost, target)), func(u *url.URL) bool {
		see(u)
		if u.Query().Has("pomerium_handoff") {
			h = u
			return true
		}
		return false
	})
	if h == nil {
		f.t.Fatalf("no handoff: %v\n%d %s", chain, last.StatusCode, last.body)
	}
	return h
}

// bindingSecret is the value of the one binding cookie b holds for the app.
func bindingSecret(t *testing.T, b *oidcBrowser) string {
	t.Helper()
	u, _ := url.Parse("http://" + appHost + "/.pomerium/callback")
	var found []string
	for _, c := range b.Jar.Cookies(u) {
		if strings.HasPrefix(c.Name, cookieName+"_signin_") {
			found = append(found, c.Value)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d binding cookies, want 1", len(found))
	}
	return found[0]
}

// copySecretAs sets a binding cookie named as if secret were the binding
// sent to the authenticate host, holding secret: what a link's author
// choosing the binding value would arrange in their own browser.
func copySecretAs(b *oidcBrowser, secret string) {
	u, _ := url.Parse("http://" + appHost + "/")
	b.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName + "_signin_" + secret[:12], Value: secret, Path: "/"}})
}

// copyBinding gives to a fresh browser the binding cookie b holds for host.
func copyBinding(from, to *oidcBrowser, host string) {
	u, _ := url.Parse("http://" + host + "/.pomerium/callback")
	src, _ := url.Parse("http://" + appHost + "/.pomerium/callback")
	for _, c := range from.Jar.Cookies(src) {
		if strings.HasPrefix(c.Name, cookieName+"_signin_") {
			to.Jar.SetCookies(u, []*http.Cookie{{Name: c.Name, Value: c.Value, Path: "/"}})
		}
	}
}

func TestOIDCHandoff(t *testing.T) {
	f := newOIDCFixture(t)
	f.idp.AutoLogin("bob")
	target := "http://" + appHost + "/"

	t.Run("single use", func(t *testing.T) {
		b := f.browser()
		h := f.handoffURL(b, target)
		if strings.Contains(h.RawQuery, user) || strings.Contains(h.RawQuery, "engineering") {
			t.Errorf("the handoff shows the identity in the URL: %s", h)
		}
		// A copy of the binding does not make it reusable: first use wins.
		thief := f.browser()
		copyBinding(b, thief, appHost)
		if r := b.get(h.String()); r.StatusCode != http.StatusFound || r.Header.Get("Location") != target {
			t.Fatalf("genuine handoff: %d %q\n%s", r.StatusCode, r.Header.Get("Location"), r.body)
		}
		refusedPage(t, thief.get(h.String()), http.StatusBadRequest, "already used")
		if thief.Cookie(target, cookieName) != "" {
			t.Error("a replayed handoff set a session")
		}
	})
	t.Run("spent by a browser that did not start the sign-in", func(t *testing.T) {
		b := f.browser()
		h := f.handoffURL(b, target)
		// Another browser, without the binding cookie: login CSRF refused...
		refusedPage(t, f.browser().get(h.String()), http.StatusBadRequest, "did not start in this browser")
		// ...and the handoff is spent: whoever got it first, nobody uses it after.
		refusedPage(t, b.get(h.String()), http.StatusBadRequest, "already used")
		if b.Cookie(target, cookieName) != "" {
			t.Error("a handoff refused once still signed in")
		}
	})
	t.Run("the binding secret never leaves the browser that holds it", func(t *testing.T) {
		b := f.browser()
		var toAuth *url.URL
		f.handoffURLSeeing(b, target, func(u *url.URL) {
			if u.Host == authHost && u.Path == "/.pomerium/sign_in" {
				toAuth = u
			}
		})
		secret := bindingSecret(t, b)
		if toAuth == nil || toAuth.Query().Get("pomerium_signin") == "" {
			t.Fatalf("no binding sent to the authenticate host: %v", toAuth)
		}
		if strings.Contains(toAuth.String(), secret) {
			t.Error("the binding secret travels in the URL to the authenticate host")
		}
	})
	t.Run("a link carrying someone else's binding signs nobody in", func(t *testing.T) {
		// The attacker starts a sign-in in their own browser and takes the
		// link to the authenticate host, with their binding, to the victim.
		attacker := f.browser()
		first := attacker.get(signInURL(appHost, target))
		crafted := first.Header.Get("Location")
		if !strings.Contains(crafted, "pomerium_signin=") {
			t.Fatalf("the route host did not send a binding: %q", crafted)
		}
		victim := f.browser()
		f.signIn(victim, authHost, "http://"+authHost+"/.pomerium/") // signed in at the authenticate host
		var h *url.URL
		victim.follow(victim.get(crafted), func(u *url.URL) bool {
			if u.Query().Has("pomerium_handoff") {
				h = u
				return false // the victim's browser follows it at once
			}
			return false
		})
		if h == nil {
			t.Fatal("no handoff for the victim")
		}
		if victim.Cookie(target, cookieName) != "" {
			t.Error("the victim was signed in by a sign-in they did not start")
		}
		// The attacker holds the binding cookie, but the handoff is spent.
		refusedPage(t, attacker.get(h.String()), http.StatusBadRequest, "already used")
		if attacker.Cookie(target, cookieName) != "" {
			t.Error("the attacker redeemed the victim's handoff")
		}
	})
	t.Run("a binding value that is not the commitment of the cookie is refused", func(t *testing.T) {
		// The old design took the binding from the query as the cookie's
		// value: a link's author could choose it. Now the route host only
		// accepts a handoff carrying the commitment to its cookie's secret.
		attacker := f.browser()
		first := attacker.get(signInURL(appHost, target))
		secret := bindingSecret(t, attacker)
		loc, _ := url.Parse(first.Header.Get("Location"))
		q := loc.Query()
		q.Set("pomerium_signin", secret)
		loc.RawQuery = q.Encode()
		copySecretAs(attacker, secret) // a cookie named after the chosen value, holding it
		var h *url.URL
		attacker.follow(attacker.get(loc.String()), func(u *url.URL) bool {
			if u.Query().Has("pomerium_handoff") {
				h = u
				return true
			}
			return false
		})
		if h == nil {
			t.Fatal("no handoff")
		}
		refusedPage(t, attacker.get(h.String()), http.StatusBadRequest, "did not start in this browser")
	})
	t.Run("expired", func(t *testing.T) {
		b := f.browser()
		h := f.handoffURL(b, target)
		f.clock.Advance(61 * time.Second)
		refusedPage(t, b.get(h.String()), http.StatusBadRequest, "expired")
	})
	t.Run("tampered", func(t *testing.T) {
		b := f.browser()
		h := f.handoffURL(b, target)
		q := h.Query()
		v := []byte(q.Get("pomerium_handoff"))
		v[len(v)/2] ^= 1
		q.Set("pomerium_handoff", string(v))
		bad := *h
		bad.RawQuery = q.Encode()
		refusedPage(t, b.get(bad.String()), http.StatusBadRequest, "not valid")
	})
	t.Run("another port of the same host", func(t *testing.T) {
		b := f.browser()
		h := f.handoffURL(b, target)
		other := *h
		other.Host = appHost + ":9000"
		copyBinding(b, b, other.Host)
		refusedPage(t, b.get(other.String()), http.StatusBadRequest, "another site")
		if b.Cookie("http://"+other.Host+"/", cookieName) != "" {
			t.Error("a handoff for the app's public port signed in on another port")
		}
	})
	t.Run("another host", func(t *testing.T) {
		b := f.browser()
		h := f.handoffURL(b, target)
		copyBinding(b, b, wikiHost)
		other := *h
		other.Host = wikiHost
		refusedPage(t, b.get(other.String()), http.StatusBadRequest, "another site")
		if b.Cookie("http://"+wikiHost+"/", cookieName) != "" {
			t.Error("a handoff for the app signed in to the wiki")
		}
	})
}

func TestOIDCProviderUnreachable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + lis.Addr().String()
	lis.Close()
	f := newOIDCFixture(t, func(s *web.Settings) { s.IdpProviderURL = dead })
	b := f.browser()
	last, _ := b.follow(b.get(signInURL(appHost, "http://"+appHost+"/")), nil)
	refusedPage(t, last, http.StatusBadGateway, "could not be reached")
	if n := len(f.logs.FilterMessage("sign-in failed").All()); n != 1 {
		t.Errorf("%d error log entries, want 1", n)
	}
	// Scripts get JSON with the request id.
	r := b.get(signInURL(authHost, "/"), "Accept", "application/json")
	var j struct {
		Error     string `json:"error"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal([]byte(r.body), &j); err != nil || r.StatusCode != http.StatusBadGateway || j.RequestID == "" || !strings.Contains(j.Error, "could not be reached") {
		t.Errorf("JSON answer %d: %s", r.StatusCode, r.body)
	}
}

func TestOIDCSignOut(t *testing.T) {
	f := newOIDCFixture(t)
	appDash := "http://" + appHost + "/.pomerium/"
	b := f.signedIn("bob", appDash)

	// On the route host: the route session ends, the page does not sign in
	// again by itself and points at the authenticate host.
	r := b.do(http.MethodPost, "http://"+appHost+"/.pomerium/sign_out", form("_csrf", b.csrf(appDash)))
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d\n%s", r.StatusCode, r.body)
	}
	if b.Cookie(appDash, cookieName) != "" {
		t.Error("the route session survived sign-out")
	}
	page := b.get("http://" + appHost + r.Header.Get("Location"))
	if page.StatusCode != 200 || !strings.Contains(page.body, "You are signed out of "+appHost) ||
		!strings.Contains(page.body, "http://"+authHost+"/.pomerium/sign_in?signed_out=1") {
		t.Fatalf("signed-out page on the route host: %d\n%s", page.StatusCode, page.body)
	}

	// On the authenticate host: sign out everywhere ends the authenticate
	// session, then the provider's end-session endpoint is offered.
	everywhere := "http://" + authHost + "/.pomerium/sign_in?signed_out=1"
	page = b.get(everywhere)
	if !strings.Contains(page.body, "Sign out everywhere") || !strings.Contains(page.body, user) {
		t.Fatalf("authenticate host page:\n%s", page.body)
	}
	token := htmlUnescape(csrfField.FindStringSubmatch(page.body)[1])
	r = b.do(http.MethodPost, "http://"+authHost+"/.pomerium/sign_out", form("_csrf", token))
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out everywhere: %d\n%s", r.StatusCode, r.body)
	}
	if b.Cookie("http://"+authHost+"/.pomerium/", cookieName+"_authenticate") != "" {
		t.Error("the authenticate session survived sign-out on the authenticate host")
	}
	page = b.get(everywhere)
	want := f.idp.Issuer + "/end_session?client_id=" + clientID
	if !strings.Contains(page.body, `href="`+want+`"`) {
		t.Errorf("no end-session link %s:\n%s", want, page.body)
	}
	if r := b.get(want); r.StatusCode != http.StatusFound {
		t.Errorf("the provider's end session answered %d", r.StatusCode)
	}

	// Signing in again needs the provider's login again.
	f.signIn(b, appHost, appDash)
	if f.idp.Logins() != 2 {
		t.Errorf("logins %d, want 2", f.idp.Logins())
	}
}

// Without authenticate_service_url, each host signs in by itself.
func TestOIDCWithoutAuthenticateHost(t *testing.T) {
	f := newOIDCFixture(t, func(s *web.Settings) { s.AuthenticateServiceURL = "" })
	f.idp.AutoLogin("bob")
	b := f.browser()
	target := "http://" + appHost + "/"
	last, chain := f.signIn(b, appHost, target)
	if last.Header.Get("Location") != target {
		t.Fatalf("ended with %d %q after %v\n%s", last.StatusCode, last.Header.Get("Location"), chain, last.body)
	}
	for _, u := range chain {
		if strings.Contains(u, authHost) || strings.Contains(u, "pomerium_handoff") {
			t.Errorf("visited %s", u)
		}
	}
	if d := f.decide(appHost, b.Cookie(target, cookieName)); !d.Allowed() {
		t.Errorf("Check refuses the session: %s", d.Reason)
	}
}

func TestRefreshWithoutProvider(t *testing.T) {
	f := newFixture(t)
	b := f.signedIn(f.token(user, "engineering"))
	r := b.post(appHost, "/.pomerium/refresh", form("_csrf", b.csrf(appHost, "/.pomerium/")))
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(r.body, "no identity provider") {
		t.Errorf("refresh without a provider: %d\n%s", r.StatusCode, r.body)
	}
	if r := b.get(appHost, "/.pomerium/callback?code=x&state=y"); r.StatusCode != http.StatusNotFound {
		t.Errorf("callback without a provider: %d", r.StatusCode)
	}
}

// One user signing in over and over is slowed down; nobody else is.
func TestOIDCHandoffsBoundedPerUser(t *testing.T) {
	f := newOIDCFixture(t)
	target := "http://" + appHost + "/"
	bob := f.signedIn("bob", target)

	limited := func(b *oidcBrowser) (response, bool) {
		last, _ := b.follow(b.get(signInURL(appHost, target)), func(u *url.URL) bool { return u.Query().Has("pomerium_handoff") })
		return last, last.StatusCode == http.StatusTooManyRequests
	}
	var last response
	n := 1 // the sign-in above
	for ; n <= signin.HandoffsPerUserPerMinute; n++ {
		var hit bool
		if last, hit = limited(bob); hit {
			break
		}
	}
	if n != signin.HandoffsPerUserPerMinute {
		t.Fatalf("refused after %d handoffs, want %d", n, signin.HandoffsPerUserPerMinute)
	}
	refusedPage(t, last, http.StatusTooManyRequests, "too many times in the last minute")
	if last.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}

	t.Run("another user signs in meanwhile", func(t *testing.T) {
		f.idp.AutoLogin("alice")
		alice := f.browser()
		end, chain := f.signIn(alice, appHost, target)
		if end.StatusCode != http.StatusFound || end.Header.Get("Location") != target || alice.Cookie(target, cookieName) == "" {
			t.Fatalf("alice's sign-in ended with %d %q after %v\n%s", end.StatusCode, end.Header.Get("Location"), chain, end.body)
		}
	})
	t.Run("the same user signs in again a minute later", func(t *testing.T) {
		f.clock.Advance(time.Minute)
		if last, _ := limited(bob); last.StatusCode != http.StatusFound || !strings.Contains(last.Header.Get("Location"), "pomerium_handoff=") {
			t.Fatalf("no handoff a minute later: %d\n%s", last.StatusCode, last.body)
		}
	})
}

// With cookie_secure, the sign-in machinery's cookies are __Host- cookies:
// Secure, Path=/, no Domain (even with cookie_domain set), HttpOnly.
func TestOIDCCookiesAreHostCookiesWhenSecure(t *testing.T) {
	f := newOIDCFixture(t, func(s *web.Settings) {
		// Back to the https routes of testRoutes.
		pol, err := policy.Compile(testRoutes)
		if err != nil {
			t.Fatal(err)
		}
		s.Engine.Policy = pol
		s.AuthenticateServiceURL = "https://" + authHost
		s.CookieSecure, s.CookieDomain = true, "example.test"
	})
	b := f.browser()
	check := func(t *testing.T, r response, prefix string) {
		t.Helper()
		var found bool
		for _, c := range r.Cookies() {
			if !strings.HasPrefix(c.Name, prefix) {
				continue
			}
			found = true
			if !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" || c.SameSite != http.SameSiteLaxMode {
				t.Errorf("cookie %s: Secure %v HttpOnly %v Path %q Domain %q SameSite %v", c.Name, c.Secure, c.HttpOnly, c.Path, c.Domain, c.SameSite)
			}
		}
		if !found {
			t.Errorf("no cookie named %s… in %v", prefix, r.Header.Values("Set-Cookie"))
		}
	}
	// The browser reaches the pages over plain HTTP; TLS ends in front.
	first := b.get("http://"+appHost+"/.pomerium/sign_in?pomerium_redirect_uri="+url.QueryEscape("https://"+appHost+"/"), "X-Forwarded-Proto", "https")
	t.Run("the binding cookie on the route host", func(t *testing.T) {
		check(t, first, "__Host-"+cookieName+"_signin_")
	})
	loc, err := url.Parse(first.Header.Get("Location"))
	if err != nil || loc.Host != authHost {
		t.Fatalf("the route host sent the browser to %q", first.Header.Get("Location"))
	}
	loc.Scheme = "http"
	second := b.get(loc.String(), "X-Forwarded-Proto", "https")
	t.Run("the flow cookie on the authenticate host", func(t *testing.T) {
		check(t, second, "__Host-"+cookieName+"_oidc_")
	})
}

// readableJOSE is u without the value of a pomerium_handoff parameter that
// is a compact JWE (whose header alone is readable).
func readableJOSE(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	q := p.Query()
	if h := q.Get("pomerium_handoff"); strings.Count(h, ".") == 4 {
		q.Del("pomerium_handoff")
		p.RawQuery = q.Encode()
	}
	return p.String()
}
