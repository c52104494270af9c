package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/web"
)

func TestImpersonationStart(t *testing.T) {
	cases := []struct {
		name       string
		fields     url.Values
		wantEmail  string
		wantGroups []string
		wantAccess string
		wantReason string
	}{
		{
			name:      "an administrator signs in as a user, read-only by default",
			fields:    form("email", user, "reason", "ticket 42"),
			wantEmail: user, wantAccess: identity.AccessReadOnly, wantReason: "ticket 42",
		},
		{
			name:      "groups are trimmed and empties dropped",
			fields:    form("email", " Bob@Corp.Example ", "groups", " engineering, ,support,, ", "access", "read_only", "reason", "  checking the report  "),
			wantEmail: user, wantGroups: []string{"engineering", "support"}, wantAccess: identity.AccessReadOnly, wantReason: "checking the report",
		},
		{
			name:       "groups alone can be impersonated with read-write access",
			fields:     form("groups", "engineering", "access", "read_write", "reason", "on-call"),
			wantGroups: []string{"engineering"}, wantAccess: identity.AccessReadWrite, wantReason: "on-call",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			b := f.browser()
			session := f.claims(admin, "admins")
			before := f.mint(session)
			b.setSession(appHost, before)

			r := b.impersonate(appHost, c.fields)
			if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.pomerium/" {
				t.Fatalf("status %d Location %q: %s", r.StatusCode, r.Header.Get("Location"), r.body)
			}
			after := b.session(appHost)
			if after == before || after == "" {
				t.Fatal("the session cookie was not re-issued")
			}
			got := f.verify(after)
			if got.ImpersonateEmail != c.wantEmail || !reflect.DeepEqual(got.ImpersonateGroups, c.wantGroups) ||
				got.ImpersonateAccess != c.wantAccess || got.ImpersonateReason != c.wantReason {
				t.Errorf("impersonation claims %q %v %q %q", got.ImpersonateEmail, got.ImpersonateGroups, got.ImpersonateAccess, got.ImpersonateReason)
			}
			// The same session otherwise: same expiry and every other claim.
			if !got.ExpiresAt.Equal(session.ExpiresAt.Time) || !got.IssuedAt.Equal(session.IssuedAt.Time) || !got.NotBefore.Equal(session.NotBefore.Time) {
				t.Errorf("times changed: exp %v iat %v nbf %v", got.ExpiresAt, got.IssuedAt, got.NotBefore)
			}
			if got.Issuer != session.Issuer || got.Subject != session.Subject || !reflect.DeepEqual(got.Audience, session.Audience) ||
				got.Email != admin || got.User != "alice" || !reflect.DeepEqual(got.Groups, []string{"admins"}) {
				t.Errorf("claims changed: %+v", got)
			}
			if got.ID == "" || got.ID == f.verify(before).ID {
				t.Errorf("jti %q is not new", got.ID)
			}
			if got.ImpersonateExp == nil {
				t.Fatal("no impersonate_exp")
			}
			if end := got.ImpersonateExp.Time; end.After(f.now.Add(30*time.Minute)) || end.After(got.ExpiresAt.Time) || !end.After(f.now) {
				t.Errorf("impersonate_exp %v: want after now, at most now+30m and at most exp", end)
			}
			if e := f.audit("impersonation_started"); len(e) != 1 {
				t.Errorf("want one impersonation_started entry, got %d", len(e))
			}
		})
	}

	t.Run("the impersonation ends with the session when the session ends first", func(t *testing.T) {
		f := newFixture(t)
		b := f.browser()
		short := f.claims(admin)
		short.ExpiresAt = numeric(f.now.Add(10 * time.Minute))
		b.setSession(appHost, f.mint(short))
		r := b.impersonate(appHost, form("email", user, "reason", "r"))
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("status %d: %s", r.StatusCode, r.body)
		}
		got := f.verify(b.session(appHost))
		if !got.ImpersonateExp.Equal(short.ExpiresAt.Time) || !got.ExpiresAt.Equal(short.ExpiresAt.Time) {
			t.Errorf("impersonate_exp %v exp %v, want both %v", got.ImpersonateExp, got.ExpiresAt, short.ExpiresAt)
		}
	})

	t.Run("a session from an Authorization header still gets the impersonation as a cookie", func(t *testing.T) {
		f := newFixture(t)
		b := f.browser()
		tok := f.token(admin)
		page := b.get(appHost, "/.pomerium/", "Authorization", "Pomerium "+tok)
		csrf := htmlUnescape(csrfField.FindStringSubmatch(page.body)[1])
		fields := form("email", user, "reason", "r", "_csrf", csrf)
		r := b.post(appHost, "/.pomerium/impersonate", fields, "Authorization", "Pomerium "+tok)
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("status %d: %s", r.StatusCode, r.body)
		}
		if got := f.verify(b.session(appHost)); got.ImpersonateEmail != user {
			t.Errorf("cookie impersonates %q", got.ImpersonateEmail)
		}
	})

	t.Run("the page limit defaults to 30 minutes when none is configured", func(t *testing.T) {
		f := newFixture(t, func(s *web.Settings) { s.ImpersonationMaxDuration = 0 })
		b := f.signedIn(f.token(admin))
		b.impersonate(appHost, form("email", user, "reason", "r"))
		if got := f.verify(b.session(appHost)); !got.ImpersonateExp.Equal(f.now.Add(30 * time.Minute)) {
			t.Errorf("impersonate_exp %v", got.ImpersonateExp)
		}
	})
}

func TestImpersonationRefused(t *testing.T) {
	cases := []struct {
		name       string
		actor      string
		fields     url.Values
		wantStatus int
		wantText   string
	}{
		{name: "a non-administrator is refused", actor: user, fields: form("email", "carol@corp.example", "reason", "r"), wantStatus: http.StatusForbidden, wantText: "Only administrators"},
		{name: "a protected email is refused", actor: admin, fields: form("email", "security@corp.example", "reason", "r"), wantStatus: http.StatusForbidden, wantText: "impersonation target security@corp.example is protected"},
		{name: "a protected group is refused whatever its case", actor: admin, fields: form("groups", "eng, Security-Team", "reason", "r"), wantStatus: http.StatusForbidden, wantText: "impersonation target group Security-Team is protected"},
		{name: "another administrator is refused", actor: admin, fields: form("email", "dave@corp.example", "reason", "r"), wantStatus: http.StatusForbidden, wantText: "administrators cannot be impersonated"},
		{name: "an administrator cannot impersonate themselves", actor: admin, fields: form("email", admin, "reason", "r"), wantStatus: http.StatusForbidden, wantText: "administrators cannot be impersonated"},
		{name: "a missing reason is refused", actor: admin, fields: form("email", user, "reason", "   "), wantStatus: http.StatusBadRequest, wantText: "A reason is required"},
		{name: "a reason over 500 characters is refused", actor: admin, fields: form("email", user, "reason", strings.Repeat("é", 501)), wantStatus: http.StatusBadRequest, wantText: "at most 500 characters"},
		{name: "a reason with control characters is refused", actor: admin, fields: form("email", user, "reason", "ok\x1b[31m"), wantStatus: http.StatusBadRequest, wantText: "control characters"},
		{name: "an email that is not an email is refused", actor: admin, fields: form("email", "bob at corp", "reason", "r"), wantStatus: http.StatusBadRequest, wantText: "valid email address"},
		{name: "a full-width look-alike of a protected user is refused on the page", actor: admin, fields: form("email", "ｓｅｃｕｒｉｔｙ@corp.example", "reason", "r"), wantStatus: http.StatusBadRequest, wantText: "plain email address in ASCII"},
		{name: "an unknown access level is refused", actor: admin, fields: form("email", user, "access", "admin", "reason", "r"), wantStatus: http.StatusBadRequest, wantText: "Access must be"},
		{name: "too many groups are refused", actor: admin, fields: form("groups", strings.Repeat("g,", 30)+groupList(65), "reason", "r"), wantStatus: http.StatusBadRequest, wantText: "Too many groups"},
		{name: "groups too large for a cookie are refused", actor: admin, fields: form("groups", longGroups(40, 120), "reason", "r"), wantStatus: http.StatusBadRequest, wantText: "too large for a browser cookie"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			before := f.token(c.actor)
			b := f.signedIn(before)
			r := b.impersonate(appHost, c.fields)
			if r.StatusCode != c.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.StatusCode, c.wantStatus, r.body)
			}
			if !strings.Contains(r.body, c.wantText) {
				t.Errorf("page lacks %q:\n%s", c.wantText, r.body)
			}
			if !strings.Contains(r.body, `id="session"`) {
				t.Error("the dashboard is not shown again with the error")
			}
			if after := b.session(appHost); after != before {
				t.Error("the session cookie changed")
			}
			if len(f.audit("impersonation_started")) != 0 {
				t.Error("a refused impersonation was audited as started")
			}
		})
	}

	t.Run("the refused form is shown again with what was typed, escaped", func(t *testing.T) {
		_, b := adminBrowser(t)
		r := b.impersonate(appHost, form("email", `<script>alert(1)</script>@x`, "groups", `"><b>g`, "access", "read_write", "reason", "<i>why</i>"))
		if r.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d", r.StatusCode)
		}
		if strings.Contains(r.body, "<script>alert") || strings.Contains(r.body, `"><b>`) || strings.Contains(r.body, "<i>why") {
			t.Error("input is echoed unescaped")
		}
		if !strings.Contains(r.body, "&lt;script&gt;alert(1)&lt;/script&gt;@x") || !strings.Contains(r.body, "&lt;i&gt;why&lt;/i&gt;") {
			t.Error("the typed values are not kept")
		}
		if !strings.Contains(r.body, `value="read_write" checked`) {
			t.Error("the access choice is not kept")
		}
	})

	t.Run("a non-administrator refused is audited without touching the cookie", func(t *testing.T) {
		f := newFixture(t)
		b := f.signedIn(f.token(user))
		b.impersonate(appHost, form("email", "carol@corp.example", "reason", "r"))
		e := f.audit("impersonation_refused")
		if len(e) != 1 || e[0].ContextMap()["actor_email"] != user || e[0].ContextMap()["refusal"] != "not an administrator" {
			t.Errorf("audit %v", e)
		}
	})

	t.Run("the reason may be left out when impersonation_require_reason is false", func(t *testing.T) {
		f := newFixture(t, func(s *web.Settings) { s.ImpersonationRequireReason = false })
		b := f.signedIn(f.token(admin))
		b.mustImpersonate(appHost, form("email", user))
		if got := f.verify(b.session(appHost)); got.ImpersonateEmail != user || got.ImpersonateReason != "" {
			t.Errorf("claims %+v", got)
		}
	})

	t.Run("without a session the form sends browsers to sign in and scripts get 401", func(t *testing.T) {
		f := newFixture(t)
		b := f.browser()
		csrf := b.csrf(appHost, "/.pomerium/sign_in")
		r := b.post(appHost, "/.pomerium/impersonate", form("email", user, "reason", "r", "_csrf", csrf))
		if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/.pomerium/sign_in?") {
			t.Errorf("browser: status %d Location %q", r.StatusCode, r.Header.Get("Location"))
		}
		r = b.post(appHost, "/.pomerium/impersonate", form("email", user, "reason", "r", "_csrf", csrf), "Accept", "application/json")
		if r.StatusCode != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") != "Pomerium" {
			t.Errorf("script: status %d", r.StatusCode)
		}
	})
}

func groupList(n int) string {
	g := make([]string, n)
	for i := range g {
		g[i] = fmt.Sprintf("group-%d", i)
	}
	return strings.Join(g, ",")
}

func longGroups(n, size int) string {
	g := make([]string, n)
	for i := range g {
		g[i] = fmt.Sprintf("%03d-%s", i, strings.Repeat("g", size))
	}
	return strings.Join(g, ",")
}

func TestCSRF(t *testing.T) {
	cases := []struct {
		name   string
		csrf   func(b *browser) string
		header []string
		want   int
	}{
		{name: "a form without the CSRF token is refused", csrf: func(*browser) string { return "" }, want: http.StatusForbidden},
		{name: "a form with a forged CSRF token is refused", csrf: func(*browser) string { return strings.Repeat("A", 88) }, want: http.StatusForbidden},
		{name: "a form posted from another origin is refused", csrf: scraped, header: []string{"Origin", "http://evil.example"}, want: http.StatusForbidden},
		{name: "a form posted from this origin is accepted", csrf: scraped, header: []string{"Origin", "http://" + appHost}, want: http.StatusSeeOther},
		{name: "over HTTPS (x-forwarded-proto) a form without a Referer is refused", csrf: scraped, header: []string{"X-Forwarded-Proto", "https"}, want: http.StatusForbidden},
		{name: "over HTTPS a form with a same-site Referer is accepted", csrf: scraped, header: []string{"X-Forwarded-Proto", "https", "Referer", "https://" + appHost + "/.pomerium/"}, want: http.StatusSeeOther},
		{name: "over HTTPS terminated in front of Envoy a form from the https origin is accepted", csrf: scraped, header: []string{"X-Forwarded-Proto", "https", "Origin", "https://" + appHost}, want: http.StatusSeeOther},
		{name: "over HTTPS a form from the http origin is refused", csrf: scraped, header: []string{"X-Forwarded-Proto", "https", "Origin", "http://" + appHost}, want: http.StatusForbidden},
		{name: "over plain HTTP a form claiming the https origin is refused", csrf: scraped, header: []string{"Origin", "https://" + appHost}, want: http.StatusForbidden},
		{name: "a token scraped from another host's page is refused", csrf: func(b *browser) string { return b.csrf(otherHost, "/.pomerium/") }, want: http.StatusForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			before := f.token(admin)
			b := f.signedIn(before)
			b.setSession(otherHost, before)
			fields := form("email", user, "reason", "r")
			if tok := c.csrf(b); tok != "" {
				fields.Set("_csrf", tok)
			}
			r := b.post(appHost, "/.pomerium/impersonate", fields, c.header...)
			if r.StatusCode != c.want {
				t.Fatalf("status %d, want %d: %s", r.StatusCode, c.want, r.body)
			}
			if c.want == http.StatusForbidden {
				if b.session(appHost) != before {
					t.Error("the session cookie changed")
				}
				if !strings.Contains(r.body, "could not be verified") {
					t.Errorf("body %q", r.body)
				}
			}
		})
	}

	for _, tc := range []struct {
		name   string
		secure bool
		want   string
	}{
		{name: "the CSRF cookie is __Host- prefixed, Secure, HttpOnly, SameSite=Lax, Path=/ and host-only when cookies are secure", secure: true, want: "__Host-" + cookieName + "_csrf"},
		{name: "the CSRF cookie has no prefix over plain HTTP", want: cookieName + "_csrf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(s *web.Settings) { s.CookieSecure, s.CookieDomain = tc.secure, "example.test" })
			r := f.browser().get(appHost, "/.pomerium/sign_in")
			var found bool
			for _, c := range r.Cookies() {
				if c.Name == tc.want {
					found = true
					if !c.HttpOnly || c.Secure != tc.secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
						t.Errorf("cookie %+v", c)
					}
				}
			}
			if !found {
				t.Errorf("no CSRF cookie named %s in %v", tc.want, r.Header.Values("Set-Cookie"))
			}
		})
	}

	t.Run("every replica with the same secret accepts the other's CSRF token", func(t *testing.T) {
		f := newFixture(t)
		g := newFixture(t)
		b := f.signedIn(f.token(admin))
		tok := b.csrf(appHost, "/.pomerium/")
		r := b.via(g).post(appHost, "/.pomerium/impersonate", form("email", user, "reason", "r", "_csrf", tok))
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("status %d: %s", r.StatusCode, r.body)
		}
	})
}

func scraped(b *browser) string { return b.csrf(appHost, "/.pomerium/") }

func TestImpersonationBanner(t *testing.T) {
	f, b := adminBrowser(t)
	b.mustImpersonate(appHost, form("email", user, "groups", "engineering", "reason", "ticket <42>"))
	f.clock.Advance(5 * time.Minute)

	t.Run("the banner shows whom, the access, the time left, the reason and a stop button", func(t *testing.T) {
		r := b.get(appHost, "/.pomerium/")
		i := strings.Index(r.body, `class="banner`)
		if i < 0 || i > strings.Index(r.body, `class="topbar"`) {
			t.Fatal("no banner at the top of the page")
		}
		banner := r.body[i:strings.Index(r.body, `class="topbar"`)]
		for _, want := range []string{"Impersonating", user, "groups engineering", "Read-only", "25 minutes left", "Reason: ticket &lt;42&gt;", "Stop impersonating", `name="email" value=""`, `name="_csrf"`} {
			if !strings.Contains(banner, want) {
				t.Errorf("banner lacks %q:\n%s", want, banner)
			}
		}
	})

	t.Run("the dashboard lists the routes of the impersonated identity", func(t *testing.T) {
		r := b.get(appHost, "/.pomerium/", "Accept", "application/json")
		d := decodeDashboard(t, r)
		if !d.Impersonating || d.ImpersonatedEmail != user || !reflect.DeepEqual(d.ImpersonatedGroups, []string{"engineering"}) ||
			d.Access != identity.AccessReadOnly || d.Reason != "ticket <42>" || d.Email != admin {
			t.Errorf("dashboard %+v", d)
		}
		if d.ImpersonationExpiresAt == nil || !d.ImpersonationExpiresAt.Equal(f.now.Add(30*time.Minute)) {
			t.Errorf("impersonation_expires_at %v", d.ImpersonationExpiresAt)
		}
		if want := reachable(t, f, identity.Identity{Email: user, Groups: []string{"engineering"}}); !reflect.DeepEqual(d.Routes, want) {
			t.Errorf("routes\n got %+v\nwant %+v", d.Routes, want)
		}
	})

	t.Run("one click on stop removes every impersonation claim and is audited", func(t *testing.T) {
		r := b.impersonate(appHost, form("email", "", "groups", ""))
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("status %d: %s", r.StatusCode, r.body)
		}
		got := f.verify(b.session(appHost))
		if got.Impersonating() || got.ImpersonateAccess != "" || got.ImpersonateExp != nil || got.ImpersonateReason != "" {
			t.Errorf("claims still impersonate: %+v", got)
		}
		if got.Email != admin || !got.ExpiresAt.Equal(f.now.Add(time.Hour)) {
			t.Errorf("claims %+v", got)
		}
		e := f.audit("impersonation_stopped")
		if len(e) != 1 || e[0].ContextMap()["impersonated_email"] != user || e[0].ContextMap()["impersonation_reason"] != "ticket <42>" {
			t.Errorf("audit %v", e)
		}
		if r := b.get(appHost, "/.pomerium/"); strings.Contains(r.body, `class="banner`) {
			t.Error("the banner is still shown")
		}
	})

	t.Run("stopping when not impersonating changes nothing", func(t *testing.T) {
		before := b.session(appHost)
		r := b.impersonate(appHost, url.Values{})
		if r.StatusCode != http.StatusSeeOther || b.session(appHost) != before {
			t.Errorf("status %d, cookie changed %v", r.StatusCode, b.session(appHost) != before)
		}
		if len(f.audit("impersonation_stopped")) != 1 {
			t.Error("a no-op stop was audited")
		}
	})
}

func TestImpersonationEnded(t *testing.T) {
	f, b := adminBrowser(t)
	b.mustImpersonate(appHost, form("email", user, "access", "read_write", "reason", "incident 7"))
	impersonating := b.session(appHost)
	f.clock.Advance(31*time.Minute + 2*time.Minute) // past impersonate_exp and the leeway

	t.Run("the dashboard says the impersonation ended and acts as the administrator", func(t *testing.T) {
		r := b.get(appHost, "/.pomerium/")
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status %d", r.StatusCode)
		}
		if !strings.Contains(r.body, "Your impersonation of <strong>"+user+"</strong> ended") {
			t.Errorf("page lacks the ended notice:\n%s", r.body)
		}
		if strings.Contains(r.body, `class="banner`) {
			t.Error("the banner is still shown")
		}
	})

	t.Run("the cookie is re-issued without the impersonation claims", func(t *testing.T) {
		after := b.session(appHost)
		if after == impersonating {
			t.Fatal("the cookie was not re-issued")
		}
		got := f.verify(after)
		if got.Impersonating() || got.ImpersonateExp != nil || got.ImpersonateAccess != "" || got.ImpersonateReason != "" || got.Email != admin {
			t.Errorf("claims %+v", got)
		}
		if !got.ExpiresAt.Equal(f.now.Add(time.Hour)) {
			t.Errorf("exp %v", got.ExpiresAt)
		}
	})

	t.Run("the end is audited once", func(t *testing.T) {
		b.get(appHost, "/.pomerium/")
		e := f.audit("impersonation_ended")
		if len(e) != 1 {
			t.Fatalf("want one impersonation_ended entry, got %d", len(e))
		}
		m := e[0].ContextMap()
		if m["actor_email"] != admin || m["impersonated_email"] != user || m["access"] != identity.AccessReadWrite || m["impersonation_reason"] != "incident 7" {
			t.Errorf("audit %v", m)
		}
	})

	t.Run("a header token whose impersonation ended is shown as ended but not rewritten", func(t *testing.T) {
		r := b.get(appHost, "/.pomerium/", "Accept", "application/json", "Authorization", "Pomerium "+impersonating)
		d := decodeDashboard(t, r)
		if !d.ImpersonationEnded || d.Impersonating {
			t.Errorf("dashboard %+v", d)
		}
		if len(r.Cookies()) != 0 {
			for _, c := range r.Cookies() {
				if c.Name == cookieName {
					t.Error("a header session was rewritten into the cookie")
				}
			}
		}
	})
}

func TestImpersonationByTokenRefusedForNonAdministrators(t *testing.T) {
	f := newFixture(t)
	c := f.claims(user)
	c.ImpersonateEmail = "carol@corp.example"
	b := f.signedIn(f.mint(c))
	t.Run("the dashboard says requests are refused and lists only public routes as allowed", func(t *testing.T) {
		r := b.get(appHost, "/.pomerium/", "Accept", "application/json")
		d := decodeDashboard(t, r)
		if d.ImpersonationDenied != "impersonation requires an administrator" {
			t.Errorf("impersonation_denied %q", d.ImpersonationDenied)
		}
		for _, row := range d.Routes {
			if row.Allowed != (row.Route == "public") {
				t.Errorf("route %s allowed=%v", row.Route, row.Allowed)
			}
		}
		html := b.get(appHost, "/.pomerium/")
		if !strings.Contains(html.body, "Requests are refused") {
			t.Error("the page does not say requests are refused")
		}
	})
}
