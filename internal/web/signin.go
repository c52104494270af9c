package web

import (
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/audit"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/signin"
)

// callback is GET /.pomerium/callback: the provider's answer or a handoff
// (internal/signin).
func (s *Server) callback(st *state, w http.ResponseWriter, r *http.Request) {
	if st.oidc == nil {
		s.fail(st, w, r, http.StatusNotFound, "Sign-in with an identity provider is not configured here.")
		return
	}
	st.oidc.Callback(w, r)
}

// refresh is POST /.pomerium/refresh: re-read the identity from the provider
// and issue a new session (internal/signin).
func (s *Server) refresh(st *state, w http.ResponseWriter, r *http.Request) {
	if st.oidc == nil {
		s.fail(st, w, r, http.StatusBadRequest,
			"There is no identity provider to refresh from: sessions here come from tokens. Sign in again with a new token.")
		return
	}
	raw, err := field(r.PostForm, redirectParam)
	if err != nil {
		s.fail(st, w, r, http.StatusBadRequest, err.Error())
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
	p.s.failRetry(p.st, w, r, status, msg, retry)
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

// SetHandoffLedger replaces the in-memory ledger of used handoffs, for a
// store shared by replicas. Call it before serving.
func (s *Server) SetHandoffLedger(l signin.HandoffLedger) { s.handoffs = l }
