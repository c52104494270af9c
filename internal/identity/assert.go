package identity

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// AssertionLifetime is how long an upstream assertion stays valid. Upstreams
// verify it on arrival, so it only has to outlive the hop from Envoy to the
// app plus clock skew; short keeps a leaked header nearly worthless.
const AssertionLifetime = 5 * time.Minute

// Actor is the real administrator behind an impersonated request (RFC 8693 "act").
type Actor struct {
	Subject string `json:"sub,omitempty"`
	Email   string `json:"email,omitempty"`
}

// AssertionClaims is the payload of X-Pomerium-Jwt-Assertion.
type AssertionClaims struct {
	Issuer   string   `json:"iss"`
	Audience string   `json:"aud"`
	ID       string   `json:"jti"`
	IssuedAt int64    `json:"iat"`
	Expiry   int64    `json:"exp"`
	Subject  string   `json:"sub"`
	User     string   `json:"user"`
	Email    string   `json:"email"`
	Groups   []string `json:"groups"`
	Act      *Actor   `json:"act,omitempty"`
}

// GetExpirationTime and the other methods make AssertionClaims a jwt.Claims.
func (c *AssertionClaims) GetExpirationTime() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(c.Expiry, 0)), nil
}
func (c *AssertionClaims) GetIssuedAt() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(c.IssuedAt, 0)), nil
}
func (c *AssertionClaims) GetNotBefore() (*jwt.NumericDate, error) { return nil, nil }
func (c *AssertionClaims) GetIssuer() (string, error)              { return c.Issuer, nil }
func (c *AssertionClaims) GetSubject() (string, error)             { return c.Subject, nil }
func (c *AssertionClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{c.Audience}, nil
}

// Assertion describes who a request acts as, for signing.
type Assertion struct {
	Issuer   string
	Audience string // the request's host without port
	Identity Identity
	Actor    *Actor // set only when impersonating
	// NotAfter caps the assertion's expiry, normally at the session's own exp.
	NotAfter time.Time
}

// Sign renders a as an ES256 JWS with key's kid, issued at now.
func (k *SigningKey) Sign(a Assertion, now time.Time) (string, error) {
	exp := now.Add(AssertionLifetime)
	if !a.NotAfter.IsZero() && a.NotAfter.Before(exp) {
		exp = a.NotAfter
	}
	id, err := NewTokenID()
	if err != nil {
		return "", err
	}
	groups := a.Identity.Groups
	if groups == nil {
		groups = []string{}
	}
	claims := &AssertionClaims{
		Issuer:   a.Issuer,
		Audience: a.Audience,
		ID:       id,
		IssuedAt: now.Unix(),
		Expiry:   exp.Unix(),
		Subject:  a.Identity.Subject,
		User:     a.Identity.User,
		Email:    a.Identity.Email,
		Groups:   groups,
		Act:      a.Actor,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = k.ID
	s, err := tok.SignedString(k.Private)
	if err != nil {
		return "", fmt.Errorf("identity: signing assertion: %w", err)
	}
	return s, nil
}
