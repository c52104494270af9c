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
func (r *Route) Evaluate(id identity.Identity) Verdict {
	if r.Public {
		return Verdict{Allowed: true, Reason: "allow_public_unauthenticated_access"}
	}
	if r.AnyAuthenticated {
		return Verdict{Allowed: true, Reason: "allow_any_authenticated_user"}
	}
	email := identity.NormalizeEmail(id.Email)
	if email != "" {
		if _, ok := r.users[email]; ok {
			return Verdict{Allowed: true, Reason: "allowed_users matched " + email}
		}
	}
	for _, g := range id.Groups {
		if _, ok := r.groups[strings.TrimSpace(g)]; ok && g != "" {
			return Verdict{Allowed: true, Reason: "allowed_groups matched " + g}
		}
	}
	if d := identity.EmailDomain(email); d != "" {
		if _, ok := r.domains[d]; ok {
			return Verdict{Allowed: true, Reason: "allowed_domains matched " + d}
		}
	}
	return Verdict{Reason: r.denyReason()}
}

func (r *Route) denyReason() string {
	if len(r.userList)+len(r.groupList)+len(r.domainList) == 0 {
		return "no rule matched: the route allows no one"
	}
	return fmt.Sprintf("no rule matched: needs one of users %v, groups %v, domains %v", r.userList, r.groupList, r.domainList)
}
