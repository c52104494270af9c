// Package decision is the one authorization decision: route, then public,
// then token, then impersonation, then policy. Envoy's Check (internal/check)
// calls Decide; the dashboard and sign-in pages call its first half,
// Authenticate; the dashboard's routes table, its preview panel and
// `extauthz explain` call Explain, which answers route by route with the same
// code. It does no I/O and reads no clock: time comes in as now.
package decision

import (
	"errors"
	"strings"
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
	StatusBadRequest   Status = 400
	StatusUnauthorized Status = 401
	StatusForbidden    Status = 403
	StatusNotFound     Status = 404
	StatusInternal     Status = 500
	StatusUnavailable  Status = 503 // the adapter is not ready to decide (its shared store is unread)
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
	// Kind is what the decision reached; adapters map it to metrics labels
	// and audit fields, never the Reason sentence.
	Kind Kind
	// Cause is why the token was refused, for KindBadToken.
	Cause  identity.Cause
	Status Status
	// Reason is the canonical reason (see Kind). It holds no secret, but a
	// policy denial's reason lists whom the route allows: Check shows that
	// client only the route (policy.Route.ClientDenial).
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

// Authenticated reports whether a token verified: Claims, Identity and
// Impersonation are then set.
func (d *Decision) Authenticated() bool { return d.Claims != nil }

// AsksToImpersonate reports whether the verified token asks to impersonate,
// live or ended: every decision on such a token belongs in the audit log.
func (d *Decision) AsksToImpersonate() bool {
	return d.Claims != nil && d.Claims.Impersonating()
}

// Fail turns d into an internal error (500), keeping who it was about so the
// audit log and the metrics see the answer the client got.
func (d *Decision) Fail() {
	d.Kind, d.Status, d.Reason = KindInternal, StatusInternal, ReasonInternal
}

// Engine holds everything a decision depends on. It is immutable; a config
// reload builds a new one.
type Engine struct {
	Policy     *policy.Policy
	Verifier   *identity.Verifier
	Rules      *impersonation.Rules
	CookieName string
	// Revocations, when set, are the revocations shared by replicas (the
	// store's in-memory view): a verified token they cover is refused like
	// one in revoked_token_ids. Revoked must not wait: it is read on every
	// Check, so it may only read memory.
	Revocations Revocations
}

// Revocations says whether a verified token was revoked after it was
// issued: by its jti, its session id, or its holder ("sign out everywhere").
// internal/store's View implements it without locks or I/O.
type Revocations interface {
	Revoked(c *identity.Claims) bool
}

// Decide runs route -> public -> token -> impersonation -> policy at now.
func (e *Engine) Decide(r Request, now time.Time) Decision {
	route, ok := e.Policy.Select(r.RouteName, r.Host, r.Path)
	if !ok {
		if r.RouteName != "" {
			return Decision{Kind: KindNoRoute, Status: StatusNotFound, Reason: "route " + r.RouteName + " is not in the policy"}
		}
		return Decision{Kind: KindNoRoute, Status: StatusNotFound, Reason: ReasonNoRoute}
	}
	if route.Public {
		return Decision{Kind: KindPublic, Status: StatusOK, Reason: ReasonPublic, Route: route}
	}
	d := Decision{Route: route}
	if e.authenticate(&d, r, now) {
		e.evaluate(&d, route)
	}
	return d
}

// Authenticate is the first half of Decide, for a request on a route that
// is not public: it reads the token from the carriers Check reads, in the
// same order, verifies it for r.Host, and applies impersonation for
// r.Method. When no token verified, the decision is final (KindNoToken or
// KindBadToken, a sign-in redirect for browsers with a cookie or nothing);
// otherwise Kind is not yet set and Claims, Identity and Impersonation are.
func (e *Engine) Authenticate(r Request, now time.Time) Decision {
	var d Decision
	e.authenticate(&d, r, now)
	return d
}

// authenticate fills d as Authenticate says, in place (Decide's hot path
// copies no Decision); it reports whether a token verified.
func (e *Engine) authenticate(d *Decision, r Request, now time.Time) bool {
	d.Token, d.Source = identity.ExtractToken(r.Header, e.CookieName)
	if d.Source == identity.SourceNone {
		d.Kind, d.Status, d.Reason = KindNoToken, e.unauthenticated(r, d.Source), e.noTokenReason(r.Header(identity.HeaderAuthorization))
		return false
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
		d.Kind, d.Status = KindBadToken, e.unauthenticated(r, d.Source)
		d.Cause, d.Reason = identity.CauseMalformed, identity.ReasonMalformed
		var te *identity.TokenError
		if errors.As(err, &te) {
			d.Cause, d.Reason = te.Cause, te.Reason
		}
		return false
	}
	if e.Revocations != nil && e.Revocations.Revoked(claims) {
		d.Kind, d.Status = KindBadToken, e.unauthenticated(r, d.Source)
		d.Cause, d.Reason = identity.CauseRevoked, identity.ReasonRevoked
		return false
	}
	d.Claims = claims
	d.Impersonation = e.Rules.Apply(claims, r.Method, now)
	d.Identity = d.Impersonation.Effective
	return true
}

// evaluate is the second half of Decide: an authenticated decision on a
// route that is not public, decided by the impersonation refusal or the
// route's allow rules.
func (e *Engine) evaluate(d *Decision, route *policy.Route) {
	if d.Impersonation.Refusal != "" {
		d.Kind, d.Status, d.Reason = KindImpersonationRefused, StatusForbidden, d.Impersonation.Refusal
		return
	}
	v := route.Evaluate(d.Identity)
	d.Reason = v.Reason
	if v.Allowed {
		d.Kind, d.Status = KindAllowed, StatusOK
	} else {
		d.Kind, d.Status = KindDeniedByPolicy, StatusForbidden
	}
}

// noTokenReason is ReasonNoToken, told why when the request did send a
// credential, in an Authorization scheme the sidecar does not read (a plain
// Bearer token, Basic): a client that sent one was most likely meant to reach
// here, so the answer names the carriers that are read. Only well-known
// scheme names are echoed back; the credential never is.
func (e *Engine) noTokenReason(auth string) string {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(auth), " ")
	if scheme == "" || strings.TrimSpace(rest) == "" {
		return ReasonNoToken
	}
	named := "an Authorization scheme"
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		named = "Authorization: Bearer without the Pomerium- prefix"
	default:
		for _, known := range []string{"Basic", "Digest", "Negotiate"} {
			if strings.EqualFold(scheme, known) {
				named = "the Authorization scheme " + known
			}
		}
	}
	cookie := e.CookieName
	if cookie == "" {
		cookie = "session"
	}
	return ReasonNoToken + ": a token was sent in " + named + ", which this sidecar does not read; it reads " +
		"Authorization: Pomerium <token>, Authorization: Bearer Pomerium-<token>, X-Pomerium-Authorization: <token> and the " +
		cookie + " cookie"
}

// unauthenticated sends browsers without a usable session to sign in; a bad
// token presented in a header is a client bug and gets a plain 401.
func (e *Engine) unauthenticated(r Request, src identity.Source) Status {
	if r.Browser && (src == identity.SourceNone || src == identity.SourceCookie) {
		return StatusSignIn
	}
	return StatusUnauthorized
}
