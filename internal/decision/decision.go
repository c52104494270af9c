// Package decision is the pure authorization decision shared by Envoy's Check,
// the dashboard and the debugging client: route, then token, then
// impersonation, then policy. It does no I/O and reads no clock.
package decision

import (
	"errors"
	"time"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/impersonation"
	"github.com/extauthz/extauthz/internal/policy"
)

// Status is the HTTP status a decision maps to; StatusOK allows.
type Status int

// Statuses of a decision (contract section 5).
const (
	StatusOK           Status = 200
	StatusSignIn       Status = 302
	StatusUnauthorized Status = 401
	StatusForbidden    Status = 403
	StatusNotFound     Status = 404
)

// Request is what the decision needs to know about one HTTP request.
type Request struct {
	// RouteName is Envoy's context_extensions["route"], if any.
	RouteName string
	Host      string // :authority, port allowed
	Path      string // may include a query
	Method    string
	// Header returns a request header by lower-case name.
	Header func(string) string
	// Browser is true when Accept prefers text/html.
	Browser bool
}

// Decision is the outcome for one request.
type Decision struct {
	Status Status
	// Reason explains the outcome. It holds no secret, but a policy
	// denial's reason lists whom the route allows: Check shows that client
	// only the route (policy.Route.ClientDenial).
	Reason string
	Route  *policy.Route
	// Token and Source are the carrier that was read, if any.
	Token  string
	Source identity.Source
	// Claims are the verified token's claims, when a token verified.
	Claims *identity.Claims
	// Identity is who the request acts as (after impersonation).
	Identity identity.Identity
	// Impersonation describes the impersonation, if the token asked for one.
	Impersonation impersonation.Outcome
}

// Allowed reports whether the request may go upstream.
func (d *Decision) Allowed() bool { return d.Status == StatusOK }

// Audited reports whether this decision belongs in the audit log: every
// decision on a token that asks to impersonate.
func (d *Decision) Audited() bool {
	return d.Claims != nil && d.Claims.Impersonating()
}

// Engine holds everything a decision depends on. It is immutable; a config
// reload builds a new one.
type Engine struct {
	Policy     *policy.Policy
	Verifier   *identity.Verifier
	Rules      *impersonation.Rules
	CookieName string
}

// Decide runs route -> public -> token -> impersonation -> policy at now.
func (e *Engine) Decide(r Request, now time.Time) Decision {
	route, ok := e.Policy.Select(r.RouteName, r.Host, r.Path)
	if !ok {
		if r.RouteName != "" {
			return Decision{Status: StatusNotFound, Reason: "route " + r.RouteName + " is not in the policy"}
		}
		return Decision{Status: StatusNotFound, Reason: "no route matches this host and path"}
	}
	d := Decision{Route: route}
	if route.Public {
		d.Status, d.Reason = StatusOK, "public route"
		return d
	}
	d.Token, d.Source = identity.ExtractToken(r.Header, e.CookieName)
	if d.Source == identity.SourceNone {
		d.Status, d.Reason = e.unauthenticated(r, d.Source), "no Pomerium token or session"
		return d
	}
	var claims *identity.Claims
	var err error
	if d.Source == identity.SourceCookie {
		// Several session cookies: their order must not decide (contract section 4).
		d.Token, claims, err = e.Verifier.VerifyCookies(r.Header(identity.HeaderCookie), e.CookieName, r.Host, now)
	} else {
		claims, err = e.Verifier.Verify(d.Token, r.Host, now)
	}
	if err != nil {
		var te *identity.TokenError
		d.Reason = identity.ReasonMalformed
		if errors.As(err, &te) {
			d.Reason = te.Reason
		}
		d.Status = e.unauthenticated(r, d.Source)
		return d
	}
	d.Claims = claims
	d.Impersonation = e.Rules.Apply(claims, r.Method, now)
	d.Identity = d.Impersonation.Effective
	if d.Impersonation.Denied != "" {
		d.Status, d.Reason = StatusForbidden, d.Impersonation.Denied
		return d
	}
	v := route.Evaluate(d.Identity)
	d.Reason = v.Reason
	if v.Allowed {
		d.Status = StatusOK
	} else {
		d.Status = StatusForbidden
	}
	return d
}

// unauthenticated sends browsers without a usable session to sign in; a bad
// token presented in a header is a client bug and gets a plain 401.
func (e *Engine) unauthenticated(r Request, src identity.Source) Status {
	if r.Browser && (src == identity.SourceNone || src == identity.SourceCookie) {
		return StatusSignIn
	}
	return StatusUnauthorized
}
