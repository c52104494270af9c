package policy

import (
	"fmt"
	"strings"

	"github.com/extauthz/extauthz/internal/identity"
)

// Verdict is the outcome of a route's allow rules for one identity.
type Verdict struct {
	Allowed bool
	// Reason names the rule that decided, in words an operator can act on.
	Reason string
}

// Evaluate applies the route's allow rules to an authenticated identity. Public
// routes are decided before any token is read, so they are not handled here.
// Reasons are prepared at compile time: evaluating allocates nothing.
func (r *Route) Evaluate(id identity.Identity) Verdict {
	if r.Public {
		return Verdict{Allowed: true, Reason: "allow_public_unauthenticated_access"}
	}
	if r.AnyAuthenticated {
		return Verdict{Allowed: true, Reason: "allow_any_authenticated_user"}
	}
	email := identity.NormalizeEmail(id.Email)
	if email != "" {
		if reason, ok := r.users[email]; ok {
			return Verdict{Allowed: true, Reason: reason}
		}
	}
	for _, g := range id.Groups {
		if reason, ok := r.groups[strings.TrimSpace(g)]; ok {
			return Verdict{Allowed: true, Reason: reason}
		}
	}
	if d := identity.EmailDomain(email); d != "" {
		if reason, ok := r.domains[d]; ok {
			return Verdict{Allowed: true, Reason: reason}
		}
	}
	return Verdict{Reason: r.denyReason}
}

// describeDenial names what the route would have accepted, leaving out empty rules.
func describeDenial(users, groups, domains []string) string {
	var parts []string
	for _, rule := range []struct {
		name string
		list []string
	}{{"users", users}, {"groups", groups}, {"domains", domains}} {
		if len(rule.list) > 0 {
			parts = append(parts, fmt.Sprintf("%s %v", rule.name, rule.list))
		}
	}
	if len(parts) == 0 {
		return "no rule matched: the route allows no one"
	}
	return "no rule matched: needs one of " + strings.Join(parts, ", ")
}
