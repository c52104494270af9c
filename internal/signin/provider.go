package signin

// This file handles the provider's answer on the authenticate host, and
// words every way a conversation with the provider can fail.

import (
	"context"
	"crypto/hmac"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/idp"
)

// providerFailed answers a failed conversation with the identity provider.
func (f *Flow) providerFailed(w http.ResponseWriter, r *http.Request, err error, retry string) {
	var e *idp.Error
	if !errors.As(err, &e) {
		e = &idp.Error{Kind: idp.Unreachable, Msg: "the identity provider could not be used", Err: err}
	}
	detail := zap.Error(err)
	switch e.Kind {
	case idp.Refused:
		f.refuse(w, r, http.StatusBadRequest,
			"The identity provider refused this sign-in: "+e.Msg+". The link may have expired or been used already. Start again.",
			retry, "provider refused", detail)
	case idp.Invalid:
		f.refuse(w, r, http.StatusBadRequest,
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
		f.refuse(w, r, http.StatusForbidden,
			"Your identity provider did not confirm that your email address is verified, so it cannot be used to sign in here: an unverified address could be anyone's. "+
				"Verify the address with your identity provider, then try again. If your provider never confirms addresses (Microsoft Entra ID does not send email_verified), "+
				"your administrator can turn this check off with idp_allow_unverified_email: true (quote the request id when you ask).",
			retry, "email not verified", fields...)
	case idp.Misconfigured:
		f.refuse(w, r, http.StatusBadGateway,
			"Sign-in is misconfigured: "+e.Msg+". Tell your administrator and quote the request id.",
			retry, "provider misconfigured", detail)
	default:
		f.refuse(w, r, http.StatusBadGateway,
			"The identity provider could not be reached, so you cannot sign in right now ("+e.Msg+"). Try again in a minute; if it keeps failing, tell your administrator and quote the request id.",
			retry, "provider unreachable", detail)
	}
}

// Callback is GET /.pomerium/callback: the provider's answer (on the
// authenticate host), or a handoff (on a route host).
func (f *Flow) Callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Has(handoffParam) {
		f.acceptHandoff(w, r, q.Get(handoffParam))
		return
	}
	f.providerAnswer(w, r, q)
}

var errorCodeRE = regexp.MustCompile(`^[a-z_]{1,64}$`)

// providerAnswer handles the provider's redirect back: ?code=&state= or
// ?error=&state=.
func (f *Flow) providerAnswer(w http.ResponseWriter, r *http.Request, q url.Values) {
	now := f.now()
	fc, ok := f.takeFlow(w, r, q.Get("state"), now)
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
			f.refuse(w, r, http.StatusForbidden,
				"Sign-in was cancelled ("+code+"): consent was declined, or the identity provider does not let you use this application. If that was a mistake, try again; otherwise ask your administrator for access.",
				retry, "provider denied the sign-in", fields...)
		case "temporarily_unavailable", "server_error":
			f.refuse(w, r, http.StatusBadGateway,
				"The identity provider could not complete the sign-in ("+code+"). Try again in a minute.",
				retry, "provider failed the sign-in", fields...)
		default:
			f.refuse(w, r, http.StatusBadRequest,
				"The identity provider refused the sign-in request ("+code+"). Tell your administrator and quote the request id.",
				retry, "provider refused the sign-in request", fields...)
		}
		return
	}
	if !ok {
		f.refuse(w, r, http.StatusBadRequest,
			"This sign-in answer does not match a sign-in started in this browser in the last 10 minutes (state mismatch): it may have been opened in another browser, taken too long, or been used already. Start again.",
			retry, "state mismatch or expired flow")
		return
	}
	code := q.Get("code")
	if code == "" || len(code) > 4096 {
		f.refuse(w, r, http.StatusBadRequest, "The identity provider's answer has no sign-in code. Start again.", retry, "no code")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), oidcTimeout)
	id, err := f.client.Exchange(ctx, fc.Callback, code, idp.Flow{State: fc.State, Nonce: fc.Nonce, Verifier: fc.Verifier})
	cancel()
	if err != nil {
		f.providerFailed(w, r, err, retry)
		return
	}
	target, ok := f.guard.Target(fc.Target, r)
	if !ok {
		f.refuse(w, r, http.StatusBadRequest, "The page to return to is no longer allowed. Sign in from the page you want to use.", signInLink(""), "target no longer allowed")
		return
	}
	as, err := f.saveAuthSession(w, r, id, now)
	if err != nil {
		f.sessionTooLarge(w, r, err, retry)
		return
	}
	f.log.Info("signed in at the identity provider", zap.String("email", as.Email), zap.String("subject", as.Subject),
		zap.Strings("groups", nonNilGroups(as.Groups)), zap.Bool("refresh_token", as.RefreshToken != ""), zap.String("request_id", f.pages.RequestID(r)))
	f.finish(w, r, as, target, fc.Binding)
}

// takeFlow reads and clears the flow cookie named by state; false when it is
// missing, forged, expired or for another state.
func (f *Flow) takeFlow(w http.ResponseWriter, r *http.Request, state string, now time.Time) (*flowCookie, bool) {
	sfx, ok := cookieSuffix(state)
	if !ok {
		return nil, false
	}
	name := f.flowCookieName(sfx)
	c, err := r.Cookie(name)
	if err != nil {
		return nil, false
	}
	http.SetCookie(w, f.shortCookie(name, "", -1)) // single use
	var fc flowCookie
	if !verifySigned(f.keys.flow, purposeFlow+"\x00"+name, c.Value, &fc) {
		return nil, false
	}
	if !hmac.Equal([]byte(fc.State), []byte(state)) || now.Unix() >= fc.Expires {
		return nil, false
	}
	return &fc, true
}
