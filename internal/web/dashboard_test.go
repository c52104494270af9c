package web_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/web"
)

func TestDashboard(t *testing.T) {
	f := newFixture(t)
	tok := f.token(user, "engineering", "support")
	bob := identity.Identity{Email: user, Groups: []string{"engineering", "support"}}

	carriers := []struct {
		name   string
		header []string
		cookie bool
	}{
		{name: "the session cookie", cookie: true},
		{name: "an Authorization: Pomerium header", header: []string{"Authorization", "Pomerium " + tok}},
		{name: "an Authorization: Bearer Pomerium- header", header: []string{"Authorization", "Bearer Pomerium-" + tok}},
		{name: "an X-Pomerium-Authorization header", header: []string{"X-Pomerium-Authorization", tok}},
	}
	for _, c := range carriers {
		t.Run("a minted token in "+c.name+" shows the session as JSON", func(t *testing.T) {
			b := f.browser()
			if c.cookie {
				b.setSession(appHost, tok)
			}
			r := b.get(appHost, "/.pomerium/", append([]string{"Accept", "application/json"}, c.header...)...)
			if r.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", r.StatusCode, r.body)
			}
			d := decodeDashboard(t, r)
			if d.Email != user || d.User != "bob" || !reflect.DeepEqual(d.Groups, []string{"engineering", "support"}) {
				t.Errorf("identity %q %q %v", d.Email, d.User, d.Groups)
			}
			if d.ExpiresAt == nil || !d.ExpiresAt.Equal(f.now.Add(time.Hour)) {
				t.Errorf("expires_at %v, want %v", d.ExpiresAt, f.now.Add(time.Hour))
			}
			if d.Impersonating || d.ImpersonatedEmail != "" || d.ImpersonatedGroups == nil || d.Administrator {
				t.Errorf("impersonation fields %+v", d)
			}
			if want := reachable(t, f, bob); !reflect.DeepEqual(d.Routes, want) {
				t.Errorf("routes\n got %+v\nwant %+v", d.Routes, want)
			}
		})
	}

	t.Run("the JSON names its fields as scripts read them", func(t *testing.T) {
		b := f.browser()
		b.setSession(appHost, tok)
		var d struct {
			Routes []map[string]any `json:"routes"`
		}
		var fields map[string]any
		r := b.get(appHost, "/.pomerium/", "Accept", "application/json")
		if err := json.Unmarshal([]byte(r.body), &fields); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(r.body), &d); err != nil || len(d.Routes) == 0 {
			t.Fatalf("routes %v, %v", d.Routes, err)
		}
		want := []string{"access", "administrator", "email", "expires_at", "groups", "impersonated_email", "impersonated_groups",
			"impersonating", "impersonation_ended", "impersonation_expires_at", "reason", "routes", "user"}
		if got := slices.Sorted(maps.Keys(fields)); !slices.Equal(got, want) {
			t.Errorf("fields %v, want %v", got, want)
		}
		if got, want := slices.Sorted(maps.Keys(d.Routes[0])), []string{"allowed", "from", "reason", "route"}; !slices.Equal(got, want) {
			t.Errorf("route fields %v, want %v", got, want)
		}
	})

	t.Run("the HTML dashboard shows email, user, groups, expiry and a sign-out button", func(t *testing.T) {
		b := f.signedIn(tok)
		r := b.get(appHost, "/.pomerium/")
		if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("status %d, type %q", r.StatusCode, r.Header.Get("Content-Type"))
		}
		exp := f.now.Add(time.Hour).UTC().Format("Mon 2 Jan 2006, 15:04:05 UTC")
		for _, want := range []string{user, ">bob<", "engineering", "support", exp, "in 1 hour", `action="/.pomerium/sign_out"`, "Sign out", "session cookie", `name="viewport"`, "/.pomerium/assets/style.css"} {
			if !strings.Contains(r.body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		if strings.Contains(r.body, "Sign in as another user") || strings.Contains(r.body, "Preview access") {
			t.Error("a non-administrator sees the administrator forms")
		}
		if strings.Contains(r.body, tok) {
			t.Error("the page shows the token")
		}
	})

	t.Run("the routes this identity can reach are listed with the reason", func(t *testing.T) {
		b := f.signedIn(tok)
		r := b.get(appHost, "/.pomerium/")
		for _, want := range []string{"https://app.example.test", "allowed_groups matched engineering", "allowed_domains matched corp.example", "The routes you can reach"} {
			if !strings.Contains(r.body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
	})

	t.Run("an administrator sees the sign-in-as form with read-only preselected and a required reason", func(t *testing.T) {
		b := f.signedIn(f.token(admin))
		r := b.get(appHost, "/.pomerium/")
		for _, want := range []string{
			`action="/.pomerium/impersonate"`, `name="email"`, `name="groups"`,
			`value="read_only" checked`, `value="read_write">`,
			`name="reason" rows="3" maxlength="500" required`,
			`action="/.pomerium/preview"`, "administrator",
		} {
			if !strings.Contains(r.body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
	})

	t.Run("the reason is optional on the form when impersonation_require_reason is false", func(t *testing.T) {
		g := newFixture(t, func(s *web.Settings) { s.ImpersonationRequireReason = false })
		b := g.signedIn(g.token(admin))
		r := b.get(appHost, "/.pomerium/")
		if strings.Contains(r.body, `maxlength="500" required`) || !strings.Contains(r.body, "optional") {
			t.Error("the reason is still required on the form")
		}
	})

	t.Run("plain text is shown to curl without an Accept preference", func(t *testing.T) {
		b := f.browser()
		b.accept = "*/*"
		r := b.get(appHost, "/.pomerium/", "Authorization", "Pomerium "+tok)
		if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("status %d type %q", r.StatusCode, r.Header.Get("Content-Type"))
		}
		for _, want := range []string{"email:", user, "allowed", "app"} {
			if !strings.Contains(r.body, want) {
				t.Errorf("text lacks %q:\n%s", want, r.body)
			}
		}
	})

	t.Run("HEAD answers like GET without a body", func(t *testing.T) {
		b := f.signedIn(tok)
		req, _ := http.NewRequest(http.MethodHead, pageURL(appHost, "/.pomerium/"), nil)
		r := b.do(req)
		if r.StatusCode != http.StatusOK || r.body != "" {
			t.Errorf("status %d body %q", r.StatusCode, r.body)
		}
	})
}

// The dashboard shows a user who is not an administrator, and an
// administrator while impersonating, only the routes the identity can reach
// and the rule that let it in; an administrator acting as themselves keeps
// the whole policy (contract section 8, "No policy disclosure").
func TestDashboardDisclosesNoPolicy(t *testing.T) {
	f := newFixture(t)
	engineer := identity.Identity{Email: user, Groups: []string{"engineering"}}
	// What the policy says about routes an engineer cannot reach.
	undisclosed := []string{"admin.example.test", "support.example.test", "carol@partner.example", "needs one of", "no rule matched"}
	adminTools := []string{"Sign in as another user", `action="/.pomerium/preview"`}

	views := []struct {
		name string
		// session signs a browser in for the view.
		session    func(b *browser)
		wantRoutes []web.RouteRow
		// present and absent are checked in the HTML and the text answers.
		present, absent []string
		adminForms      bool
	}{
		{
			name:       "a user who is not an administrator sees only the routes they can reach, with the rule that let them in",
			session:    func(b *browser) { b.setSession(appHost, f.token(user, "engineering")) },
			wantRoutes: reachable(t, f, engineer),
			present:    []string{"app.example.test", "allowed_groups matched engineering", "allowed_domains matched corp.example", "allow_any_authenticated_user"},
			absent:     undisclosed,
		},
		{
			name:       "an administrator sees every route, denied ones with the rule that would admit",
			session:    func(b *browser) { b.setSession(appHost, f.token(admin)) },
			wantRoutes: expected(t, f, identity.Identity{Email: admin}),
			present:    []string{"admin.example.test", "support.example.test", "needs one of users carol@partner.example", "allowed_users matched " + admin},
			adminForms: true,
		},
		{
			name: "an administrator impersonating sees the impersonated identity's view and the way back",
			session: func(b *browser) {
				b.setSession(appHost, f.token(admin))
				b.mustImpersonate(appHost, form("email", user, "groups", "engineering", "reason", "ticket 9"))
			},
			wantRoutes: reachable(t, f, engineer),
			present:    []string{"app.example.test", "allowed_groups matched engineering"},
			absent:     undisclosed,
		},
		{
			name: "a user who is not an administrator holding an impersonation sees only the public routes",
			session: func(b *browser) {
				c := f.claims(user, "engineering")
				c.ImpersonateEmail = admin
				b.setSession(appHost, f.mint(c))
			},
			// Check refuses every route that reads a token; public routes
			// are decided before.
			wantRoutes: []web.RouteRow{{Route: "public", From: "https://public.example.test", Allowed: true, Reason: "allow_public_unauthenticated_access"}},
			present:    []string{"public.example.test", "allow_public_unauthenticated_access", "impersonation requires an administrator"},
			absent:     append([]string{"https://app.example.test", "https://wiki.example.test"}, undisclosed...),
		},
	}
	for _, v := range views {
		t.Run(v.name, func(t *testing.T) {
			b := f.browser()
			v.session(b)

			d := decodeDashboard(t, b.get(appHost, "/.pomerium/", "Accept", "application/json"))
			if !reflect.DeepEqual(d.Routes, v.wantRoutes) {
				t.Errorf("JSON routes\n got %+v\nwant %+v", d.Routes, v.wantRoutes)
			}

			html := b.get(appHost, "/.pomerium/")
			text := b.get(appHost, "/.pomerium/", "Accept", "*/*")
			for _, page := range []response{html, text} {
				if page.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %s", page.StatusCode, page.body)
				}
				for _, want := range v.present {
					if !strings.Contains(page.body, want) {
						t.Errorf("%s lacks %q", page.Header.Get("Content-Type"), want)
					}
				}
				for _, hidden := range v.absent {
					if strings.Contains(page.body, hidden) {
						t.Errorf("%s discloses %q", page.Header.Get("Content-Type"), hidden)
					}
				}
			}
			for _, form := range adminTools {
				if strings.Contains(html.body, form) != v.adminForms {
					t.Errorf("the administrator form %q shown: %v, want %v", form, !v.adminForms, v.adminForms)
				}
			}
			if strings.Contains(html.body, `class="banner`) && !strings.Contains(html.body, "Stop impersonating") {
				t.Error("the impersonation banner has no way back")
			}
		})
	}
}

func TestDashboardWithoutSession(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name       string
		accept     string
		header     []string
		cookie     string
		wantStatus int
		wantBody   string
	}{
		{name: "a browser without a session is sent to sign in", accept: "text/html", wantStatus: http.StatusFound},
		{name: "a browser with an expired session cookie is sent to sign in", accept: "text/html", cookie: "expired", wantStatus: http.StatusFound},
		{name: "a script without a session gets 401", accept: "*/*", wantStatus: http.StatusUnauthorized, wantBody: "no Pomerium token or session"},
		{name: "a JSON client without a session gets 401 as JSON", accept: "application/json", wantStatus: http.StatusUnauthorized, wantBody: `"error": "no Pomerium token or session"`},
		{name: "a token for another host gets 401 naming the audience", accept: "application/json", header: []string{"Authorization", "Pomerium other"}, wantStatus: http.StatusUnauthorized, wantBody: identity.ReasonAudience},
		{name: "a token with a bad signature gets 401", accept: "*/*", header: []string{"Authorization", "Pomerium bad"}, wantStatus: http.StatusUnauthorized, wantBody: identity.ReasonSignature},
	}
	expired := f.claims(user)
	expired.ExpiresAt = numeric(f.now.Add(-time.Hour))
	foreign := f.claims(user)
	foreign.Audience = []string{"elsewhere.example.test"}
	good := f.token(user)
	tokens := map[string]string{
		"expired": f.mint(expired),
		"other":   f.mint(foreign),
		"bad":     good[:len(good)-4] + "AAAA",
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := f.browser()
			b.accept = c.accept
			if c.cookie != "" {
				b.setSession(appHost, tokens[c.cookie])
			}
			hdr := append([]string(nil), c.header...)
			if len(hdr) == 2 {
				scheme, name, _ := strings.Cut(hdr[1], " ")
				hdr[1] = scheme + " " + tokens[name]
			}
			r := b.get(appHost, "/.pomerium/", hdr...)
			if r.StatusCode != c.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.StatusCode, c.wantStatus, r.body)
			}
			switch c.wantStatus {
			case http.StatusFound:
				if loc := r.Header.Get("Location"); loc != "/.pomerium/sign_in?pomerium_redirect_uri=%2F.pomerium%2F" {
					t.Errorf("Location %q", loc)
				}
			case http.StatusUnauthorized:
				if got := r.Header.Get("WWW-Authenticate"); got != "Pomerium" {
					t.Errorf("WWW-Authenticate %q", got)
				}
				if !strings.Contains(r.body, c.wantBody) {
					t.Errorf("body %q lacks %q", r.body, c.wantBody)
				}
			}
			for _, tok := range tokens {
				if strings.Contains(r.body, tok) {
					t.Error("the answer repeats the token")
				}
			}
		})
	}

	t.Run("/.pomerium redirects to /.pomerium/", func(t *testing.T) {
		r := f.browser().get(appHost, "/.pomerium")
		if r.StatusCode != http.StatusFound || r.Header.Get("Location") != "/.pomerium/" {
			t.Errorf("status %d Location %q", r.StatusCode, r.Header.Get("Location"))
		}
	})
}

func TestPageHeaders(t *testing.T) {
	f := newFixture(t)
	b := f.signedIn(f.token(user))
	for _, path := range []string{"/.pomerium/", "/.pomerium/sign_in", "/.pomerium/nowhere"} {
		t.Run("the page "+path+" carries the security headers", func(t *testing.T) {
			r := b.get(appHost, path, "X-Request-Id", "req-123")
			want := map[string]string{
				"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
				"X-Frame-Options":         "DENY",
				"Referrer-Policy":         "same-origin",
				"Cache-Control":           "no-store",
				"X-Content-Type-Options":  "nosniff",
				"X-Request-Id":            "req-123",
			}
			for k, v := range want {
				if got := r.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if !strings.Contains(r.body, "req-123") {
				t.Error("the page does not show the request id")
			}
		})
	}

	t.Run("the stylesheet is served from the binary and linked from every page", func(t *testing.T) {
		r := b.get(appHost, "/.pomerium/assets/style.css")
		if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/css") || !strings.Contains(r.body, ".banner") {
			t.Errorf("status %d type %q", r.StatusCode, r.Header.Get("Content-Type"))
		}
		if r := b.get(appHost, "/.pomerium/assets/other.js"); r.StatusCode != http.StatusNotFound {
			t.Errorf("unknown asset: status %d", r.StatusCode)
		}
	})

	t.Run("an unknown page is 404 and a wrong method is 405", func(t *testing.T) {
		if r := b.get(appHost, "/.pomerium/nowhere"); r.StatusCode != http.StatusNotFound {
			t.Errorf("status %d", r.StatusCode)
		}
		if r := b.get(appHost, "/.pomerium/impersonate"); r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "POST" {
			t.Errorf("status %d Allow %q", r.StatusCode, r.Header.Get("Allow"))
		}
		req, _ := http.NewRequest(http.MethodPut, pageURL(appHost, "/.pomerium/impersonate"), strings.NewReader("x"))
		if r := b.do(req); r.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("PUT: status %d", r.StatusCode)
		}
	})

	t.Run("the JWKS and health endpoints still answer", func(t *testing.T) {
		if r := b.get(appHost, "/.well-known/pomerium/jwks.json"); r.StatusCode != http.StatusOK || !strings.Contains(r.body, `"keys"`) {
			t.Errorf("jwks: status %d %s", r.StatusCode, r.body)
		}
		if r := b.get(appHost, "/healthz"); r.StatusCode != http.StatusOK {
			t.Errorf("healthz: status %d", r.StatusCode)
		}
	})
}
