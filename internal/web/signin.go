package web

// This file is sign-in on the pages (sign-out is in revoke.go): the token sign-in page,
// and the glue to internal/signin when an identity provider is configured.

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/audit"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/negotiate"
	"github.com/extauthz/extauthz/internal/signin"
)

// callback is GET /.pomerium/callback: the provider's answer or a handoff
// (internal/signin).
func (s *Server) callback(st *state, w http.ResponseWriter, r *http.Request) {
	if st.oidc == nil {
		s.fail(w, r, http.StatusNotFound, "Sign-in with an identity provider is not configured here.", "")
		return
	}
	st.oidc.Callback(w, r)
}

// refresh is POST /.pomerium/refresh: re-read the identity from the provider
// and issue a new session (internal/signin).
func (s *Server) refresh(st *state, w http.ResponseWriter, r *http.Request) {
	if st.oidc == nil {
		s.fail(w, r, http.StatusBadRequest,
			"There is no identity provider to refresh from: sessions here come from tokens. Sign in again with a new token.", "")
		return
	}
	raw, err := field(r.PostForm, redirectParam)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error(), "")
		return
	}
	st.oidc.Refresh(w, r, raw)
}

// pagesFor is what internal/signin needs of the pages of one state.
type pagesFor struct {
	s  *Server
	st *state
}

func (p pagesFor) Fail(w http.ResponseWriter, r *http.Request, status int, msg, retry string) {
	p.s.fail(w, r, status, msg, retry)
}

func (p pagesFor) InternalError(w http.ResponseWriter, r *http.Request, err error) {
	p.s.internalError(p.st, w, r, err)
}

func (p pagesFor) Session(r *http.Request, now time.Time) *decision.Decision {
	if sess, _ := p.st.loadSession(r, now); sess != nil {
		return &sess.Decision
	}
	return nil
}

func (p pagesFor) Issue(w http.ResponseWriter, r *http.Request, token string, c *identity.Claims, why string, ended *identity.Claims) {
	p.s.issueSession(p.st, w, r, token, c, why)
	if ended != nil {
		p.s.auditImpersonation(audit.ImpersonationStopped, r, ended, p.st.impersonated(ended),
			append(audit.Session(c), zap.String("because", "session refreshed"))...)
	}
}

func (p pagesFor) RequestID(r *http.Request) string { return requestID(r) }

// signedOutView is the signed-out page of a Flow.
type signedOutView struct {
	page
	signin.SignedOut
}

func (p pagesFor) SignedOut(w http.ResponseWriter, r *http.Request, v *signin.SignedOut) {
	view := &signedOutView{page: newPage(r, "Signed out"), SignedOut: *v}
	view.SignedIn, view.SignedInAs = v.Session != "", v.Session
	p.s.render(w, r, http.StatusOK, "signed_out.html", view)
}

type signInView struct {
	page
	Redirect string
	Issuer   string
	Audience string
	Scheme   string
	// Current describes a session already present, valid or not.
	CurrentEmail  string
	CurrentReason string
}

func (s *Server) signInView(st *state, r *http.Request, now time.Time, redirect string) *signInView {
	v := &signInView{page: newPage(r, "Sign in"), Redirect: redirect, Audience: identity.HostWithoutPort(r.Host), Issuer: st.set.Issuer, Scheme: signin.RequestScheme(r)}
	if v.Issuer == "" {
		v.Issuer = v.Audience
	}
	if sess, reason := st.loadSession(r, now); sess != nil {
		v.CurrentEmail = sess.Claims.Email
		v.SignedIn, v.SignedInAs = true, sess.Claims.Email
	} else if reason != reasonNoSession {
		v.CurrentReason = reason
	}
	return v
}

// signInPage is GET /.pomerium/sign_in: how to get a token, and a form to paste one.
func (s *Server) signInPage(st *state, w http.ResponseWriter, r *http.Request) {
	if st.oidc != nil {
		st.oidc.SignIn(w, r)
		return
	}
	redirect, _ := st.redirects.Safe(r.URL.Query().Get(redirectParam), r)
	v := s.signInView(st, r, s.now(), redirect)
	if r.URL.Query().Get(signedOutParam) != "" {
		v.Notice = "You are signed out."
	}
	s.render(w, r, http.StatusOK, "sign_in.html", v)
}

// signIn is POST /.pomerium/sign_in: verify a pasted token for this host and
// make it the session cookie.
func (s *Server) signIn(st *state, w http.ResponseWriter, r *http.Request) {
	now := s.now()
	raw := first(r.PostForm, redirectParam)
	if raw == "" {
		raw = r.URL.Query().Get(redirectParam)
	}
	redirect, ok := st.redirects.Safe(raw, r)
	if !ok {
		redirect = ""
	}
	retry := func(status int, msg string) {
		v := s.signInView(st, r, now, redirect)
		v.Error = msg
		if negotiate.Preferred(r.Header.Get("Accept")) == negotiate.HTML {
			s.render(w, r, status, "sign_in.html", v)
			return
		}
		s.fail(w, r, status, msg, "")
	}
	token := pastedToken(first(r.PostForm, "token"))
	if token == "" {
		retry(http.StatusBadRequest, "Paste a token to sign in.")
		return
	}
	claims, err := st.set.Engine.Verifier.Verify(token, r.Host, now)
	if err != nil {
		why := identity.ReasonMalformed
		var te *identity.TokenError
		if errors.As(err, &te) {
			why = te.Reason
		}
		retry(http.StatusBadRequest, "This token cannot sign you in to "+identity.HostWithoutPort(r.Host)+": "+why+".")
		return
	}
	if len(token) > signin.MaxCookieValue {
		retry(http.StatusBadRequest, "This token is too large to keep in a browser cookie; use it in an Authorization header instead.")
		return
	}
	// The pasted token itself becomes the cookie, so this host's session id
	// is its session id: its sid, else its jti (see identity.Claims.SessionID).
	s.issueSession(st, w, r, token, claims, issuedPastedToken)
	if redirect == "" {
		redirect = pathDashboard
	}
	http.Redirect(w, r, redirect, http.StatusSeeOther)
}

// pastedToken accepts a bare token or one pasted with its header scheme.
func pastedToken(s string) string {
	s = strings.TrimSpace(s)
	for _, prefix := range []string{"Authorization:", "Pomerium ", "Bearer Pomerium-"} {
		if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
			s = strings.TrimSpace(s[len(prefix):])
		}
	}
	return s
}
