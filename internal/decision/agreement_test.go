package decision_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/impersonation"
	"github.com/extauthz/extauthz/internal/policy"
)

// TestExplainAgreesWithDecide generates a policy of 60 routes and 60
// identities and checks, for every pair, that Explain (what `extauthz
// explain`, the dashboard and its preview panel show) says exactly what Decide
// decides for a token carrying that identity, held directly and impersonated
// by an administrator: allowed, kind and reason. The same comparison through
// the real callers (Check over gRPC, the dashboard's JSON, explain --json) is
// cmd/extauthz's TestCheckTheDashboardAndExplainAgree.
func TestExplainAgreesWithDecide(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	groups := []string{"engineering", "finance", "support", "admins", "sales", "ops"}
	domains := []string{"corp.example", "partner.example", "contractor.example"}
	pick := func(from []string, max int) []string {
		var out []string
		for _, v := range from {
			if rng.IntN(len(from)) < max {
				out = append(out, v)
			}
		}
		return out
	}
	emailOf := func(i int) string { return fmt.Sprintf("user%02d@%s", i, domains[i%len(domains)]) }

	const n = 60
	specs := make([]policy.RouteSpec, n)
	for i := range specs {
		s := policy.RouteSpec{Name: fmt.Sprintf("r%02d", i), From: fmt.Sprintf("https://r%02d.example.com", i)}
		switch rng.IntN(10) {
		case 0:
			s.AllowPublicUnauthenticatedAccess = true
		case 1:
			s.AllowAnyAuthenticatedUser = true
		default:
			for j := 0; j < rng.IntN(4); j++ {
				s.AllowedUsers = append(s.AllowedUsers, emailOf(rng.IntN(n)))
			}
			s.AllowedGroups = pick(groups, 2)
			s.AllowedDomains = pick(domains, 1)
		}
		specs[i] = s
	}
	pol, err := policy.Compile(specs)
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
	aud := make(jwt.ClaimStrings, n)
	for i := range aud {
		aud[i] = fmt.Sprintf("r%02d.example.com", i)
	}
	now := time.Now()
	mintFor := func(c identity.Claims) string {
		c.Audience = aud
		c.ExpiresAt = jwt.NewNumericDate(now.Add(time.Hour))
		c.IssuedAt = jwt.NewNumericDate(now)
		tok, err := identity.Mint(&c, secret)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	var allowed, denied int
	for i := 0; i < n; i++ {
		id := identity.Identity{Email: emailOf(i), Groups: pick(groups, 2)}
		held := mintFor(identity.Claims{Email: id.Email, Groups: id.Groups})
		impersonated := mintFor(identity.Claims{Email: admin, Groups: []string{"admins"}, ImpersonateEmail: id.Email, ImpersonateGroups: id.Groups})
		for i, preview := range e.Explain(decision.As(id)) {
			r := pol.Routes[i]
			for how, tok := range map[string]string{"held": held, "impersonated": impersonated} {
				d := e.Decide(decision.Request{Host: r.Host, Path: "/", Method: "GET",
					Header: func(name string) string {
						if name == "authorization" {
							return "Pomerium " + tok
						}
						return ""
					}}, now)
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
	if allowed < n || denied < n {
		t.Fatalf("generated policy is lopsided: %d allowed, %d denied", allowed, denied)
	}
}
