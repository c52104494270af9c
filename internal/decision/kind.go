package decision

import "github.com/extauthz/extauthz/internal/policy"

// Kind is what kind of outcome a decision reached. Adapters map it to their
// own words: metrics to a reason class, audit to a decision, check to a
// status and body. The zero value is KindInternal, so a decision nobody
// finished fails closed.
type Kind uint8

// Kinds of outcome, in the order Decide can reach them.
const (
	KindInternal             Kind = iota // fail closed on an internal error (500)
	KindBadRequest                       // the adapter's request carries no HTTP attributes (400)
	KindNoRoute                          // no route matches, or the named one is not in the policy (404)
	KindPublic                           // the route is public: allowed without reading a token
	KindNoToken                          // no Pomerium token or session (401, or 302 for browsers)
	KindBadToken                         // a token was presented and refused; Decision.Cause says why
	KindImpersonationRefused             // the token's impersonation is refused (403)
	KindAllowed                          // the route's allow rules admit the identity
	KindDeniedByPolicy                   // the route's allow rules do not admit the identity (403)
	KindNotReady                         // the adapter refused before deciding: it has not read its shared store (503)
)

var kindNames = [...]string{
	KindInternal:             "internal",
	KindBadRequest:           "bad_request",
	KindNoRoute:              "no_route",
	KindPublic:               "public",
	KindNoToken:              "no_token",
	KindBadToken:             "bad_token",
	KindImpersonationRefused: "impersonation_refused",
	KindAllowed:              "allowed",
	KindDeniedByPolicy:       "denied_by_policy",
	KindNotReady:             "not_ready",
}

// String is the kind as a short stable word.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return kindNames[KindInternal]
}

// Canonical reasons: one sentence per outcome that is not a rule's own
// (a rule's reason is prepared by policy; a token's by identity; an
// impersonation refusal's by impersonation). Check's audit and logs, the
// dashboard and `extauthz explain --json` all say these.
const (
	ReasonPublic   = policy.ReasonPublic
	ReasonNoToken  = "no Pomerium token or session"
	ReasonNoRoute  = "no route matches this host and path"
	ReasonInternal = "internal error"
	// ReasonBadRequest is Check's refusal of a CheckRequest without HTTP attributes.
	ReasonBadRequest = "malformed check request: no HTTP attributes"
)
