package decision_test

import (
	"testing"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
)

// Decide names the kind of outcome it reached, so that metrics and audit
// never parse the reason back.
func TestDecideNamesTheKindItReached(t *testing.T) {
	e := newEngine(t)
	alice := mint(t, claims("alice@corp.example", []string{"eng"}))
	bob := mint(t, claims("bob@partner.example", nil))
	tests := []struct {
		name  string
		req   decision.Request
		kind  decision.Kind
		cause identity.Cause
	}{
		{"a request no route matches is no route", request("nowhere.example.com", "/", pomerium(alice)), decision.KindNoRoute, 0},
		{"a public route is public", request("public.example.com", "/", headers{}), decision.KindPublic, 0},
		{"a request without a token is no token", request(appHost, "/", headers{}), decision.KindNoToken, 0},
		{"a refused token is a bad token with its cause", request(appHost, "/", pomerium("garbage")), decision.KindBadToken, identity.CauseMalformed},
		{"a non-administrator's impersonation is refused",
			request(appHost, "/", pomerium(mint(t, claims("alice@corp.example", nil, impersonate("carol@corp.example"))))),
			decision.KindImpersonationRefused, 0},
		{"a user the rules admit is allowed", request(appHost, "/", pomerium(alice)), decision.KindAllowed, 0},
		{"a user the rules do not admit is denied by policy", request(appHost, "/", pomerium(bob)), decision.KindDeniedByPolicy, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Decide(tc.req, now)
			if d.Kind != tc.kind || d.Cause != tc.cause {
				t.Fatalf("Decide = %v (cause %v, %q), want %v (cause %v)", d.Kind, d.Cause, d.Reason, tc.kind, tc.cause)
			}
		})
	}
}
