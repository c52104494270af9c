package identity

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenLength bounds what is parsed at all: real tokens are well under 4 KiB,
// and refusing larger ones early keeps hostile input from costing CPU.
const MaxTokenLength = 8 << 10

// MaxLeeway is the largest clock skew tolerated for exp, nbf and iat.
const MaxLeeway = 60 * time.Second

// TokenError says why a token was refused. Reason is safe to show to the
// client: it never contains the token or a key.
type TokenError struct {
	// Cause is the refusal as a stable word, for metrics and audit.
	Cause Cause
	// Reason is the refusal in words, for answers and pages.
	Reason string
	Err    error
}

func (e *TokenError) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *TokenError) Unwrap() error { return e.Err }

// Token refusal reasons, stable strings used in answers and metrics.
const (
	ReasonMalformed      = "malformed token"
	ReasonTooLarge       = "token too large"
	ReasonAlgorithm      = "unsupported token algorithm (only HS256 is accepted)"
	ReasonSignature      = "invalid token signature"
	ReasonExpired        = "token expired"
	ReasonNotYetValid    = "token not yet valid"
	ReasonIssuedInFuture = "token issued in the future"
	ReasonMissingExpiry  = "token has no expiry"
	ReasonAudience       = "token audience does not include this host"
	ReasonIssuer         = "token issuer is not accepted"
	ReasonRevoked        = "token revoked"
	ReasonLifetime       = "token lifetime exceeds the allowed maximum"
)

// Cause is why a token was refused, as a small number whose String is a
// short stable word: metrics labels and audit fields use it, never the
// Reason sentence.
type Cause uint8

// Causes of a token refusal, one per Reason*.
const (
	CauseMalformed Cause = iota + 1
	CauseTooLarge
	CauseAlgorithm
	CauseSignature
	CauseExpired
	CauseNotYetValid
	CauseIssuedInFuture
	CauseMissingExpiry
	CauseAudience
	CauseIssuer
	CauseRevoked
	CauseLifetime
	CauseCookiesDisagree
	CauseTooManyCookies
	causeEnd
)

var causeNames = [causeEnd]string{
	CauseMalformed:       "malformed",
	CauseTooLarge:        "too_large",
	CauseAlgorithm:       "algorithm",
	CauseSignature:       "signature",
	CauseExpired:         "expired",
	CauseNotYetValid:     "not_yet_valid",
	CauseIssuedInFuture:  "issued_in_future",
	CauseMissingExpiry:   "missing_expiry",
	CauseAudience:        "audience",
	CauseIssuer:          "issuer",
	CauseRevoked:         "revoked",
	CauseLifetime:        "lifetime",
	CauseCookiesDisagree: "cookies_disagree",
	CauseTooManyCookies:  "too_many_cookies",
}

// String is the cause as a short snake_case word; "" for no cause.
func (c Cause) String() string {
	if c < causeEnd {
		return causeNames[c]
	}
	return ""
}

// Causes lists every Cause, for callers that prepare one series per cause.
func Causes() []Cause {
	out := make([]Cause, 0, causeEnd-1)
	for c := CauseMalformed; c < causeEnd; c++ {
		out = append(out, c)
	}
	return out
}

// Verifier checks HS256 tokens against one or more shared secrets. It is
// immutable and safe for concurrent use.
type Verifier struct {
	keys        jwt.VerificationKeySet
	issuer      string
	leeway      time.Duration
	revoked     map[string]struct{}
	maxLifetime time.Duration
	parser      *jwt.Parser
	macs        []*macPool // one per key, for decodeFast
	cache       *tokenCache
}

// VerifierOptions configures a Verifier.
type VerifierOptions struct {
	// Secrets are shared secrets as written in the config (base64 text); the
	// first is current, the rest are accepted during a rotation.
	Secrets []string
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Leeway for time claims; capped at MaxLeeway.
	Leeway time.Duration
	// RevokedIDs are token ids refused however valid the token: a token is
	// refused when its jti or its sid is listed (contract section 8).
	RevokedIDs []string
	// MaxLifetime, when positive, refuses tokens whose exp - iat exceeds it.
	MaxLifetime time.Duration
	// CacheSize bounds the verified tokens remembered; 0 means DefaultCacheSize.
	CacheSize int
}

// DefaultCacheSize is how many verified tokens a Verifier remembers by default:
// about 5 MiB of claims. A miss costs one HS256 verification and a JSON
// decode (~10 µs), so the bound trades little CPU for a flat memory profile.
const DefaultCacheSize = 8192

// NewVerifier builds a Verifier. At least one secret is required.
func NewVerifier(o VerifierOptions) (*Verifier, error) {
	if len(o.Secrets) == 0 {
		return nil, errors.New("identity: no shared secret")
	}
	v := &Verifier{issuer: o.Issuer, leeway: o.Leeway, maxLifetime: o.MaxLifetime}
	// Time claims are checked by checkTime on every call, cached or not; the
	// parser only verifies the signature and decodes.
	v.parser = jwt.NewParser(jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding())
	size := o.CacheSize
	if size <= 0 {
		size = DefaultCacheSize
	}
	v.cache = newTokenCache(size)
	if v.leeway > MaxLeeway || v.leeway < 0 {
		v.leeway = MaxLeeway
	}
	for _, s := range o.Secrets {
		if s == "" {
			return nil, errors.New("identity: empty shared secret")
		}
		v.keys.Keys = append(v.keys.Keys, []byte(s))
		v.macs = append(v.macs, newMACPool([]byte(s)))
	}
	if len(o.RevokedIDs) > 0 {
		v.revoked = make(map[string]struct{}, len(o.RevokedIDs))
		for _, id := range o.RevokedIDs {
			v.revoked[id] = struct{}{}
		}
	}
	return v, nil
}

// Leeway is the clock skew this verifier tolerates.
func (v *Verifier) Leeway() time.Duration { return v.leeway }

// Verify parses token and checks its signature, time claims and issuer at now,
// and that host (port ignored) is among its audiences. The error is a
// *TokenError. The returned Claims are shared with later calls for the same
// token and must not be modified.
//
// Signature and claim decoding run once per distinct token: a verified token
// is remembered (bounded, keyed by a seeded 128-bit hash, confirmed by its
// signature) and later calls only re-check what depends on the request and
// the clock: time claims, audience.
func (v *Verifier) Verify(token, host string, now time.Time) (*Claims, error) {
	if len(token) > MaxTokenLength {
		return nil, &TokenError{Cause: CauseTooLarge, Reason: ReasonTooLarge}
	}
	claims, ok := v.cache.get(token)
	if !ok {
		var err error
		if claims, err = v.parse(token); err != nil {
			return nil, err
		}
		v.cache.put(token, claims)
	}
	if err := v.checkTime(claims, now); err != nil {
		return nil, err
	}
	if !audienceIncludes(claims.Audience, host) {
		return nil, errAudience
	}
	return claims, nil
}

// Refusals that carry no detail are allocated once.
var (
	errAudience      = &TokenError{Cause: CauseAudience, Reason: ReasonAudience}
	errExpired       = &TokenError{Cause: CauseExpired, Reason: ReasonExpired}
	errNotYetValid   = &TokenError{Cause: CauseNotYetValid, Reason: ReasonNotYetValid}
	errIssuedFuture  = &TokenError{Cause: CauseIssuedInFuture, Reason: ReasonIssuedInFuture}
	errMissingExpiry = &TokenError{Cause: CauseMissingExpiry, Reason: ReasonMissingExpiry}
)

// parse checks everything about a token that does not depend on the request
// or the clock: signature, algorithm, issuer, revocation, lifetime.
func (v *Verifier) parse(token string) (*Claims, error) {
	claims, ok := v.decodeFast(token)
	if !ok {
		var err error
		if claims, err = v.decodeJWT(token); err != nil {
			return nil, err
		}
	}
	// Checked here rather than with jwt.WithIssuer, which reports a missing iss
	// as the same "required claim missing" error as a missing exp.
	if v.issuer != "" && claims.Issuer != v.issuer {
		return nil, &TokenError{Cause: CauseIssuer, Reason: ReasonIssuer}
	}
	if claims.ExpiresAt == nil {
		return nil, errMissingExpiry
	}
	if v.isRevoked(claims.ID) || v.isRevoked(claims.SID) {
		return nil, &TokenError{Cause: CauseRevoked, Reason: ReasonRevoked}
	}
	if v.maxLifetime > 0 {
		if claims.IssuedAt == nil {
			return nil, &TokenError{Cause: CauseLifetime, Reason: ReasonLifetime, Err: errors.New("token has no iat")}
		}
		if claims.ExpiresAt.Sub(claims.IssuedAt.Time) > v.maxLifetime {
			return nil, &TokenError{Cause: CauseLifetime, Reason: ReasonLifetime}
		}
	}
	return claims, nil
}

// decodeJWT verifies token's signature and decodes its claims with
// golang-jwt: every token decodeFast does not take, and the one path that
// names a refusal.
func (v *Verifier) decodeJWT(token string) (*Claims, error) {
	claims := new(Claims)
	if _, err := v.parser.ParseWithClaims(token, claims, v.key); err != nil {
		return nil, classify(err)
	}
	return claims, nil
}

// isRevoked reports whether id is listed in revoked_token_ids. Revocation
// is checked once per distinct token, before it is cached: a reload that
// revokes more ids builds a new Verifier, with an empty cache.
func (v *Verifier) isRevoked(id string) bool {
	if id == "" {
		return false
	}
	_, ok := v.revoked[id]
	return ok
}

// checkTime applies exp, nbf and iat at now with the leeway, with the same
// edges as golang-jwt's validator.
func (v *Verifier) checkTime(c *Claims, now time.Time) error {
	if c.ExpiresAt == nil {
		return errMissingExpiry
	}
	if !now.Before(c.ExpiresAt.Add(v.leeway)) {
		return errExpired
	}
	if c.NotBefore != nil && now.Before(c.NotBefore.Add(-v.leeway)) {
		return errNotYetValid
	}
	if c.IssuedAt != nil && now.Before(c.IssuedAt.Add(-v.leeway)) {
		return errIssuedFuture
	}
	return nil
}

var errAlgorithm = errors.New("algorithm not accepted")

func (v *Verifier) key(t *jwt.Token) (any, error) {
	if _, ok := t.Method.(*jwt.SigningMethodHMAC); !ok || t.Method.Alg() != "HS256" {
		return nil, errAlgorithm
	}
	return v.keys, nil
}

func classify(err error) *TokenError {
	cause, reason := CauseMalformed, ReasonMalformed
	switch {
	case errors.Is(err, errAlgorithm):
		cause, reason = CauseAlgorithm, ReasonAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		cause, reason = CauseSignature, ReasonSignature
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		cause, reason = CauseMissingExpiry, ReasonMissingExpiry
	case errors.Is(err, jwt.ErrTokenExpired):
		cause, reason = CauseExpired, ReasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		cause, reason = CauseNotYetValid, ReasonNotYetValid
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		cause, reason = CauseIssuedInFuture, ReasonIssuedInFuture
	}
	return &TokenError{Cause: cause, Reason: reason, Err: err}
}

// audienceIncludes compares hosts case-insensitively with ports removed on both sides.
func audienceIncludes(aud jwt.ClaimStrings, host string) bool {
	host = HostWithoutPort(host)
	if host == "" {
		return false
	}
	for _, a := range aud {
		if strings.EqualFold(HostWithoutPort(a), host) {
			return true
		}
	}
	return false
}

// HostWithoutPort strips a port and IPv6 brackets from an authority, and
// lower-cases it.
func HostWithoutPort(authority string) string {
	h := authority
	// Without a colon there is no port: SplitHostPort would only allocate
	// the error saying so (two allocations on every Check).
	if strings.IndexByte(h, ':') >= 0 {
		if host, _, err := net.SplitHostPort(h); err == nil {
			return strings.ToLower(host)
		}
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	return strings.ToLower(h)
}

// Mint signs claims as an HS256 JWT with secret's text as the HMAC key, filling
// a random jti when none is set.
func Mint(claims *Claims, secret string) (string, error) {
	if secret == "" {
		return "", errors.New("identity: empty shared secret")
	}
	if claims.ID == "" {
		id, err := NewTokenID()
		if err != nil {
			return "", err
		}
		claims.ID = id
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	s, err := tok.SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("identity: signing token: %w", err)
	}
	return s, nil
}

// NewTokenID returns a random, URL-safe token identifier.
func NewTokenID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("identity: reading random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
