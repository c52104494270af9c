// Package web serves the sidecar's HTTP listener: the /.pomerium pages
// (dashboard, sign in as, preview access, sign out, sign in with a token), the
// JWKS that upstreams verify assertions with, health and metrics.
//
// Envoy routes /.pomerium and /.well-known/pomerium of every virtual host
// here, so every page works per host: a session is accepted only when its
// audience includes the request's Host. Who a session is and what it may
// reach come from internal/decision (Authenticate, Explain), as for Check;
// sign-in through an identity provider is internal/signin.
package web

import (
	"net/http"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/audit"
	"github.com/extauthz/extauthz/internal/decision"
)

// Settings is the config-derived state the pages need, immutable once built;
// a reload swaps in a new one.
type Settings struct {
	Engine *decision.Engine
	// Secret is the current shared secret (text as written): sessions the
	// pages issue are signed with it, and the CSRF key is derived from it so
	// that every replica agrees.
	Secret       string
	CookieName   string
	CookieDomain string
	CookieSecure bool
	CookieExpire time.Duration
	// Issuer is the iss of sessions the pages issue ("" when unset).
	Issuer string
	// JWKS is the rendered key set, current key first.
	JWKS []byte

	// ImpersonationMaxDuration bounds an impersonation started on the page
	// (never past the session's own expiry); zero means the contract's 30m.
	ImpersonationMaxDuration   time.Duration
	ImpersonationRequireReason bool

	// AuthenticateServiceURL (authenticate_service_url as written) is where
	// browser sign-in and the identity-provider session live; route hosts
	// get their sessions from it by a single-use handoff (see oidc.go). ""
	// signs in on each host by itself, without single sign-on between hosts.
	AuthenticateServiceURL string
	// IdpProviderURL is the OpenID Connect issuer for browser sign-in; ""
	// keeps the sign-in page that takes a pasted token.
	IdpProviderURL  string
	IdpClientID     string
	IdpClientSecret string
	// IdpScopes are requested at sign-in; empty means openid, profile, email
	// and offline_access.
	IdpScopes []string
	// IdpAllowUnverifiedEmail (idp_allow_unverified_email) signs in
	// identities whose email_verified is not true; false refuses them with
	// a page that names the key.
	IdpAllowUnverifiedEmail bool
}

// Server is the HTTP side of the sidecar.
type Server struct {
	state atomic.Pointer[state]
	log   *zap.Logger
	audit *audit.Log
	now   func() time.Time
	mux   *http.ServeMux
	// Ready reports readiness for /healthz; nil means ready.
	Ready func() bool
	// Metrics, when set, serves /metrics.
	Metrics http.Handler

	// store is what replicas share (sign-in handoffs, revocations), across
	// reloads; see SetStore.
	store Store
	// clock is now for the default store's goroutine, which must not read
	// the now field while SetClock writes it.
	clock atomic.Pointer[func() time.Time]
	// own is the default store New made, closed when SetStore replaces it.
	own interface{ Close() error }
}

// New returns a Server using s.
func New(s *Settings, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	srv := &Server{log: log, audit: audit.New(log), now: time.Now, mux: http.NewServeMux()}
	now := time.Now
	srv.clock.Store(&now)
	own := newMemoryStore(func() time.Time { return (*srv.clock.Load())() })
	srv.own, srv.store = own, own
	srv.Swap(s)
	srv.routes()
	return srv
}

// Swap atomically replaces the settings in force. Requests already running
// finish with the settings they started with.
func (s *Server) Swap(set *Settings) { s.state.Store(s.newState(set)) }

// Settings returns the settings in force.
func (s *Server) Settings() *Settings { return s.state.Load().set }

// SetClock replaces the clock; tests use it. Call it before serving.
func (s *Server) SetClock(now func() time.Time) {
	s.now = now
	s.clock.Store(&now)
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /.well-known/pomerium/jwks.json", s.jwks)
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.Metrics == nil {
			http.NotFound(w, r)
			return
		}
		s.Metrics.ServeHTTP(w, r)
	})
	s.mux.HandleFunc("GET /.pomerium/assets/", s.asset)
	s.mux.HandleFunc("/.pomerium", s.slash)
	// Every other /.pomerium/ path goes through the page pipeline of the
	// settings in force: bounded form parsing, then CSRF, then the page.
	s.mux.Handle("/.pomerium/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.state.Load().pages.ServeHTTP(w, r)
	}))
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// slash sends /.pomerium to the dashboard at /.pomerium/.
func (s *Server) slash(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	http.Redirect(w, r, pathDashboard, http.StatusFound)
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	// Upstreams cache this; a short max-age lets a key rotation reach them quickly.
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.state.Load().set.JWKS)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.Ready != nil && !s.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}
