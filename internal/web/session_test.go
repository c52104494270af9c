package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
)

// Session ids (contract section 8): every token the pages re-issue keeps the
// sid of the session it descends from, so that revoking that sid refuses the
// whole lineage, and every issued token is logged once (session_issued).

// revoke reloads the pages with ids as revoked_token_ids, as serve does when
// the config file changes: a new verifier, everything else unchanged.
func (f *fixture) revoke(ids ...string) {
	f.t.Helper()
	v, err := identity.NewVerifier(identity.VerifierOptions{Secrets: []string{testSecret}, Issuer: issuer, Leeway: time.Minute, RevokedIDs: ids})
	if err != nil {
		f.t.Fatal(err)
	}
	set := *f.settings
	engine := *set.Engine
	engine.Verifier = v
	set.Engine = &engine
	f.pages.Swap(&set)
	f.settings = &set
}

// check asks the decision engine, as Check would, about a browser request to
// appHost carrying tok in the session cookie.
func (f *fixture) check(tok string) decision.Decision {
	return decideBrowser(f.settings.Engine, appHost, tok, f.clock.Now())
}

// decideBrowser asks engine, as Check would, about a browser's GET of host
// carrying session in the session cookie.
func decideBrowser(engine *decision.Engine, host, session string, now time.Time) decision.Decision {
	cookie := cookieName + "=" + session
	return engine.Decide(decision.Request{Host: host, Path: "/", Method: http.MethodGet, Browser: true,
		Header: func(name string) string {
			if name == identity.HeaderCookie {
				return cookie
			}
			return ""
		}}, now)
}

// issued returns the session_issued entries for the token whose jti is jti.
func (f *fixture) issued(jti string) []map[string]any {
	var out []map[string]any
	for _, e := range f.audit("session_issued") {
		if m := e.ContextMap(); m["jti"] == jti {
			out = append(out, m)
		}
	}
	return out
}

// noTokenInLogs fails when any log entry carries one of toks.
func (f *fixture) noTokenInLogs(toks ...string) {
	f.t.Helper()
	for _, e := range f.logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		for _, tok := range toks {
			if tok != "" && strings.Contains(line, tok) {
				f.t.Errorf("log entry %q carries a session token", e.Message)
			}
		}
	}
}

// withoutIDs signs c as the original pomerium-cli did: no jti, no sid.
func withoutIDs(t *testing.T, c *identity.Claims) string {
	t.Helper()
	c.ID, c.SID = "", ""
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// step is one page action that re-issues the session cookie.
type step struct {
	name string
	why  string
	do   func(f *fixture, b *browser) response
}

var (
	startImpersonating = step{"start impersonating", "impersonation_started", func(f *fixture, b *browser) response {
		return b.impersonate(appHost, form("email", user, "access", "read_only", "reason", "ticket 42"))
	}}
	stopImpersonating = step{"stop impersonating", "impersonation_stopped", func(f *fixture, b *browser) response {
		return b.impersonate(appHost, form())
	}}
	impersonationRunsOut = step{"let the impersonation run out", "impersonation_ended", func(f *fixture, b *browser) response {
		f.clock.Advance(33 * time.Minute) // past impersonate_exp and any leeway
		return b.get(appHost, "/.pomerium/")
	}}
)

func TestReissueKeepsTheSessionID(t *testing.T) {
	cases := []struct {
		name string
		// first is the session the browser starts with; want is its sid
		// ("" means: the first re-issued token's own jti).
		first func(f *fixture) string
		want  func(f *fixture, first string) string
		steps []step
	}{
		{
			name:  "a session minted without sid keeps its jti as the sid through start, stop, start and run out",
			first: func(f *fixture) string { return f.token(admin) },
			want:  func(f *fixture, first string) string { return f.verify(first).ID },
			steps: []step{startImpersonating, stopImpersonating, startImpersonating, impersonationRunsOut},
		},
		{
			name: "a session that carries a sid keeps it, not its jti",
			first: func(f *fixture) string {
				c := f.claims(admin)
				c.SID = "session-from-sign-in"
				return f.mint(c)
			},
			want:  func(*fixture, string) string { return "session-from-sign-in" },
			steps: []step{startImpersonating, stopImpersonating},
		},
		{
			name:  "a token with neither jti nor sid starts a session at its first re-issue, kept after that",
			first: func(f *fixture) string { return withoutIDs(t, f.claims(admin)) },
			want:  func(*fixture, string) string { return "" },
			steps: []step{startImpersonating, stopImpersonating, startImpersonating},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			first := tc.first(f)
			b := f.signedIn(first)
			want := tc.want(f, first)
			seen := map[string]bool{f.verify(first).ID: true}
			toks := []string{first}
			for _, s := range tc.steps {
				r := s.do(f, b)
				if r.StatusCode >= 400 {
					t.Fatalf("%s: status %d\n%s", s.name, r.StatusCode, r.body)
				}
				tok := b.session(appHost)
				got := f.verify(tok)
				if got.ID == "" || seen[got.ID] {
					t.Fatalf("%s: jti %q is not new", s.name, got.ID)
				}
				seen[got.ID] = true
				if want == "" {
					want = got.ID
				}
				if got.SID != want {
					t.Errorf("%s: sid %q, want %q", s.name, got.SID, want)
				}
				logged := f.issued(got.ID)
				if len(logged) != 1 {
					t.Fatalf("%s: %d session_issued entries for jti %s, want 1", s.name, len(logged), got.ID)
				}
				if m := logged[0]; m["sid"] != want || m["why"] != s.why || m["email"] != admin || m["host"] != appHost {
					t.Errorf("%s: session_issued %v", s.name, m)
				}
				toks = append(toks, tok)
			}
			if n, want := len(f.audit("session_issued")), len(tc.steps); n != want {
				t.Errorf("%d session_issued entries, want one per issued token (%d)", n, want)
			}
			f.noTokenInLogs(toks...)
		})
	}
}

func TestImpersonationAuditNamesTheIssuedToken(t *testing.T) {
	f := newFixture(t)
	first := f.token(admin)
	b := f.signedIn(first)
	sid := f.verify(first).ID
	for _, s := range []step{startImpersonating, stopImpersonating, startImpersonating, impersonationRunsOut} {
		s.do(f, b)
	}
	for _, event := range []string{"impersonation_started", "impersonation_stopped", "impersonation_ended"} {
		t.Run(event+" names the jti of the token it issued and the session id", func(t *testing.T) {
			entries := f.audit(event)
			if len(entries) == 0 {
				t.Fatalf("no %s entry", event)
			}
			for _, e := range entries {
				m := e.ContextMap()
				jti, _ := m["token_id"].(string)
				if m["sid"] != sid || len(f.issued(jti)) != 1 {
					t.Errorf("%s names token %q sid %v: want a token issued then, of session %s", event, jti, m["sid"], sid)
				}
			}
		})
	}
}

func TestPastedTokenStartsTheSession(t *testing.T) {
	cases := []struct {
		name    string
		token   func(f *fixture) string
		wantSID func(c *identity.Claims) string
	}{
		{"a pasted token without sid is a session whose id is its jti",
			func(f *fixture) string { return f.token(user) }, func(c *identity.Claims) string { return c.ID }},
		{"a pasted token with a sid keeps that session id",
			func(f *fixture) string { c := f.claims(user); c.SID = "pasted-session"; return f.mint(c) },
			func(*identity.Claims) string { return "pasted-session" }},
		{"a pasted token with neither jti nor sid has no session id",
			func(f *fixture) string { return withoutIDs(t, f.claims(user)) }, func(*identity.Claims) string { return "" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			b := f.browser()
			tok := tc.token(f)
			r := b.post(appHost, "/.pomerium/sign_in", form("token", tok, "_csrf", b.csrf(appHost, "/.pomerium/sign_in")))
			if r.StatusCode != http.StatusSeeOther || b.session(appHost) != tok {
				t.Fatalf("status %d, cookie set: %v", r.StatusCode, b.session(appHost) == tok)
			}
			c := f.verify(tok)
			e := f.audit("session_issued")
			if len(e) != 1 {
				t.Fatalf("%d session_issued entries, want 1", len(e))
			}
			if m := e[0].ContextMap(); m["jti"] != c.ID || m["sid"] != tc.wantSID(c) || m["why"] != "pasted_token" || m["email"] != user {
				t.Errorf("session_issued %v", m)
			}
			f.noTokenInLogs(tok)
		})
	}
}

func TestRevokedSessionIDRefusesEveryDescendant(t *testing.T) {
	f := newFixture(t)
	first := f.token(admin)
	b := f.signedIn(first)
	lineage := []string{first}
	for _, s := range []step{startImpersonating, stopImpersonating, startImpersonating} {
		s.do(f, b)
		lineage = append(lineage, b.session(appHost))
	}
	other := f.token(admin) // another session of the same administrator
	for i, tok := range append(lineage, other) {
		if d := f.check(tok); d.Status == decision.StatusSignIn || d.Reason == identity.ReasonRevoked {
			t.Fatalf("token %d is refused before any revocation: %d %s", i, d.Status, d.Reason)
		}
	}
	sid := f.verify(first).ID

	// The reload happens after every token was verified (and cached) once.
	f.revoke(sid)

	for i, tok := range lineage {
		t.Run(fmt.Sprintf("token %d of the lineage is refused by Check and the pages", i), func(t *testing.T) {
			if d := f.check(tok); d.Status != decision.StatusSignIn || d.Reason != identity.ReasonRevoked {
				t.Errorf("Check: status %d reason %q, want the sign-in redirect for a revoked token", d.Status, d.Reason)
			}
			b := f.signedIn(tok)
			if r := b.get(appHost, "/.pomerium/", "Accept", "application/json"); r.StatusCode != http.StatusUnauthorized ||
				!strings.Contains(r.body, identity.ReasonRevoked) {
				t.Errorf("dashboard: %d %s", r.StatusCode, r.body)
			}
			if r := b.get(appHost, "/.pomerium/"); r.StatusCode != http.StatusFound ||
				!strings.HasPrefix(r.Header.Get("Location"), "/.pomerium/sign_in") {
				t.Errorf("dashboard in a browser: %d %q, want a redirect to sign in", r.StatusCode, r.Header.Get("Location"))
			}
		})
	}
	t.Run("a revoked session is not re-issued by the impersonation form", func(t *testing.T) {
		before := len(f.audit("session_issued"))
		for _, fields := range []url.Values{form(), form("email", user, "access", "read_only", "reason", "ticket 9")} {
			fields.Set("_csrf", b.csrf(appHost, "/.pomerium/sign_in"))
			r := b.post(appHost, "/.pomerium/impersonate", fields)
			if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/.pomerium/sign_in") {
				t.Errorf("impersonate %v: %d %q, want a redirect to sign in", fields, r.StatusCode, r.Header.Get("Location"))
			}
			for _, c := range r.Cookies() {
				if c.Name == cookieName && c.Value != "" {
					t.Error("a revoked session was re-issued")
				}
			}
		}
		if n := len(f.audit("session_issued")); n != before {
			t.Errorf("%d tokens issued from a revoked session", n-before)
		}
	})
	t.Run("another session of the same user is not affected", func(t *testing.T) {
		if d := f.check(other); d.Reason == identity.ReasonRevoked || d.Status == decision.StatusSignIn {
			t.Errorf("Check: %d %s", d.Status, d.Reason)
		}
	})
}

// refreshSession posts the dashboard's refresh form and follows the dance
// back to the dashboard.
func (f *oidcFixture) refreshSession(b *oidcBrowser) {
	f.t.Helper()
	dash := "http://" + appHost + "/.pomerium/"
	r := b.do(http.MethodPost, "http://"+appHost+"/.pomerium/refresh", form("_csrf", b.csrf(dash)))
	if r.StatusCode != http.StatusSeeOther {
		f.t.Fatalf("refresh: %d\n%s", r.StatusCode, r.body)
	}
	if last, chain := b.follow(r, func(u *url.URL) bool { return u.String() == dash }); last.Header.Get("Location") != dash {
		f.t.Fatalf("refresh ended with %d %q after %v\n%s", last.StatusCode, last.Header.Get("Location"), chain, last.body)
	}
}

func TestOIDCSessionID(t *testing.T) {
	dash := "http://" + appHost + "/.pomerium/"
	signedIn := func(t *testing.T, who string) (*oidcFixture, *oidcBrowser, *identity.Claims) {
		f := newOIDCFixture(t)
		f.idp.AutoLogin(who)
		b := f.browser()
		f.signIn(b, appHost, dash)
		return f, b, f.verify(b.Cookie(dash, cookieName))
	}

	t.Run("a sign-in starts a session whose id is the first token's jti", func(t *testing.T) {
		f, _, first := signedIn(t, "bob")
		if first.SID == "" || first.SID != first.ID {
			t.Errorf("sid %q, jti %q: want the sid to be the jti", first.SID, first.ID)
		}
		if e := f.issued(first.ID); len(e) != 1 || e[0]["why"] != "sign_in" || e[0]["sid"] != first.ID || e[0]["email"] != user {
			t.Errorf("session_issued %v", e)
		}
	})

	t.Run("a refresh keeps the sid, gets a new jti and ends the impersonation with that token", func(t *testing.T) {
		f, b, first := signedIn(t, "alice")
		r := b.do(http.MethodPost, "http://"+appHost+"/.pomerium/impersonate", form("_csrf", b.csrf(dash),
			"email", user, "access", "read_only", "reason", "ticket 42"))
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("impersonate: %d\n%s", r.StatusCode, r.body)
		}
		f.refreshSession(b)
		got := f.verify(b.Cookie(dash, cookieName))
		if got.Impersonating() || got.SID != first.SID || got.ID == first.ID {
			t.Fatalf("after refresh: impersonating %v sid %q jti %q; want no impersonation, sid %q and a new jti",
				got.Impersonating(), got.SID, got.ID, first.SID)
		}
		if e := f.issued(got.ID); len(e) != 1 || e[0]["why"] != "refresh" || e[0]["sid"] != first.SID {
			t.Errorf("session_issued %v", e)
		}
		stopped := f.audit("impersonation_stopped")
		if len(stopped) != 1 {
			t.Fatalf("%d impersonation_stopped entries, want 1", len(stopped))
		}
		if m := stopped[0].ContextMap(); m["token_id"] != got.ID || m["sid"] != first.SID || m["because"] != "session refreshed" {
			t.Errorf("impersonation_stopped %v: want the refreshed token's jti and the sid", m)
		}
		if n := len(f.audit("session_issued")); n != 3 {
			t.Errorf("%d session_issued entries, want 3 (sign-in, impersonation, refresh)", n)
		}
	})

	t.Run("after its sid is revoked, the browser signs in afresh with a new sid", func(t *testing.T) {
		f, b, first := signedIn(t, "bob")
		f.revoke(first.SID)
		if d := f.decide(appHost, b.Cookie(dash, cookieName)); d.Status != decision.StatusSignIn || d.Reason != identity.ReasonRevoked {
			t.Fatalf("Check on the revoked session: %d %s", d.Status, d.Reason)
		}
		// The dashboard sends it to sign in, which the live authenticate
		// session completes without the provider's login.
		if last, chain := b.follow(b.get(dash), func(u *url.URL) bool { return u.String() == dash }); last.Header.Get("Location") != dash {
			t.Fatalf("signing in again ended with %d %q after %v\n%s", last.StatusCode, last.Header.Get("Location"), chain, last.body)
		}
		got := f.verify(b.Cookie(dash, cookieName))
		if got.SID == first.SID || got.SID != got.ID {
			t.Errorf("sid %q (jti %q) after revoking %q: want a new session", got.SID, got.ID, first.SID)
		}
		if e := f.issued(got.ID); len(e) != 1 || e[0]["why"] != "sign_in" {
			t.Errorf("session_issued %v", e)
		}
	})

	t.Run("signing in as another subject over a live session starts a new session", func(t *testing.T) {
		f := newOIDCFixture(t)
		f.idp.AutoLogin("bob")
		b := f.browser()
		alice := f.claims(admin)
		alice.Audience = []string{appHost}
		u, _ := url.Parse(dash)
		b.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName, Value: f.mint(alice), Path: "/"}})
		f.signIn(b, appHost, dash)
		got := f.verify(b.Cookie(dash, cookieName))
		if got.Email != user || got.SID == alice.ID || got.SID != got.ID {
			t.Errorf("bob's session %s sid %q: want a session of its own, not alice's %q", got.Email, got.SID, alice.ID)
		}
	})
}
