package check_test

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/identity"
)

// The assertion's sub and user and the claim headers are never empty
// upstream (decision.UpstreamIdentity): apps key identities on them.
func TestCheckNamesEveryIdentityUpstream(t *testing.T) {
	f := newFixtureWith(t, func(s *check.Snapshot) {
		s.ClaimHeaders = append(s.ClaimHeaders, check.ClaimHeader{Claim: "sub", Header: "x-pomerium-claim-sub"},
			check.ClaimHeader{Claim: "user", Header: "x-pomerium-claim-user"})
	})
	cases := []struct {
		name      string
		claims    identity.Claims
		sub, user string
		actorSub  string
	}{
		{"a token with its own sub and user keeps them",
			identity.Claims{Email: "bob@corp.example", User: "bob", Groups: []string{"engineering"}, RegisteredClaims: jwt.RegisteredClaims{Subject: "u-bob"}},
			"u-bob", "bob", ""},
		{"a service account minted without -sub is named by its email",
			identity.Claims{Email: "ci@corp.example", Groups: []string{"engineering"}},
			"ci@corp.example", "ci@corp.example", ""},
		{"a group-only impersonation gets the fixed group-impersonation name",
			identity.Claims{Email: "alice@corp.example", Groups: []string{"admins"}, ImpersonateGroups: []string{"engineering"}},
			"group-impersonation", "group-impersonation", "alice@corp.example"},
		{"an impersonating administrator without sub is named by email in act",
			identity.Claims{Email: "alice@corp.example", ImpersonateEmail: "bob@corp.example", ImpersonateGroups: []string{"engineering"}},
			"bob@corp.example", "bob@corp.example", "alice@corp.example"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.check(t, envoyRequest("GET", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + mint(t, tc.claims)}, "app"))
			set := setHeaders(t, resp)
			claims := verifyAssertion(t, f.key, set["x-pomerium-jwt-assertion"])
			if claims["sub"] != tc.sub || claims["user"] != tc.user {
				t.Errorf("assertion sub, user = %v, %v; want %q, %q", claims["sub"], claims["user"], tc.sub, tc.user)
			}
			if set["x-pomerium-claim-sub"] != tc.sub || set["x-pomerium-claim-user"] != tc.user {
				t.Errorf("claim headers sub, user = %q, %q; want %q, %q", set["x-pomerium-claim-sub"], set["x-pomerium-claim-user"], tc.sub, tc.user)
			}
			act, _ := claims["act"].(map[string]any)
			if got, _ := act["sub"].(string); got != tc.actorSub {
				t.Errorf("act.sub = %q, want %q", got, tc.actorSub)
			}
		})
	}
}
