package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/audit"
)

// TestSignOutRevokesTheSession: signing out ends the session on every
// replica (the store), so a copy of the cookie stops working; when the store
// cannot record it, the person is told so and keeps the cookie to retry.
func TestSignOutRevokesTheSession(t *testing.T) {
	tests := []struct {
		name       string
		storeDown  bool
		wantStatus int
		// copyWorks: a copy of the cookie still opens the dashboard.
		copyWorks bool
	}{
		{"signing out makes a copied cookie useless", false, http.StatusSeeOther, false},
		{"when the store cannot record it the answer is 503 and the cookie stays", true, http.StatusServiceUnavailable, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tok := f.token(user, "engineering")
			b := f.signedIn(tok)
			copied := f.signedIn(tok)
			csrf := b.csrf(appHost, "/.pomerium/")
			f.store.down.Store(tc.storeDown)
			r := b.post(appHost, "/.pomerium/sign_out", form("_csrf", csrf))
			if r.StatusCode != tc.wantStatus {
				t.Fatalf("sign-out: %d, want %d\n%s", r.StatusCode, tc.wantStatus, r.body)
			}
			if kept := b.session(appHost) != ""; kept != tc.storeDown {
				t.Errorf("session cookie kept = %v, want %v", kept, tc.storeDown)
			}
			if tc.storeDown {
				for _, want := range []string{"copies of your session cookie stay valid", "Try again"} {
					if !strings.Contains(r.body, want) {
						t.Errorf("the 503 page does not say %q:\n%s", want, r.body)
					}
				}
				if r.Header.Get("Retry-After") == "" {
					t.Error("no Retry-After on the 503")
				}
			}
			if p := copied.get(appHost, "/.pomerium/"); (p.StatusCode == http.StatusOK) != tc.copyWorks {
				t.Errorf("the copied cookie on the dashboard: %d, want it to work = %v", p.StatusCode, tc.copyWorks)
			}
			if n := len(f.audit(audit.SessionSignedOut)); (n == 1) == tc.storeDown {
				t.Errorf("%d session_signed_out entries", n)
			}
			f.store.down.Store(false)
		})
	}
}

// TestRevokeUser: "sign this user out everywhere" on the dashboard, for
// administrators acting as themselves, with the CSRF token and a plain
// address; every outcome is audited with the actor.
func TestRevokeUser(t *testing.T) {
	tests := []struct {
		name       string
		actor      string
		fields     url.Values
		noCSRF     bool
		storeDown  bool
		wantStatus int
		wantBody   string
		// wantEvent is the audit entry written ("" none).
		wantEvent string
		revoked   bool
	}{
		{"an administrator signs a user out everywhere", admin, form("email", " Bob@Corp.example "), false, false,
			http.StatusOK, "bob@corp.example is signed out everywhere", audit.UserSignedOut, true},
		{"a user who is not an administrator is refused", "carol@corp.example", form("email", user), false, false,
			http.StatusForbidden, "Only administrators", audit.UserSignOutRefused, false},
		{"a post without the CSRF token is refused", admin, form("email", user), true, false,
			http.StatusForbidden, "could not be verified", "", false},
		{"an empty email is refused", admin, form("email", " "), false, false,
			http.StatusBadRequest, "Enter the email", "", false},
		{"a look-alike address is refused", admin, form("email", "bob@cоrp.example"), false, false,
			http.StatusBadRequest, "plain email address", "", false},
		{"an email sent twice is refused", admin, form("email", user, "email", "x@corp.example"), false, false,
			http.StatusBadRequest, "more than once", "", false},
		{"when the store cannot record it the answer is 503 and the user stays signed in", admin, form("email", user), false, true,
			http.StatusServiceUnavailable, "is not signed out", audit.UserSignOutRefused, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			bob := f.signedIn(f.token(user, "engineering"))
			actor := f.signedIn(f.token(tc.actor))
			fields := tc.fields
			if !tc.noCSRF {
				fields.Set("_csrf", actor.csrf(appHost, "/.pomerium/"))
			}
			f.store.down.Store(tc.storeDown)
			r := actor.post(appHost, "/.pomerium/revoke", fields)
			f.store.down.Store(false)
			if r.StatusCode != tc.wantStatus || !strings.Contains(htmlUnescape(r.body), tc.wantBody) {
				t.Fatalf("revoke: %d, want %d with %q\n%s", r.StatusCode, tc.wantStatus, tc.wantBody, r.body)
			}
			if tc.wantEvent != "" {
				es := f.audit(tc.wantEvent)
				if len(es) != 1 || es[0].ContextMap()["actor_email"] != tc.actor {
					t.Errorf("audit %s = %v, want one by %s", tc.wantEvent, es, tc.actor)
				}
			}
			if p := bob.get(appHost, "/.pomerium/"); (p.StatusCode != http.StatusOK) != tc.revoked {
				t.Errorf("bob's session on the dashboard: %d, want revoked = %v", p.StatusCode, tc.revoked)
			}
		})
	}
}

// TestTheDashboardOffersSignOutEverywhereToAdministrators: the form is shown
// to an administrator acting as themselves only.
func TestTheDashboardOffersSignOutEverywhereToAdministrators(t *testing.T) {
	for _, tc := range []struct {
		name, email string
		want        bool
	}{
		{"an administrator sees the form", admin, true},
		{"a user does not", user, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			b := f.signedIn(f.token(tc.email))
			if got := strings.Contains(b.get(appHost, "/.pomerium/").body, `action="/.pomerium/revoke"`); got != tc.want {
				t.Errorf("form shown = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestOIDCWithTheStore: the authenticate host mints no route session from
// an authenticate session the store says ended, and a handoff that cannot be
// proven unused (the store is down) is refused with a page saying why.
func TestOIDCWithTheStore(t *testing.T) {
	wikiDash := "http://" + wikiHost + "/.pomerium/"
	appDash := "http://" + appHost + "/.pomerium/"
	t.Run("a user signed out everywhere must sign in at the provider again", func(t *testing.T) {
		f := newOIDCFixture(t)
		b := f.signedIn("bob", appDash)
		if err := f.store.RevokeUser(context.Background(), user); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Second)
		if r, _ := f.signIn(b, wikiHost, wikiDash); r.StatusCode != http.StatusFound {
			t.Fatalf("sign-in to wiki: %d\n%s", r.StatusCode, r.body)
		}
		if n := f.idp.Logins(); n != 2 {
			t.Errorf("logins at the provider = %d, want 2: the ended authenticate session minted a route session", n)
		}
	})
	t.Run("signing out on the authenticate host ends copies of its cookie", func(t *testing.T) {
		f := newOIDCFixture(t)
		b := f.signedIn("bob", appDash)
		copied := f.browser()
		authURL := "http://" + authHost + "/.pomerium/"
		u, _ := url.Parse(authURL)
		copied.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName + "_authenticate", Value: b.Cookie(authURL, cookieName+"_authenticate"), Path: "/"}})
		everywhere := "http://" + authHost + "/.pomerium/sign_in?signed_out=1"
		if r := b.do(http.MethodPost, "http://"+authHost+"/.pomerium/sign_out", form("_csrf", b.csrf(everywhere))); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign out on the authenticate host: %d\n%s", r.StatusCode, r.body)
		}
		f.clock.Advance(time.Second)
		f.signIn(copied, wikiHost, wikiDash)
		if n := f.idp.Logins(); n != 2 {
			t.Errorf("logins at the provider = %d, want 2: the copied authenticate cookie minted a route session", n)
		}
	})
	t.Run("a sign-in callback while the store is down answers 503 with a page", func(t *testing.T) {
		f := newOIDCFixture(t)
		f.idp.AutoLogin("bob")
		b := f.browser()
		var handoff string
		r, _ := b.follow(b.get(signInURL(appHost, appDash)), func(u *url.URL) bool {
			if u.Query().Get("pomerium_handoff") != "" {
				handoff = u.String()
				return true
			}
			return false
		})
		if handoff == "" {
			t.Fatalf("no handoff: %d\n%s", r.StatusCode, r.body)
		}
		f.store.down.Store(true)
		r = b.get(handoff)
		f.store.down.Store(false)
		if r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(r.body, "cannot be checked that the link was not used before") {
			t.Errorf("callback with the store down: %d\n%s", r.StatusCode, r.body)
		}
		if b.Cookie(appDash, cookieName) != "" {
			t.Error("a session was set although the handoff could not be proven unused")
		}
	})
}
