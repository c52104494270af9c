package web

// This file is what the pages write to the store replicas share: signing
// out (POST /.pomerium/sign_out) and "sign this user out everywhere"
// (POST /.pomerium/revoke). Both must reach every replica, so when the store
// cannot record them the page says so instead of pretending.

import (
	"context"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/audit"
	"github.com/extauthz/extauthz/internal/signin"
	"github.com/extauthz/extauthz/internal/store"
)

// pathRevoke is "sign this user out everywhere".
const pathRevoke = "/.pomerium/revoke"

// Store is what the pages need of the store replicas share
// (internal/store.Store): sign-in's handoff ledger and ended sessions, and
// the revocations the pages make.
type Store interface {
	signin.Store
	// RevokeSID ends a session on every replica (sign-out).
	RevokeSID(ctx context.Context, sid string) error
	// RevokeUser ends every session of a user issued up to now.
	RevokeUser(ctx context.Context, email string) error
	// EndAuthSessions ends a user's authenticate sessions issued up to now.
	EndAuthSessions(ctx context.Context, email string) error
}

// storeTimeout bounds a page's write to the store: a person is waiting.
const storeTimeout = 3 * time.Second

// newMemoryStore is the store of a single replica, the default.
func newMemoryStore(now func() time.Time) *store.Store {
	return store.New(store.NewMemory(now), store.Options{Now: now})
}

// SetStore replaces the store (by default one in memory, for one replica);
// serve passes the configured one. Call it before serving.
func (s *Server) SetStore(st Store) {
	if s.own != nil {
		_ = s.own.Close()
		s.own = nil
	}
	s.store = st
	s.Swap(s.Settings()) // sign-in keeps the store it was built with
}

// msgStoreDownSignOut is the sign-out page when the store cannot record it.
const msgStoreDownSignOut = "You are not signed out yet: the sign-out could not be recorded, so copies of your session cookie stay valid until it can. Try again in a minute."

// signOut is POST /.pomerium/sign_out: end this browser's session on every
// replica (its session id is revoked, so a copied cookie stops working too),
// and, on the host where the identity-provider session lives, end that
// session as well, then clear the cookies. When the store cannot record it,
// nothing is cleared and the answer is 503: the person can try again with
// the same cookie, and is not told they are signed out when copies work.
func (s *Server) signOut(st *state, w http.ResponseWriter, r *http.Request) {
	now := s.now()
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	sess, _ := st.loadSession(r, now)
	if sess != nil && sess.fromCookie() {
		if sid := sess.Claims.SessionID(); sid != "" {
			if err := s.store.RevokeSID(ctx, sid); err != nil {
				s.storeDown(w, r, "sign-out not recorded", err)
				return
			}
			s.audit.SignedOut(sess.Claims, auditRequest(r))
		}
	}
	onAuthHost := st.oidc != nil && st.oidc.OnSignInHost(r)
	if onAuthHost {
		if email := st.oidc.AuthSessionEmail(r); email != "" {
			if err := s.store.EndAuthSessions(ctx, email); err != nil {
				s.storeDown(w, r, "sign-out of the authenticate session not recorded", err)
				return
			}
		}
	}
	st.clearSession(w)
	if onAuthHost {
		st.oidc.ClearAuthSession(w)
	}
	http.Redirect(w, r, pathSignIn+"?"+signedOutParam+"=1", http.StatusSeeOther)
}

// storeDown answers 503 for a sign-out the store could not record.
func (s *Server) storeDown(w http.ResponseWriter, r *http.Request, why string, err error) {
	s.log.Error("the store is unavailable", zap.String("reason", why), zap.String("path", r.URL.Path),
		zap.String("request_id", requestID(r)), zap.Error(err))
	w.Header().Set("Retry-After", "60")
	s.fail(w, r, http.StatusServiceUnavailable, msgStoreDownSignOut, pathDashboard)
}

// revoke is POST /.pomerium/revoke: an administrator signs a user out
// everywhere. Every token of that user issued up to now is refused by every
// replica, and their authenticate sessions mint no new route session. The
// administrator is checked from the verified session, never from the page.
func (s *Server) revoke(st *state, w http.ResponseWriter, r *http.Request, sess *session, now time.Time) {
	c := sess.Claims
	raw := clip(strings.TrimSpace(first(r.PostForm, "email")), maxEmailLen)
	sticky := func(v *dashboardView) { v.RevokeForm = formValues{Email: raw} }
	if !st.set.Engine.Rules.IsAdministrator(c.Email) || sess.Impersonation.Impersonating {
		s.audit.UserRevoked(audit.UserSignOutRefused, c, raw, auditRequest(r), audit.Refusal("not an administrator acting as themselves"))
		s.refuse(st, w, r, sess, now, http.StatusForbidden, "Only administrators, acting as themselves, can sign a user out everywhere.", nil)
		return
	}
	f, err := field(r.PostForm, "email")
	if err != nil {
		s.refuse(st, w, r, sess, now, http.StatusBadRequest, err.Error(), sticky)
		return
	}
	email, err := parseEmail(f)
	if err == nil && email == "" {
		err = formErrorf("Enter the email of the user to sign out everywhere.")
	}
	if err != nil {
		s.refuse(st, w, r, sess, now, http.StatusBadRequest, err.Error(), sticky)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	if err := s.store.RevokeUser(ctx, email); err != nil {
		s.audit.UserRevoked(audit.UserSignOutRefused, c, email, auditRequest(r), audit.Refusal("store unavailable"))
		s.log.Error("the store is unavailable", zap.String("reason", "sign out everywhere not recorded"),
			zap.String("request_id", requestID(r)), zap.Error(err))
		w.Header().Set("Retry-After", "60")
		s.refuse(st, w, r, sess, now, http.StatusServiceUnavailable,
			email+" is not signed out: the store replicas share cannot record it right now, so their sessions stay valid. Try again in a minute.", sticky)
		return
	}
	s.audit.UserRevoked(audit.UserSignedOut, c, email, auditRequest(r))
	v := s.dashboardView(st, r, sess, now)
	v.Notice = email + " is signed out everywhere: every session issued to them until now is refused, and they must sign in again."
	s.showDashboard(w, r, http.StatusOK, v)
}
