// Package web serves the sidecar's HTTP listener: the /.pomerium pages
// (dashboard, sign in as, sign out, sign in), the JWKS that upstreams verify
// assertions with, health and metrics. Envoy routes /.pomerium and
// /.well-known/pomerium on every virtual host here, so every page works per host.
package web

import (
	"net/http"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/decision"
)

// Settings is the config-derived state the pages need, immutable once built;
// a reload swaps in a new one.
type Settings struct {
	Engine *decision.Engine
	// Secret is the current shared secret (text as written): sessions the
	// pages issue are signed with it.
	Secret       string
	CookieName   string
	CookieDomain string
	CookieSecure bool
	CookieExpire time.Duration
	// Issuer is the iss of sessions the pages issue ("" when unset).
	Issuer string
	// JWKS is the rendered key set, current key first.
	JWKS []byte

	ImpersonationMaxDuration   time.Duration
	ImpersonationRequireReason bool
}

// Server is the HTTP side of the sidecar.
type Server struct {
	settings atomic.Pointer[Settings]
	log      *zap.Logger
	audit    *zap.Logger
	now      func() time.Time
	mux      *http.ServeMux
	// Ready reports readiness for /healthz; nil means ready.
	Ready func() bool
	// Metrics, when set, serves /metrics.
	Metrics http.Handler
}

// New returns a Server using s.
func New(s *Settings, log *zap.Logger) *Server {
	srv := &Server{log: log, audit: log.Named("audit"), now: time.Now, mux: http.NewServeMux()}
	srv.settings.Store(s)
	srv.routes()
	return srv
}

// Swap atomically replaces the settings in force.
func (s *Server) Swap(set *Settings) { s.settings.Store(set) }

// SetClock replaces the clock; tests use it.
func (s *Server) SetClock(now func() time.Time) { s.now = now }

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
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	// Upstreams cache this; a short max-age lets a key rotation reach them quickly.
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.settings.Load().JWKS)
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
