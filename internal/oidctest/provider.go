// Package oidctest runs a real OpenID Connect provider in-process, on
// loopback, for tests: zitadel/oidc's op package (discovery, authorization
// with PKCE, token, refresh, userinfo, keys, end session) over an in-memory
// storage written here, with a login step that a test drives.
//
// The login step is /login?authRequestID=ID. It approves, or denies with
// access_denied, the user a test chose with AutoLogin/AutoDeny; without a
// choice it shows a small form listing the users, which a test (or a person)
// submits. Every visit to the login step is counted (Logins): a second
// sign-in that never reaches it is single sign-on.
//
// A user's email_verified is whatever a test needs, in the ID token and in
// userinfo separately (User.EmailVerified), so that relying parties can be
// tested against providers that send it as a boolean, as a string, or not at
// all.
package oidctest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// User is an account of the provider.
type User struct {
	ID     string // the subject (sub)
	Name   string // the username shown on the login form, and "name"
	Email  string
	Groups []string // the "groups" claim
	// EmailVerified is the email_verified claim sent with the email, in the
	// ID token and in userinfo, as it is: nil sends true (what most
	// providers do), Absent leaves the claim out, and anything else (false,
	// "true", "True", 1) is sent as given.
	EmailVerified any
	// UserinfoEmailVerified, when not nil, is userinfo's email_verified
	// instead of EmailVerified (Absent leaves it out of userinfo only).
	UserinfoEmailVerified any
}

// Absent, as a User's EmailVerified, leaves the claim out.
var Absent any = absent{}

type absent struct{}

// Options configure a Provider.
type Options struct {
	ClientID     string
	ClientSecret string
	// RedirectURIs are the client's registered redirect URIs, exactly.
	RedirectURIs []string
	Users        []User
	// Addr is where to listen; default 127.0.0.1:0.
	Addr string
	// Issuer is the provider's public URL, when clients reach it by another
	// name than Addr (a container behind a published port); default
	// http://Addr.
	Issuer string
}

// Provider is a running OpenID provider.
type Provider struct {
	// Issuer is the provider's URL, for idp_provider_url.
	Issuer string
	store  *storage
	op     *op.Provider
	srv    *http.Server
	lis    net.Listener

	logins    atomic.Int64
	refreshes atomic.Int64
	mu        sync.Mutex
	auto      string // username to approve at the login step
	deny      bool
}

// Start runs a provider until the test ends.
func Start(t testing.TB, o Options) *Provider {
	t.Helper()
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// New runs a provider; Close stops it.
func New(o Options) (*Provider, error) {
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		lis.Close()
		return nil, err
	}
	p := &Provider{Issuer: o.Issuer, lis: lis}
	if p.Issuer == "" {
		p.Issuer = "http://" + lis.Addr().String()
	}
	p.store = newStorage(o, key, &p.refreshes)
	cfg := &op.Config{
		CryptoKey:                sha256.Sum256([]byte(p.Issuer + o.ClientSecret)),
		DefaultLogoutRedirectURI: "/logged-out",
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		GrantTypeRefreshToken:    true,
	}
	p.op, err = op.NewProvider(cfg, p.store, op.StaticIssuer(p.Issuer), op.WithAllowInsecure())
	if err != nil {
		lis.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	interceptor := op.NewIssuerInterceptor(p.op.IssuerFromRequest)
	mux.Handle("/login", interceptor.HandlerFunc(p.login))
	mux.HandleFunc("/logged-out", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("signed out of the provider\n")) })
	mux.Handle("/", p.op)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(lis) }()
	return p, nil
}

// Addr is the address the provider listens on.
func (p *Provider) Addr() string { return p.lis.Addr().String() }

// Close stops the provider.
func (p *Provider) Close() { _ = p.srv.Close() }

// AutoLogin makes the login step approve username at once ("" shows the form).
func (p *Provider) AutoLogin(username string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.auto, p.deny = username, false
}

// AutoDeny makes the login step answer access_denied, as when a user
// declines consent.
func (p *Provider) AutoDeny() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.auto, p.deny = "", true
}

// Logins is how many times the login step was reached.
func (p *Provider) Logins() int { return int(p.logins.Load()) }

// Refreshes is how many refresh-token grants the provider answered.
func (p *Provider) Refreshes() int { return int(p.refreshes.Load()) }

// SetGroups changes a user's groups, as an administrator of the provider would.
func (p *Provider) SetGroups(username string, groups []string) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	for i := range p.store.users {
		if p.store.users[i].Name == username {
			p.store.users[i].Groups = slices.Clone(groups)
		}
	}
}

// AddUser creates an account, as anyone may at providers with open sign-up.
func (p *Provider) AddUser(u User) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.users = append(p.store.users, u)
}

// SetEmailVerified changes what the ID token and userinfo of a user say in
// email_verified (see User.EmailVerified), as when the address is changed
// at the provider and not verified yet.
func (p *Provider) SetEmailVerified(username string, v any) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	for i := range p.store.users {
		if p.store.users[i].Name == username {
			p.store.users[i].EmailVerified, p.store.users[i].UserinfoEmailVerified = v, nil
		}
	}
}

// RevokeRefreshTokens ends every refresh token, as a provider does when an
// administrator ends a user's sessions.
func (p *Provider) RevokeRefreshTokens() {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	clear(p.store.refresh)
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test provider: sign in</title></head>
<body><h1>Sign in</h1>
<form method="post" action="/login">
<input type="hidden" name="id" value="{{.ID}}">
{{range .Users}}<label><input type="radio" name="username" value="{{.Name}}"> {{.Name}} ({{.Email}})</label><br>{{end}}
<button type="submit" name="action" value="approve">Sign in</button>
<button type="submit" name="action" value="deny">Deny</button>
</form></body></html>`))

// login is the provider's login step.
func (p *Provider) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var id, username string
	deny := false
	switch r.Method {
	case http.MethodGet:
		p.logins.Add(1)
		id = r.Form.Get("authRequestID")
		p.mu.Lock()
		username, deny = p.auto, p.deny
		p.mu.Unlock()
		if username == "" && !deny {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			p.store.mu.Lock()
			users := slices.Clone(p.store.users)
			p.store.mu.Unlock()
			_ = loginPage.Execute(w, map[string]any{"ID": id, "Users": users})
			return
		}
	case http.MethodPost:
		id, username = r.Form.Get("id"), r.Form.Get("username")
		deny = r.Form.Get("action") == "deny"
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	req, err := p.store.AuthRequestByID(r.Context(), id)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if deny {
		op.AuthRequestError(w, r, req, oidc.ErrAccessDenied().WithDescription("The user declined."), p.op)
		return
	}
	if err := p.store.approve(id, username); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, op.AuthCallbackURL(p.op)(r.Context(), id), http.StatusFound)
}

// storage is the provider's in-memory state.
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

var _ op.Storage = (*storage)(nil)
var _ op.CanSetUserinfoFromRequest = (*storage)(nil)

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

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAMR() []string                      { return []string{"pwd"} }
func (a *authRequest) GetAudience() []string                 { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.userID }
func (a *authRequest) Done() bool                            { return a.done }

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

func (r *refreshRequest) GetAMR() []string            { return r.amr }
func (r *refreshRequest) GetAudience() []string       { return []string{r.clientID} }
func (r *refreshRequest) GetAuthTime() time.Time      { return r.authTime }
func (r *refreshRequest) GetClientID() string         { return r.clientID }
func (r *refreshRequest) GetScopes() []string         { return r.scopes }
func (r *refreshRequest) GetSubject() string          { return r.subject }
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

type signingKey struct {
	id  string
	key *ecdsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k *publicKey) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k *publicKey) Use() string                        { return "sig" }
func (k *publicKey) Key() any                           { return &k.key.PublicKey }

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

// client is the one registered relying party: a confidential web client.
type client struct {
	id, secret string
	redirects  []string
}

func (c *client) GetID() string                    { return c.id }
func (c *client) RedirectURIs() []string           { return c.redirects }
func (c *client) PostLogoutRedirectURIs() []string { return nil }
func (c *client) ApplicationType() op.ApplicationType {
	return op.ApplicationTypeWeb
}
func (c *client) AuthMethod() oidc.AuthMethod { return oidc.AuthMethodBasic }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}
func (c *client) LoginURL(id string) string            { return "/login?authRequestID=" + id }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration       { return time.Hour }
func (c *client) DevMode() bool                        { return false }
func (c *client) IsScopeAllowed(scope string) bool     { return scope == "groups" }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
