package signin

// This file starts a sign-in: on a route host it binds the browser and goes
// to the authenticate host; there it refreshes or runs the code flow.

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/idp"
)

// SignIn is GET /.pomerium/sign_in.
func (f *Flow) SignIn(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get(SignedOutParam) != "" {
		f.signedOut(w, r)
		return
	}
	target, ok := f.oidcTarget(w, r, q.Get(RedirectParam))
	if !ok {
		return
	}
	// The binding is opaque here (a commitment only the route host can
	// check); anything that does not look like one is no binding at all.
	binding := q.Get(bindingParam)
	if _, ok := cookieSuffix(binding); !ok {
		binding = ""
	}
	f.beginSignIn(w, r, target, binding, q.Get(refreshParam) != "")
}

// oidcTarget checks pomerium_redirect_uri ("" is this host's dashboard); a
// refused one is answered here.
func (f *Flow) oidcTarget(w http.ResponseWriter, r *http.Request, raw string) (*url.URL, bool) {
	if raw == "" {
		raw = PathDashboard
	}
	target, ok := f.guard.Target(raw, r)
	if !ok {
		f.refuse(w, r, http.StatusBadRequest,
			"The page to return to after signing in is not allowed: only pages of the sites this proxy protects are. Sign in from the page you want to use.",
			signInLink(""), "redirect target refused", zap.String("redirect", clip(raw, 256)))
		return nil, false
	}
	return target, true
}

// beginSignIn starts (or continues) a sign-in for target. A route host binds
// the browser and sends it to the authenticate host; the authenticate host
// signs in (or refreshes) at the provider and hands off.
func (f *Flow) beginSignIn(w http.ResponseWriter, r *http.Request, target *url.URL, binding string, force bool) {
	if f.OnSignInHost(r) {
		f.authenticate(w, r, target, binding, force)
		return
	}
	if !sameOrigin(target, r) {
		// The handoff must land where the binding cookie is: start there.
		v := url.Values{RedirectParam: {target.String()}}
		if force {
			v.Set(refreshParam, "1")
		}
		redirect(w, r, target.Scheme+"://"+target.Host+PathSignIn+"?"+v.Encode())
		return
	}
	// The secret stays in this browser, on this host; the authenticate host
	// and the handoff carry only the commitment, which also names the cookie.
	secret, err := randomID()
	if err != nil {
		f.pages.InternalError(w, r, err)
		return
	}
	ro, _ := requestOrigin(r) // the target's, so already checked
	commitment := f.keys.bindingCommitment(ro, secret)
	sfx, _ := cookieSuffix(commitment)
	http.SetCookie(w, f.shortCookie(f.bindCookieName(sfx), secret, int(flowLifetime/time.Second)))
	v := url.Values{RedirectParam: {target.String()}, bindingParam: {commitment}}
	if force {
		v.Set(refreshParam, "1")
	}
	redirect(w, r, f.authURL.String()+PathSignIn+"?"+v.Encode())
}

// authenticate runs on the authenticate host: with a usable authenticate
// session it finishes at once (after re-reading the identity from the
// provider when asked to, or when it is stale); else it starts the
// authorization-code flow.
func (f *Flow) authenticate(w http.ResponseWriter, r *http.Request, target *url.URL, binding string, force bool) {
	now := f.now()
	as := f.loadAuthSession(r, now)
	if as != nil && (force || now.Sub(time.Unix(as.Refreshed, 0)) >= identityFreshFor) {
		rt := f.refreshToken(as)
		if rt == "" {
			as = nil // no refresh token: re-read the identity through the browser
		} else {
			ctx, cancel := context.WithTimeout(r.Context(), oidcTimeout)
			id, err := f.client.Refresh(ctx, rt, as.Subject)
			cancel()
			switch kind := idp.KindOf(err); {
			case err == nil:
				if as, err = f.saveAuthSession(w, r, id, now); err != nil {
					f.sessionTooLarge(w, r, err, signInLink(target.String()))
					return
				}
				f.log.Info("identity refreshed from the identity provider", zap.String("email", as.Email),
					zap.Strings("groups", nonNilGroups(as.Groups)), zap.String("request_id", f.pages.RequestID(r)))
			case kind == idp.Unverified:
				// The provider no longer vouches for the address: the
				// authenticate session must not hand it to any host.
				f.ClearAuthSession(w)
				f.providerFailed(w, r, err, signInLink(target.String()))
				return
			case kind == idp.Refused || kind == idp.Invalid:
				// The provider ended the session (or the token is bad):
				// sign in there again.
				f.log.Info("refresh refused by the identity provider; signing in again", zap.Error(err),
					zap.String("request_id", f.pages.RequestID(r)))
				f.ClearAuthSession(w)
				as = nil
			default:
				f.providerFailed(w, r, err, signInLink(target.String()))
				return
			}
		}
	}
	if as == nil {
		f.startFlow(w, r, target, binding)
		return
	}
	f.finish(w, r, as, target, binding)
}

// startFlow sends the browser to the provider with a fresh state, nonce and
// PKCE verifier, remembered in a signed flow cookie.
func (f *Flow) startFlow(w http.ResponseWriter, r *http.Request, target *url.URL, binding string) {
	fl := idp.NewFlow()
	callback := f.signInBase(r) + PathCallback
	ctx, cancel := context.WithTimeout(r.Context(), oidcTimeout)
	authURL, err := f.client.AuthCodeURL(ctx, callback, fl)
	cancel()
	if err != nil {
		f.providerFailed(w, r, err, signInLink(target.String()))
		return
	}
	fc := flowCookie{State: fl.State, Nonce: fl.Nonce, Verifier: fl.Verifier, Callback: callback,
		Target: target.String(), Binding: binding, Expires: f.now().Add(flowLifetime).Unix()}
	sfx, _ := cookieSuffix(fl.State)
	name := f.flowCookieName(sfx)
	val, err := signValue(f.keys.flow, purposeFlow+"\x00"+name, fc)
	if err != nil {
		f.pages.InternalError(w, r, err)
		return
	}
	c := f.shortCookie(name, val, int(flowLifetime/time.Second))
	if !cookieFits(c) {
		f.refuse(w, r, http.StatusBadRequest, "The address of the page to return to is too long to sign in with. Sign in from a shorter address.",
			signInLink(""), "flow cookie too large")
		return
	}
	http.SetCookie(w, c)
	redirect(w, r, authURL)
}

// Refresh is POST /.pomerium/refresh with the page to return to (raw):
// re-read the identity from the provider and issue a new session;
// impersonation is reset, as in the original.
func (f *Flow) Refresh(w http.ResponseWriter, r *http.Request, raw string) {
	target, ok := f.oidcTarget(w, r, raw)
	if !ok {
		return
	}
	// The session, and the end of any impersonation, are recorded when the
	// refreshed token is issued (issueRouteSession): it keeps this session's
	// sid.
	f.beginSignIn(w, r, target, "", true)
}
