// Package identity reads, verifies and mints Pomerium session and service-account
// tokens, and signs the ES256 assertions that carry an identity upstream.
//
// Tokens are HS256 JWTs keyed with the shared secret's text as written (not its
// decoded bytes), exactly as the original pomerium-cli minted them, so tokens from
// that tool verify here.
package identity

import (
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Impersonation access levels (contract section 7).
const (
	AccessReadOnly  = "read_only"
	AccessReadWrite = "read_write"
)

// Claims is the payload of a session or service-account token.
// Empty optional claims are omitted when minted.
type Claims struct {
	jwt.RegisteredClaims

	// SID is the session id (contract section 8): the jti of the first
	// session cookie a route host issued, kept by every re-issue (start or
	// stop impersonating, refresh), so that revoking it ends every token
	// descended from that sign-in, whatever its own jti. Read it with
	// SessionID, which falls back to the jti.
	SID string `json:"sid,omitempty"`

	Email  string   `json:"email,omitempty"`
	User   string   `json:"user,omitempty"`
	Groups []string `json:"groups,omitempty"`

	ImpersonateEmail  string           `json:"impersonate_email,omitempty"`
	ImpersonateGroups []string         `json:"impersonate_groups,omitempty"`
	ImpersonateAccess string           `json:"impersonate_access,omitempty"`
	ImpersonateExp    *jwt.NumericDate `json:"impersonate_exp,omitempty"`
	ImpersonateReason string           `json:"impersonate_reason,omitempty"`
}

// Impersonating reports whether the token asks to act as someone else.
func (c *Claims) Impersonating() bool {
	return c.ImpersonateEmail != "" || len(c.ImpersonateGroups) > 0
}

// SessionID is the id revoked_token_ids matches to end this token's whole
// session: its sid, else its jti (a token minted without sid, such as a
// service-account token, is a session of its own). A token with neither, as
// the original pomerium-cli minted them, has no session id: it can only be
// revoked by user or by rotating the shared secret.
func (c *Claims) SessionID() string {
	if c.SID != "" {
		return c.SID
	}
	return c.ID
}

// Holder is the identity of whoever holds the token, ignoring any impersonation.
func (c *Claims) Holder() Identity {
	return Identity{Subject: c.Subject, User: c.User, Email: c.Email, Groups: c.Groups}
}

// Identity is who a request acts as: the subject policy is evaluated against and
// the one described upstream.
type Identity struct {
	Subject string
	User    string
	Email   string
	Groups  []string
}

// NormalizeEmail returns the form in which emails are compared everywhere:
// trimmed and lower-cased, so that "Alice@Corp" can neither slip past a
// protected-target check nor miss an allow rule written as "alice@corp".
func NormalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// EmailDomain returns the lower-cased part after the last "@", or "" if there is none.
func EmailDomain(email string) string {
	i := strings.LastIndexByte(email, '@')
	if i < 0 || i == len(email)-1 {
		return ""
	}
	return strings.ToLower(email[i+1:])
}

// SplitList splits a comma list, trimming entries and dropping empty ones.
func SplitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}
