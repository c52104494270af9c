package web

// This file answers what a page refuses: fail (every error, in the client's
// format), and the refusals built on it.

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/negotiate"
	"github.com/gorilla/csrf"
)

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
	s.fail(w, r, http.StatusUnauthorized, reason, "")
}

// signedIn runs a page that needs a session with the request's verified
// session; without one it answers as unauthenticated does, coming back to the
// dashboard after sign-in.
func (s *Server) signedIn(page func(*state, http.ResponseWriter, *http.Request, *session, time.Time)) func(*state, http.ResponseWriter, *http.Request) {
	return func(st *state, w http.ResponseWriter, r *http.Request) {
		now := s.now()
		sess, reason := st.loadSession(r, now)
		if sess == nil {
			s.unauthenticated(st, w, r, reason, pathDashboard)
			return
		}
		page(st, w, r, sess, now)
	}
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
	s.fail(w, r, http.StatusInternalServerError, "Something went wrong on our side; the request id identifies it in the logs.", "")
}

type errorView struct {
	page
	Status     int
	StatusText string
	Message    string
	// Retry, when set, is a link to start again (a path or a checked URL).
	Retry string
}

// fail answers an error in the client's format: an HTML page for browsers
// (with a "Try again" link to retry, when not empty), {"error","request_id"}
// for JSON clients, a line of text otherwise. Every error a page answers
// goes through it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, msg, retry string) {
	switch negotiate.Preferred(r.Header.Get("Accept")) {
	case negotiate.JSON:
		writeJSON(w, r, status, errorJSON{Error: msg, RequestID: requestID(r)})
	case negotiate.HTML:
		v := errorView{page: newPage(r, http.StatusText(status)), Status: status, StatusText: http.StatusText(status), Message: msg, Retry: retry}
		s.render(w, r, status, "error.html", v)
	default:
		writeText(w, r, status, msg+"\nrequest id: "+requestID(r)+"\n")
	}
}

type errorJSON struct {
	Error     string `json:"error"`
	RequestID string `json:"request_id"`
}

// notFound answers paths without a page, and known paths with the wrong method.
func (s *Server) notFound(st *state, w http.ResponseWriter, r *http.Request) {
	allow := map[string]string{
		pathDashboard:   "GET, HEAD",
		pathSignIn:      "GET, HEAD, POST",
		pathImpersonate: "POST",
		pathPreview:     "POST",
		pathSignOut:     "POST",
		pathRevoke:      "POST",
		pathCallback:    "GET, HEAD",
		pathRefresh:     "POST",
	}[r.URL.Path]
	if allow != "" {
		w.Header().Set("Allow", allow)
		s.fail(w, r, http.StatusMethodNotAllowed, "The method "+r.Method+" is not allowed here.", "")
		return
	}
	s.fail(w, r, http.StatusNotFound, "There is no page here.", "")
}

// csrfFailed answers a form post whose CSRF token or origin did not check out.
func (s *Server) csrfFailed(st *state, w http.ResponseWriter, r *http.Request) {
	why := "unknown reason"
	if err := csrf.FailureReason(r); err != nil {
		why = err.Error()
	}
	s.fail(w, r, http.StatusForbidden,
		"This form could not be verified ("+why+"). It may have expired or come from another site: reload the page and try again.", "")
}
