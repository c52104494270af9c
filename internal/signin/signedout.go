package signin

// This file is the signed-out page: what else can be signed out of.

import (
	"context"
	"net/http"
)

// SignedOut is what the signed-out page says.
type SignedOut struct {
	// Session is whose session this host still holds ("" when none).
	Session string
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
func (f *Flow) signedOut(w http.ResponseWriter, r *http.Request) {
	now := f.now()
	v := &SignedOut{SignIn: signInLink(PathDashboard)}
	if sess := f.pages.Session(r, now); sess != nil {
		v.Session = sess.Claims.Email
	}
	if f.OnSignInHost(r) {
		if as := f.loadAuthSession(r, now); as != nil {
			v.AuthEmail = as.Email
			if v.AuthEmail == "" {
				v.AuthEmail = as.Subject
			}
		} else {
			ctx, cancel := context.WithTimeout(r.Context(), oidcTimeout)
			v.EndSession = f.client.EndSessionURL(ctx)
			cancel()
		}
	} else {
		v.AuthHost = f.authURL.Host
		v.Everywhere = f.authURL.String() + PathSignIn + "?" + SignedOutParam + "=1"
	}
	f.pages.SignedOut(w, r, v)
}
