package decision

import (
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/policy"
)

// Verdict is what Decide answers on one route, for explain and the
// dashboard: the same kind and the same canonical reason.
type Verdict struct {
	Route   *policy.Route
	Allowed bool
	Kind    Kind
	Reason  string
}

// Explain answers, for every route in policy order, what Decide answers a
// request on it carrying the token that authenticated a (a decision from
// Authenticate, or from As). Public routes are allowed as Decide allows them,
// before any token is read; on the others an impersonation refusal denies,
// then the route's allow rules decide.
func (e *Engine) Explain(a Decision) []Verdict {
	out := make([]Verdict, 0, len(e.Policy.Routes))
	for _, route := range e.Policy.Routes {
		d := a
		if route.Public {
			d.Kind, d.Status, d.Reason = KindPublic, StatusOK, ReasonPublic
		} else {
			e.evaluate(&d, route)
		}
		out = append(out, Verdict{Route: route, Allowed: d.Allowed(), Kind: d.Kind, Reason: d.Reason})
	}
	return out
}

// As is an authenticated decision for a token held by id itself, asking no
// impersonation: what the dashboard's preview panel and `extauthz explain`
// pass to Explain.
func As(id identity.Identity) Decision {
	return Decision{Claims: &identity.Claims{Email: id.Email, User: id.User, Groups: id.Groups}, Identity: id}
}
