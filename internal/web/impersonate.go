package web

// This file is "sign in as", POST /.pomerium/impersonate: start, change or
// stop an impersonation.

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/extauthz/extauthz/internal/audit"
	"github.com/extauthz/extauthz/internal/identity"
)

// impersonated is whom and how c impersonates, for the audit log.
func (st *state) impersonated(c *identity.Claims) audit.Target {
	access := c.ImpersonateAccess
	if access == "" {
		access = st.set.Engine.Rules.DefaultAccess
	}
	return audit.Target{Email: c.ImpersonateEmail, Groups: c.ImpersonateGroups, Access: access, Reason: c.ImpersonateReason}
}

// refuse shows the dashboard again with an error (and the form as typed).
func (s *Server) refuse(st *state, w http.ResponseWriter, r *http.Request, sess *session, now time.Time, status int, msg string, edit func(*dashboardView)) {
	v := s.dashboardView(st, r, sess, now)
	v.Error = msg
	if edit != nil {
		edit(v)
	}
	s.showDashboard(w, r, status, v)
}

// impersonate is POST /.pomerium/impersonate: start, change or stop an
// impersonation. The administrator is checked here from the verified session,
// never from what the page showed.
func (s *Server) impersonate(st *state, w http.ResponseWriter, r *http.Request, sess *session, now time.Time) {
	c := sess.Claims
	sticky := func(v *dashboardView) { v.Form = stickyValues(r.PostForm) }
	rules := st.set.Engine.Rules
	if !rules.IsAdministrator(c.Email) {
		s.auditImpersonation(audit.ImpersonationRefused, r, c, audit.Target{Email: clip(strings.TrimSpace(first(r.PostForm, "email")), maxEmailLen)},
			audit.Refusal("not an administrator"))
		s.refuse(st, w, r, sess, now, http.StatusForbidden, "Only administrators can sign in as another user.", nil)
		return
	}
	form, err := parseImpersonateForm(r.PostForm, st.set.ImpersonationRequireReason)
	if err != nil {
		s.refuse(st, w, r, sess, now, http.StatusBadRequest, err.Error(), sticky)
		return
	}
	// The session came from a header rather than the cookie: the page is a
	// browser flow, so the impersonation still goes into the session cookie
	// (a header cannot be rewritten). A client that keeps sending its header
	// keeps acting on that header's token, which takes precedence over the
	// cookie everywhere, exactly as in Check.
	if form.Stop() {
		if c.Impersonating() {
			tok, next, err := st.reissue(c, withoutImpersonation)
			if err != nil {
				s.internalError(st, w, r, err)
				return
			}
			s.issueSession(st, w, r, tok, next, issuedImpersonationStopped)
			s.auditImpersonation(audit.ImpersonationStopped, r, c, st.impersonated(c), audit.Session(next)...)
		}
		http.Redirect(w, r, pathDashboard, http.StatusSeeOther)
		return
	}
	if why := rules.ProtectedTarget(form.Email, form.Groups); why != "" {
		s.auditImpersonation(audit.ImpersonationRefused, r, c, form.target(), audit.Refusal(why))
		s.refuse(st, w, r, sess, now, http.StatusForbidden, "You cannot sign in as this user: "+why+".", sticky)
		return
	}
	exp := c.ExpiresAt.Time
	end := now.Add(st.maxDuration)
	if end.After(exp) {
		end = exp
	}
	if !end.Truncate(time.Second).After(now) {
		s.refuse(st, w, r, sess, now, http.StatusBadRequest, "Your session expires too soon to start an impersonation; sign in again first.", sticky)
		return
	}
	tok, next, err := st.reissue(c, withImpersonation(form, end))
	if err != nil {
		var fe *formError
		if errors.As(err, &fe) {
			s.refuse(st, w, r, sess, now, http.StatusBadRequest, fe.msg, sticky)
			return
		}
		s.internalError(st, w, r, err)
		return
	}
	s.issueSession(st, w, r, tok, next, issuedImpersonationStarted)
	s.auditImpersonation(audit.ImpersonationStarted, r, c, form.target(), append(audit.Session(next), audit.Ended(next.ImpersonateExp.Time))...)
	http.Redirect(w, r, pathDashboard, http.StatusSeeOther)
}
