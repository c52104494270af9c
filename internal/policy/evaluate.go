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
	// A denial's reason lists whom the route allows: it is for
	// administrators (explain, the preview panel) and the logs, never for the
	// client that was denied, which gets ClientDenial.
	Reason string
}

// ReasonPublic is the reason a public route allows: the rule's own key.
const ReasonPublic = "allow_public_unauthenticated_access"

// ClientDenial is what a client the route's policy denied is told: the route
// and that its policy denied, never whom it allows (contract section 8), so a
// 403 cannot be used to learn the policy.
func (r *Route) ClientDenial() string { return r.clientDenial }

// Evaluate applies the route's allow rules to an authenticated identity. Public
// routes are decided before any token is read, so they are not handled here.
// Reasons are prepared at compile time: evaluating allocates nothing.
func (r *Route) Evaluate(id identity.Identity) Verdict {
	if r.Public {
		return Verdict{Allowed: true, Reason: ReasonPublic}
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

// describeClientDenial names the route by its name, else by its from.
func describeClientDenial(name, from string) string {
	if name != "" {
		return fmt.Sprintf("access denied: the policy of route %q does not allow this request", name)
	}
	return fmt.Sprintf("access denied: the policy of the route for %s does not allow this request", from)
}

// describeDenial names what the route would have accepted, leaving out empty rules.
func describeDenial(users, groups, domains []string) string {
	var parts []string
	for _, rule := range []struct {
		name string
		list []string
	}{{"users", users}, {"groups", groups}, {"domains", domains}} {
		if len(rule.list) > 0 {
			parts = append(parts, rule.name+" "+strings.Join(rule.list, ", "))
		}
	}
	if len(parts) == 0 {
		return "no rule matched: the route allows no one"
	}
	return "no rule matched: needs one of " + strings.Join(parts, "; ")
}
