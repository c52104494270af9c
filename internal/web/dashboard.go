package web

// This file is the dashboard, GET /.pomerium/: who the session is, what it
// can reach (decision.Engine.Explain), in HTML, JSON or text.

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/negotiate"
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
	// RevokeForm is the "sign this user out everywhere" form as typed.
	RevokeForm formValues
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
	// Who you are, named as upstreams see you (decision.UpstreamIdentity).
	you := decision.UpstreamIdentity(c.Holder(), false)
	v := &dashboardView{
		page:          newPage(r, "Your session"),
		Email:         c.Email,
		User:          you.User,
		Subject:       you.Subject,
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

// dashboard is GET /.pomerium/.
func (s *Server) dashboard(st *state, w http.ResponseWriter, r *http.Request, sess *session, now time.Time) {
	v := s.dashboardView(st, r, sess, now)
	if sess.Impersonation.Ended && sess.fromCookie() {
		v.Reissued = s.restoreAfterImpersonation(st, w, r, sess.Claims)
	}
	s.showDashboard(w, r, http.StatusOK, v)
}
