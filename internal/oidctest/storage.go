package oidctest

// This file is the provider's storage: zitadel/oidc's op.Storage over the
// test users, in memory.

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// storage is the provider's in-memory state.
var (
	_ op.Storage                   = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest = (*storage)(nil)
)

type storage struct {
	mu        sync.Mutex
	client    *client
	users     []User
	key       *ecdsa.PrivateKey
	keyID     string
	requests  map[string]*authRequest
	codes     map[string]string // code -> request id
	access    map[string]*accessToken
	refresh   map[string]*refreshToken
	refreshes *atomic.Int64
}

func newStorage(o Options, key *ecdsa.PrivateKey, refreshes *atomic.Int64) *storage {
	return &storage{
		client:    &client{id: o.ClientID, secret: o.ClientSecret, redirects: slices.Clone(o.RedirectURIs)},
		users:     slices.Clone(o.Users),
		key:       key,
		keyID:     "test-key-1",
		requests:  map[string]*authRequest{},
		codes:     map[string]string{},
		access:    map[string]*accessToken{},
		refresh:   map[string]*refreshToken{},
		refreshes: refreshes,
	}
}

func randomString() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *storage) user(id string) (User, bool) {
	for _, u := range s.users {
		if u.ID == id {
			return u, true
		}
	}
	return User{}, false
}

func (s *storage) approve(id, username string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	req, ok := s.requests[id]
	if !ok {
		return errors.New("no such auth request")
	}
	for _, u := range s.users {
		if u.Name == username {
			req.userID, req.done, req.authTime = u.ID, true, time.Now()
			return nil
		}
	}
	return fmt.Errorf("no user %q", username)
}

type authRequest struct {
	id, clientID, redirectURI, state, nonce string
	scopes                                  []string
	responseType                            oidc.ResponseType
	responseMode                            oidc.ResponseMode
	challenge                               *oidc.CodeChallenge
	userID                                  string
	done                                    bool
	authTime                                time.Time
}

func (a *authRequest) GetID() string { return a.id }

func (a *authRequest) GetACR() string { return "" }

func (a *authRequest) GetAMR() []string { return []string{"pwd"} }

func (a *authRequest) GetAudience() []string { return []string{a.clientID} }

func (a *authRequest) GetAuthTime() time.Time { return a.authTime }

func (a *authRequest) GetClientID() string { return a.clientID }

func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }

func (a *authRequest) GetNonce() string { return a.nonce }

func (a *authRequest) GetRedirectURI() string { return a.redirectURI }

func (a *authRequest) GetResponseType() oidc.ResponseType { return a.responseType }

func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.responseMode }

func (a *authRequest) GetScopes() []string { return a.scopes }

func (a *authRequest) GetState() string { return a.state }

func (a *authRequest) GetSubject() string { return a.userID }

func (a *authRequest) Done() bool { return a.done }

type accessToken struct {
	id, clientID, subject string
	scopes                []string
	expires               time.Time
}

type refreshToken struct {
	token, clientID, subject string
	scopes, amr              []string
	authTime                 time.Time
	expires                  time.Time
}

// refreshRequest is a refresh-token grant in progress.
type refreshRequest struct{ *refreshToken }

func (r *refreshRequest) GetAMR() []string { return r.amr }

func (r *refreshRequest) GetAudience() []string { return []string{r.clientID} }

func (r *refreshRequest) GetAuthTime() time.Time { return r.authTime }

func (r *refreshRequest) GetClientID() string { return r.clientID }

func (r *refreshRequest) GetScopes() []string { return r.scopes }

func (r *refreshRequest) GetSubject() string { return r.subject }

func (r *refreshRequest) SetCurrentScopes(s []string) { r.scopes = s }

func (s *storage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &authRequest{
		id: randomString(), clientID: req.ClientID, redirectURI: req.RedirectURI, state: req.State, nonce: req.Nonce,
		scopes: req.Scopes, responseType: req.ResponseType, responseMode: req.ResponseMode, userID: userID,
	}
	if req.CodeChallenge != "" {
		a.challenge = &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}
	}
	s.requests[a.id] = a
	return a, nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.requests[id]; ok {
		return a, nil
	}
	return nil, errors.New("auth request not found")
}

func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, errors.New("code invalid or expired")
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
	return nil
}

func (s *storage) newAccessToken(clientID, subject string, scopes []string) *accessToken {
	t := &accessToken{id: randomString(), clientID: clientID, subject: subject, scopes: scopes, expires: time.Now().Add(5 * time.Minute)}
	s.access[t.id] = t
	return t
}

func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	clientID := s.client.id
	if a, ok := req.(*authRequest); ok {
		clientID = a.clientID
	}
	t := s.newAccessToken(clientID, req.GetSubject(), req.GetScopes())
	return t.id, t.expires, nil
}

func (s *storage) CreateAccessAndRefreshTokens(_ context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := &refreshToken{token: randomString(), subject: req.GetSubject(), scopes: req.GetScopes(), expires: time.Now().Add(24 * time.Hour)}
	switch r := req.(type) {
	case *authRequest:
		rt.clientID, rt.amr, rt.authTime = r.clientID, r.GetAMR(), r.authTime
	case *refreshRequest:
		rt.clientID, rt.amr, rt.authTime = r.clientID, r.amr, r.authTime
	default:
		return "", "", time.Time{}, errors.New("unsupported token request")
	}
	if current != "" {
		if _, ok := s.refresh[current]; !ok {
			return "", "", time.Time{}, errors.New("invalid refresh token")
		}
		delete(s.refresh, current) // rotation: each refresh token is used once
	}
	s.refresh[rt.token] = rt
	at := s.newAccessToken(rt.clientID, rt.subject, rt.scopes)
	return at.id, rt.token, at.expires, nil
}

func (s *storage) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[token]
	if !ok || time.Now().After(rt.expires) {
		return nil, op.ErrInvalidRefreshToken
	}
	s.refreshes.Add(1)
	c := *rt
	return &refreshRequest{&c}, nil
}

func (s *storage) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, rt := range s.refresh {
		if rt.subject == userID && rt.clientID == clientID {
			delete(s.refresh, k)
		}
	}
	return nil
}

func (s *storage) RevokeToken(_ context.Context, token, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.access, token)
	if rt, ok := s.refresh[token]; ok && rt.clientID == clientID {
		delete(s.refresh, token)
	}
	return nil
}

func (s *storage) GetRefreshTokenInfo(_ context.Context, _ string, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt, ok := s.refresh[token]; ok {
		return rt.subject, rt.token, nil
	}
	return "", "", op.ErrInvalidRefreshToken
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) {
	return &signingKey{id: s.keyID, key: s.key}, nil
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.ES256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{&publicKey{signingKey{id: s.keyID, key: s.key}}}, nil
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if id != s.client.id {
		return nil, errors.New("client not found")
	}
	return s.client, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	if id != s.client.id || secret != s.client.secret {
		return errors.New("invalid client id or secret")
	}
	return nil
}

func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

func (s *storage) SetUserinfoFromRequest(_ context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	return s.setUserinfo(ui, req.GetSubject(), scopes, true)
}

func (s *storage) SetUserinfoFromToken(_ context.Context, ui *oidc.UserInfo, tokenID, subject, _ string) error {
	s.mu.Lock()
	t, ok := s.access[tokenID]
	s.mu.Unlock()
	if !ok || time.Now().After(t.expires) || t.subject != subject {
		return errors.New("access token invalid or expired")
	}
	return s.setUserinfo(ui, subject, t.scopes, false)
}

// setUserinfo fills the claims of a user, for the ID token or for the
// userinfo endpoint: sub always, email (with email_verified) and name by
// scope, and groups always (as many providers send them without a scope).
func (s *storage) setUserinfo(ui *oidc.UserInfo, subject string, scopes []string, idToken bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.user(subject)
	if !ok {
		return errors.New("user not found")
	}
	ui.Subject = u.ID
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeEmail:
			ui.Email = u.Email
			verified := u.EmailVerified
			if !idToken && u.UserinfoEmailVerified != nil {
				verified = u.UserinfoEmailVerified
			}
			switch verified {
			case nil:
				ui.AppendClaims("email_verified", true)
			case Absent:
			default:
				// UserInfo.EmailVerified would leave out false (omitempty)
				// and cannot say "true" as a string: send the claim raw.
				ui.AppendClaims("email_verified", verified)
			}
		case oidc.ScopeProfile:
			ui.Name, ui.PreferredUsername = u.Name, u.Name
		}
	}
	ui.AppendClaims("groups", slices.Clone(u.Groups))
	return nil
}

func (s *storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errors.New("introspection is not supported")
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("not supported")
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("not supported")
}

func (s *storage) Health(context.Context) error { return nil }
