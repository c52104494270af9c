package decision_test

import (
	"testing"

	"github.com/extauthz/extauthz/internal/decision"
)

// BenchmarkDecide measures the whole pure decision for one request: route
// match, token extraction, HS256 verification, impersonation and policy.
func BenchmarkDecide(b *testing.B) {
	e := newEngine(b)
	cases := []struct {
		name string
		req  decision.Request
		want decision.Status
	}{
		{"allowed", request(appHost, "/", pomerium(mint(b, claims("alice@corp.example", []string{"eng"})))), decision.StatusOK},
		{"denied", request(appHost, "/", pomerium(mint(b, claims("bob@partner.example", nil)))), decision.StatusForbidden},
		{"impersonated", request(appHost, "/finance/q3",
			pomerium(mint(b, claims(adminID, []string{"admins"}, impersonate("", "finance"))))), decision.StatusOK},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			if d := e.Decide(bc.req, now); d.Status != bc.want {
				b.Fatalf("Decide = %d (%s), want %d", d.Status, d.Reason, bc.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				e.Decide(bc.req, now)
			}
		})
	}
}
