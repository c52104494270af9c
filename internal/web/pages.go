package web

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/audit"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/negotiate"
	"github.com/extauthz/extauthz/internal/signin"
)

// routeRow is one route of an access table: whether an identity may use it
// and the canonical reason, as decision.Engine.Explain answers them: what
// Check answers on that route.
type routeRow struct {
	Route   string `json:"route"`
	From    string `json:"from"`
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"`
}

// routeRows is the table of verdicts, in policy order.
func routeRows(verdicts []decision.Verdict) []routeRow {
	rows := make([]routeRow, 0, len(verdicts))
	for _, v := range verdicts {
		rows = append(rows, routeRow{Route: v.Route.Name, From: v.Route.From, Allowed: v.Allowed, Reason: v.Reason})
	}
	return rows
}

// reachableRows keeps the rows whose route is allowed, in policy order: all
// that a non-administrator, or an administrator impersonating, is shown of
// the policy (contract section 8, "No policy disclosure"). An allowed row's
// reason names the rule that let the identity in, which is about them; a
// denied row's reason lists whom the route allows, which is not.
func reachableRows(rows []routeRow) []routeRow {
	out := make([]routeRow, 0, len(rows))
	for _, r := range rows {
		if r.Allowed {
			out = append(out, r)
		}
	}
	return out
}

func countAllowed(rows []routeRow) int {
	n := 0
	for _, r := range rows {
		if r.Allowed {
			n++
		}
	}
	return n
}

// impersonationView describes a live impersonation for the banner.
type impersonationView struct {
	Whom     string
	Email    string
	Groups   []string
	Access   string
	ReadOnly bool
	Reason   string
	Expires  *time.Time
	TimeLeft string
	// Denied is set when Check refuses this session's requests anyway.
	Denied string
}

// previewView is the result of the "preview access" panel.
type previewView struct {
	Email   string
	Groups  []string
	Whom    string
	Routes  []routeRow
	Allowed int
}

type dashboardView struct {
	page
	Email     string
	User      string
	Subject   string
	Groups    []string
	Expires   time.Time
	ExpiresIn string
	Source    string
	Admin     bool
	// Ended names whom an impersonation that is no longer live was of.
	Ended string
	// Reissued is true when the ended impersonation was removed from the cookie.
	Reissued bool
	// Denied is why Check refuses this session's requests, when it does.
	Denied string
	// RoutesFor names whose access the routes table shows.
	RoutesFor string
	// FullPolicy is set for an administrator acting as themselves: Routes
	// then holds every route, denied ones with the rule that would admit.
	// Otherwise Routes holds only the routes the identity can reach.
	FullPolicy bool
	// AdminTools shows the sign-in-as and preview forms: an administrator
	// acting as themselves. While impersonating, the page is the
	// impersonated identity's view, with the banner's way back.
	AdminTools    bool
	Routes        []routeRow
	AllowedCount  int
	Form          formValues
	RequireReason bool
	MaxDuration   string
	MaxReason     int
	PreviewForm   formValues
	Preview       *previewView
	// CanRefresh offers re-reading the identity from the identity provider.
	CanRefresh bool
}

// whom describes an impersonation target: the email, else the groups.
func whom(email string, groups []string) string {
	switch {
	case email != "" && len(groups) > 0:
		return email + " (groups " + strings.Join(groups, ", ") + ")"
	case email != "":
		return email
	case len(groups) > 0:
		return "groups " + strings.Join(groups, ", ")
	}
	return "nobody"
}

func (s *Server) dashboardView(st *state, r *http.Request, sess *session, now time.Time) *dashboardView {
	c, out := sess.Claims, sess.Impersonation
	v := &dashboardView{
		page:          newPage(r, "Your session"),
		Email:         c.Email,
		User:          c.User,
		Subject:       c.Subject,
		Groups:        c.Groups,
		Source:        sourceText(sess.Source),
		Admin:         st.set.Engine.Rules.IsAdministrator(c.Email),
		RequireReason: st.set.ImpersonationRequireReason,
		MaxDuration:   humanDuration(st.maxDuration),
		MaxReason:     maxReasonRunes,
		Form:          formValues{Access: identity.AccessReadOnly},
		RoutesFor:     "you",
		CanRefresh:    st.oidc != nil,
	}
	v.SignedIn, v.SignedInAs = true, c.Email
	if c.ExpiresAt != nil {
		v.Expires = c.ExpiresAt.Time
		v.ExpiresIn = relTime(v.Expires, now)
	}
	if out.Impersonating {
		iv := &impersonationView{
			Whom:     whom(out.Effective.Email, out.Effective.Groups),
			Email:    out.Effective.Email,
			Groups:   out.Effective.Groups,
			Access:   out.Access,
			ReadOnly: out.Access == identity.AccessReadOnly,
			Reason:   out.Reason,
			Denied:   out.Refusal,
		}
		if c.ImpersonateExp != nil {
			t := c.ImpersonateExp.Time
			iv.Expires = &t
			iv.TimeLeft = humanDuration(max(t.Sub(now), 0)) + " left"
		} else if c.ExpiresAt != nil {
			iv.TimeLeft = "until the session expires, " + relTime(c.ExpiresAt.Time, now)
		}
		v.Impersonate = iv
		v.RoutesFor = iv.Whom
	}
	if out.Ended {
		v.Ended = whom(c.ImpersonateEmail, c.ImpersonateGroups)
	}
	v.Denied = out.Refusal
	v.FullPolicy = v.Admin && !out.Impersonating
	v.AdminTools = v.FullPolicy
	v.Routes = routeRows(st.set.Engine.Explain(sess.Decision))
	v.AllowedCount = countAllowed(v.Routes)
	if !v.FullPolicy {
		v.Routes = reachableRows(v.Routes)
	}
	return v
}

func sourceText(src identity.Source) string {
	switch src {
	case identity.SourceCookie:
		return "session cookie"
	case identity.SourceAuthorization:
		return "Authorization: Pomerium header"
	case identity.SourceBearer:
		return "Authorization: Bearer Pomerium- header"
	case identity.SourcePomeriumAuthorization:
		return "X-Pomerium-Authorization header"
	}
	return src.String()
}

// dashboardJSON is the dashboard for scripts (Accept: application/json).
type dashboardJSON struct {
	Email                  string     `json:"email"`
	User                   string     `json:"user"`
	Groups                 []string   `json:"groups"`
	ExpiresAt              *time.Time `json:"expires_at"`
	Administrator          bool       `json:"administrator"`
	Impersonating          bool       `json:"impersonating"`
	ImpersonatedEmail      string     `json:"impersonated_email"`
	ImpersonatedGroups     []string   `json:"impersonated_groups"`
	Access                 string     `json:"access"`
	Reason                 string     `json:"reason"`
	ImpersonationExpiresAt *time.Time `json:"impersonation_expires_at"`
	ImpersonationEnded     bool       `json:"impersonation_ended"`
	ImpersonationDenied    string     `json:"impersonation_denied,omitempty"`
	Routes                 []routeRow `json:"routes"`
	Preview                *struct {
		Email  string     `json:"email"`
		Groups []string   `json:"groups"`
		Routes []routeRow `json:"routes"`
	} `json:"preview,omitempty"`
}

func (v *dashboardView) json() dashboardJSON {
	j := dashboardJSON{
		Email:               v.Email,
		User:                v.User,
		Groups:              nonNil(v.Groups),
		Administrator:       v.Admin,
		ImpersonatedGroups:  []string{},
		ImpersonationEnded:  v.Ended != "",
		ImpersonationDenied: v.Denied,
		Routes:              v.Routes,
	}
	if !v.Expires.IsZero() {
		t := v.Expires.UTC()
		j.ExpiresAt = &t
	}
	if iv := v.Impersonate; iv != nil {
		j.Impersonating = true
		j.ImpersonatedEmail = iv.Email
		j.ImpersonatedGroups = nonNil(iv.Groups)
		j.Access = iv.Access
		j.Reason = iv.Reason
		if iv.Expires != nil {
			t := iv.Expires.UTC()
			j.ImpersonationExpiresAt = &t
		}
	}
	if p := v.Preview; p != nil {
		j.Preview = &struct {
			Email  string     `json:"email"`
			Groups []string   `json:"groups"`
			Routes []routeRow `json:"routes"`
		}{p.Email, nonNil(p.Groups), p.Routes}
	}
	return j
}

// text is the dashboard for curl without an Accept preference.
func (v *dashboardView) text() string {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "email:\t%s\n", v.Email)
	fmt.Fprintf(tw, "user:\t%s\n", v.User)
	fmt.Fprintf(tw, "groups:\t%s\n", strings.Join(v.Groups, ", "))
	if !v.Expires.IsZero() {
		fmt.Fprintf(tw, "expires:\t%s (%s)\n", absTime(v.Expires), v.ExpiresIn)
	}
	if iv := v.Impersonate; iv != nil {
		fmt.Fprintf(tw, "impersonating:\t%s, %s, %s\n", iv.Whom, iv.Access, iv.TimeLeft)
		if iv.Reason != "" {
			fmt.Fprintf(tw, "reason:\t%s\n", strings.ReplaceAll(iv.Reason, "\n", " "))
		}
	}
	if v.Ended != "" {
		fmt.Fprintf(tw, "impersonation:\tyour impersonation of %s ended\n", v.Ended)
	}
	if v.Denied != "" {
		fmt.Fprintf(tw, "refused:\t%s\n", v.Denied)
	}
	_ = tw.Flush()
	if v.FullPolicy {
		fmt.Fprintf(&b, "\nroutes for %s:\n", v.RoutesFor)
	} else {
		fmt.Fprintf(&b, "\nroutes %s can reach:\n", v.RoutesFor)
		if len(v.Routes) == 0 {
			b.WriteString("  none\n")
		}
	}
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, r := range v.Routes {
		verdict := "denied"
		if r.Allowed {
			verdict = "allowed"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", verdict, r.Route, r.From, r.Reason)
	}
	_ = tw.Flush()
	return b.String()
}

// showDashboard answers the dashboard in the client's format.
func (s *Server) showDashboard(w http.ResponseWriter, r *http.Request, status int, v *dashboardView) {
	switch negotiate.Preferred(r.Header.Get("Accept")) {
	case negotiate.JSON:
		if v.Error != "" {
			writeJSON(w, r, status, errorJSON{Error: v.Error, RequestID: v.RequestID})
			return
		}
		writeJSON(w, r, status, v.json())
	case negotiate.HTML:
		s.render(w, r, status, "dashboard.html", v)
	default:
		if v.Error != "" {
			writeText(w, r, status, v.Error+"\nrequest id: "+v.RequestID+"\n")
			return
		}
		writeText(w, r, status, v.text())
	}
}

// unauthenticated answers a page request without a valid session: browsers
// go to sign in and come back to back, others get 401 with the reason.
func (s *Server) unauthenticated(st *state, w http.ResponseWriter, r *http.Request, reason, back string) {
	if negotiate.Preferred(r.Header.Get("Accept")) == negotiate.HTML {
		status := http.StatusFound
		if r.Method == http.MethodPost {
			status = http.StatusSeeOther
		}
		http.Redirect(w, r, pathSignIn+"?"+redirectParam+"="+url.QueryEscape(back), status)
		return
	}
	w.Header().Set("WWW-Authenticate", wwwAuthenticateChallenge)
	s.fail(st, w, r, http.StatusUnauthorized, reason)
}

// dashboard is GET /.pomerium/.
func (s *Server) dashboard(st *state, w http.ResponseWriter, r *http.Request) {
	now := s.now()
	sess, reason := st.loadSession(r, now)
	if sess == nil {
		s.unauthenticated(st, w, r, reason, pathDashboard)
		return
	}
	v := s.dashboardView(st, r, sess, now)
	if sess.Impersonation.Ended && sess.fromCookie() {
		// The impersonation ran out: put the administrator's own session
		// back in the cookie, so every later request (here and through
		// Check) acts as the administrator without re-reading stale claims,
		// and record the end once, at that transition. A token carried in a
		// header cannot be rewritten; Check audits each request made with it.
		c := sess.Claims
		tok, next, err := st.reissue(c, withoutImpersonation)
		if err != nil {
			s.log.Error("re-issuing the session after an impersonation ended", zap.Error(err), zap.String("request_id", requestID(r)))
		} else {
			s.issueSession(st, w, r, tok, next, issuedImpersonationEnded)
			v.Reissued = true
			var ended time.Time
			if c.ImpersonateExp != nil {
				ended = c.ImpersonateExp.Time
			}
			s.auditImpersonation(audit.ImpersonationEnded, r, c, st.impersonated(c), append(audit.Session(next), audit.Ended(ended))...)
		}
	}
	s.showDashboard(w, r, http.StatusOK, v)
}

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
func (s *Server) impersonate(st *state, w http.ResponseWriter, r *http.Request) {
	now := s.now()
	sess, reason := st.loadSession(r, now)
	if sess == nil {
		s.unauthenticated(st, w, r, reason, pathDashboard)
		return
	}
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

// preview is POST /.pomerium/preview: what an email and groups could reach,
// route by route, as decision.Engine.Explain answers (what Check answers).
func (s *Server) preview(st *state, w http.ResponseWriter, r *http.Request) {
	now := s.now()
	sess, reason := st.loadSession(r, now)
	if sess == nil {
		s.unauthenticated(st, w, r, reason, pathDashboard)
		return
	}
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

// signOut is POST /.pomerium/sign_out. On the host where the
// identity-provider session lives, that session ends too.
func (s *Server) signOut(st *state, w http.ResponseWriter, r *http.Request) {
	st.clearSession(w)
	if st.oidc != nil && st.oidc.OnSignInHost(r) {
		st.oidc.ClearAuthSession(w)
	}
	http.Redirect(w, r, pathSignIn+"?"+signedOutParam+"=1", http.StatusSeeOther)
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
		s.fail(st, w, r, status, msg)
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

// clip bounds what a refused, unvalidated field contributes to a log entry.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

func (s *Server) internalError(st *state, w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("page failed", zap.String("path", r.URL.Path), zap.Error(err), zap.String("request_id", requestID(r)))
	s.fail(st, w, r, http.StatusInternalServerError, "Something went wrong on our side; the request id identifies it in the logs.")
}
