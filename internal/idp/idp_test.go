package idp

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestScopes(t *testing.T) {
	if c := New(Config{}, nil); !slices.Equal(c.scopes, DefaultScopes) {
		t.Errorf("default scopes %v", c.scopes)
	}
	if c := New(Config{Scopes: []string{"email", "groups"}}, nil); !slices.Equal(c.scopes, []string{"openid", "email", "groups"}) {
		t.Errorf("openid is always requested: %v", c.scopes)
	}
}

func TestGroupsClaim(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want []string
		bad  bool
	}{
		{raw: `null`},
		{raw: `[]`},
		{raw: `["a"," b ","a",""]`, want: []string{"a", "b"}},
		{raw: `"solo"`, want: []string{"solo"}},
		{raw: `{"a":1}`, bad: true},
		{raw: `[1,2]`, bad: true},
	} {
		id, err := fromClaims(claims{Subject: "s", Groups: json.RawMessage(tc.raw)})
		if (err != nil) != tc.bad {
			t.Errorf("%s: error %v", tc.raw, err)
			continue
		}
		if err == nil && !slices.Equal(id.Groups, tc.want) {
			t.Errorf("%s: groups %v, want %v", tc.raw, id.Groups, tc.want)
		}
		if err != nil && KindOf(err) != Invalid {
			t.Errorf("%s: kind %v", tc.raw, KindOf(err))
		}
	}
}

func TestEmailVerifiedSpellings(t *testing.T) {
	for _, tc := range []struct {
		name              string
		raw               string
		verified, present bool
	}{
		{name: "the boolean true is verified", raw: `true`, verified: true, present: true},
		{name: "the string true is verified, as AWS Cognito sends it", raw: `"true"`, verified: true, present: true},
		{name: "the string true escaped in JSON is still the string true", raw: `"tru\u0065"`, verified: true, present: true},
		{name: "the boolean false is not verified", raw: `false`, present: true},
		{name: "the string false is not verified", raw: `"false"`, present: true},
		{name: "a capitalised True is not verified", raw: `"True"`, present: true},
		{name: "an upper-case TRUE is not verified", raw: `"TRUE"`, present: true},
		{name: "a padded true is not verified", raw: `" true"`, present: true},
		{name: "the number 1 is not verified", raw: `1`, present: true},
		{name: "the string 1 is not verified", raw: `"1"`, present: true},
		{name: "the string yes is not verified", raw: `"yes"`, present: true},
		{name: "an empty string is not verified", raw: `""`, present: true},
		{name: "a list holding true is not verified", raw: `[true]`, present: true},
		{name: "an object is not verified", raw: `{"value":true}`, present: true},
		{name: "null counts as absent", raw: `null`},
		{name: "an absent claim is not verified", raw: ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verified, present := emailVerified(json.RawMessage(tc.raw))
			if verified != tc.verified || present != tc.present {
				t.Errorf("emailVerified(%s) = %v, %v; want %v, %v", tc.raw, verified, present, tc.verified, tc.present)
			}
		})
	}
}

func TestVerificationSource(t *testing.T) {
	id := &Identity{Subject: "s1", Email: "alice@corp.example"}
	ui := func(sub, email, verified string) *claims {
		return &claims{Subject: sub, Email: email, EmailVerified: json.RawMessage(verified)}
	}
	for _, tc := range []struct {
		name   string
		token  string
		ui     *claims
		ok     bool
		source string
	}{
		{name: "the ID token's true decides without userinfo", token: `true`, ok: true, source: "ID token"},
		{name: "the ID token's false decides even when userinfo says true", token: `false`, ui: ui("s1", "alice@corp.example", `true`), source: "ID token"},
		{name: "the ID token's True decides even when userinfo says true", token: `"True"`, ui: ui("s1", "alice@corp.example", `true`), source: "ID token"},
		{name: "userinfo's true decides when the ID token lacks the claim", ui: ui("s1", "alice@corp.example", `true`), ok: true, source: "userinfo"},
		{name: "userinfo's string true decides when the ID token lacks the claim", ui: ui("s1", "alice@corp.example", `"true"`), ok: true, source: "userinfo"},
		{name: "userinfo decides when the ID token's claim is null", token: `null`, ui: ui("s1", "alice@corp.example", `true`), ok: true, source: "userinfo"},
		{name: "userinfo's address may differ in case only", ui: ui("s1", "Alice@Corp.Example", `true`), ok: true, source: "userinfo"},
		{name: "userinfo's false is not verified", ui: ui("s1", "alice@corp.example", `false`), source: "userinfo"},
		{name: "userinfo without the claim is not verified", ui: ui("s1", "alice@corp.example", ``), source: "userinfo"},
		{name: "userinfo verifying another address is not verified", ui: ui("s1", "mallory@corp.example", `true`), source: "userinfo"},
		{name: "userinfo verifying another subject is not verified", ui: ui("s2", "alice@corp.example", `true`), source: "userinfo"},
		{name: "no claim anywhere is not verified", source: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := verification(id, json.RawMessage(tc.token), tc.ui)
			if v.ok != tc.ok || v.source != tc.source {
				t.Errorf("verification = %+v; want ok %v from %q", v, tc.ok, tc.source)
			}
		})
	}
}

func TestRequireVerified(t *testing.T) {
	unverified := verified{claim: `"True"`, source: "ID token"}
	t.Run("an unverified address is refused with who, where and what was sent", func(t *testing.T) {
		id := &Identity{Subject: "s1", Email: "alice@corp.example", EmailVerified: true}
		err := New(Config{}, nil).requireVerified(id, unverified, "https://idp.example")
		if KindOf(err) != Unverified {
			t.Fatalf("kind %v (%v), want Unverified", KindOf(err), err)
		}
		var ue *UnverifiedEmailError
		if !errors.As(err, &ue) || ue.Issuer != "https://idp.example" || ue.Subject != "s1" || ue.Email != "alice@corp.example" || ue.Claim != `"True"` {
			t.Errorf("detail %+v", ue)
		}
		if want := `email_verified is "True" in the ID token, want true`; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
		if id.EmailVerified {
			t.Error("the identity still says verified")
		}
	})
	t.Run("idp_allow_unverified_email accepts it and says it is unverified", func(t *testing.T) {
		id := &Identity{Subject: "s1", Email: "alice@corp.example"}
		if err := New(Config{AllowUnverifiedEmail: true}, nil).requireVerified(id, unverified, "https://idp.example"); err != nil || id.EmailVerified {
			t.Errorf("err %v, verified %v", err, id.EmailVerified)
		}
	})
}
