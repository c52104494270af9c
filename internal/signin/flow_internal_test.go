package signin

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/idp"
	"go.uber.org/zap"
)

// A reload that keeps the identity provider keeps its client (and so its
// discovery cache); one that changes it builds a new client.
func TestReloadKeepsProviderClient(t *testing.T) {
	cfg := Config{Secret: "a shared secret of sufficient length, 32+", Provider: idp.Config{ProviderURL: "http://127.0.0.1:1", ClientID: "c"}}
	build := func(c Config, prev *Flow) *Flow {
		return New(c, prev, NewGuard("", nil), nil, nil, zap.NewNop(), time.Now)
	}
	first := build(cfg, nil)
	if build(cfg, first).client != first.client {
		t.Error("an unchanged provider got a new client on reload")
	}
	changed := cfg
	changed.Provider.ClientID = "other"
	if build(changed, first).client == first.client {
		t.Error("a changed provider kept the old client")
	}
	none := cfg
	none.Provider.ProviderURL = ""
	if build(none, first) != nil {
		t.Error("no provider, yet the identity-provider sign-in is on")
	}
}

func TestSealedAndSignedValues(t *testing.T) {
	k := deriveKeys("secret one, long enough to be a secret")
	other := deriveKeys("secret two, long enough to be a secret")
	v, err := seal(k.handoff, purposeHandoff, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := open(k.handoff, purposeHandoff, v); !ok || string(got) != "payload" {
		t.Fatalf("open: %q %v", got, ok)
	}
	for name, try := range map[string]func() bool{
		"other key":     func() bool { _, ok := open(other.handoff, purposeHandoff, v); return ok },
		"other purpose": func() bool { _, ok := open(k.handoff, purposeRefresh, v); return ok },
		"refresh key":   func() bool { _, ok := open(k.refresh, purposeHandoff, v); return ok },
		"truncated":     func() bool { _, ok := open(k.handoff, purposeHandoff, v[:len(v)-1]); return ok },
	} {
		if try() {
			t.Errorf("a sealed value opened with %s", name)
		}
	}
	s, err := signValue(k.auth, purposeAuth, authSession{Subject: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	var as authSession
	if !verifySigned(k.auth, purposeAuth, s, &as) || as.Subject != "bob" {
		t.Fatal("a signed value does not verify")
	}
	if verifySigned(k.flow, purposeAuth, s, &as) || verifySigned(k.auth, purposeFlow, s, &as) || verifySigned(other.auth, purposeAuth, s, &as) {
		t.Error("a signed value verifies under another key or purpose")
	}
	if verifySigned(k.auth, purposeAuth, "x"+s, &as) {
		t.Error("an altered value verifies")
	}
}

// The authenticate session cookie, set and cleared, is a __Host- cookie when
// cookies are secure, and keeps its plain name otherwise.
func TestAuthenticateSessionCookie(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secure bool
		want   string
	}{
		{name: "secure cookies get the __Host- prefix", secure: true, want: "__Host-_pomerium_authenticate"},
		{name: "plain HTTP cookies keep the plain name", want: "_pomerium_authenticate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &Flow{keys: deriveKeys("a shared secret of sufficient length, 32+"), cfg: Config{CookieName: "_pomerium", CookieSecure: tc.secure}}
			set, err := o.authCookie(&authSession{Subject: "bob", Expires: 2_000_000_000})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			o.ClearAuthSession(rec)
			cleared := rec.Result().Cookies()
			if len(cleared) != 1 {
				t.Fatalf("clearing set %d cookies", len(cleared))
			}
			for _, c := range []*http.Cookie{set, cleared[0]} {
				if c.Name != tc.want || c.Path != "/" || c.Domain != "" || c.Secure != tc.secure || !c.HttpOnly {
					t.Errorf("cookie %+v", c)
				}
			}
		})
	}
}
