// Package idp is the sidecar's OpenID Connect relying party: discovery of the
// identity provider at idp_provider_url (lazily, cached, with a timeout), the
// authorization-code flow with PKCE (S256) and a nonce, verification of the
// ID token, the refresh-token grant, and the provider's end-session endpoint.
// It refuses an identity whose email address the provider does not confirm
// as verified (see Config.AllowUnverifiedEmail): administrators and policies
// are keyed on the address, so an unverified one could be anyone's.
//
// It does no HTTP serving and keeps no per-user state: internal/web owns the
// handlers, the cookies and the sessions, and calls this package for the
// conversations with the provider.
package idp

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Timeouts of the conversations with the provider. Envoy gives a page 15 s.
const (
	// RequestTimeout bounds one call to the provider (discovery, token, keys).
	RequestTimeout = 10 * time.Second
	// discoveryTTL is how long a discovery document is used before it is
	// fetched again; signing keys are re-fetched by go-oidc on an unknown kid.
	discoveryTTL = time.Hour
	// failureBackoff is how long a failed discovery is answered from memory,
	// so an outage of the provider is not multiplied by every sign-in attempt.
	failureBackoff = 5 * time.Second
)

// DefaultScopes are requested when idp_scopes is empty, as Pomerium does for
// a generic OpenID Connect provider.
var DefaultScopes = []string{oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess}

// Config is the identity provider as configured.
type Config struct {
	ProviderURL  string
	ClientID     string
	ClientSecret string
	Scopes       []string
	// AllowUnverifiedEmail (idp_allow_unverified_email) accepts identities
	// whose email_verified is absent or not true. The zero value refuses
	// them: for providers that never send the claim (Entra ID) only.
	AllowUnverifiedEmail bool
}

// Identity is who the provider says signed in.
type Identity struct {
	Subject string
	Email   string
	Name    string
	Groups  []string
	// EmailVerified is whether the provider confirmed Email as verified
	// (see emailVerified for the spellings that count).
	EmailVerified bool
	// RefreshToken is empty when the provider did not grant one.
	RefreshToken string
}

// Client talks to one configured provider. It is safe for concurrent use.
type Client struct {
	cfg    Config
	scopes []string
	http   *http.Client

	mu      sync.Mutex
	disc    *discovered
	lastErr error
	errAt   time.Time
}

type discovered struct {
	provider   *oidc.Provider
	verifier   *oidc.IDTokenVerifier
	oauth      oauth2.Config // without RedirectURL, set per flow
	endSession string
	at         time.Time
}

// New returns a client for cfg. hc is the HTTP client for the provider; nil
// means one with RequestTimeout. Nothing is fetched until first use.
func New(cfg Config, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: RequestTimeout}
	}
	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = DefaultScopes
	}
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		scopes = append([]string{oidc.ScopeOpenID}, scopes...)
	}
	return &Client{cfg: cfg, scopes: slices.Clone(scopes), http: hc}
}

// Same reports whether cfg would build an identical client, so that a config
// reload keeps the discovery cache when the provider did not change.
func (c *Client) Same(cfg Config) bool {
	return c.cfg.ProviderURL == cfg.ProviderURL && c.cfg.ClientID == cfg.ClientID &&
		c.cfg.ClientSecret == cfg.ClientSecret && slices.Equal(c.cfg.Scopes, cfg.Scopes) &&
		c.cfg.AllowUnverifiedEmail == cfg.AllowUnverifiedEmail
}

func (c *Client) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(parent, RequestTimeout)
	return oidc.ClientContext(ctx, c.http), cancel
}

// discover returns the provider's metadata, fetching it when absent or old.
// Concurrent callers wait for one fetch.
func (c *Client) discover(parent context.Context) (*discovered, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.disc != nil && now.Sub(c.disc.at) < discoveryTTL {
		return c.disc, nil
	}
	if c.lastErr != nil && now.Sub(c.errAt) < failureBackoff {
		if c.disc != nil {
			return c.disc, nil // keep using the last good document
		}
		return nil, c.lastErr
	}
	ctx, cancel := c.ctx(parent)
	defer cancel()
	p, err := oidc.NewProvider(ctx, c.cfg.ProviderURL)
	if err != nil {
		c.lastErr, c.errAt = classifyDiscovery(c.cfg.ProviderURL, err), now
		if c.disc != nil {
			return c.disc, nil
		}
		return nil, c.lastErr
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	_ = p.Claims(&meta)
	d := &discovered{
		provider: p,
		verifier: p.Verifier(&oidc.Config{ClientID: c.cfg.ClientID}),
		oauth: oauth2.Config{
			ClientID:     c.cfg.ClientID,
			ClientSecret: c.cfg.ClientSecret,
			Endpoint:     p.Endpoint(),
			Scopes:       c.scopes,
		},
		at: now,
	}
	if u, err := url.Parse(meta.EndSession); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		d.endSession = meta.EndSession
	}
	c.disc, c.lastErr = d, nil
	return d, nil
}

// Flow is what binds one authorization-code flow: the state, the nonce and
// the PKCE verifier. The caller keeps it (signed, in a cookie) until the
// callback.
type Flow struct {
	State    string
	Nonce    string
	Verifier string
}

// NewFlow returns fresh random state, nonce and PKCE verifier.
func NewFlow() Flow {
	return Flow{State: oauth2.GenerateVerifier(), Nonce: oauth2.GenerateVerifier(), Verifier: oauth2.GenerateVerifier()}
}

// AuthCodeURL returns where to send the browser to sign in: the provider's
// authorization endpoint with the flow's state, nonce and S256 challenge.
func (c *Client) AuthCodeURL(ctx context.Context, redirectURI string, f Flow) (string, error) {
	d, err := c.discover(ctx)
	if err != nil {
		return "", err
	}
	cfg := d.oauth
	cfg.RedirectURL = redirectURI
	return cfg.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier)), nil
}

// Exchange redeems code with the PKCE verifier, verifies the ID token
// (signature, issuer, audience, expiry) and its nonce, and returns the
// identity: an Unverified error when its email address is not verified.
func (c *Client) Exchange(ctx context.Context, redirectURI, code string, f Flow) (*Identity, error) {
	d, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	cfg := d.oauth
	cfg.RedirectURL = redirectURI
	tctx, cancel := c.ctx(ctx)
	defer cancel()
	tok, err := cfg.Exchange(tctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return nil, classifyToken(err, "the sign-in code")
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, &Error{Kind: Invalid, Msg: "the identity provider did not return an ID token (is the openid scope allowed?)"}
	}
	idt, err := d.verifier.Verify(tctx, raw)
	if err != nil {
		return nil, classifyVerify(err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		return nil, &Error{Kind: Invalid, Msg: "the ID token's nonce does not match this sign-in", Err: errors.New("nonce mismatch")}
	}
	id, err := c.identity(tctx, d, idt, tok)
	if err != nil {
		return nil, err
	}
	id.RefreshToken = tok.RefreshToken
	return id, nil
}

// Refresh uses a refresh token to read the identity again: from the new ID
// token when the provider returns one, else from the userinfo endpoint. The
// subject must not change, and the email address must still be verified
// (an Unverified error otherwise). The returned RefreshToken is the provider's new
// one when it rotated it, else refreshToken.
func (c *Client) Refresh(ctx context.Context, refreshToken, subject string) (*Identity, error) {
	d, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	tctx, cancel := c.ctx(ctx)
	defer cancel()
	// An expired access token makes the token source use the refresh token.
	ts := d.oauth.TokenSource(tctx, &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)})
	tok, err := ts.Token()
	if err != nil {
		return nil, classifyToken(err, "the refresh token")
	}
	var id *Identity
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		idt, err := d.verifier.Verify(tctx, raw)
		if err != nil {
			return nil, classifyVerify(err)
		}
		if id, err = c.identity(tctx, d, idt, tok); err != nil {
			return nil, err
		}
	} else {
		ui, err := c.userinfo(tctx, d, tok)
		if err != nil {
			return nil, err
		}
		if id, err = fromClaims(*ui); err != nil {
			return nil, err
		}
		v := verification(id, nil, ui)
		if err := c.requireVerified(id, v, c.cfg.ProviderURL); err != nil {
			return nil, err
		}
	}
	if id.Subject != subject {
		return nil, &Error{Kind: Invalid, Msg: "the identity provider answered the refresh for another subject", Err: fmt.Errorf("subject %q, want %q", id.Subject, subject)}
	}
	id.RefreshToken = tok.RefreshToken
	if id.RefreshToken == "" {
		id.RefreshToken = refreshToken
	}
	return id, nil
}

// EndSessionURL is the provider's end_session_endpoint with this client's
// client_id, or "" when discovery lists none (or the provider cannot be
// reached now).
func (c *Client) EndSessionURL(ctx context.Context) string {
	d, err := c.discover(ctx)
	if err != nil || d.endSession == "" {
		return ""
	}
	u, err := url.Parse(d.endSession)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("client_id", c.cfg.ClientID)
	u.RawQuery = q.Encode()
	return u.String()
}
