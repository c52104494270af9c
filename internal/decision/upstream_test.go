package decision_test

import (
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
)

func TestUpstreamIdentityNeverLeavesSubOrUserEmpty(t *testing.T) {
	cases := []struct {
		name          string
		id            identity.Identity
		impersonating bool
		sub, user     string
	}{
		{"sub and user set are kept", identity.Identity{Subject: "u-1", User: "bob", Email: "bob@corp.example"}, false, "u-1", "bob"},
		{"both default to the email", identity.Identity{Email: "ci@corp.example"}, false, "ci@corp.example", "ci@corp.example"},
		{"user defaults to the email when sub is set", identity.Identity{Subject: "u-1", Email: "bob@corp.example"}, false, "u-1", "bob@corp.example"},
		{"without an email each defaults to the other", identity.Identity{User: "bob"}, false, "bob", "bob"},
		{"a group-only impersonation gets the fixed value", identity.Identity{Groups: []string{"eng"}}, true, decision.SubjectGroupImpersonation, decision.SubjectGroupImpersonation},
		{"a token naming no one gets its own fixed value", identity.Identity{Groups: []string{"eng"}}, false, decision.SubjectGroupsOnly, decision.SubjectGroupsOnly},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := decision.UpstreamIdentity(tc.id, tc.impersonating)
			if got.Subject != tc.sub || got.User != tc.user || got.Email != tc.id.Email || len(got.Groups) != len(tc.id.Groups) {
				t.Errorf("UpstreamIdentity(%+v) = %+v, want sub %q user %q and the rest unchanged", tc.id, got, tc.sub, tc.user)
			}
		})
	}
}

func TestDecideSaysWhenATokenWasSentInASchemeNotRead(t *testing.T) {
	e := newEngine(t)
	alice := mint(t, claims("alice@corp.example", []string{"eng"}))
	cases := []struct {
		name, auth string
		want       string // substring of the reason
		not        string // never in the reason
	}{
		{"a plain Bearer token is named as Bearer without the Pomerium- prefix", "Bearer " + alice,
			"a token was sent in Authorization: Bearer without the Pomerium- prefix", alice},
		{"a Basic credential is named by its scheme", "basic dXNlcjpwYXNz", "the Authorization scheme Basic", "dXNlcjpwYXNz"},
		{"an unknown scheme is not echoed back", "X-Secret-Scheme abc", "a token was sent in an Authorization scheme,", "X-Secret-Scheme"},
		{"no Authorization header says only that there is no token", "", "", "a token was sent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := headers{}
			if tc.auth != "" {
				h["authorization"] = tc.auth
			}
			d := e.Decide(request(appHost, "/", h), now)
			if d.Kind != decision.KindNoToken || d.Status != decision.StatusUnauthorized {
				t.Fatalf("Decide = %v %d, want no_token 401", d.Kind, d.Status)
			}
			if !strings.HasPrefix(d.Reason, decision.ReasonNoToken) || !strings.Contains(d.Reason, tc.want) || strings.Contains(d.Reason, tc.not) {
				t.Errorf("reason = %q, want %q and not %q", d.Reason, tc.want, tc.not)
			}
			if tc.want != "" && !strings.Contains(d.Reason, "Authorization: Pomerium <token>") {
				t.Errorf("reason = %q, want the carriers that are read", d.Reason)
			}
		})
	}
}
