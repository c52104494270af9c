package check

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/negotiate"
)

// HeaderAssertion carries the signed assertion upstream.
const HeaderAssertion = "x-pomerium-jwt-assertion"

// ClaimHeader copies one identity claim into an upstream header.
type ClaimHeader struct {
	Claim  string // email, user, groups or sub
	Header string // lower-case
}

// Snapshot is everything a Check needs, immutable once built. A config reload
// builds a new Snapshot and swaps it in whole.
type Snapshot struct {
	Engine *decision.Engine
	Key    *identity.SigningKey
	// Issuer is the assertion's iss; the request host when empty.
	Issuer       string
	ClaimHeaders []ClaimHeader
	Assertions   *AssertionCache
}

// allow builds the OK answer: identity headers set by overwrite, and removed
// from what goes upstream: our credentials, the sidecar's cookies, every
// client-sent x-pomerium-* header in any spelling and every configured claim
// header the sidecar did not set (contract sections 5 and 8). The removal
// runs on every allowed route, public and pass_identity_headers: false
// included.
func (s *Snapshot) allow(d *decision.Decision, r *Request, now time.Time, a *Answer) error {
	route := d.Route
	headers := r.Headers
	a.Allowed = true
	// At most: the assertion, the claim headers, the route's own and the cookie.
	a.room(2 + len(s.ClaimHeaders) + len(route.SetRequestHeaders))
	if d.Claims != nil && route.PassIdentityHeaders {
		host := identity.HostWithoutPort(r.Host)
		assertion, until, err := s.assertionUntil(d, host, now)
		if err != nil {
			return err
		}
		a.replayUntil = until
		a.setHeader(HeaderAssertion, assertion)
		// The headers name whom the assertion names (sub and user never empty).
		upstream := d.Upstream()
		for _, ch := range s.ClaimHeaders {
			// A claim the token lacks leaves its header absent (and the
			// client's copy removed below).
			if v, ok := claimValue(upstream, ch.Claim); ok && v != "" {
				a.setHeader(ch.Header, v)
			}
		}
	}
	for _, h := range route.SetRequestHeaders {
		a.setHeader(h.Name, h.Value)
	}
	// The session cookie and the sidecar's own cookies go; other cookies stay.
	cookieName := s.Engine.CookieName
	if c, removed := identity.WithoutCookies(headers.Get("cookie"), func(name string) bool {
		return identity.IsSidecarCookie(name, cookieName)
	}); removed && !a.isSet("cookie") {
		if c == "" {
			a.remove("cookie")
		} else {
			a.setHeader("cookie", utf8Value(c))
		}
	}
	strip := func(name string) {
		// Envoy matches names case-insensitively: never remove what we set.
		if !a.isSet(strings.ToLower(name)) {
			a.remove(name)
		}
	}
	if identity.IsPomeriumAuthorization(headers.Get("authorization")) {
		strip("authorization")
	}
	for _, h := range headers {
		if isPomeriumHeader(h.Name) || s.isClaimHeader(h.Name) {
			strip(h.Name)
		}
	}
	for _, name := range route.RemoveRequestHeaders {
		strip(name)
	}
	return nil
}

// isClaimHeader reports whether a request header is, in any spelling, one
// that jwt_claims_headers names: those belong to the sidecar on every route.
func (s *Snapshot) isClaimHeader(name string) bool {
	for _, ch := range s.ClaimHeaders {
		if sameHeaderName(name, ch.Header) {
			return true
		}
	}
	return false
}

// AssertionFor returns the signed upstream assertion for an allowed decision on
// host (without port), from the cache while it is fresh. What it says is
// decided by decision.Engine.Assertion.
func (s *Snapshot) AssertionFor(d *decision.Decision, host string, now time.Time) (string, error) {
	jws, _, err := s.assertionUntil(d, host, now)
	return jws, err
}

// assertionUntil is AssertionFor, also saying until when the same assertion
// would be returned (the cache's reuse rule, AssertionCache.get).
func (s *Snapshot) assertionUntil(d *decision.Decision, host string, now time.Time) (string, time.Time, error) {
	a := s.Engine.Assertion(d, s.Issuer, host)
	if s.Assertions != nil {
		return s.Assertions.get(s.Key, d.Token, d.Route.Name, a, now)
	}
	exp, err := a.Expiry(now)
	if err != nil {
		return "", time.Time{}, err
	}
	jws, err := s.Key.Sign(a, now)
	return jws, reuseUntil(now, exp), err
}

func claimValue(id identity.Identity, claim string) (string, bool) {
	switch claim {
	case "email":
		return id.Email, true
	case "user":
		return id.User, true
	case "sub":
		return id.Subject, true
	case "groups":
		return strings.Join(id.Groups, ","), true
	}
	return "", false
}

// deny builds a denial: the status, a body in the client's format that names
// the reason (see clientReason) and the request id, and the headers the status
// needs. The detailed reason stays in Answer.Reason, for operators.
func (s *Snapshot) deny(d *decision.Decision, format negotiate.Format, requestID string, r *Request, a *Answer) {
	status := int(d.Status)
	a.Reason = d.Reason
	switch d.Status {
	case decision.StatusSignIn:
		a.setHeader("location", signInURL(r.Scheme, r.Host, r.Path))
	case decision.StatusUnauthorized:
		a.setHeader("www-authenticate", "Pomerium")
	}
	if status == 0 {
		status = 403
	}
	a.Status = status
	a.Body = renderBody(format, status, clientReason(d), requestID)
	a.setHeader("content-type", format.ContentType())
	a.setHeader("cache-control", "no-store")
	a.setHeader("x-request-id", requestID)
}

// signInURL is where a browser without a session is sent: sign-in on the
// request's own host, carrying the original URL to come back to.
func signInURL(scheme, host, path string) string {
	if scheme != "http" && scheme != "https" {
		scheme = "https"
	}
	original := fmt.Sprintf("%s://%s%s", scheme, host, path)
	return "/.pomerium/sign_in?pomerium_redirect_uri=" + url.QueryEscape(original)
}
