package web

import (
	"crypto/sha256"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/audit"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/requestid"
	"github.com/extauthz/extauthz/internal/signin"
)

// session is a verified session read from a request: the first half of
// the decision (decision.Engine.Authenticate), for a GET. Its Impersonation
// says who it acts as.
type session struct{ decision.Decision }

// fromCookie reports whether the session came from the session cookie.
func (s *session) fromCookie() bool { return s.Source == identity.SourceCookie }

// reasonNoSession is the refusal when no carrier holds a token.
const reasonNoSession = decision.ReasonNoToken

// loadSession authenticates the request as Check does (the same carriers,
// in the same order, several session cookies read alike) for this host. On
// failure it returns the decision's reason, safe to show (never the token).
func (st *state) loadSession(r *http.Request, now time.Time) (*session, string) {
	d := st.set.Engine.Authenticate(decision.Request{Host: r.Host, Path: r.URL.Path, Method: http.MethodGet, Header: requestHeader(r)}, now)
	if !d.Authenticated() {
		return nil, d.Reason
	}
	return &session{d}, ""
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
// exp, nbf, iat, email, user, groups), a new jti, the same session id, and
// edit applied. The token is bounded so that it fits a browser cookie.
//
// Keeping the session id is what makes revocation stick: revoked_token_ids
// matches the sid, so revoking a stolen session refuses every token
// re-issued from it, whatever its jti. c was verified, so its session id is
// not revoked. A token with neither sid nor jti (the original pomerium-cli's)
// has no session id to keep: the re-issued token starts one, its own jti.
func (st *state) reissue(c *identity.Claims, edit func(*identity.Claims)) (string, *identity.Claims, error) {
	n := *c
	id, err := identity.NewTokenID()
	if err != nil {
		return "", nil, err
	}
	n.ID = id
	n.SID = c.SessionID()
	if n.SID == "" {
		n.SID = id
	}
	edit(&n)
	tok, err := identity.Mint(&n, st.set.Secret)
	if err != nil {
		return "", nil, err
	}
	if len(tok) > signin.MaxCookieValue {
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

// Why a session token was issued: the why of session_issued entries.
const (
	issuedSignIn               = "sign_in"
	issuedPastedToken          = "pasted_token"
	issuedRefresh              = "refresh"
	issuedImpersonationStarted = "impersonation_started"
	issuedImpersonationStopped = "impersonation_stopped"
	issuedImpersonationEnded   = "impersonation_ended"
)

// issueSession sets token, whose verified or minted claims are c, as the
// session cookie, and records it in the audit log: every token the pages put
// in a browser is logged once, with its jti and session id (what
// revoked_token_ids takes) and never its value.
func (s *Server) issueSession(st *state, w http.ResponseWriter, r *http.Request, token string, c *identity.Claims, why string) {
	st.setSession(w, token, c.ExpiresAt.Time)
	s.audit.Issued(c, why, auditRequest(r))
}

// restoreAfterImpersonation puts the administrator's own session back in the
// cookie once the impersonation in c, read from that cookie, has run out, so
// that every later request (here and through Check) acts as the
// administrator without re-reading stale claims, and records the end once,
// at that transition. A token carried in a header cannot be rewritten; Check
// audits each request made with it. It reports whether the cookie was
// rewritten; a failure is logged and the stale cookie kept.
func (s *Server) restoreAfterImpersonation(st *state, w http.ResponseWriter, r *http.Request, c *identity.Claims) bool {
	tok, next, err := st.reissue(c, withoutImpersonation)
	if err != nil {
		s.log.Error("re-issuing the session after an impersonation ended", zap.Error(err), zap.String("request_id", requestID(r)))
		return false
	}
	s.issueSession(st, w, r, tok, next, issuedImpersonationEnded)
	var ended time.Time
	if c.ImpersonateExp != nil {
		ended = c.ImpersonateExp.Time
	}
	s.auditImpersonation(audit.ImpersonationEnded, r, c, st.impersonated(c), append(audit.Session(next), audit.Ended(ended))...)
	return true
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

// auditRequest is what the audit log records of a page request.
func auditRequest(r *http.Request) audit.Request {
	return audit.Request{Host: r.Host, Method: r.Method, Path: r.URL.Path, RequestID: requestID(r)}
}

// auditImpersonation writes one audit entry about an impersonation. It never
// logs a token; the caller names the session involved in extra.
func (s *Server) auditImpersonation(event string, r *http.Request, actor *identity.Claims, t audit.Target, extra ...zap.Field) {
	s.audit.Impersonation(event, actor, t, auditRequest(r), extra...)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
