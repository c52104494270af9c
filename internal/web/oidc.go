package web

// Browser sign-in against the OpenID Connect provider at idp_provider_url,
// with single sign-on across route hosts.
//
// The identity-provider session lives on the authenticate host (the host of
// authenticate_service_url), in an "authenticate session" cookie that only
// that host ever sees. A route host never talks to the provider; it gets a
// session of its own, scoped to itself, through a handoff:
//
//  1. Check sends a browser without a session to /.pomerium/sign_in on the
//     route host, which keeps a random secret in a "binding" cookie (on the
//     route host) and redirects to /.pomerium/sign_in on the authenticate
//     host with the page to return to and a keyed commitment to the secret.
//  2. The authenticate host, if it has no (fresh enough) authenticate
//     session, runs the authorization-code flow with PKCE (S256), state and
//     nonce: a signed flow cookie remembers them, the provider signs the user
//     in and redirects to /.pomerium/callback on the authenticate host, which
//     checks the state, redeems the code, verifies the ID token and its
//     nonce, and sets the authenticate session.
//  3. With an authenticate session, the authenticate host redirects to
//     /.pomerium/callback on the route host with a handoff token: sealed,
//     for that route's origin only (scheme, host and port, checked against
//     the policy by redirectGuard), valid 60 seconds, usable once (spent even
//     when the rest of its checks fail), and carrying the commitment of step
//     1, which the route host checks against the secret in the browser's
//     binding cookie. Never a session token: the route host mints its own
//     `_pomerium` session (aud = itself) from the handoff and sends the
//     browser back to the page.
//
// A second route host repeats 1 and 3 only: no second sign-in at the
// provider. When the route session expires, the same dance gives a new one
// silently, re-reading the identity from the provider (refresh token) when
// the authenticate session's identity is older than identityFreshFor.
// Without authenticate_service_url each host is its own authenticate host.

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/audit"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/idp"
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

// oidcState is the identity-provider sign-in of one Settings.
type oidcState struct {
	client *idp.Client
	// authURL is scheme://host of authenticate_service_url, and authOrigin
	// its origin; nil when unset.
	authURL    *url.URL
	authOrigin origin
	issuer     string
	// guard checks every target and handoff destination.
	guard      *redirectGuard
	keys       oidcKeys
	cookieName string
	secure     bool
	expire     time.Duration
	csp        string
}

func (s *Server) newOIDCState(set *Settings, cookieName string, guard *redirectGuard) *oidcState {
	if set.IdpProviderURL == "" {
		return nil
	}
	cfg := idp.Config{ProviderURL: set.IdpProviderURL, ClientID: set.IdpClientID, ClientSecret: set.IdpClientSecret, Scopes: set.IdpScopes,
		AllowUnverifiedEmail: set.IdpAllowUnverifiedEmail}
	o := &oidcState{
		keys:       deriveKeys(set.Secret),
		cookieName: cookieName,
		secure:     set.CookieSecure,
		expire:     set.CookieExpire,
		issuer:     set.Issuer,
		guard:      guard,
	}
	// A reload that keeps the provider keeps its discovery cache.
	if prev := s.state.Load(); prev != nil && prev.oidc != nil && prev.oidc.client.Same(cfg) {
		o.client = prev.oidc.client
	} else {
		o.client = idp.New(cfg, nil)
	}
	if o.expire <= 0 {
		o.expire = 14 * time.Hour
	}
	if u, err := url.Parse(set.AuthenticateServiceURL); err == nil {
		if ao, ok := originOf(u.Scheme, u.Host); ok {
			o.authURL, o.authOrigin = &url.URL{Scheme: u.Scheme, Host: u.Host}, ao
			if o.issuer == "" {
				o.issuer = identity.HostWithoutPort(u.Host)
			}
		}
	}
	// Forms post to this host, but the answer of some (refresh, sign-in)
	// redirects on to the authenticate host and the provider: browsers
	// apply form-action to those redirects too.
	formAction := "'self'"
	for _, src := range []*url.URL{o.authURL, schemeHostOf(set.IdpProviderURL)} {
		if src != nil && cspSource.MatchString(src.String()) {
			formAction += " " + src.String()
		}
	}
	o.csp = strings.Replace(contentSecurityPolicy, "form-action 'self'", "form-action "+formAction, 1)
	return o
}

var cspSource = regexp.MustCompile(`^https?://[A-Za-z0-9.\-]+(:[0-9]+)?$`)

func schemeHostOf(raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}
}

// onSignInHost reports whether r is on the origin where the
// identity-provider session lives.
func (o *oidcState) onSignInHost(r *http.Request) bool {
	if o.authURL == nil {
		return true
	}
	ro, ok := requestOrigin(r)
	return ok && ro == o.authOrigin
}

// sameOrigin reports whether target is on the origin r was sent to.
func sameOrigin(target *url.URL, r *http.Request) bool {
	to, ok := originOf(target.Scheme, target.Host)
	ro, okR := requestOrigin(r)
	return ok && okR && to == ro
}

// signInBase is scheme://host of the authenticate host (this host when unset).
func (o *oidcState) signInBase(r *http.Request) string {
	if o.authURL != nil {
		return o.authURL.String()
	}
	return requestScheme(r) + "://" + r.Host
}

// The sign-in machinery's cookies, named as sidecarCookieName says.
func (o *oidcState) authCookieName() string {
	return sidecarCookieName(o.cookieName, o.secure, "_authenticate")
}
func (o *oidcState) flowCookieName(sfx string) string {
	return sidecarCookieName(o.cookieName, o.secure, "_oidc_"+sfx)
}
func (o *oidcState) bindCookieName(sfx string) string {
	return sidecarCookieName(o.cookieName, o.secure, "_signin_"+sfx)
}

// shortCookie is a host-only cookie of the sign-in machinery. Path=/ (as
// __Host- requires): Check removes it before a request goes upstream.
func (o *oidcState) shortCookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: o.secure, SameSite: http.SameSiteLaxMode}
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
		return pathSignIn
	}
	return pathSignIn + "?" + redirectParam + "=" + url.QueryEscape(target)
}

// refuseSignIn answers a sign-in failure a person can act on: a page saying
// what happened and what to do, with the request id, a "Try again" link, and
// a log entry. Never a token in either.
func (s *Server) refuseSignIn(st *state, w http.ResponseWriter, r *http.Request, status int, msg, retry, why string, fields ...zap.Field) {
	fields = append(fields, zap.String("reason", why), zap.Int("status", status), zap.String("host", r.Host),
		zap.String("path", r.URL.Path), zap.String("request_id", requestID(r)))
	if status >= 500 {
		s.log.Error("sign-in failed", fields...)
	} else {
		s.log.Warn("sign-in refused", fields...)
	}
	s.failRetry(st, w, r, status, msg, retry)
}

// providerFailed answers a failed conversation with the identity provider.
func (s *Server) providerFailed(st *state, w http.ResponseWriter, r *http.Request, err error, retry string) {
	var e *idp.Error
	if !errors.As(err, &e) {
		e = &idp.Error{Kind: idp.Unreachable, Msg: "the identity provider could not be used", Err: err}
	}
	detail := zap.Error(err)
	switch e.Kind {
	case idp.Refused:
		s.refuseSignIn(st, w, r, http.StatusBadRequest,
			"The identity provider refused this sign-in: "+e.Msg+". The link may have expired or been used already. Start again.",
			retry, "provider refused", detail)
	case idp.Invalid:
		s.refuseSignIn(st, w, r, http.StatusBadRequest,
			"The identity provider's answer could not be verified: "+e.Msg+". Start again; if it keeps happening, tell your administrator and quote the request id.",
			retry, "provider answer did not verify", detail)
	case idp.Unverified:
		// An address the provider does not vouch for may be anyone's,
		// an administrator's included: never a session for it.
		fields := []zap.Field{detail}
		var ue *idp.UnverifiedEmailError
		if errors.As(err, &ue) {
			fields = []zap.Field{zap.String("issuer", ue.Issuer), zap.String("subject", ue.Subject),
				zap.String("email", ue.Email), zap.String("email_verified", ue.Claim), zap.String("claim_source", ue.Source)}
		}
		s.refuseSignIn(st, w, r, http.StatusForbidden,
			"Your identity provider did not confirm that your email address is verified, so it cannot be used to sign in here: an unverified address could be anyone's. "+
				"Verify the address with your identity provider, then try again. If your provider never confirms addresses (Microsoft Entra ID does not send email_verified), "+
				"your administrator can turn this check off with idp_allow_unverified_email: true (quote the request id when you ask).",
			retry, "email not verified", fields...)
	case idp.Misconfigured:
		s.refuseSignIn(st, w, r, http.StatusBadGateway,
			"Sign-in is misconfigured: "+e.Msg+". Tell your administrator and quote the request id.",
			retry, "provider misconfigured", detail)
	default:
		s.refuseSignIn(st, w, r, http.StatusBadGateway,
			"The identity provider could not be reached, so you cannot sign in right now ("+e.Msg+"). Try again in a minute; if it keeps failing, tell your administrator and quote the request id.",
			retry, "provider unreachable", detail)
	}
}

// signInOIDC is GET /.pomerium/sign_in when an identity provider is configured.
func (s *Server) signInOIDC(st *state, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get(signedOutParam) != "" {
		s.signedOut(st, w, r)
		return
	}
	target, ok := s.oidcTarget(st, w, r, q.Get(redirectParam))
	if !ok {
		return
	}
	// The binding is opaque here (a commitment only the route host can
	// check); anything that does not look like one is no binding at all.
	binding := q.Get(bindingParam)
	if _, ok := cookieSuffix(binding); !ok {
		binding = ""
	}
	s.beginSignIn(st, w, r, target, binding, q.Get(refreshParam) != "")
}

// oidcTarget checks pomerium_redirect_uri ("" is this host's dashboard); a
// refused one is answered here.
func (s *Server) oidcTarget(st *state, w http.ResponseWriter, r *http.Request, raw string) (*url.URL, bool) {
	if raw == "" {
		raw = pathDashboard
	}
	target, ok := st.redirects.target(raw, r)
	if !ok {
		s.refuseSignIn(st, w, r, http.StatusBadRequest,
			"The page to return to after signing in is not allowed: only pages of the sites this proxy protects are. Sign in from the page you want to use.",
			signInLink(""), "redirect target refused", zap.String("redirect", clip(raw, 256)))
		return nil, false
	}
	return target, true
}

// beginSignIn starts (or continues) a sign-in for target. A route host binds
// the browser and sends it to the authenticate host; the authenticate host
// signs in (or refreshes) at the provider and hands off.
func (s *Server) beginSignIn(st *state, w http.ResponseWriter, r *http.Request, target *url.URL, binding string, force bool) {
	o := st.oidc
	if o.onSignInHost(r) {
		s.authenticate(st, w, r, target, binding, force)
		return
	}
	if !sameOrigin(target, r) {
		// The handoff must land where the binding cookie is: start there.
		v := url.Values{redirectParam: {target.String()}}
		if force {
			v.Set(refreshParam, "1")
		}
		redirect(w, r, target.Scheme+"://"+target.Host+pathSignIn+"?"+v.Encode())
		return
	}
	// The secret stays in this browser, on this host; the authenticate host
	// and the handoff carry only the commitment, which also names the cookie.
	secret, err := randomID()
	if err != nil {
		s.internalError(st, w, r, err)
		return
	}
	ro, _ := requestOrigin(r) // the target's, so already checked
	commitment := o.keys.bindingCommitment(ro, secret)
	sfx, _ := cookieSuffix(commitment)
	http.SetCookie(w, o.shortCookie(o.bindCookieName(sfx), secret, int(flowLifetime/time.Second)))
	v := url.Values{redirectParam: {target.String()}, bindingParam: {commitment}}
	if force {
		v.Set(refreshParam, "1")
	}
	redirect(w, r, o.authURL.String()+pathSignIn+"?"+v.Encode())
}

// authenticate runs on the authenticate host: with a usable authenticate
// session it finishes at once (after re-reading the identity from the
// provider when asked to, or when it is stale); else it starts the
// authorization-code flow.
func (s *Server) authenticate(st *state, w http.ResponseWriter, r *http.Request, target *url.URL, binding string, force bool) {
	o := st.oidc
	now := s.now()
	as := o.loadAuthSession(r, now)
	if as != nil && (force || now.Sub(time.Unix(as.Refreshed, 0)) >= identityFreshFor) {
		rt := o.refreshToken(as)
		if rt == "" {
			as = nil // no refresh token: re-read the identity through the browser
		} else {
			ctx, cancel := context.WithTimeout(r.Context(), oidcTimeout)
			id, err := o.client.Refresh(ctx, rt, as.Subject)
			cancel()
			switch kind := idp.KindOf(err); {
			case err == nil:
				if as, err = s.saveAuthSession(st, w, r, id, now); err != nil {
					s.sessionTooLarge(st, w, r, err, signInLink(target.String()))
					return
				}
				s.log.Info("identity refreshed from the identity provider", zap.String("email", as.Email),
					zap.Strings("groups", nonNil(as.Groups)), zap.String("request_id", requestID(r)))
			case kind == idp.Unverified:
				// The provider no longer vouches for the address: the
				// authenticate session must not hand it to any host.
				o.clearAuthSession(w)
				s.providerFailed(st, w, r, err, signInLink(target.String()))
				return
			case kind == idp.Refused || kind == idp.Invalid:
				// The provider ended the session (or the token is bad):
				// sign in there again.
				s.log.Info("refresh refused by the identity provider; signing in again", zap.Error(err),
					zap.String("request_id", requestID(r)))
				o.clearAuthSession(w)
				as = nil
			default:
				s.providerFailed(st, w, r, err, signInLink(target.String()))
				return
			}
		}
	}
	if as == nil {
		s.startFlow(st, w, r, target, binding)
		return
	}
	s.finish(st, w, r, as, target, binding)
}

// startFlow sends the browser to the provider with a fresh state, nonce and
// PKCE verifier, remembered in a signed flow cookie.
func (s *Server) startFlow(st *state, w http.ResponseWriter, r *http.Request, target *url.URL, binding string) {
	o := st.oidc
	f := idp.NewFlow()
	callback := o.signInBase(r) + pathCallback
	ctx, cancel := context.WithTimeout(r.Context(), oidcTimeout)
	authURL, err := o.client.AuthCodeURL(ctx, callback, f)
	cancel()
	if err != nil {
		s.providerFailed(st, w, r, err, signInLink(target.String()))
		return
	}
	fc := flowCookie{State: f.State, Nonce: f.Nonce, Verifier: f.Verifier, Callback: callback,
		Target: target.String(), Binding: binding, Expires: s.now().Add(flowLifetime).Unix()}
	sfx, _ := cookieSuffix(f.State)
	name := o.flowCookieName(sfx)
	val, err := sign(o.keys.flow, purposeFlow+"\x00"+name, fc)
	if err != nil {
		s.internalError(st, w, r, err)
		return
	}
	c := o.shortCookie(name, val, int(flowLifetime/time.Second))
	if !cookieFits(c) {
		s.refuseSignIn(st, w, r, http.StatusBadRequest, "The address of the page to return to is too long to sign in with. Sign in from a shorter address.",
			signInLink(""), "flow cookie too large")
		return
	}
	http.SetCookie(w, c)
	redirect(w, r, authURL)
}

// callback is GET /.pomerium/callback: the provider's answer (on the
// authenticate host), or a handoff (on a route host).
func (s *Server) callback(st *state, w http.ResponseWriter, r *http.Request) {
	if st.oidc == nil {
		s.fail(st, w, r, http.StatusNotFound, "Sign-in with an identity provider is not configured here.")
		return
	}
	q := r.URL.Query()
	if q.Has(handoffParam) {
		s.acceptHandoff(st, w, r, q.Get(handoffParam))
		return
	}
	s.providerAnswer(st, w, r, q)
}

var errorCodeRE = regexp.MustCompile(`^[a-z_]{1,64}$`)

// providerAnswer handles the provider's redirect back: ?code=&state= or
// ?error=&state=.
func (s *Server) providerAnswer(st *state, w http.ResponseWriter, r *http.Request, q url.Values) {
	o := st.oidc
	now := s.now()
	fc, ok := o.takeFlow(w, r, q.Get("state"), now)
	retry := signInLink("")
	if ok {
		retry = signInLink(fc.Target)
	}
	if e := q.Get("error"); e != "" {
		code := e
		if !errorCodeRE.MatchString(code) {
			code = "unknown_error"
		}
		desc := printable(clip(q.Get("error_description"), 200))
		fields := []zap.Field{zap.String("error", code), zap.String("error_description", desc), zap.Bool("state_matched", ok)}
		switch code {
		case "access_denied", "consent_required", "login_required", "interaction_required", "account_selection_required":
			s.refuseSignIn(st, w, r, http.StatusForbidden,
				"Sign-in was cancelled ("+code+"): consent was declined, or the identity provider does not let you use this application. If that was a mistake, try again; otherwise ask your administrator for access.",
				retry, "provider denied the sign-in", fields...)
		case "temporarily_unavailable", "server_error":
			s.refuseSignIn(st, w, r, http.StatusBadGateway,
				"The identity provider could not complete the sign-in ("+code+"). Try again in a minute.",
				retry, "provider failed the sign-in", fields...)
		default:
			s.refuseSignIn(st, w, r, http.StatusBadRequest,
				"The identity provider refused the sign-in request ("+code+"). Tell your administrator and quote the request id.",
				retry, "provider refused the sign-in request", fields...)
		}
		return
	}
	if !ok {
		s.refuseSignIn(st, w, r, http.StatusBadRequest,
			"This sign-in answer does not match a sign-in started in this browser in the last 10 minutes (state mismatch): it may have been opened in another browser, taken too long, or been used already. Start again.",
			retry, "state mismatch or expired flow")
		return
	}
	code := q.Get("code")
	if code == "" || len(code) > 4096 {
		s.refuseSignIn(st, w, r, http.StatusBadRequest, "The identity provider's answer has no sign-in code. Start again.", retry, "no code")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), oidcTimeout)
	id, err := o.client.Exchange(ctx, fc.Callback, code, idp.Flow{State: fc.State, Nonce: fc.Nonce, Verifier: fc.Verifier})
	cancel()
	if err != nil {
		s.providerFailed(st, w, r, err, retry)
		return
	}
	target, ok := st.redirects.target(fc.Target, r)
	if !ok {
		s.refuseSignIn(st, w, r, http.StatusBadRequest, "The page to return to is no longer allowed. Sign in from the page you want to use.", signInLink(""), "target no longer allowed")
		return
	}
	as, err := s.saveAuthSession(st, w, r, id, now)
	if err != nil {
		s.sessionTooLarge(st, w, r, err, retry)
		return
	}
	s.log.Info("signed in at the identity provider", zap.String("email", as.Email), zap.String("subject", as.Subject),
		zap.Strings("groups", nonNil(as.Groups)), zap.Bool("refresh_token", as.RefreshToken != ""), zap.String("request_id", requestID(r)))
	s.finish(st, w, r, as, target, fc.Binding)
}

// takeFlow reads and clears the flow cookie named by state; false when it is
// missing, forged, expired or for another state.
func (o *oidcState) takeFlow(w http.ResponseWriter, r *http.Request, state string, now time.Time) (*flowCookie, bool) {
	sfx, ok := cookieSuffix(state)
	if !ok {
		return nil, false
	}
	name := o.flowCookieName(sfx)
	c, err := r.Cookie(name)
	if err != nil {
		return nil, false
	}
	http.SetCookie(w, o.shortCookie(name, "", -1)) // single use
	var fc flowCookie
	if !verifySigned(o.keys.flow, purposeFlow+"\x00"+name, c.Value, &fc) {
		return nil, false
	}
	if !hmac.Equal([]byte(fc.State), []byte(state)) || now.Unix() >= fc.Expires {
		return nil, false
	}
	return &fc, true
}

// finish gives target's origin a session: directly when it is this origin,
// else by a handoff carrying the binding commitment of the browser there.
func (s *Server) finish(st *state, w http.ResponseWriter, r *http.Request, as *authSession, target *url.URL, binding string) {
	o := st.oidc
	who := sessionIdentity{Subject: as.Subject, Email: as.Email, Groups: as.Groups}
	if sameOrigin(target, r) {
		s.issueRouteSession(st, w, r, who, target)
		return
	}
	if binding == "" || o.authURL == nil {
		// This sign-in did not start on the target host (someone opened the
		// authenticate host directly), or there is no authenticate host and
		// each host signs in by itself: start it there, so that a handoff,
		// if any, is bound to this browser.
		redirect(w, r, target.Scheme+"://"+target.Host+signInLink(target.String()))
		return
	}
	if err := s.handoffs.Issue(r.Context(), as.Subject); err != nil {
		if errors.Is(err, ErrHandoffRateLimited) {
			w.Header().Set("Retry-After", "60")
			s.refuseSignIn(st, w, r, http.StatusTooManyRequests,
				"You have been signed in to sites here too many times in the last minute. Wait a minute, then try again.",
				signInLink(target.String()), "handoff rate limit", zap.String("subject", as.Subject))
			return
		}
		s.refuseSignIn(st, w, r, http.StatusServiceUnavailable,
			"Sign-in cannot be completed right now. Try again in a minute; if it keeps failing, tell your administrator and quote the request id.",
			signInLink(target.String()), "handoff ledger unavailable", zap.Error(err))
		return
	}
	to, _ := originOf(target.Scheme, target.Host) // checked by the guard
	now := s.now()
	jti, err := identity.NewTokenID()
	if err != nil {
		s.internalError(st, w, r, err)
		return
	}
	h := handoff{ID: jti, Issuer: identity.HostWithoutPort(r.Host), Audience: to.String(),
		IssuedAt: now.Unix(), ExpiresAt: now.Add(handoffLifetime).Unix(),
		Subject: as.Subject, Email: as.Email, Groups: as.Groups, Target: target.String(), Binding: binding}
	plain, err := json.Marshal(h)
	if err != nil {
		s.internalError(st, w, r, err)
		return
	}
	tok, err := seal(o.keys.handoff, aadHandoff, plain)
	if err != nil {
		s.internalError(st, w, r, err)
		return
	}
	redirect(w, r, target.Scheme+"://"+target.Host+pathCallback+"?"+handoffParam+"="+tok)
}

// acceptHandoff is /.pomerium/callback?pomerium_handoff= on a route host:
// check the handoff (sealed, from the authenticate host, for this origin,
// unexpired, unused), spend it, then check that this browser holds the
// secret it is bound to, and set this host's own session. A handoff is spent
// before the binding is checked: one that reached the wrong browser first
// (a crafted link, a leak) is of no use to anyone afterwards.
func (s *Server) acceptHandoff(st *state, w http.ResponseWriter, r *http.Request, raw string) {
	o := st.oidc
	now := s.now()
	var h handoff
	plain, ok := open(o.keys.handoff, aadHandoff, raw)
	if !ok || json.Unmarshal(plain, &h) != nil {
		s.refuseSignIn(st, w, r, http.StatusBadRequest,
			"This sign-in link is not valid: it was altered, or made by another installation. Start again.",
			signInLink(""), "handoff does not open")
		return
	}
	ro, okR := requestOrigin(r)
	target, err := url.Parse(h.Target)
	if !okR || err != nil || !sameOrigin(target, r) || !o.guard.allows(ro) || h.Audience != ro.String() {
		s.refuseSignIn(st, w, r, http.StatusBadRequest, "This sign-in link was made for another site. Start again from the page you want to use.",
			signInLink(""), "handoff target not on this origin")
		return
	}
	retry := signInLink(target.String())
	if o.authURL == nil || h.Issuer != identity.HostWithoutPort(o.authURL.Host) {
		s.refuseSignIn(st, w, r, http.StatusBadRequest, "This sign-in link was made by another site. Start again.",
			retry, "handoff issuer mismatch")
		return
	}
	iat, exp := time.Unix(h.IssuedAt, 0), time.Unix(h.ExpiresAt, 0)
	if exp.Sub(iat) > handoffLifetime || !now.Before(exp) || now.Before(iat.Add(-handoffSkew)) {
		s.refuseSignIn(st, w, r, http.StatusBadRequest, "This sign-in link has expired: they work for 60 seconds. Start again.",
			retry, "handoff expired", zap.Time("handoff_expires_at", exp))
		return
	}
	if err := s.handoffs.Use(r.Context(), h.ID, exp.Add(handoffSkew)); err != nil {
		if errors.Is(err, ErrHandoffUsed) {
			s.refuseSignIn(st, w, r, http.StatusBadRequest, "This sign-in link was already used. Start again.",
				retry, "handoff replayed", zap.String("handoff_id", h.ID))
			return
		}
		s.refuseSignIn(st, w, r, http.StatusServiceUnavailable,
			"This sign-in cannot be completed right now: it cannot be checked that the link was not used before. Try again in a minute.",
			retry, "handoff ledger unavailable", zap.Error(err))
		return
	}
	bound := false
	if sfx, ok := cookieSuffix(h.Binding); ok {
		name := o.bindCookieName(sfx)
		if c, err := r.Cookie(name); err == nil {
			want := o.keys.bindingCommitment(ro, c.Value)
			bound = hmac.Equal([]byte(want), []byte(h.Binding))
			http.SetCookie(w, o.shortCookie(name, "", -1)) // single use
		}
	}
	if !bound {
		// Already signed in here (another tab finished first): go on.
		if sess, _ := st.loadSession(r, now); sess != nil && sess.fromCookie() {
			redirect(w, r, target.String())
			return
		}
		s.refuseSignIn(st, w, r, http.StatusBadRequest,
			"This sign-in did not start in this browser, or took longer than 10 minutes. Start again from the page you want to use.",
			retry, "handoff not bound to this browser", zap.String("handoff_id", h.ID))
		return
	}
	s.issueRouteSession(st, w, r, sessionIdentity{Subject: h.Subject, Email: h.Email, Groups: h.Groups}, target)
}

// sessionIdentity is who a route session is minted for.
type sessionIdentity struct {
	Subject string
	Email   string
	Groups  []string
}

// issueRouteSession mints this host's `_pomerium` session (iss, sub, user,
// email, groups; aud = this host; exp = now + cookie_expire), sets it and
// sends the browser to target. Like every fresh sign-in, it carries no
// impersonation.
//
// Its sid (contract section 8) is its own jti: this host's session starts
// here. When the browser still holds a valid session cookie of this host for
// the same subject (a refresh), the new token continues that session and
// keeps its sid, so a revoked session cannot be laundered by refreshing it;
// a revoked sid does not verify, so the browser then starts a new session.
func (s *Server) issueRouteSession(st *state, w http.ResponseWriter, r *http.Request, who sessionIdentity, target *url.URL) {
	o := st.oidc
	now := s.now()
	host := identity.HostWithoutPort(r.Host)
	c := &identity.Claims{Email: who.Email, User: who.Subject, Groups: who.Groups}
	jti, err := identity.NewTokenID()
	if err != nil {
		s.internalError(st, w, r, err)
		return
	}
	c.ID, c.SID = jti, jti
	issued := issuedSignIn
	prev := st.continuedSession(r, who, now)
	if prev != nil {
		c.SID, issued = prev.Claims.SessionID(), issuedRefresh
	}
	c.Issuer = o.issuer
	if c.Issuer == "" {
		c.Issuer = host
	}
	c.Subject = who.Subject
	c.Audience = jwt.ClaimStrings{host}
	c.IssuedAt = jwt.NewNumericDate(now)
	c.NotBefore = jwt.NewNumericDate(now)
	exp := now.Add(o.expire)
	c.ExpiresAt = jwt.NewNumericDate(exp)
	tok, err := identity.Mint(c, st.set.Secret)
	if err != nil {
		s.internalError(st, w, r, err)
		return
	}
	if len(tok) > maxCookieValue {
		s.refuseSignIn(st, w, r, http.StatusBadRequest,
			"Your identity provider lists more groups than fit in a browser session. Ask your administrator to send fewer groups to this application.",
			"", "session too large", zap.Int("groups", len(who.Groups)))
		return
	}
	// The session must pass the checks Check applies, or the browser would
	// come straight back to sign in, forever.
	if _, err := st.set.Engine.Verifier.Verify(tok, r.Host, now); err != nil {
		why := identity.ReasonMalformed
		var te *identity.TokenError
		if errors.As(err, &te) {
			why = te.Reason
		}
		s.refuseSignIn(st, w, r, http.StatusInternalServerError,
			"Signed in, but this proxy refuses the session it made for you ("+why+"). This is a configuration problem (for example cookie_expire longer than max_service_account_lifetime): tell your administrator and quote the request id.",
			"", "minted session refused by the verifier", zap.Error(err))
		return
	}
	s.issueSession(st, w, r, tok, c, issued)
	if prev != nil && prev.Claims.Impersonating() && !prev.Impersonation.Ended {
		// The refreshed session replaces an impersonating one, as in the
		// original: the impersonation ends here, with this token.
		s.auditImpersonation(audit.ImpersonationStopped, r, prev.Claims, st.impersonated(prev.Claims),
			append(audit.Session(c), zap.String("because", "session refreshed"))...)
	}
	redirect(w, r, target.String())
}

// continuedSession is the session that a new route session for who
// continues: the valid session cookie this browser holds on this host for
// the same subject (a refresh, or signing in again before it expired); nil
// when there is none, so that a new session starts.
func (st *state) continuedSession(r *http.Request, who sessionIdentity, now time.Time) *session {
	prev, _ := st.loadSession(r, now)
	if prev == nil || !prev.fromCookie() || who.Subject == "" || prev.Claims.Subject != who.Subject {
		return nil
	}
	return prev
}

// refresh is POST /.pomerium/refresh: re-read the identity from the provider
// and issue a new session; impersonation is reset, as in the original.
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
	target, ok := s.oidcTarget(st, w, r, raw)
	if !ok {
		return
	}
	// The session, and the end of any impersonation, are recorded when the
	// refreshed token is issued (issueRouteSession): it keeps this session's
	// sid.
	s.beginSignIn(st, w, r, target, "", true)
}

// loadAuthSession returns the authenticate session of this host, when valid.
func (o *oidcState) loadAuthSession(r *http.Request, now time.Time) *authSession {
	c, err := r.Cookie(o.authCookieName())
	if err != nil {
		return nil
	}
	var as authSession
	if !verifySigned(o.keys.auth, purposeAuth+"\x00"+o.authCookieName(), c.Value, &as) {
		return nil
	}
	if as.Subject == "" || as.Host != identity.HostWithoutPort(r.Host) || now.Unix() >= as.Expires {
		return nil
	}
	return &as
}

// refreshToken opens the sealed refresh token of as ("" when none).
func (o *oidcState) refreshToken(as *authSession) string {
	if as.RefreshToken == "" {
		return ""
	}
	rt, ok := open(o.keys.refresh, aadRefresh+as.Subject, as.RefreshToken)
	if !ok {
		return ""
	}
	return string(rt)
}

var errSessionTooLarge = errors.New("identity too large for a cookie")

// saveAuthSession sets the authenticate session for the identity the
// provider just verified. A refresh token that does not fit is dropped (the
// identity is then re-read through the browser).
func (s *Server) saveAuthSession(st *state, w http.ResponseWriter, r *http.Request, id *idp.Identity, now time.Time) (*authSession, error) {
	o := st.oidc
	as := &authSession{
		Host:      identity.HostWithoutPort(r.Host),
		Subject:   id.Subject,
		Email:     identity.NormalizeEmail(printable(id.Email)),
		Name:      printable(id.Name),
		Refreshed: now.Unix(),
		IssuedAt:  now.Unix(),
		Expires:   now.Add(o.expire).Unix(),
	}
	for _, g := range id.Groups {
		// Groups end up in headers upstream: nothing that is not text.
		if len(g) <= maxGroupLen && printable(g) == g {
			as.Groups = append(as.Groups, g)
		}
	}
	if id.RefreshToken != "" {
		sealed, err := seal(o.keys.refresh, aadRefresh+as.Subject, []byte(id.RefreshToken))
		if err != nil {
			return nil, err
		}
		as.RefreshToken = sealed
	}
	c, err := o.authCookie(as)
	if err != nil {
		return nil, err
	}
	if !cookieFits(c) && as.RefreshToken != "" {
		s.log.Warn("the identity provider's refresh token does not fit in the session cookie; dropping it",
			zap.Int("refresh_token_bytes", len(id.RefreshToken)), zap.String("request_id", requestID(r)))
		as.RefreshToken = ""
		if c, err = o.authCookie(as); err != nil {
			return nil, err
		}
	}
	if !cookieFits(c) {
		return nil, errSessionTooLarge
	}
	http.SetCookie(w, c)
	return as, nil
}

func (o *oidcState) authCookie(as *authSession) (*http.Cookie, error) {
	name := o.authCookieName()
	val, err := sign(o.keys.auth, purposeAuth+"\x00"+name, as)
	if err != nil {
		return nil, err
	}
	// Host-only (never sent to a route host); Path=/ as __Host- requires,
	// and Check removes it before a request goes upstream.
	return &http.Cookie{Name: name, Value: val, Path: "/", Expires: time.Unix(as.Expires, 0),
		HttpOnly: true, Secure: o.secure, SameSite: http.SameSiteLaxMode}, nil
}

func (o *oidcState) clearAuthSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: o.authCookieName(), Value: "", Path: "/", MaxAge: -1,
		Expires: time.Unix(0, 0), HttpOnly: true, Secure: o.secure, SameSite: http.SameSiteLaxMode})
}

func (s *Server) sessionTooLarge(st *state, w http.ResponseWriter, r *http.Request, err error, retry string) {
	if errors.Is(err, errSessionTooLarge) {
		s.refuseSignIn(st, w, r, http.StatusBadRequest,
			"Your identity provider lists more groups than fit in a browser session. Ask your administrator to send fewer groups to this application.",
			"", "authenticate session too large")
		return
	}
	s.internalError(st, w, r, err)
}

// printable drops control and bidirectional-override characters.
func printable(s string) string {
	return strings.Map(func(c rune) rune {
		if unicode.IsControl(c) || isBidiControl(c) {
			return -1
		}
		return c
	}, s)
}

type signedOutView struct {
	page
	// SignIn starts a new sign-in to this host's dashboard.
	SignIn string
	// Everywhere, on a route host, is the authenticate host's sign-out page.
	Everywhere string
	AuthHost   string
	// AuthEmail, on the authenticate host, is who is still signed in there.
	AuthEmail string
	// EndSession is the provider's end-session endpoint, offered once the
	// authenticate session is gone.
	EndSession string
}

// signedOut is GET /.pomerium/sign_in?signed_out=1 with a provider: it does
// not sign in again by itself, and says what else can be signed out of.
func (s *Server) signedOut(st *state, w http.ResponseWriter, r *http.Request) {
	o := st.oidc
	now := s.now()
	v := &signedOutView{page: newPage(r, "Signed out"), SignIn: signInLink(pathDashboard)}
	if sess, _ := st.loadSession(r, now); sess != nil {
		v.SignedIn, v.SignedInAs = true, sess.Claims.Email
	}
	if o.onSignInHost(r) {
		if as := o.loadAuthSession(r, now); as != nil {
			v.AuthEmail = as.Email
			if v.AuthEmail == "" {
				v.AuthEmail = as.Subject
			}
		} else {
			ctx, cancel := context.WithTimeout(r.Context(), oidcTimeout)
			v.EndSession = o.client.EndSessionURL(ctx)
			cancel()
		}
	} else {
		v.AuthHost = o.authURL.Host
		v.Everywhere = o.authURL.String() + pathSignIn + "?" + signedOutParam + "=1"
	}
	s.render(w, r, http.StatusOK, "signed_out.html", v)
}
