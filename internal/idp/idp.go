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
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
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

// Kind classifies a failure so that the page can say what a person can do.
type Kind int

const (
	// Unreachable: the provider could not be reached, timed out, or answered
	// with a server error. Try again later.
	Unreachable Kind = iota + 1
	// Refused: the provider refused the code or the refresh token
	// (invalid_grant and friends). Sign in again.
	Refused
	// Invalid: the provider's answer did not verify (ID token signature,
	// issuer, audience, expiry, nonce) or lacked what is required.
	Invalid
	// Misconfigured: the provider refused our client (invalid_client,
	// unauthorized_client) or the discovery document is unusable.
	Misconfigured
	// Unverified: the provider did not confirm that the email address is
	// verified, and AllowUnverifiedEmail is off. Err is an
	// *UnverifiedEmailError. Verify the address at the provider.
	Unverified
)

// Error is a failure talking to the provider. Msg is safe to show; Err has
// the detail for the log.
type Error struct {
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of err, or 0 when it is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
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

// Config returns the configuration the client was built with.
func (c *Client) Config() Config { return c.cfg }

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

func classifyDiscovery(provider string, err error) error {
	var mismatch *oidc.IssuerMismatchError
	if errors.As(err, &mismatch) {
		return &Error{Kind: Misconfigured, Msg: "the identity provider's discovery document names another issuer than idp_provider_url", Err: err}
	}
	if strings.Contains(err.Error(), "failed to decode provider discovery object") {
		return &Error{Kind: Unreachable, Msg: "the identity provider's discovery document could not be read", Err: err}
	}
	return &Error{Kind: Unreachable, Msg: "the identity provider at " + provider + " could not be reached", Err: err}
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

// claims are the ID token and userinfo claims the sidecar reads.
type claims struct {
	Subject string `json:"sub"`
	Email   string `json:"email"`
	// EmailVerified is kept as sent: see emailVerified.
	EmailVerified json.RawMessage `json:"email_verified"`
	Name          string          `json:"name"`
	// Groups is the "groups" claim: an array of strings, or one string.
	Groups json.RawMessage `json:"groups"`
}

// identity reads the ID token's claims; what it lacks (email, name, groups,
// email_verified) is asked of the userinfo endpoint when the provider has
// one. The email address must be verified (see verification).
func (c *Client) identity(ctx context.Context, d *discovered, idt *oidc.IDToken, tok *oauth2.Token) (*Identity, error) {
	var cl claims
	if err := idt.Claims(&cl); err != nil {
		return nil, &Error{Kind: Invalid, Msg: "the ID token's claims could not be read", Err: err}
	}
	id, err := fromClaims(cl)
	if err != nil {
		return nil, err
	}
	if id.Subject == "" {
		return nil, &Error{Kind: Invalid, Msg: "the ID token has no subject (sub)"}
	}
	_, decided := emailVerified(cl.EmailVerified)
	// Without the ID token's word on the address, userinfo's is needed.
	mustAsk := !decided && !c.cfg.AllowUnverifiedEmail
	var answer *claims
	if (id.Email == "" || cl.Groups == nil || !decided) && d.provider.UserInfoEndpoint() != "" && tok.AccessToken != "" {
		ui, err := c.userinfo(ctx, d, tok)
		var uid *Identity
		if err == nil {
			uid, err = fromClaims(*ui)
		}
		if err != nil && mustAsk {
			return nil, err
		}
		// Otherwise userinfo only fills gaps: a failure leaves them.
		if err == nil && uid.Subject == id.Subject {
			answer = ui
			if id.Email == "" {
				id.Email = uid.Email
			}
			if id.Name == "" {
				id.Name = uid.Name
			}
			if cl.Groups == nil {
				id.Groups = uid.Groups
			}
		}
	}
	if err := c.requireVerified(id, verification(id, cl.EmailVerified, answer), idt.Issuer); err != nil {
		return nil, err
	}
	return id, nil
}

// userinfo asks the userinfo endpoint with the access token of tok.
func (c *Client) userinfo(ctx context.Context, d *discovered, tok *oauth2.Token) (*claims, error) {
	if d.provider.UserInfoEndpoint() == "" {
		return nil, &Error{Kind: Invalid, Msg: "the identity provider returned no ID token on refresh and has no userinfo endpoint"}
	}
	ui, err := d.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return nil, classifyToken(err, "the access token")
	}
	var cl claims
	if err := ui.Claims(&cl); err != nil {
		return nil, &Error{Kind: Invalid, Msg: "the userinfo answer could not be read", Err: err}
	}
	return &cl, nil
}

// emailVerified reads an email_verified claim as sent. Only the JSON boolean
// true and the string "true" (as AWS Cognito sends it) count as verified;
// everything else does not: false, "false", "True", "1", 1, "yes". Being
// lenient here would let a provider's odd spelling of "no" sign someone in.
// present is false when the claim is absent or null, so that another source
// (userinfo) may be asked.
func emailVerified(raw json.RawMessage) (verified, present bool) {
	if len(raw) == 0 {
		return false, false
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, true
	}
	switch v := v.(type) {
	case nil:
		return false, false
	case bool:
		return v, true
	case string:
		return v == "true", true
	default:
		return false, true
	}
}

// verified is the outcome of verification, with what the log needs.
type verified struct {
	ok bool
	// claim is email_verified as sent ("absent" when no source had it).
	claim string
	// source is where it was read: "ID token", "userinfo", or "" when none.
	source string
}

// verification decides whether id.Email is verified. The ID token's
// email_verified decides when present. Else userinfo's (ui; nil when not
// asked) decides, but only when userinfo speaks of the same subject and the
// same address: a verified address that is not the one signing in proves
// nothing. A source that lacks the claim leaves the address unverified.
func verification(id *Identity, token json.RawMessage, ui *claims) verified {
	if ok, present := emailVerified(token); present {
		return verified{ok: ok, claim: describeClaim(token), source: "ID token"}
	}
	if ui == nil {
		return verified{claim: "absent"}
	}
	ok, present := emailVerified(ui.EmailVerified)
	if !present {
		return verified{claim: "absent", source: "userinfo"}
	}
	if ui.Subject != id.Subject || !strings.EqualFold(strings.TrimSpace(ui.Email), id.Email) {
		return verified{claim: describeClaim(ui.EmailVerified) + " for another address", source: "userinfo"}
	}
	return verified{ok: ok, claim: describeClaim(ui.EmailVerified), source: "userinfo"}
}

// describeClaim renders a claim's JSON for the log, short.
func describeClaim(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// UnverifiedEmailError is the detail of an Unverified error, for the log:
// who signed in, at which provider, and what email_verified said. It holds
// no token.
type UnverifiedEmailError struct {
	Issuer  string
	Subject string
	Email   string
	// Claim is email_verified as sent (JSON), or "absent".
	Claim string
	// Source is where Claim was read: "ID token", "userinfo", or "".
	Source string
}

func (e *UnverifiedEmailError) Error() string {
	src := ""
	if e.Source != "" {
		src = " in the " + e.Source
	}
	return fmt.Sprintf("email_verified is %s%s, want true", e.Claim, src)
}

// requireVerified records v on id and refuses it, unless the configuration
// accepts unverified addresses.
func (c *Client) requireVerified(id *Identity, v verified, issuer string) error {
	id.EmailVerified = v.ok
	if v.ok || c.cfg.AllowUnverifiedEmail {
		return nil
	}
	return &Error{Kind: Unverified,
		Msg: "the identity provider did not confirm that the email address is verified",
		Err: &UnverifiedEmailError{Issuer: issuer, Subject: id.Subject, Email: id.Email, Claim: v.claim, Source: v.source}}
}

func fromClaims(cl claims) (*Identity, error) {
	id := &Identity{Subject: cl.Subject, Email: strings.TrimSpace(cl.Email), Name: strings.TrimSpace(cl.Name)}
	if len(cl.Groups) > 0 && string(cl.Groups) != "null" {
		var list []string
		if err := json.Unmarshal(cl.Groups, &list); err != nil {
			var one string
			if err := json.Unmarshal(cl.Groups, &one); err != nil {
				return nil, &Error{Kind: Invalid, Msg: "the groups claim is neither a list of strings nor a string", Err: err}
			}
			list = []string{one}
		}
		for _, g := range list {
			if g = strings.TrimSpace(g); g != "" && !slices.Contains(id.Groups, g) {
				id.Groups = append(id.Groups, g)
			}
		}
	}
	return id, nil
}

// classifyToken sorts a failed token-endpoint (or userinfo) call.
func classifyToken(err error, what string) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code := re.ErrorCode
		switch {
		case code == "invalid_client" || code == "unauthorized_client":
			return &Error{Kind: Misconfigured, Msg: "the identity provider refused this client (" + code + "): check idp_client_id and idp_client_secret", Err: err}
		case code != "":
			return &Error{Kind: Refused, Msg: "the identity provider refused " + what + " (" + code + ")", Err: err}
		case re.Response != nil && re.Response.StatusCode >= 500:
			return &Error{Kind: Unreachable, Msg: "the identity provider failed answering " + what, Err: err}
		case re.Response != nil && re.Response.StatusCode >= 400:
			return &Error{Kind: Refused, Msg: "the identity provider refused " + what, Err: err}
		}
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &Error{Kind: Unreachable, Msg: "the identity provider could not be reached", Err: err}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return &Error{Kind: Unreachable, Msg: "the identity provider could not be reached", Err: err}
	}
	return &Error{Kind: Unreachable, Msg: "the identity provider's answer about " + what + " could not be used", Err: err}
}

func classifyVerify(err error) error {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Kind: Unreachable, Msg: "the identity provider's signing keys could not be fetched", Err: err}
	}
	var exp *oidc.TokenExpiredError
	if errors.As(err, &exp) {
		return &Error{Kind: Invalid, Msg: "the ID token has expired (are the clocks in sync?)", Err: err}
	}
	return &Error{Kind: Invalid, Msg: "the ID token did not verify", Err: err}
}
