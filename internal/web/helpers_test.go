package web_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/impersonation"
	"github.com/extauthz/extauthz/internal/policy"
	"github.com/extauthz/extauthz/internal/store"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/internal/web"
)

var testSecret = base64.StdEncoding.EncodeToString([]byte("web test shared secret, 32 bytes+"))

const (
	appHost    = "app.example.test"
	otherHost  = "other.example.test"
	issuer     = "authenticate.example.test"
	admin      = "alice@corp.example"
	user       = "bob@corp.example"
	cookieName = "_pomerium"
)

var testRoutes = []policy.RouteSpec{
	{Name: "app", From: "https://app.example.test", AllowedGroups: []string{"engineering"}},
	{Name: "admin", From: "https://admin.example.test", AllowedUsers: []string{admin}},
	{Name: "public", From: "https://public.example.test", AllowPublicUnauthenticatedAccess: true},
	{Name: "wiki", From: "https://wiki.example.test", AllowAnyAuthenticatedUser: true},
	{Name: "docs", From: "https://docs.example.test", AllowedDomains: []string{"corp.example"}},
	{Name: "support", From: "https://support.example.test", AllowedGroups: []string{"support"}, AllowedUsers: []string{"carol@partner.example"}},
}

type fixture struct {
	t        *testing.T
	srv      *httptest.Server
	pages    *web.Server
	settings *web.Settings
	logs     *observer.ObservedLogs
	clock    *testkit.Clock
	now      time.Time
	// store is the pages' store (memory), which a test can take down.
	store *flakyStore
}

// flakyStore is a memory store that a test can make unavailable, as Redis
// stopping makes the real one: every write and handoff call fails with
// store.ErrUnavailable, and the revocations already seen stay in force.
type flakyStore struct {
	*store.Store
	down atomic.Bool
}

func (s *flakyStore) fail() error {
	if s.down.Load() {
		return fmt.Errorf("test: %w", store.ErrUnavailable)
	}
	return nil
}

func (s *flakyStore) Issue(ctx context.Context, user string) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.Issue(ctx, user)
}

func (s *flakyStore) Use(ctx context.Context, id string, exp time.Time) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.Use(ctx, id, exp)
}

func (s *flakyStore) RevokeSID(ctx context.Context, sid string) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.RevokeSID(ctx, sid)
}

func (s *flakyStore) RevokeUser(ctx context.Context, email string) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.RevokeUser(ctx, email)
}

func (s *flakyStore) EndAuthSessions(ctx context.Context, email string) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.EndAuthSessions(ctx, email)
}

// newFixture serves the pages with a real verifier, rules and policy. The
// clock starts at the real time (cookie jars expire cookies by it).
func newFixture(t *testing.T, edit ...func(*web.Settings)) *fixture {
	t.Helper()
	pol, err := policy.Compile(testRoutes)
	if err != nil {
		t.Fatal(err)
	}
	v, err := identity.NewVerifier(identity.VerifierOptions{Secrets: []string{testSecret}, Issuer: issuer, Leeway: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := testkit.SigningKey(t)
	jwks, err := identity.MarshalJWKS(key)
	if err != nil {
		t.Fatal(err)
	}
	c := testkit.NewClock(time.Now().Truncate(time.Second))
	st := &flakyStore{Store: store.New(store.NewMemory(c.Now), store.Options{Now: c.Now})}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	set := &web.Settings{
		Engine: &decision.Engine{
			Policy:      pol,
			Verifier:    v,
			Rules:       impersonation.NewRules([]string{admin, "dave@corp.example"}, []string{"security@corp.example", "security-team"}, identity.AccessReadWrite, time.Minute),
			CookieName:  cookieName,
			Revocations: st,
		},
		Secret:                     testSecret,
		CookieName:                 cookieName,
		CookieExpire:               14 * time.Hour,
		Issuer:                     issuer,
		JWKS:                       jwks,
		ImpersonationMaxDuration:   30 * time.Minute,
		ImpersonationRequireReason: true,
	}
	for _, e := range edit {
		e(set)
	}
	core, logs := observer.New(zap.DebugLevel)
	pages := web.New(set, zap.New(core))
	pages.SetClock(c.Now)
	pages.SetStore(st)
	srv := httptest.NewServer(pages)
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, pages: pages, settings: set, logs: logs, clock: c, now: c.Now(), store: st}
}

// claims are a valid session for appHost and otherHost, valid for an hour.
func (f *fixture) claims(email string, groups ...string) *identity.Claims {
	c := &identity.Claims{Email: email, User: strings.Split(email, "@")[0], Groups: groups}
	c.Issuer = issuer
	c.Subject = "sub-" + c.User
	c.Audience = []string{appHost, otherHost}
	c.IssuedAt = numeric(f.now.Add(-time.Minute))
	c.NotBefore = numeric(f.now.Add(-time.Minute))
	c.ExpiresAt = numeric(f.now.Add(time.Hour))
	return c
}

func (f *fixture) mint(c *identity.Claims) string {
	f.t.Helper()
	tok, err := identity.Mint(c, testSecret)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

func (f *fixture) token(email string, groups ...string) string {
	return f.mint(f.claims(email, groups...))
}

// verify checks a token the way Check would, at the fixture's clock.
func (f *fixture) verify(tok string) *identity.Claims {
	f.t.Helper()
	c, err := f.settings.Engine.Verifier.Verify(tok, appHost, f.clock.Now())
	if err != nil {
		f.t.Fatalf("token does not verify: %v", err)
	}
	return c
}

// browser is an HTTP client with a cookie jar that reaches the test server
// under any host name, and does not follow redirects.
type browser struct {
	f      *fixture
	Jar    *cookiejar.Jar
	Client *http.Client
	accept string
}

// adminBrowser is a fresh fixture and a browser signed in to appHost as the
// administrator.
func adminBrowser(t *testing.T) (*fixture, *browser) {
	t.Helper()
	f := newFixture(t)
	b := f.signedIn(f.token(admin))
	return f, b
}

func (f *fixture) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.browserWith(jar)
}

// signedIn is a new browser holding the session token tok on appHost.
func (f *fixture) signedIn(tok string) *browser {
	b := f.browser()
	b.setSession(appHost, tok)
	return b
}

// via is the same browser (same cookies) talking to another server.
func (b *browser) via(g *fixture) *browser { return g.browserWith(b.Jar) }

func (f *fixture) browserWith(jar *cookiejar.Jar) *browser {
	addr := f.srv.Listener.Addr().String()
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	f.t.Cleanup(tr.CloseIdleConnections)
	return &browser{f: f, Jar: jar, accept: "text/html,application/xhtml+xml,*/*;q=0.8", Client: &http.Client{
		Jar:       jar,
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

func pageURL(host, path string) string { return "http://" + host + path }

// setSession puts a session token in the jar, as a browser holding it would.
func (b *browser) setSession(host, tok string) {
	u, _ := url.Parse(pageURL(host, "/"))
	b.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName, Value: tok, Path: "/"}})
}

// session returns the session cookie the browser holds for host.
func (b *browser) session(host string) string {
	u, _ := url.Parse(pageURL(host, "/"))
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == cookieName {
			return c.Value
		}
	}
	return ""
}

type response struct {
	*http.Response
	body string
}

func (b *browser) do(req *http.Request) response {
	b.f.t.Helper()
	if req.Header.Get("Accept") == "" && b.accept != "" {
		req.Header.Set("Accept", b.accept)
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		b.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.f.t.Fatal(err)
	}
	return response{resp, string(body)}
}

func (b *browser) get(host, path string, header ...string) response {
	b.f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, pageURL(host, path), nil)
	if err != nil {
		b.f.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

func (b *browser) post(host, path string, form url.Values, header ...string) response {
	b.f.t.Helper()
	return b.postRaw(host, path, form.Encode(), header...)
}

func (b *browser) postRaw(host, path, body string, header ...string) response {
	b.f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, pageURL(host, path), strings.NewReader(body))
	if err != nil {
		b.f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

var csrfField = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// csrf loads a page and scrapes the CSRF token from its form, as a browser
// submitting that form would send it.
func (b *browser) csrf(host, path string) string {
	b.f.t.Helper()
	r := b.get(host, path)
	m := csrfField.FindStringSubmatch(r.body)
	if m == nil {
		b.f.t.Fatalf("no CSRF field on %s (status %d):\n%s", path, r.StatusCode, r.body)
	}
	return htmlUnescape(m[1])
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&#43;", "+", "&#x2b;", "+", "&#x2f;", "/", "&#47;", "/", "&#61;", "=", "&#x3d;", "=", "&amp;", "&").Replace(s)
}

// impersonate submits the "sign in as" form with a scraped CSRF token.
// mustImpersonate starts an impersonation that must succeed (a 303 back).
func (b *browser) mustImpersonate(host string, fields url.Values) {
	b.f.t.Helper()
	if r := b.impersonate(host, fields); r.StatusCode != http.StatusSeeOther {
		b.f.t.Fatalf("impersonating: status %d: %s", r.StatusCode, r.body)
	}
}

func (b *browser) impersonate(host string, fields url.Values) response {
	b.f.t.Helper()
	fields.Set("_csrf", b.csrf(host, "/.pomerium/"))
	return b.post(host, "/.pomerium/impersonate", fields)
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

func decodeDashboard(t *testing.T, r response) web.DashboardJSON {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body:\n%s", ct, r.body)
	}
	var d web.DashboardJSON
	if err := json.Unmarshal([]byte(r.body), &d); err != nil {
		t.Fatalf("decoding dashboard JSON: %v\n%s", err, r.body)
	}
	return d
}

// expected computes the access table with Route.Evaluate directly.
func expected(t *testing.T, f *fixture, id identity.Identity) []web.RouteRow {
	t.Helper()
	var rows []web.RouteRow
	for _, rt := range f.settings.Engine.Policy.Routes {
		v := rt.Evaluate(id)
		rows = append(rows, web.RouteRow{Route: rt.Name, From: rt.From, Allowed: v.Allowed, Reason: v.Reason})
	}
	return rows
}

// reachable is the part of expected a non-administrator is shown: the
// allowed rows only.
func reachable(t *testing.T, f *fixture, id identity.Identity) []web.RouteRow {
	t.Helper()
	rows := []web.RouteRow{}
	for _, r := range expected(t, f, id) {
		if r.Allowed {
			rows = append(rows, r)
		}
	}
	return rows
}

// auditEntries returns the audit log entries with message event.
func (f *fixture) audit(event string) []observer.LoggedEntry {
	return f.logs.FilterLoggerName("audit").FilterMessage(event).All()
}

func numeric(t time.Time) *jwt.NumericDate { return jwt.NewNumericDate(t) }
