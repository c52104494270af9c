package signin

// This file keeps the authenticate session: the identity the provider
// verified, in a signed cookie on the authenticate host only.

import (
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode"

	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/idp"
)

// loadAuthSession returns the authenticate session of this host, when valid
// and not ended in the store.
func (f *Flow) loadAuthSession(r *http.Request, now time.Time) *authSession {
	c, err := r.Cookie(f.authCookieName())
	if err != nil {
		return nil
	}
	var as authSession
	if !verifySigned(f.keys.auth, purposeAuth+"\x00"+f.authCookieName(), c.Value, &as) {
		return nil
	}
	if as.Subject == "" || as.Host != identity.HostWithoutPort(r.Host) || now.Unix() >= as.Expires {
		return nil
	}
	// Signed out, or its user signed out everywhere, on any replica: a copy
	// of the cookie must not mint route sessions any more.
	if f.handoffs.AuthSessionEnded(as.Email, time.Unix(as.IssuedAt, 0)) {
		return nil
	}
	return &as
}

// refreshToken opens the sealed refresh token of as ("" when none).
func (f *Flow) refreshToken(as *authSession) string {
	if as.RefreshToken == "" {
		return ""
	}
	rt, ok := open(f.keys.refresh, purposeRefresh+as.Subject, as.RefreshToken)
	if !ok {
		return ""
	}
	return string(rt)
}

var errSessionTooLarge = errors.New("identity too large for a cookie")

// saveAuthSession sets the authenticate session for the identity the
// provider just verified. A refresh token that does not fit is dropped (the
// identity is then re-read through the browser).
func (f *Flow) saveAuthSession(w http.ResponseWriter, r *http.Request, id *idp.Identity, now time.Time) (*authSession, error) {
	as := &authSession{
		Host:      identity.HostWithoutPort(r.Host),
		Subject:   id.Subject,
		Email:     identity.NormalizeEmail(printable(id.Email)),
		Name:      printable(id.Name),
		Refreshed: now.Unix(),
		IssuedAt:  now.Unix(),
		Expires:   now.Add(f.expire).Unix(),
	}
	for _, g := range id.Groups {
		// Groups end up in headers upstream: nothing that is not text.
		if len(g) <= maxGroupLen && printable(g) == g {
			as.Groups = append(as.Groups, g)
		}
	}
	if id.RefreshToken != "" {
		sealed, err := seal(f.keys.refresh, purposeRefresh+as.Subject, []byte(id.RefreshToken))
		if err != nil {
			return nil, err
		}
		as.RefreshToken = sealed
	}
	c, err := f.authCookie(as)
	if err != nil {
		return nil, err
	}
	if !cookieFits(c) && as.RefreshToken != "" {
		f.log.Warn("the identity provider's refresh token does not fit in the session cookie; dropping it",
			zap.Int("refresh_token_bytes", len(id.RefreshToken)), zap.String("request_id", f.pages.RequestID(r)))
		as.RefreshToken = ""
		if c, err = f.authCookie(as); err != nil {
			return nil, err
		}
	}
	if !cookieFits(c) {
		return nil, errSessionTooLarge
	}
	http.SetCookie(w, c)
	return as, nil
}

func (f *Flow) authCookie(as *authSession) (*http.Cookie, error) {
	name := f.authCookieName()
	val, err := signValue(f.keys.auth, purposeAuth+"\x00"+name, as)
	if err != nil {
		return nil, err
	}
	// Host-only (never sent to a route host); Path=/ as __Host- requires,
	// and Check removes it before a request goes upstream.
	return &http.Cookie{Name: name, Value: val, Path: "/", Expires: time.Unix(as.Expires, 0),
		HttpOnly: true, Secure: f.cfg.CookieSecure, SameSite: http.SameSiteLaxMode}, nil
}

// AuthSessionEmail is the email of r's valid authenticate session on this
// host ("" when none, or when it holds no email): what signing out ends in
// the store.
func (f *Flow) AuthSessionEmail(r *http.Request) string {
	if as := f.loadAuthSession(r, f.now()); as != nil {
		return as.Email
	}
	return ""
}

// ClearAuthSession expires the authenticate session cookie.
func (f *Flow) ClearAuthSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: f.authCookieName(), Value: "", Path: "/", MaxAge: -1,
		Expires: time.Unix(0, 0), HttpOnly: true, Secure: f.cfg.CookieSecure, SameSite: http.SameSiteLaxMode})
}

func (f *Flow) sessionTooLarge(w http.ResponseWriter, r *http.Request, err error, retry string) {
	if errors.Is(err, errSessionTooLarge) {
		f.refuse(w, r, http.StatusBadRequest,
			"Your identity provider lists more groups than fit in a browser session. Ask your administrator to send fewer groups to this application.",
			"", "authenticate session too large")
		return
	}
	f.pages.InternalError(w, r, err)
}

// printable drops control and bidirectional-override characters.
func printable(s string) string {
	return strings.Map(func(c rune) rune {
		if unicode.IsControl(c) || IsBidiControl(c) {
			return -1
		}
		return c
	}, s)
}

// nonNilGroups logs no groups as [] rather than null.
func nonNilGroups(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
