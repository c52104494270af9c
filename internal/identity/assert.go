package identity

import (
	"errors"
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
	// NotAfter caps the assertion's expiry: the token's exp plus the leeway
	// it was accepted with, and impersonate_exp while impersonating.
	NotAfter time.Time
}

// ErrAssertionExpired is returned when an assertion would be born expired:
// NotAfter is not after the signing time. Check never allows on it.
var ErrAssertionExpired = errors.New("identity: the assertion would expire before it is issued")

// Expiry is the exp of an assertion a issued at now (contract section 8):
// min(iat + AssertionLifetime, NotAfter), in whole seconds as JWT carries
// them, and always after iat. When NotAfter falls within iat's second the
// exp is iat + 1 s, the smallest a JWT can say; when NotAfter is not after
// now at all, the assertion is refused with ErrAssertionExpired.
func (a Assertion) Expiry(now time.Time) (time.Time, error) {
	exp := now.Add(AssertionLifetime)
	if !a.NotAfter.IsZero() {
		if !a.NotAfter.After(now) {
			return time.Time{}, ErrAssertionExpired
		}
		if a.NotAfter.Before(exp) {
			exp = a.NotAfter
		}
	}
	iat, sec := now.Unix(), exp.Unix()
	if sec <= iat {
		sec = iat + 1
	}
	return time.Unix(sec, 0), nil
}

// Sign renders a as an ES256 JWS with key's kid, issued at now, expiring at
// a.Expiry(now).
func (k *SigningKey) Sign(a Assertion, now time.Time) (string, error) {
	exp, err := a.Expiry(now)
	if err != nil {
		return "", err
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
