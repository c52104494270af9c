// Package impersonation decides whose identity a verified token acts as: the
// holder's own, or (for administrators only) the impersonated user's, narrowed
// by access level, time limit and protected targets. It is pure: no I/O, and
// time comes in as an argument.
package impersonation

import (
	"strings"
	"time"

	"github.com/extauthz/extauthz/internal/identity"
)

// Rules are the config-derived settings impersonation is judged by. Build them
// with NewRules; they are immutable afterwards.
type Rules struct {
	admins map[string]struct{}
	// protected holds normalized (trimmed, lower-case) entries, matched against
	// both the target email and each target group.
	protected map[string]struct{}
	// DefaultAccess applies to tokens that state no impersonate_access.
	DefaultAccess string
}

// NewRules builds Rules. protected mixes emails and groups; each entry is
// matched both as an email and as a group name, since group names often look
// like emails and a miss here would be a privilege escalation.
//
// leeway is not applied: the clock-skew leeway is for the token's own exp,
// nbf and iat, which the verifier checks, while impersonate_exp ends exactly
// (contract section 8). The parameter stays until the constructor is reshaped.
func NewRules(administrators, protected []string, defaultAccess string, leeway time.Duration) *Rules {
	r := &Rules{
		admins:        make(map[string]struct{}, len(administrators)),
		protected:     make(map[string]struct{}, len(protected)),
		DefaultAccess: defaultAccess,
	}
	if r.DefaultAccess == "" {
		r.DefaultAccess = identity.AccessReadWrite
	}
	for _, a := range administrators {
		if a = identity.NormalizeEmail(a); a != "" {
			r.admins[a] = struct{}{}
		}
	}
	for _, p := range protected {
		if p = identity.NormalizeEmail(p); p != "" {
			r.protected[p] = struct{}{}
		}
	}
	return r
}

// IsAdministrator reports whether email may impersonate.
func (r *Rules) IsAdministrator(email string) bool {
	_, ok := r.admins[identity.NormalizeEmail(email)]
	return ok && email != ""
}

// ProtectedTarget returns a reason when email or any of groups may not be
// impersonated, or "" when the target is allowed.
func (r *Rules) ProtectedTarget(email string, groups []string) string {
	if e := identity.NormalizeEmail(email); e != "" {
		if _, ok := r.admins[e]; ok {
			return "administrators cannot be impersonated"
		}
		if _, ok := r.protected[e]; ok {
			return "impersonation target " + e + " is protected"
		}
	}
	for _, g := range groups {
		// Case-insensitive, like emails: "Admins" must not slip past a
		// protected "admins" (over-protecting a differently cased group is
		// harmless; missing it is an escalation).
		if _, ok := r.protected[identity.NormalizeEmail(g)]; ok {
			return "impersonation target group " + strings.TrimSpace(g) + " is protected"
		}
	}
	return ""
}

// Outcome is who a request acts as.
type Outcome struct {
	// Effective is the identity policy is evaluated against and passed upstream.
	Effective identity.Identity
	// Actor is the real holder; meaningful when Impersonating or Ended.
	Actor identity.Identity
	// Impersonating is true when Effective is not the holder.
	Impersonating bool
	// Ended is true when the token carried an impersonation that is no longer
	// live (impersonate_exp passed or beyond exp): the holder acts as themselves.
	Ended bool
	// Access and Reason describe the impersonation.
	Access string
	Reason string
	// Refusal, when not empty, says why the impersonation is refused: the
	// request must be answered 403.
	Refusal string
}

// Apply decides the effective identity for verified claims and a request
// method at now.
func (r *Rules) Apply(c *identity.Claims, method string, now time.Time) Outcome {
	holder := c.Holder()
	out := Outcome{Effective: holder, Actor: holder}
	if !c.Impersonating() {
		return out
	}
	if !r.live(c, now) {
		out.Ended = true
		return out
	}
	out.Impersonating = true
	out.Reason = c.ImpersonateReason
	out.Access = c.ImpersonateAccess
	if out.Access == "" {
		out.Access = r.DefaultAccess
	}
	// The administrator's own identity grants nothing from here on.
	out.Effective = identity.Identity{
		Subject: c.ImpersonateEmail,
		User:    c.ImpersonateEmail,
		Email:   c.ImpersonateEmail,
		Groups:  c.ImpersonateGroups,
	}
	switch {
	case !r.IsAdministrator(c.Email):
		out.Refusal = "impersonation requires an administrator"
	case out.Access != identity.AccessReadOnly && out.Access != identity.AccessReadWrite:
		out.Refusal = "impersonate_access must be read_only or read_write"
	default:
		if why := r.ProtectedTarget(c.ImpersonateEmail, c.ImpersonateGroups); why != "" {
			out.Refusal = why
		} else if identity.CheckAddress(c.ImpersonateEmail) != nil {
			// A look-alike of a protected user is not protected by name:
			// refuse anything that is not a plain ASCII address.
			out.Refusal = identity.ErrNotPlainAddress.Error()
		} else if out.Access == identity.AccessReadOnly && !ReadOnlyMethod(method) {
			out.Refusal = "read-only impersonation allows only GET, HEAD and OPTIONS, not " + method
		}
	}
	return out
}

// live reports whether the token's impersonation is still in force. It ends
// exactly at impersonate_exp, without the clock-skew leeway (which is for
// other machines' clocks on exp, nbf and iat): from that second on, requests
// act as the administrator (contract section 8).
func (r *Rules) live(c *identity.Claims, now time.Time) bool {
	if c.ImpersonateExp == nil {
		return true
	}
	end := c.ImpersonateExp.Time
	if c.ExpiresAt != nil && end.After(c.ExpiresAt.Time) {
		return false
	}
	return now.Before(end)
}

// ReadOnlyMethod reports whether a method is allowed under read_only access.
func ReadOnlyMethod(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS":
		return true
	}
	return false
}
