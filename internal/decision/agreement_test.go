package decision_test

import (
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/impersonation"
	"github.com/extauthz/extauthz/internal/policy"
	"github.com/extauthz/extauthz/internal/testkit"
)

// TestExplainAgreesWithDecide generates a policy of 60 routes and 60
// identities and checks, for every pair, that Explain (what `extauthz
// explain`, the dashboard and its preview panel show) says exactly what Decide
// decides for a token carrying that identity, held directly and impersonated
// by an administrator: allowed, kind and reason. The same comparison through
// the real callers (Check over gRPC, the dashboard's JSON, explain --json) is
// cmd/extauthz's TestCheckTheDashboardAndExplainAgree.
func TestExplainAgreesWithDecide(t *testing.T) {
	pop := testkit.NewPopulation(60, 60, 7)
	pol, err := policy.Compile(pop.Routes)
	if err != nil {
		t.Fatal(err)
	}
	const admin = "root@corp.example"
	v, err := identity.NewVerifier(identity.VerifierOptions{Secrets: []string{secret}})
	if err != nil {
		t.Fatal(err)
	}
	e := &decision.Engine{Policy: pol, Verifier: v, CookieName: "_pomerium",
		Rules: impersonation.NewRules([]string{admin}, nil, identity.AccessReadWrite, time.Minute)}
	now := time.Now()
	mintFor := func(c identity.Claims) string {
		return testkit.Mint(t, secret, testkit.Fill(c, "", now, pop.Audience()...))
	}

	var allowed, denied int
	for _, id := range pop.IDs {
		held := mintFor(identity.Claims{Email: id.Email, Groups: id.Groups})
		impersonated := mintFor(identity.Claims{Email: admin, Groups: []string{"admins"}, ImpersonateEmail: id.Email, ImpersonateGroups: id.Groups})
		for i, preview := range e.Explain(decision.As(id)) {
			r := pol.Routes[i]
			for how, tok := range map[string]string{"held": held, "impersonated": impersonated} {
				d := e.Decide(decision.Request{Host: r.Host, Path: "/", Method: "GET", Header: pomerium(tok).get}, now)
				if d.Allowed() != preview.Allowed || d.Kind != preview.Kind || d.Reason != preview.Reason {
					t.Errorf("%s on %s (%s): Explain says %v (%s), Decide says %d (%s)",
						id.Email, r.Name, how, preview.Allowed, preview.Reason, d.Status, d.Reason)
				}
				if d.Allowed() {
					allowed++
				} else {
					denied++
					if d.Status != decision.StatusForbidden || d.Kind != decision.KindDeniedByPolicy {
						t.Errorf("%s on %s (%s): denial is %d, want 403", id.Email, r.Name, how, d.Status)
					}
				}
			}
		}
	}
	// The generated policy must exercise both outcomes, or agreement means little.
	if allowed < len(pop.IDs) || denied < len(pop.IDs) {
		t.Fatalf("generated policy is lopsided: %d allowed, %d denied", allowed, denied)
	}
}
