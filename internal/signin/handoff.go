package signin

// This file is the handoff: issued on the authenticate host, redeemed
// once on the route host, which mints its own session from it.

import (
	"crypto/hmac"
	"errors"
	"net/http"
	"net/url"
	"time"

	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
)

// finish gives target's origin a session: directly when it is this origin,
// else by a handoff carrying the binding commitment of the browser there.
func (f *Flow) finish(w http.ResponseWriter, r *http.Request, as *authSession, target *url.URL, binding string) {
	who := sessionIdentity{Subject: as.Subject, Email: as.Email, Groups: as.Groups}
	if sameOrigin(target, r) {
		f.issueRouteSession(w, r, who, target)
		return
	}
	if binding == "" || f.authURL == nil {
		// This sign-in did not start on the target host (someone opened the
		// authenticate host directly), or there is no authenticate host and
		// each host signs in by itself: start it there, so that a handoff,
		// if any, is bound to this browser.
		redirect(w, r, target.Scheme+"://"+target.Host+signInLink(target.String()))
		return
	}
	if err := f.handoffs.Issue(r.Context(), as.Subject); err != nil {
		if errors.Is(err, ErrHandoffRateLimited) {
			w.Header().Set("Retry-After", "60")
			f.refuse(w, r, http.StatusTooManyRequests,
				"You have been signed in to sites here too many times in the last minute. Wait a minute, then try again.",
				signInLink(target.String()), "handoff rate limit", zap.String("subject", as.Subject))
			return
		}
		f.refuse(w, r, http.StatusServiceUnavailable,
			"Sign-in cannot be completed right now. Try again in a minute; if it keeps failing, tell your administrator and quote the request id.",
			signInLink(target.String()), "handoff ledger unavailable", zap.Error(err))
		return
	}
	to, _ := originOf(target.Scheme, target.Host) // checked by the guard
	now := f.now()
	jti, err := identity.NewTokenID()
	if err != nil {
		f.pages.InternalError(w, r, err)
		return
	}
	h := &handoff{
		Claims: josejwt.Claims{ID: jti, Issuer: identity.HostWithoutPort(r.Host), Subject: as.Subject,
			Audience: josejwt.Audience{to.String()}, IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(handoffLifetime))},
		Email: as.Email, Groups: as.Groups, Target: target.String(), Binding: binding}
	tok, err := f.keys.sealHandoff(h)
	if err != nil {
		f.pages.InternalError(w, r, err)
		return
	}
	redirect(w, r, target.Scheme+"://"+target.Host+PathCallback+"?"+handoffParam+"="+tok)
}

// acceptHandoff is /.pomerium/callback?pomerium_handoff= on a route host:
// check the handoff (sealed, from the authenticate host, for this origin,
// unexpired, unused), spend it, then check that this browser holds the
// secret it is bound to, and set this host's own session. A handoff is spent
// before the binding is checked: one that reached the wrong browser first
// (a crafted link, a leak) is of no use to anyone afterwards.
func (f *Flow) acceptHandoff(w http.ResponseWriter, r *http.Request, raw string) {
	now := f.now()
	h, ok := f.keys.openHandoff(raw)
	if !ok {
		f.refuse(w, r, http.StatusBadRequest,
			"This sign-in link is not valid: it was altered, or made by another installation. Start again.",
			signInLink(""), "handoff does not open")
		return
	}
	ro, okR := requestOrigin(r)
	target, err := url.Parse(h.Target)
	if !okR || err != nil || !sameOrigin(target, r) || !f.guard.allows(ro) {
		f.refuse(w, r, http.StatusBadRequest, "This sign-in link was made for another site. Start again from the page you want to use.",
			signInLink(""), "handoff target not on this origin")
		return
	}
	retry := signInLink(target.String())
	issuer := ""
	if f.authURL != nil {
		issuer = identity.HostWithoutPort(f.authURL.Host)
	}
	switch err := h.check(issuer, ro.String(), now); {
	case errors.Is(err, josejwt.ErrInvalidAudience):
		f.refuse(w, r, http.StatusBadRequest, "This sign-in link was made for another site. Start again from the page you want to use.",
			signInLink(""), "handoff target not on this origin")
		return
	case issuer == "" || errors.Is(err, josejwt.ErrInvalidIssuer):
		f.refuse(w, r, http.StatusBadRequest, "This sign-in link was made by another site. Start again.",
			retry, "handoff issuer mismatch")
		return
	case err != nil:
		var exp time.Time
		if h.Expiry != nil {
			exp = h.Expiry.Time()
		}
		f.refuse(w, r, http.StatusBadRequest, "This sign-in link has expired: they work for 60 seconds. Start again.",
			retry, "handoff expired", zap.Time("handoff_expires_at", exp))
		return
	}
	if err := f.handoffs.Use(r.Context(), h.ID, h.Expiry.Time().Add(handoffSkew)); err != nil {
		if errors.Is(err, ErrHandoffUsed) {
			f.refuse(w, r, http.StatusBadRequest, "This sign-in link was already used. Start again.",
				retry, "handoff replayed", zap.String("handoff_id", h.ID))
			return
		}
		f.refuse(w, r, http.StatusServiceUnavailable,
			"This sign-in cannot be completed right now: it cannot be checked that the link was not used before. Try again in a minute.",
			retry, "handoff ledger unavailable", zap.Error(err))
		return
	}
	bound := false
	if sfx, ok := cookieSuffix(h.Binding); ok {
		name := f.bindCookieName(sfx)
		if c, err := r.Cookie(name); err == nil {
			want := f.keys.bindingCommitment(ro, c.Value)
			bound = hmac.Equal([]byte(want), []byte(h.Binding))
			http.SetCookie(w, f.shortCookie(name, "", -1)) // single use
		}
	}
	if !bound {
		// Already signed in here (another tab finished first): go on.
		if sess := f.pages.Session(r, now); sess != nil && sess.Source == identity.SourceCookie {
			redirect(w, r, target.String())
			return
		}
		f.refuse(w, r, http.StatusBadRequest,
			"This sign-in did not start in this browser, or took longer than 10 minutes. Start again from the page you want to use.",
			retry, "handoff not bound to this browser", zap.String("handoff_id", h.ID))
		return
	}
	f.issueRouteSession(w, r, sessionIdentity{Subject: h.Subject, Email: h.Email, Groups: h.Groups}, target)
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
func (f *Flow) issueRouteSession(w http.ResponseWriter, r *http.Request, who sessionIdentity, target *url.URL) {
	now := f.now()
	host := identity.HostWithoutPort(r.Host)
	c := &identity.Claims{Email: who.Email, User: who.Subject, Groups: who.Groups}
	jti, err := identity.NewTokenID()
	if err != nil {
		f.pages.InternalError(w, r, err)
		return
	}
	c.ID, c.SID = jti, jti
	issued := IssuedSignIn
	prev := f.continuedSession(r, who, now)
	if prev != nil {
		c.SID, issued = prev.Claims.SessionID(), IssuedRefresh
	}
	c.Issuer = f.issuer
	if c.Issuer == "" {
		c.Issuer = host
	}
	c.Subject = who.Subject
	c.Audience = jwt.ClaimStrings{host}
	c.IssuedAt = jwt.NewNumericDate(now)
	c.NotBefore = jwt.NewNumericDate(now)
	exp := now.Add(f.expire)
	c.ExpiresAt = jwt.NewNumericDate(exp)
	tok, err := identity.Mint(c, f.cfg.Secret)
	if err != nil {
		f.pages.InternalError(w, r, err)
		return
	}
	if len(tok) > MaxCookieValue {
		f.refuse(w, r, http.StatusBadRequest,
			"Your identity provider lists more groups than fit in a browser session. Ask your administrator to send fewer groups to this application.",
			"", "session too large", zap.Int("groups", len(who.Groups)))
		return
	}
	// The session must pass the checks Check applies, or the browser would
	// come straight back to sign in, forever.
	if _, err := f.cfg.Verifier.Verify(tok, r.Host, now); err != nil {
		why := identity.ReasonMalformed
		var te *identity.TokenError
		if errors.As(err, &te) {
			why = te.Reason
		}
		f.refuse(w, r, http.StatusInternalServerError,
			"Signed in, but this proxy refuses the session it made for you ("+why+"). This is a configuration problem (for example cookie_expire longer than max_service_account_lifetime): tell your administrator and quote the request id.",
			"", "minted session refused by the verifier", zap.Error(err))
		return
	}
	var ended *identity.Claims
	if prev != nil && prev.Claims.Impersonating() && !prev.Impersonation.Ended {
		// The refreshed session replaces an impersonating one, as in the
		// original: the impersonation ends here, with this token.
		ended = prev.Claims
	}
	f.pages.Issue(w, r, tok, c, issued, ended)
	redirect(w, r, target.String())
}

// continuedSession is the session that a new route session for who
// continues: the valid session cookie this browser holds on this host for
// the same subject (a refresh, or signing in again before it expired); nil
// when there is none, so that a new session starts.
func (f *Flow) continuedSession(r *http.Request, who sessionIdentity, now time.Time) *decision.Decision {
	prev := f.pages.Session(r, now)
	if prev == nil || prev.Source != identity.SourceCookie || who.Subject == "" || prev.Claims.Subject != who.Subject {
		return nil
	}
	return prev
}
