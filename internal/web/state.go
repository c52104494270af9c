package web

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"time"

	"github.com/extauthz/extauthz/internal/idp"
	"github.com/extauthz/extauthz/internal/signin"
	"github.com/gorilla/csrf"
)

// Paths of the pages.
const (
	pathDashboard   = signin.PathDashboard
	pathImpersonate = "/.pomerium/impersonate"
	pathPreview     = "/.pomerium/preview"
	pathSignIn      = signin.PathSignIn
	pathSignOut     = "/.pomerium/sign_out"
	pathCallback    = signin.PathCallback
	pathRefresh     = "/.pomerium/refresh"
	pathStyle       = "/.pomerium/assets/style.css"
)

// Names and defaults of the page machinery.
const (
	defaultCookieName        = "_pomerium"
	defaultMaxDuration       = 30 * time.Minute
	hostCookiePrefix         = "__Host-"
	csrfFieldName            = "_csrf"
	csrfMaxAge               = 12 * 60 * 60 // seconds; a page left open longer needs a reload
	contentSecurityPolicy    = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	formContentType          = "application/x-www-form-urlencoded"
	redirectParam            = "pomerium_redirect_uri"
	signedOutParam           = "signed_out"
	wwwAuthenticateChallenge = "Pomerium"
)

// state is a Settings with everything derived from it: a reload swaps both at once.
type state struct {
	set         *Settings
	cookieName  string
	maxDuration time.Duration
	pages       http.Handler
	// csp is the Content-Security-Policy of the pages.
	csp string
	// redirects checks every URL the pages send a browser to.
	redirects *signin.Guard
	// oidc is the browser sign-in against the identity provider; nil when
	// none is configured.
	oidc *signin.Flow
}

func (s *Server) newState(set *Settings) *state {
	st := &state{set: set, cookieName: set.CookieName, maxDuration: set.ImpersonationMaxDuration}
	if st.cookieName == "" {
		st.cookieName = defaultCookieName
	}
	if st.maxDuration <= 0 {
		st.maxDuration = defaultMaxDuration
	}
	st.redirects = signin.NewGuard(set.AuthenticateServiceURL, set.Engine)
	var prev *signin.Flow
	if old := s.state.Load(); old != nil {
		prev = old.oidc
	}
	st.oidc = signin.New(signin.Config{
		Provider: idp.Config{ProviderURL: set.IdpProviderURL, ClientID: set.IdpClientID, ClientSecret: set.IdpClientSecret,
			Scopes: set.IdpScopes, AllowUnverifiedEmail: set.IdpAllowUnverifiedEmail},
		AuthenticateServiceURL: set.AuthenticateServiceURL,
		Secret:                 set.Secret, Verifier: set.Engine.Verifier, CookieName: st.cookieName, CookieSecure: set.CookieSecure,
		CookieExpire: set.CookieExpire, Issuer: set.Issuer, CSP: contentSecurityPolicy,
	}, prev, st.redirects, pagesFor{s, st}, s.store, s.log, func() time.Time { return s.now() })
	st.csp = contentSecurityPolicy
	if st.oidc != nil {
		st.csp = st.oidc.CSP()
	}
	page := func(h func(*state, http.ResponseWriter, *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { h(st, w, r) }
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.pomerium/{$}", page(s.signedIn(s.dashboard)))
	mux.HandleFunc("POST "+pathImpersonate, page(s.signedIn(s.impersonate)))
	mux.HandleFunc("POST "+pathPreview, page(s.signedIn(s.preview)))
	mux.HandleFunc("POST "+pathSignOut, page(s.signOut))
	mux.HandleFunc("POST "+pathRevoke, page(s.signedIn(s.revoke)))
	mux.HandleFunc("GET "+pathSignIn, page(s.signInPage))
	mux.HandleFunc("POST "+pathSignIn, page(s.signIn))
	mux.HandleFunc("GET "+pathCallback, page(s.callback))
	mux.HandleFunc("POST "+pathRefresh, page(s.refresh))
	mux.HandleFunc("/.pomerium/", page(s.notFound))
	protect := csrf.Protect(csrfKey(set.Secret),
		csrf.CookieName(signin.CookieName(st.cookieName, set.CookieSecure, "_csrf")),
		csrf.FieldName(csrfFieldName),
		csrf.Path("/"), // host-only (no Domain), as __Host- requires
		csrf.HttpOnly(true),
		csrf.Secure(set.CookieSecure),
		csrf.SameSite(csrf.SameSiteLaxMode),
		csrf.MaxAge(csrfMaxAge),
		csrf.ErrorHandler(page(s.csrfFailed)),
	)
	st.pages = s.prepare(st, protect(mux))
	return st
}

// prepare runs before CSRF and the pages: security headers, a request id,
// the plaintext-HTTP mark gorilla/csrf needs, and a bounded, checked form.
func (s *Server) prepare(st *state, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := requestIDOf(r)
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
		h := w.Header()
		h.Set("Content-Security-Policy", st.csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Request-Id", id)
		// gorilla/csrf treats every request as HTTPS and then insists on a
		// same-origin Referer; over plain HTTP (the demo, or Envoy without
		// TLS) it must be told, or every form post fails. The Origin check
		// still runs either way.
		if signin.RequestScheme(r) != "https" {
			r = csrf.PlaintextHTTPRequest(r)
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodPost:
			if status, msg := readForm(w, r); status != 0 {
				s.fail(w, r, status, msg, "")
				return
			}
		default:
			h.Set("Allow", "GET, HEAD, POST")
			s.fail(w, r, http.StatusMethodNotAllowed, "The method "+r.Method+" is not allowed here.", "")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readForm parses a POST body of at most maxFormBytes into r.PostForm, so
// that neither gorilla/csrf nor a page reads an unbounded or multipart body,
// and refuses repeated fields and values that are not text.
func readForm(w http.ResponseWriter, r *http.Request) (int, string) {
	if ct := r.Header.Get("Content-Type"); ct != "" || r.ContentLength != 0 {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != formContentType {
			return http.StatusUnsupportedMediaType, "Forms must be sent as " + formContentType + "."
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusBadRequest, "The form is too large: at most 64 KiB."
		}
		return http.StatusBadRequest, "The form or the query string is not correctly encoded."
	}
	if err := checkForm(r.PostForm); err != nil {
		return http.StatusBadRequest, err.Error()
	}
	return 0, ""
}
