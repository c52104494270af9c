package policy

import "strings"

// This file finds routes that are valid but probably not what was meant,
// for `extauthz validate`'s warnings.

// AllowsNoOne reports whether the route admits nobody: not public, not any
// authenticated user, and no allowed_users, allowed_groups or
// allowed_domains. Every request on it is denied.
func (r *Route) AllowsNoOne() bool {
	return !r.Public && !r.AnyAuthenticated && len(r.users) == 0 && len(r.groups) == 0 && len(r.domains) == 0
}

// Shadows reports whether r, earlier in the policy, matches every request
// that later could match, so that later is never chosen by host and path
// (only by name, when Envoy names it in context_extensions). It is
// conservative: a regex on either side is never judged to shadow.
func (r *Route) Shadows(later *Route) bool {
	return r.coversHost(later) && r.coversPath(later)
}

func (r *Route) coversHost(later *Route) bool {
	switch {
	case !r.wildcard:
		return !later.wildcard && later.Host == r.Host
	case later.wildcard:
		// ".corp.example" covers ".a.corp.example" and itself.
		return strings.HasSuffix(later.Host, r.Host)
	}
	return len(later.Host) > len(r.Host) && strings.HasSuffix(later.Host, r.Host)
}

func (r *Route) coversPath(later *Route) bool {
	switch {
	case r.Regex != nil:
		return false
	case r.Path != "":
		return later.Path == r.Path
	case r.Prefix != "":
		switch {
		case later.Path != "":
			return strings.HasPrefix(later.Path, r.Prefix)
		case later.Prefix != "":
			return strings.HasPrefix(later.Prefix, r.Prefix)
		}
		return false
	}
	return true // no path match: every path
}
