package decision

import "github.com/extauthz/extauthz/internal/identity"

// Fixed sub and user of identities that name no one, so that upstreams
// never key an identity on "" (where every such identity would collapse into
// one).
const (
	// SubjectGroupImpersonation is sub and user upstream while an
	// administrator impersonates groups without an email.
	SubjectGroupImpersonation = "group-impersonation"
	// SubjectGroupsOnly is sub and user upstream of a token that carries
	// neither sub, user nor email (only groups): no tool here mints one.
	SubjectGroupsOnly = "groups-only"
)

// UpstreamIdentity is id as upstreams see it (the assertion's sub and user,
// the claim headers, the dashboard): the one rule that sub and user are never
// empty. Each defaults to the email; without an email, to the other of the
// two; with neither, to SubjectGroupImpersonation while impersonating and to
// SubjectGroupsOnly otherwise. Policy is never evaluated against these
// defaults: they only name the identity.
func UpstreamIdentity(id identity.Identity, impersonating bool) identity.Identity {
	fixed := SubjectGroupsOnly
	if impersonating {
		fixed = SubjectGroupImpersonation
	}
	sub, user := id.Subject, id.User
	if sub == "" {
		sub = firstSet(id.Email, user, fixed)
	}
	if user == "" {
		user = firstSet(id.Email, sub)
	}
	id.Subject, id.User = sub, user
	return id
}

// Upstream is the identity an authenticated decision describes upstream:
// UpstreamIdentity of whom the request acts as.
func (d *Decision) Upstream() identity.Identity {
	return UpstreamIdentity(d.Identity, d.Impersonation.Impersonating)
}

func firstSet(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// Assertion is what the upstream assertion of an allowed, authenticated
// decision says (contract section 8), issued by issuer (the host when empty)
// for host (without port): the effective identity as Upstream names it; the
// administrator as actor while impersonating (its sub defaulting to its
// email, by the same rule); and NotAfter, so that its exp is
// min(iat + lifetime, the token's exp + leeway, impersonate_exp), after iat
// (identity.Assertion.Expiry applies the lifetime and the "after iat").
// A token accepted within its leeway still gets an assertion that expires
// after it is issued.
func (e *Engine) Assertion(d *Decision, issuer, host string) identity.Assertion {
	a := identity.Assertion{Issuer: issuer, Audience: host, Identity: d.Upstream()}
	if a.Issuer == "" {
		a.Issuer = host
	}
	c := d.Claims
	if c.ExpiresAt != nil {
		a.NotAfter = c.ExpiresAt.Time
		if e.Verifier != nil {
			a.NotAfter = a.NotAfter.Add(e.Verifier.Leeway())
		}
	}
	if d.Impersonation.Impersonating {
		actor := UpstreamIdentity(c.Holder(), false)
		a.Actor = &identity.Actor{Subject: actor.Subject, Email: c.Email}
		if exp := c.ImpersonateExp; exp != nil && (a.NotAfter.IsZero() || exp.Time.Before(a.NotAfter)) {
			a.NotAfter = exp.Time
		}
	}
	return a
}
