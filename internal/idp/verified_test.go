package idp_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/idp"
	"github.com/extauthz/extauthz/internal/oidctest"
)

const (
	testClient   = "extauthz"
	testSecret   = "idp-test-client-secret"
	testRedirect = "http://rp.example.test/.pomerium/callback"
)

// signIn runs the authorization-code flow for username against p, the way a
// browser would up to the redirect back, and exchanges the code.
func signIn(t *testing.T, p *oidctest.Provider, c *idp.Client, username string) (*idp.Identity, error) {
	t.Helper()
	p.AutoLogin(username)
	ctx := context.Background()
	f := idp.NewFlow()
	next, err := c.AuthCodeURL(ctx, testRedirect, f)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range 10 {
		resp, err := hc.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil || resp.Header.Get("Location") == "" {
			t.Fatalf("GET %s: %d without a usable Location", next, resp.StatusCode)
		}
		if strings.HasPrefix(loc.String(), testRedirect) {
			q := loc.Query()
			if q.Get("state") != f.State {
				t.Fatalf("state %q, want %q", q.Get("state"), f.State)
			}
			return c.Exchange(ctx, testRedirect, q.Get("code"), f)
		}
		next = loc.String()
	}
	t.Fatal("the provider never redirected back")
	return nil, nil
}

func startProvider(t *testing.T, users ...oidctest.User) *oidctest.Provider {
	return oidctest.Start(t, oidctest.Options{ClientID: testClient, ClientSecret: testSecret,
		RedirectURIs: []string{testRedirect}, Users: users})
}

func newClient(p *oidctest.Provider, allowUnverified bool) *idp.Client {
	return idp.New(idp.Config{ProviderURL: p.Issuer, ClientID: testClient, ClientSecret: testSecret,
		AllowUnverifiedEmail: allowUnverified}, nil)
}

// Every spelling of email_verified, in the ID token and in userinfo, through
// a real provider: only true (or "true") from the source that decides signs in.
func TestExchangeRequiresAVerifiedEmail(t *testing.T) {
	for _, tc := range []struct {
		name            string
		token, userinfo any
		allow           bool
		signsIn         bool
		claim, source   string
	}{
		{name: "a boolean true in the ID token signs in", token: true, signsIn: true},
		{name: "the string true in the ID token signs in", token: "true", signsIn: true},
		{name: "false in the ID token is refused", token: false, claim: "false", source: "ID token"},
		{name: "the string false in the ID token is refused", token: "false", claim: `"false"`, source: "ID token"},
		{name: "a capitalised True in the ID token is refused", token: "True", claim: `"True"`, source: "ID token"},
		{name: "false in the ID token is refused even when userinfo says true", token: false, userinfo: true, claim: "false", source: "ID token"},
		{name: "true in userinfo signs in when the ID token lacks the claim", token: oidctest.Absent, userinfo: true, signsIn: true},
		{name: "the string true in userinfo signs in when the ID token lacks the claim", token: oidctest.Absent, userinfo: "true", signsIn: true},
		{name: "false in userinfo is refused when the ID token lacks the claim", token: oidctest.Absent, userinfo: false, claim: "false", source: "userinfo"},
		{name: "no claim in the ID token nor in userinfo is refused", token: oidctest.Absent, claim: "absent", source: "userinfo"},
		{name: "idp_allow_unverified_email signs in with false", token: false, allow: true, signsIn: true},
		{name: "idp_allow_unverified_email signs in without the claim", token: oidctest.Absent, allow: true, signsIn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProvider(t, oidctest.User{ID: "mallory-id", Name: "mallory", Email: "alice@corp.example",
				EmailVerified: tc.token, UserinfoEmailVerified: tc.userinfo})
			id, err := signIn(t, p, newClient(p, tc.allow), "mallory")
			if tc.signsIn {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if id.Email != "alice@corp.example" || id.Subject != "mallory-id" {
					t.Errorf("identity %+v", id)
				}
				return
			}
			if idp.KindOf(err) != idp.Unverified {
				t.Fatalf("got %+v, %v; want an Unverified error", id, err)
			}
			var ue *idp.UnverifiedEmailError
			if !errors.As(err, &ue) {
				t.Fatalf("no detail in %v", err)
			}
			if ue.Issuer != p.Issuer || ue.Subject != "mallory-id" || ue.Email != "alice@corp.example" || ue.Claim != tc.claim || ue.Source != tc.source {
				t.Errorf("detail %+v; want claim %s from %q at %s", ue, tc.claim, tc.source, p.Issuer)
			}
		})
	}
}

// A refresh reads the address's status again: an address that is no longer
// verified ends the identity there too.
func TestRefreshRequiresAVerifiedEmail(t *testing.T) {
	for _, tc := range []struct {
		name    string
		now     any
		allow   bool
		signsIn bool
	}{
		{name: "an address still verified refreshes", now: true, signsIn: true},
		{name: "an address now unverified is refused", now: false},
		{name: "an address whose claim is now absent everywhere is refused", now: oidctest.Absent},
		{name: "an address now unverified refreshes with idp_allow_unverified_email", now: false, allow: true, signsIn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProvider(t, oidctest.User{ID: "bob-id", Name: "bob", Email: "bob@corp.example"})
			c := newClient(p, tc.allow)
			id, err := signIn(t, p, c, "bob")
			if err != nil || !id.EmailVerified || id.RefreshToken == "" {
				t.Fatalf("sign-in: %+v, %v", id, err)
			}
			p.SetEmailVerified("bob", tc.now)
			again, err := c.Refresh(context.Background(), id.RefreshToken, id.Subject)
			if p.Refreshes() != 1 {
				t.Fatalf("%d refresh grants, want 1", p.Refreshes())
			}
			if tc.signsIn {
				if err != nil || again.Email != "bob@corp.example" {
					t.Errorf("refresh: %+v, %v", again, err)
				}
				return
			}
			if idp.KindOf(err) != idp.Unverified {
				t.Errorf("refresh: %+v, %v; want an Unverified error", again, err)
			}
		})
	}
}
