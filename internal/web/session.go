package web

import (
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/impersonation"
	"github.com/extauthz/extauthz/internal/requestid"
)

// session is a verified session read from a request.
type session struct {
	Token   string
	Source  identity.Source
	Claims  *identity.Claims
	Outcome impersonation.Outcome // for GET: who the session acts as
}

// fromCookie reports whether the session came from the session cookie.
func (s *session) fromCookie() bool { return s.Source == identity.SourceCookie }

// reasonNoSession is the refusal when no carrier holds a token.
const reasonNoSession = "no Pomerium token or session"

// loadSession reads the token from the same carriers, in the same order, as
// Check does, and verifies it for this host. On failure it returns a reason
// safe to show (never the token).
func (st *state) loadSession(r *http.Request, now time.Time) (*session, string) {
	token, src := identity.ExtractToken(requestHeader(r), st.cookieName)
	if src == identity.SourceNone {
		return nil, reasonNoSession
	}
	var claims *identity.Claims
	var err error
	if src == identity.SourceCookie {
		// Several session cookies: as Check reads them (contract section 4).
		token, claims, err = st.set.Engine.Verifier.VerifyCookies(requestHeader(r)(identity.HeaderCookie), st.cookieName, r.Host, now)
	} else {
		claims, err = st.set.Engine.Verifier.Verify(token, r.Host, now)
	}
	if err != nil {
		var te *identity.TokenError
		if errors.As(err, &te) {
			return nil, te.Reason
		}
		return nil, identity.ReasonMalformed
	}
	return &session{
		Token:   token,
		Source:  src,
		Claims:  claims,
		Outcome: st.set.Engine.Rules.Apply(claims, http.MethodGet, now),
	}, ""
}

// requestHeader reads headers by lower-case name as ExtractToken expects;
// repeated Cookie headers (HTTP/2) are joined as Envoy joins them.
func requestHeader(r *http.Request) func(string) string {
	return func(name string) string {
		if name == identity.HeaderCookie {
			return strings.Join(r.Header.Values("Cookie"), "; ")
		}
		return r.Header.Get(name)
	}
}

// reissue mints a session with the same claims as c (same iss, sub, aud,
// exp, nbf, iat, email, user, groups), a new jti, and edit applied. The
// token is bounded so that it fits a browser cookie.
func (st *state) reissue(c *identity.Claims, edit func(*identity.Claims)) (string, *identity.Claims, error) {
	n := *c
	n.ID = ""
	edit(&n)
	tok, err := identity.Mint(&n, st.set.Secret)
	if err != nil {
		return "", nil, err
	}
	if len(tok) > maxCookieValue {
		return "", nil, formErrorf("The session would be too large for a browser cookie; use fewer or shorter groups.")
	}
	return tok, &n, nil
}

// withoutImpersonation removes every impersonation claim.
func withoutImpersonation(c *identity.Claims) {
	c.ImpersonateEmail = ""
	c.ImpersonateGroups = nil
	c.ImpersonateAccess = ""
	c.ImpersonateExp = nil
	c.ImpersonateReason = ""
}

// withImpersonation sets the impersonation claims of a validated form, ending at end.
func withImpersonation(f impersonateForm, end time.Time) func(*identity.Claims) {
	return func(c *identity.Claims) {
		c.ImpersonateEmail = f.Email
		c.ImpersonateGroups = f.Groups
		c.ImpersonateAccess = f.Access
		c.ImpersonateReason = f.Reason
		c.ImpersonateExp = jwt.NewNumericDate(end)
	}
}

// sessionCookie is the session cookie holding token until expires.
func (st *state) sessionCookie(token string, expires time.Time) *http.Cookie {
	return &http.Cookie{
		Name:     st.cookieName,
		Value:    token,
		Path:     "/",
		Domain:   st.set.CookieDomain,
		Expires:  expires,
		HttpOnly: true,
		Secure:   st.set.CookieSecure,
		SameSite: http.SameSiteLaxMode,
	}
}

// setSession writes the session cookie.
func (st *state) setSession(w http.ResponseWriter, token string, expires time.Time) {
	http.SetCookie(w, st.sessionCookie(token, expires))
}

// clearSession expires the session cookie with the same Domain and Path it
// was set with. With a cookie_domain, a host-only cookie of the same name
// (from before the domain was configured) is cleared too.
func (st *state) clearSession(w http.ResponseWriter) {
	c := st.sessionCookie("", time.Unix(0, 0))
	c.MaxAge = -1
	http.SetCookie(w, c)
	if c.Domain != "" {
		hostOnly := *c
		hostOnly.Domain = ""
		http.SetCookie(w, &hostOnly)
	}
}

// csrfKey derives the 32-byte CSRF key from the shared secret, under a label
// of its own so it can never be mistaken for a token key; every replica with
// the same secret derives the same key.
func csrfKey(secret string) []byte {
	sum := sha256.Sum256([]byte("extauthz/web/csrf-key/v1\x00" + secret))
	return sum[:]
}

type requestIDKey struct{}

// requestIDOf is Envoy's x-request-id when sane, else a fresh id.
func requestIDOf(r *http.Request) string {
	return requestid.Pick(r.Header.Get("X-Request-Id"))
}

// requestID is the id prepare attached to the request.
func requestID(r *http.Request) string {
	if id, ok := r.Context().Value(requestIDKey{}).(string); ok {
		return id
	}
	return ""
}

// auditImpersonation writes one audit entry about an impersonation. It never
// logs a token; token_id is the jti of the session involved.
func (s *Server) auditImpersonation(event string, r *http.Request, actor *identity.Claims, email string, groups []string, access, reason string, extra ...zap.Field) {
	fields := append([]zap.Field{
		zap.String("actor_email", actor.Email),
		zap.String("actor_user", actor.User),
		zap.String("impersonated_email", email),
		zap.Strings("impersonated_groups", nonNil(groups)),
		zap.String("access", access),
		zap.String("impersonation_reason", reason),
		zap.String("host", r.Host),
		zap.String("request_id", requestID(r)),
	}, extra...)
	s.audit.Info(event, fields...)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
