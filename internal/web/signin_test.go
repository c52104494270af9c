package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/web"
)

func TestSignIn(t *testing.T) {
	f := newFixture(t, plainHTTPRoutes(t))

	t.Run("the sign-in page explains how to get a token and offers a paste form", func(t *testing.T) {
		r := f.browser().get(appHost, "/.pomerium/sign_in?pomerium_redirect_uri=%2Fdocs")
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status %d", r.StatusCode)
		}
		for _, want := range []string{"extauthz service-account", "-aud " + appHost, "-iss " + issuer, "pomerium-cli", `name="token"`, `name="_csrf"`, `name="pomerium_redirect_uri" value="/docs"`} {
			if !strings.Contains(r.body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
	})

	redirects := []struct {
		name string
		uri  string
		want string
	}{
		{name: "a relative path is followed", uri: "/app/page?x=1", want: "/app/page?x=1"},
		{name: "an absolute URL on this host is followed", uri: "http://" + appHost + "/reports", want: "http://" + appHost + "/reports"},
		{name: "no redirect goes to the dashboard", uri: "", want: "/.pomerium/"},
		{name: "a protocol-relative URL is refused", uri: "//evil.com", want: "/.pomerium/"},
		{name: "an absolute URL on another host is refused", uri: "https://evil.com", want: "/.pomerium/"},
		{name: "a backslash path is refused", uri: `/\evil.com`, want: "/.pomerium/"},
		{name: "a javascript URL is refused", uri: "javascript:alert(document.cookie)", want: "/.pomerium/"},
		{name: "a URL with credentials for this host is refused", uri: "http://" + appHost + "@evil.com/", want: "/.pomerium/"},
		{name: "a tab-smuggled protocol-relative URL is refused", uri: "/\t/evil.com", want: "/.pomerium/"},
		{name: "a scheme without slashes is refused", uri: "https:evil.com", want: "/.pomerium/"},
		{name: "this host on another port is refused", uri: "http://" + appHost + ":8443/", want: "/.pomerium/"},
	}
	for _, c := range redirects {
		t.Run("pasting a valid token sets the cookie: "+c.name, func(t *testing.T) {
			b := f.browser()
			csrf := b.csrf(appHost, "/.pomerium/sign_in")
			tok := f.token(user)
			r := b.post(appHost, "/.pomerium/sign_in", form("token", "  Pomerium "+tok+"\n", "pomerium_redirect_uri", c.uri, "_csrf", csrf))
			if r.StatusCode != http.StatusSeeOther {
				t.Fatalf("status %d: %s", r.StatusCode, r.body)
			}
			if loc := r.Header.Get("Location"); loc != c.want {
				t.Errorf("Location %q, want %q", loc, c.want)
			}
			if b.session(appHost) != tok {
				t.Error("the session cookie is not the pasted token")
			}
		})
	}

	t.Run("the redirect may come in the query string", func(t *testing.T) {
		b := f.browser()
		csrf := b.csrf(appHost, "/.pomerium/sign_in")
		r := b.post(appHost, "/.pomerium/sign_in?pomerium_redirect_uri="+url.QueryEscape("/x"), form("token", f.token(user), "_csrf", csrf))
		if r.Header.Get("Location") != "/x" {
			t.Errorf("Location %q", r.Header.Get("Location"))
		}
	})

	t.Run("the sign-in page never offers an unsafe redirect", func(t *testing.T) {
		r := f.browser().get(appHost, "/.pomerium/sign_in?pomerium_redirect_uri="+url.QueryEscape("//evil.com"))
		if strings.Contains(r.body, "evil.com") {
			t.Error("the page carries the unsafe redirect")
		}
	})

	invalid := []struct {
		name  string
		token func() string
		want  string
	}{
		{name: "an empty paste is refused", token: func() string { return " " }, want: "Paste a token"},
		{name: "garbage is refused", token: func() string { return "not a token" }, want: "malformed token"},
		{name: "an expired token is refused", token: func() string {
			c := f.claims(user)
			c.ExpiresAt = numeric(f.now.Add(-time.Hour))
			return f.mint(c)
		}, want: "token expired"},
		{name: "a token for another host is refused", token: func() string {
			c := f.claims(user)
			c.Audience = []string{"elsewhere.example.test"}
			return f.mint(c)
		}, want: "token audience does not include this host"},
		{name: "a token from another issuer is refused", token: func() string {
			c := f.claims(user)
			c.Issuer = "rogue.example"
			return f.mint(c)
		}, want: "token issuer is not accepted"},
	}
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			b := f.browser()
			csrf := b.csrf(appHost, "/.pomerium/sign_in")
			tok := c.token()
			r := b.post(appHost, "/.pomerium/sign_in", form("token", tok, "pomerium_redirect_uri", "/back", "_csrf", csrf))
			if r.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d", r.StatusCode)
			}
			if !strings.Contains(r.body, c.want) || !strings.Contains(r.body, `name="token"`) {
				t.Errorf("page lacks %q or the form", c.want)
			}
			if !strings.Contains(r.body, `name="pomerium_redirect_uri" value="/back"`) {
				t.Error("the redirect is lost on retry")
			}
			if len(tok) > 20 && strings.Contains(r.body, tok) {
				t.Error("the page repeats the token")
			}
			if b.session(appHost) != "" {
				t.Error("a cookie was set")
			}
		})
	}

	t.Run("pasting without the CSRF token is refused", func(t *testing.T) {
		b := f.browser()
		r := b.post(appHost, "/.pomerium/sign_in", form("token", f.token(user)))
		if r.StatusCode != http.StatusForbidden || b.session(appHost) != "" {
			t.Errorf("status %d", r.StatusCode)
		}
	})

	t.Run("the sign-in page says when the current session cannot be used", func(t *testing.T) {
		b := f.browser()
		c := f.claims(user)
		c.ExpiresAt = numeric(f.now.Add(-time.Hour))
		b.setSession(appHost, f.mint(c))
		r := b.get(appHost, "/.pomerium/sign_in")
		if !strings.Contains(r.body, "cannot be used here: token expired") {
			t.Error("no notice about the expired session")
		}
	})
}

func TestSessionCookieAttributes(t *testing.T) {
	f := newFixture(t, func(s *web.Settings) {
		s.CookieSecure = true
		s.CookieDomain = "example.test"
	})
	// Secure cookies do not travel over plain HTTP in a jar, so this test
	// carries the CSRF cookie by hand.
	b := f.browser()
	page := b.get(appHost, "/.pomerium/sign_in")
	var csrfCookie *http.Cookie
	for _, c := range page.Cookies() {
		if c.Name == "__Host-_pomerium_csrf" {
			csrfCookie = c
		}
	}
	if csrfCookie == nil {
		t.Fatal("no CSRF cookie")
	}
	token := htmlUnescape(csrfField.FindStringSubmatch(page.body)[1])
	session := f.claims(user)
	tok := f.mint(session)
	cookieHeader := csrfCookie.Name + "=" + csrfCookie.Value

	t.Run("signing in sets an HttpOnly, Secure, SameSite=Lax cookie on the configured domain until the token expires", func(t *testing.T) {
		r := b.post(appHost, "/.pomerium/sign_in", form("token", tok, "_csrf", token), "Cookie", cookieHeader)
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("status %d: %s", r.StatusCode, r.body)
		}
		c := findCookie(t, r.Cookies(), cookieName)
		if c.Value != tok || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Domain != "example.test" || c.Path != "/" {
			t.Errorf("cookie %+v", c)
		}
		if !c.Expires.Equal(session.ExpiresAt.Time) {
			t.Errorf("Expires %v, want %v", c.Expires, session.ExpiresAt.Time)
		}
	})

	t.Run("signing out clears the cookie on the same domain and path, and a host-only copy", func(t *testing.T) {
		r := b.post(appHost, "/.pomerium/sign_out", form("_csrf", token), "Cookie", cookieHeader+"; "+cookieName+"="+tok)
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("status %d: %s", r.StatusCode, r.body)
		}
		var domains []string
		for _, c := range r.Cookies() {
			if c.Name != cookieName {
				continue
			}
			if c.MaxAge >= 0 || c.Value != "" || c.Path != "/" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode {
				t.Errorf("clearing cookie %+v", c)
			}
			domains = append(domains, c.Domain)
		}
		if strings.Join(domains, ",") != "example.test," {
			t.Errorf("cleared on domains %q", domains)
		}
	})

	t.Run("impersonating re-issues the cookie with the same attributes", func(t *testing.T) {
		admTok := f.token(admin)
		r := b.post(appHost, "/.pomerium/impersonate", form("email", user, "reason", "r", "_csrf", token), "Cookie", cookieHeader+"; "+cookieName+"="+admTok)
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("status %d: %s", r.StatusCode, r.body)
		}
		c := findCookie(t, r.Cookies(), cookieName)
		if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Domain != "example.test" || c.Path != "/" || !c.Expires.Equal(f.now.Add(time.Hour)) {
			t.Errorf("cookie %+v", c)
		}
	})
}

func findCookie(t *testing.T, cs []*http.Cookie, name string) *http.Cookie {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s cookie set", name)
	return nil
}

func TestSignOut(t *testing.T) {
	f := newFixture(t)
	b := f.signedIn(f.token(user))

	t.Run("signing out without the CSRF token is refused and keeps the session", func(t *testing.T) {
		r := b.post(appHost, "/.pomerium/sign_out", url.Values{})
		if r.StatusCode != http.StatusForbidden || b.session(appHost) == "" {
			t.Errorf("status %d", r.StatusCode)
		}
	})

	t.Run("signing out clears the session and lands on the signed-out sign-in page", func(t *testing.T) {
		r := b.post(appHost, "/.pomerium/sign_out", form("_csrf", b.csrf(appHost, "/.pomerium/")))
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.pomerium/sign_in?signed_out=1" {
			t.Fatalf("status %d Location %q", r.StatusCode, r.Header.Get("Location"))
		}
		if b.session(appHost) != "" {
			t.Error("the session cookie is still there")
		}
		if p := b.get(appHost, "/.pomerium/sign_in?signed_out=1"); !strings.Contains(p.body, "You are signed out.") {
			t.Error("no signed-out notice")
		}
		if p := b.get(appHost, "/.pomerium/"); p.StatusCode != http.StatusFound {
			t.Errorf("dashboard after sign-out: status %d", p.StatusCode)
		}
	})
}
