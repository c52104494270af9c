package check

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"

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
// included. headers are the request's, as requestHeaders read them.
func (s *Snapshot) allow(d *decision.Decision, r *authv3.AttributeContext_HttpRequest, headers map[string]string, now time.Time) (*authv3.CheckResponse, error) {
	route := d.Route
	// At most: the assertion, the claim headers, the route's own and the cookie.
	b := newOKAnswer(2 + len(s.ClaimHeaders) + len(route.SetRequestHeaders))
	ok := &b.ok
	if d.Claims != nil && route.PassIdentityHeaders {
		host := identity.HostWithoutPort(r.GetHost())
		assertion, err := s.AssertionFor(d, host, now)
		if err != nil {
			return nil, err
		}
		b.headers.set(HeaderAssertion, assertion)
		// The headers name whom the assertion names (sub and user never empty).
		upstream := d.Upstream()
		for _, ch := range s.ClaimHeaders {
			// A claim the token lacks leaves its header absent (and the
			// client's copy removed below).
			if v, ok := claimValue(upstream, ch.Claim); ok && v != "" {
				b.headers.set(ch.Header, v)
			}
		}
	}
	for _, h := range route.SetRequestHeaders {
		b.headers.set(h.Name, h.Value)
	}
	// The session cookie and the sidecar's own cookies go; other cookies stay.
	cookieName := s.Engine.CookieName
	if c, removed := identity.WithoutCookies(headers["cookie"], func(name string) bool {
		return identity.IsSidecarCookie(name, cookieName)
	}); removed && !b.headers.isSet("cookie") {
		if c == "" {
			ok.HeadersToRemove = append(ok.HeadersToRemove, "cookie")
		} else {
			b.headers.set("cookie", utf8Value(c))
		}
	}
	remove := func(name string) {
		// Envoy matches names case-insensitively: never remove what we set.
		if !b.headers.isSet(strings.ToLower(name)) {
			ok.HeadersToRemove = append(ok.HeadersToRemove, name)
		}
	}
	if identity.IsPomeriumAuthorization(headers["authorization"]) {
		remove("authorization")
	}
	for name := range headers {
		if isPomeriumHeader(name) || s.isClaimHeader(name) {
			remove(name)
		}
	}
	for _, name := range route.RemoveRequestHeaders {
		remove(name)
	}
	ok.Headers = b.headers.list
	return &b.resp, nil
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
	a := s.Engine.Assertion(d, s.Issuer, host)
	if s.Assertions == nil {
		return s.Key.Sign(a, now)
	}
	return s.Assertions.Get(s.Key, d.Token, d.Route.Name, a, now)
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
// needs. The gRPC status message keeps the detailed reason: Envoy never sends
// it to the client, and operators read it in Envoy's debug log.
func (s *Snapshot) deny(d *decision.Decision, format negotiate.Format, requestID string, r *authv3.AttributeContext_HttpRequest) *authv3.CheckResponse {
	status := int(d.Status)
	code := codes.PermissionDenied
	b := newDenyAnswer(4)
	switch d.Status {
	case decision.StatusSignIn:
		code = codes.Unauthenticated
		b.headers.set("location", SignInURL(r))
	case decision.StatusUnauthorized:
		code = codes.Unauthenticated
		b.headers.set("www-authenticate", "Pomerium")
	}
	if status == 0 {
		status = 403
	}
	b.denied.Body = renderBody(format, status, clientReason(d), requestID)
	b.headers.set("content-type", format.ContentType())
	b.headers.set("cache-control", "no-store")
	b.headers.set("x-request-id", requestID)
	b.status.Code, b.status.Message = int32(code), d.Reason
	b.http.Code = typev3.StatusCode(status)
	b.denied.Headers = b.headers.list
	return &b.resp
}

// SignInURL is where a browser without a session is sent: sign-in on the
// request's own host, carrying the original URL to come back to.
func SignInURL(r *authv3.AttributeContext_HttpRequest) string {
	scheme := r.GetScheme()
	if scheme != "http" && scheme != "https" {
		scheme = "https"
	}
	original := fmt.Sprintf("%s://%s%s", scheme, r.GetHost(), r.GetPath())
	return "/.pomerium/sign_in?pomerium_redirect_uri=" + url.QueryEscape(original)
}
