package signin

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/idp"
)

// Paths and parameters of sign-in.
const (
	PathDashboard  = "/.pomerium/" // where sign-in lands when given nowhere to go
	PathSignIn     = "/.pomerium/sign_in"
	PathCallback   = "/.pomerium/callback"
	RedirectParam  = "pomerium_redirect_uri"
	SignedOutParam = "signed_out"
)

const (
	handoffParam = "pomerium_handoff"
	bindingParam = "pomerium_signin"
	refreshParam = "pomerium_refresh"

	// flowLifetime bounds a sign-in at the provider, and the binding cookie.
	flowLifetime = 10 * time.Minute
	// handoffLifetime is how long a handoff token can be used (at most 60 s).
	handoffLifetime = 60 * time.Second
	// handoffSkew tolerates a handoff issued "in the future" by a replica
	// whose clock is ahead; it never extends a handoff's expiry.
	handoffSkew = 60 * time.Second
	// identityFreshFor: an authenticate session whose identity was read from
	// the provider longer ago than this is re-read (refresh token) before it
	// gives a route host a session.
	identityFreshFor = 5 * time.Minute
	// oidcTimeout bounds one page's conversation with the provider.
	oidcTimeout = 12 * time.Second
)

// Config is what a Flow is built from: the config's sign-in keys.
type Config struct {
	// Provider is the identity provider (idp_*); no sign-in without its
	// ProviderURL.
	Provider idp.Config
	// AuthenticateServiceURL is where the identity-provider session lives;
	// "" makes each host its own authenticate host.
	AuthenticateServiceURL string
	// Secret is the current shared secret: route sessions are minted with
	// it, and every sign-in key is derived from it.
	Secret string
	// Verifier is Check's: a minted session must pass it.
	Verifier     *identity.Verifier
	CookieName   string // the session cookie's name
	CookieSecure bool
	CookieExpire time.Duration // zero means 14h
	// Issuer is the iss of minted sessions; authenticate_service_url's host,
	// else the route host, when empty.
	Issuer string
	// CSP is the pages' Content-Security-Policy, whose form-action the Flow
	// widens to the authenticate host and the provider.
	CSP string
}

// Pages is what the Flow needs of the pages around it.
type Pages interface {
	// Fail answers with a page (or JSON, or text) saying msg, with a link
	// to retry when retry is not empty.
	Fail(w http.ResponseWriter, r *http.Request, status int, msg, retry string)
	// InternalError logs err and answers 500.
	InternalError(w http.ResponseWriter, r *http.Request, err error)
	// Session is this host's verified session of r, nil when none.
	Session(r *http.Request, now time.Time) *decision.Decision
	// Issue sets token (claims c) as this host's session cookie and audits
	// it as issued for why; ended, when set, is a session whose live
	// impersonation the new one ends.
	Issue(w http.ResponseWriter, r *http.Request, token string, c *identity.Claims, why string, ended *identity.Claims)
	// SignedOut renders the signed-out page.
	SignedOut(w http.ResponseWriter, r *http.Request, v *SignedOut)
	// RequestID is the request's id, for logs.
	RequestID(r *http.Request) string
}

// Why a route session was issued, as the audit log says it.
const (
	IssuedSignIn  = "sign_in"
	IssuedRefresh = "refresh"
)

// Flow is the identity-provider sign-in of one config: a reload builds a
// new one (keeping the provider client when the provider is unchanged).
type Flow struct {
	cfg    Config
	client *idp.Client
	// authURL is scheme://host of authenticate_service_url, and authOrigin
	// its origin; nil when unset.
	authURL    *url.URL
	authOrigin origin
	issuer     string
	// guard checks every target and handoff destination.
	guard    *Guard
	keys     keys
	expire   time.Duration
	csp      string
	pages    Pages
	handoffs Store
	log      *zap.Logger
	now      func() time.Time
}

// New returns the Flow of cfg, or nil when no provider is configured. prev
// is the Flow it replaces, if any; guard checks redirect targets; handoffs
// keeps handoffs single-use and knows the ended authenticate sessions; now
// is the clock.
func New(cfg Config, prev *Flow, guard *Guard, pages Pages, handoffs Store, log *zap.Logger, now func() time.Time) *Flow {
	ic := cfg.Provider
	if ic.ProviderURL == "" {
		return nil
	}
	f := &Flow{cfg: cfg, keys: deriveKeys(cfg.Secret), expire: cfg.CookieExpire, issuer: cfg.Issuer, guard: guard,
		pages: pages, handoffs: handoffs, log: log, now: now}
	// A reload that keeps the provider keeps its discovery cache.
	if prev != nil && prev.client.Same(ic) {
		f.client = prev.client
	} else {
		f.client = idp.New(ic, nil)
	}
	if f.expire <= 0 {
		f.expire = 14 * time.Hour
	}
	if u, err := url.Parse(cfg.AuthenticateServiceURL); err == nil {
		if ao, ok := originOf(u.Scheme, u.Host); ok {
			f.authURL, f.authOrigin = &url.URL{Scheme: u.Scheme, Host: u.Host}, ao
			if f.issuer == "" {
				f.issuer = identity.HostWithoutPort(u.Host)
			}
		}
	}
	// Forms post to this host, but the answer of some (refresh, sign-in)
	// redirects on to the authenticate host and the provider: browsers
	// apply form-action to those redirects too.
	formAction := "'self'"
	for _, src := range []*url.URL{f.authURL, schemeHostOf(ic.ProviderURL)} {
		if src != nil && cspSource.MatchString(src.String()) {
			formAction += " " + src.String()
		}
	}
	f.csp = strings.Replace(cfg.CSP, "form-action 'self'", "form-action "+formAction, 1)
	return f
}

// CSP is the pages' Content-Security-Policy with sign-in's form-action.
func (f *Flow) CSP() string { return f.csp }

var cspSource = regexp.MustCompile(`^https?://[A-Za-z0-9.\-]+(:[0-9]+)?$`)

func schemeHostOf(raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}
}

// OnSignInHost reports whether r is on the origin where the
// identity-provider session lives.
func (f *Flow) OnSignInHost(r *http.Request) bool {
	if f.authURL == nil {
		return true
	}
	ro, ok := requestOrigin(r)
	return ok && ro == f.authOrigin
}

// sameOrigin reports whether target is on the origin r was sent to.
func sameOrigin(target *url.URL, r *http.Request) bool {
	to, ok := originOf(target.Scheme, target.Host)
	ro, okR := requestOrigin(r)
	return ok && okR && to == ro
}

// signInBase is scheme://host of the authenticate host (this host when unset).
func (f *Flow) signInBase(r *http.Request) string {
	if f.authURL != nil {
		return f.authURL.String()
	}
	return RequestScheme(r) + "://" + r.Host
}

// The sign-in machinery's cookies, named as CookieName says.
func (f *Flow) authCookieName() string {
	return CookieName(f.cfg.CookieName, f.cfg.CookieSecure, "_authenticate")
}
func (f *Flow) flowCookieName(sfx string) string {
	return CookieName(f.cfg.CookieName, f.cfg.CookieSecure, "_oidc_"+sfx)
}
func (f *Flow) bindCookieName(sfx string) string {
	return CookieName(f.cfg.CookieName, f.cfg.CookieSecure, "_signin_"+sfx)
}

// shortCookie is a host-only cookie of the sign-in machinery. Path=/ (as
// __Host- requires): Check removes it before a request goes upstream.
func (f *Flow) shortCookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: f.cfg.CookieSecure, SameSite: http.SameSiteLaxMode}
}

// redirect answers a GET with 302 and anything else (a form post) with 303.
func redirect(w http.ResponseWriter, r *http.Request, to string) {
	status := http.StatusFound
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		status = http.StatusSeeOther
	}
	http.Redirect(w, r, to, status)
}

// signInLink is a path on this host that starts sign-in again for target.
func signInLink(target string) string {
	if target == "" {
		return PathSignIn
	}
	return PathSignIn + "?" + RedirectParam + "=" + url.QueryEscape(target)
}

// refuse answers a sign-in failure a person can act on: a page saying
// what happened and what to do, with the request id, a "Try again" link, and
// a log entry. Never a token in either.
func (f *Flow) refuse(w http.ResponseWriter, r *http.Request, status int, msg, retry, why string, fields ...zap.Field) {
	fields = append(fields, zap.String("reason", why), zap.Int("status", status), zap.String("host", r.Host),
		zap.String("path", r.URL.Path), zap.String("request_id", f.pages.RequestID(r)))
	if status >= 500 {
		f.log.Error("sign-in failed", fields...)
	} else {
		f.log.Warn("sign-in refused", fields...)
	}
	f.pages.Fail(w, r, status, msg, retry)
}
