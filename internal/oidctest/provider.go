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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
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
