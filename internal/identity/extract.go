package identity

import (
	"errors"
	"slices"
	"strings"
	"time"
)

// Source says where a token was found.
type Source int

// Token carriers, in the order they are consulted (contract section 4).
const (
	SourceNone Source = iota
	SourceAuthorization
	SourceBearer
	SourcePomeriumAuthorization
	SourceCookie
)

func (s Source) String() string {
	switch s {
	case SourceAuthorization:
		return "authorization"
	case SourceBearer:
		return "bearer"
	case SourcePomeriumAuthorization:
		return "x-pomerium-authorization"
	case SourceCookie:
		return "cookie"
	}
	return "none"
}

// Header names of the token carriers, lower-case as Envoy sends them.
const (
	HeaderAuthorization         = "authorization"
	HeaderPomeriumAuthorization = "x-pomerium-authorization"
	HeaderCookie                = "cookie"
)

// ExtractToken finds the Pomerium token among request headers. header returns
// the value of a lower-case header name. It returns SourceNone when no carrier
// holds a token. An Authorization header with another scheme (Basic, a plain
// Bearer token for the app) is not ours and is left alone.
func ExtractToken(header func(string) string, cookieName string) (string, Source) {
	if auth := header(HeaderAuthorization); auth != "" {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(auth), " ")
		rest = strings.TrimSpace(rest)
		switch {
		case strings.EqualFold(scheme, "Pomerium") && rest != "":
			return rest, SourceAuthorization
		case strings.EqualFold(scheme, "Bearer") && len(rest) > len("Pomerium-") && strings.EqualFold(rest[:len("Pomerium-")], "Pomerium-"):
			return rest[len("Pomerium-"):], SourceBearer
		}
	}
	if tok := strings.TrimSpace(header(HeaderPomeriumAuthorization)); tok != "" {
		return tok, SourcePomeriumAuthorization
	}
	if tok, n := sessionCookie(header(HeaderCookie), cookieName); n > 0 {
		return tok, SourceCookie
	}
	return "", SourceNone
}

// IsPomeriumAuthorization reports whether an Authorization header value is one
// of ours, and so must not reach the upstream.
func IsPomeriumAuthorization(auth string) bool {
	_, src := ExtractToken(func(name string) string {
		if name == HeaderAuthorization {
			return auth
		}
		return ""
	}, "")
	return src == SourceAuthorization || src == SourceBearer
}

// CookieValue returns the first value of the named cookie in a Cookie header.
// Envoy joins repeated Cookie headers with "; ", so one pass covers them all.
func CookieValue(header, name string) (string, bool) {
	if header == "" || name == "" {
		return "", false
	}
	for header != "" {
		var part string
		part, header, _ = strings.Cut(header, ";")
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && k == name {
			return strings.Trim(v, `"`), true
		}
	}
	return "", false
}

// sessionCookie returns the first non-empty value of the named cookie and
// how many non-empty values the header holds. An empty copy ("_pomerium=")
// is no carrier, so it cannot hide a later one.
func sessionCookie(header, name string) (first string, n int) {
	if name == "" {
		return "", 0
	}
	for header != "" {
		var part string
		part, header, _ = strings.Cut(header, ";")
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k != name {
			continue
		}
		if v = strings.Trim(v, `"`); v != "" {
			if n == 0 {
				first = v
			}
			n++
		}
	}
	return first, n
}

// WithoutCookie returns the Cookie header with every cookie called name
// removed, other cookies kept in order. ok is false when nothing was removed.
func WithoutCookie(header, name string) (string, bool) {
	if name == "" {
		return header, false
	}
	return WithoutCookies(header, func(k string) bool { return k == name })
}

// WithoutCookies returns the Cookie header without every cookie whose name
// drop matches, other cookies kept in order. ok is false when nothing was
// removed, and the header is then returned untouched.
func WithoutCookies(header string, drop func(name string) bool) (string, bool) {
	if header == "" {
		return header, false
	}
	// Most requests carry no cookie to drop: find out without allocating.
	removed := false
	eachCookie(header, func(p string) {
		if k, _, _ := strings.Cut(p, "="); !removed && drop(k) {
			removed = true
		}
	})
	if !removed {
		return header, false
	}
	var kept []string
	eachCookie(header, func(p string) {
		if k, _, _ := strings.Cut(p, "="); !drop(k) {
			kept = append(kept, p)
		}
	})
	return strings.Join(kept, "; "), true
}

// eachCookie calls f with each non-empty "name=value" pair of a Cookie
// header, trimmed, in order.
func eachCookie(header string, f func(pair string)) {
	for rest, more := header, true; more; {
		var part string
		part, rest, more = strings.Cut(rest, ";")
		if p := strings.TrimSpace(part); p != "" {
			f(p)
		}
	}
}

// HostCookiePrefix is the name prefix that makes browsers keep a cookie
// host-only, Path=/ and Secure; the sidecar's own cookies carry it when
// cookie_secure is on.
const HostCookiePrefix = "__Host-"

// IsSidecarCookie reports whether a cookie called name is one the sidecar
// sets for the session cookie sessionCookie (N, "_pomerium" by default): N
// itself and N+"_csrf", N+"_authenticate", N+"_oidc_<suffix>" and
// N+"_signin_<suffix>", each with or without the __Host- prefix. None of them
// is the upstream's business: the Check adapter removes every one before a
// request goes upstream, and keeps every other cookie.
func IsSidecarCookie(name, sessionCookie string) bool {
	if sessionCookie == "" {
		return false
	}
	// Browsers match the prefix case-insensitively; so do we, to remove more.
	if len(name) > len(HostCookiePrefix) && strings.EqualFold(name[:len(HostCookiePrefix)], HostCookiePrefix) {
		name = name[len(HostCookiePrefix):]
	}
	rest, ok := strings.CutPrefix(name, sessionCookie)
	if !ok {
		return false
	}
	switch rest {
	case "", "_csrf", "_authenticate":
		return true
	}
	return strings.HasPrefix(rest, "_oidc_") || strings.HasPrefix(rest, "_signin_")
}

// MaxSessionCookies bounds how many session cookies of one name a request
// may carry: a browser holds at most a few (host-only, a cookie_domain one, a
// stale path), and verifying each costs an HMAC.
const MaxSessionCookies = 8

// Reasons for refusing a set of session cookies.
const (
	ReasonCookiesDisagree = "session cookies disagree on the identity"
	ReasonTooManyCookies  = "too many session cookies"
)

// VerifyCookies verifies the session cookies called name in a Cookie header,
// as Verify does one token, so that their order never decides (contract
// section 4). Invalid ones are ignored when at least one is valid; valid ones
// that disagree on the identity (holder email, impersonated email,
// impersonated groups) are a bad token. Of valid ones that agree, the one
// issued last is used (then the smallest token, so the choice is total), and
// its token is returned. When none is valid, the error is that of the
// smallest token, again whatever the order.
func (v *Verifier) VerifyCookies(header, name, host string, now time.Time) (string, *Claims, error) {
	first, n := sessionCookie(header, name)
	switch {
	case n == 0:
		return "", nil, &TokenError{Cause: CauseMalformed, Reason: ReasonMalformed, Err: errors.New("no session cookie")}
	case n == 1: // the common case, without the bookkeeping below
		c, err := v.Verify(first, host, now)
		return first, c, err
	case n > MaxSessionCookies:
		return "", nil, &TokenError{Cause: CauseTooManyCookies, Reason: ReasonTooManyCookies}
	}
	var (
		best     string
		bestC    *Claims
		worst    string
		worstErr error
	)
	for header != "" {
		var part string
		part, header, _ = strings.Cut(header, ";")
		k, tok, ok := strings.Cut(strings.TrimSpace(part), "=")
		if tok = strings.Trim(tok, `"`); !ok || k != name || tok == "" {
			continue
		}
		c, err := v.Verify(tok, host, now)
		if err != nil {
			if worstErr == nil || tok < worst {
				worst, worstErr = tok, err
			}
			continue
		}
		switch {
		case bestC == nil:
			best, bestC = tok, c
		case !sameIdentity(bestC, c):
			return "", nil, &TokenError{Cause: CauseCookiesDisagree, Reason: ReasonCookiesDisagree}
		case issuedAfter(c, bestC) || (!issuedAfter(bestC, c) && tok < best):
			best, bestC = tok, c
		}
	}
	if bestC == nil {
		return worst, nil, worstErr
	}
	return best, bestC, nil
}

// sameIdentity reports whether two verified tokens act as the same person:
// the same holder, impersonating the same email and the same set of groups.
func sameIdentity(a, b *Claims) bool {
	if NormalizeEmail(a.Email) != NormalizeEmail(b.Email) ||
		NormalizeEmail(a.ImpersonateEmail) != NormalizeEmail(b.ImpersonateEmail) {
		return false
	}
	ga, gb := slices.Clone(a.ImpersonateGroups), slices.Clone(b.ImpersonateGroups)
	slices.Sort(ga)
	slices.Sort(gb)
	return slices.Equal(slices.Compact(ga), slices.Compact(gb))
}

// issuedAfter reports whether a was issued strictly after b; a token without
// iat counts as issued before any that has one.
func issuedAfter(a, b *Claims) bool {
	switch {
	case a.IssuedAt == nil:
		return false
	case b.IssuedAt == nil:
		return true
	}
	return a.IssuedAt.After(b.IssuedAt.Time)
}
