package web

// This file is "preview access", POST /.pomerium/preview.

import (
	"net/http"
	"strings"
	"time"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
)

// preview is POST /.pomerium/preview: what an email and groups could reach,
// route by route, as decision.Engine.Explain answers (what Check answers).
func (s *Server) preview(st *state, w http.ResponseWriter, r *http.Request, sess *session, now time.Time) {
	c := sess.Claims
	sticky := func(v *dashboardView) { v.PreviewForm = stickyValues(r.PostForm) }
	if !st.set.Engine.Rules.IsAdministrator(c.Email) {
		s.audit.PreviewRefused(c, "not an administrator", auditRequest(r))
		s.refuse(st, w, r, sess, now, http.StatusForbidden, "Only administrators can preview another user's access.", nil)
		return
	}
	email, groups, err := parsePreviewForm(r.PostForm)
	if err != nil {
		s.refuse(st, w, r, sess, now, http.StatusBadRequest, err.Error(), sticky)
		return
	}
	id := identity.Identity{Subject: email, User: email, Email: email, Groups: groups}
	rows := routeRows(st.set.Engine.Explain(decision.As(id)))
	p := &previewView{Email: email, Groups: groups, Whom: whom(email, groups), Routes: rows, Allowed: countAllowed(rows)}
	s.audit.Preview(c, email, groups, p.Allowed, len(rows), auditRequest(r))
	v := s.dashboardView(st, r, sess, now)
	v.Preview = p
	v.PreviewForm = formValues{Email: email, Groups: strings.Join(groups, ", ")}
	s.showDashboard(w, r, http.StatusOK, v)
}
