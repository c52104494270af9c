package decision

import "github.com/extauthz/extauthz/internal/identity"

// Assertion is what the upstream assertion of an allowed, authenticated
// decision says (contract section 8), issued by issuer (the host when empty)
// for host (without port): the effective identity; the administrator as actor
// while impersonating; and NotAfter, so that its exp is
// min(iat + lifetime, the token's exp + leeway, impersonate_exp), after iat
// (identity.Assertion.Expiry applies the lifetime and the "after iat").
// A token accepted within its leeway still gets an assertion that expires
// after it is issued.
func (e *Engine) Assertion(d *Decision, issuer, host string) identity.Assertion {
	a := identity.Assertion{Issuer: issuer, Audience: host, Identity: d.Identity}
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
		a.Actor = &identity.Actor{Subject: c.Subject, Email: c.Email}
		if exp := c.ImpersonateExp; exp != nil && (a.NotAfter.IsZero() || exp.Time.Before(a.NotAfter)) {
			a.NotAfter = exp.Time
		}
	}
	return a
}
