package identity

import (
	"strings"
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
	if tok, ok := CookieValue(header(HeaderCookie), cookieName); ok && tok != "" {
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

// WithoutCookie returns the Cookie header with every cookie called name
// removed, other cookies kept in order. ok is false when nothing was removed.
func WithoutCookie(header, name string) (string, bool) {
	if header == "" || name == "" {
		return header, false
	}
	removed := false
	var kept []string
	for _, part := range strings.Split(header, ";") {
		p := strings.TrimSpace(part)
		if p == "" {
			continue
		}
		if k, _, _ := strings.Cut(p, "="); k == name {
			removed = true
			continue
		}
		kept = append(kept, p)
	}
	if !removed {
		return header, false
	}
	return strings.Join(kept, "; "), true
}
