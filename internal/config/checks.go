package config

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// Checks of single values: secrets, emails, URLs, cookie and claim header
// names. Each returns the sentence a Problem carries, or "" when the value is
// fine; validate places it at the key.

// checkSecret explains what is wrong with a shared secret, or returns "".
func checkSecret(s string) string {
	if s == "" {
		return "is empty"
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		if strings.ContainsAny(s, "-_") {
			return "is not standard base64: it uses the URL-safe alphabet (- and _); encode it with + and / instead"
		}
		return "is not valid base64 (the standard alphabet, with or without padding)"
	}
	if len(b) < MinSecretBytes {
		return fmt.Sprintf("decodes to %d bytes, need at least %d", len(b), MinSecretBytes)
	}
	return ""
}

// keyMessage drops identity's "signing key" prefix: the problem's key says it.
func keyMessage(err error) string {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "signing key"); ok {
		msg = strings.TrimSpace(strings.TrimPrefix(rest, ":"))
	}
	return msg
}

func checkEmail(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.IndexFunc(s, notVisible) >= 0 || strings.ContainsAny(s, ",;<>") {
		return fmt.Sprintf("%q is not an email", clip(s))
	}
	return ""
}

func checkURL(s string) (*url.URL, string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Sprintf("must be an absolute http or https URL, found %q", clip(s))
	}
	return u, ""
}

// checkCookieName requires an RFC 6265 cookie-name (an RFC 7230 token).
func checkCookieName(s string) string {
	if s == "" {
		return "must not be empty"
	}
	for _, r := range s {
		if !isTokenChar(r) {
			return fmt.Sprintf("%q is not a cookie name: use letters, digits and !#$%%&'*+-.^_`|~ only", clip(s))
		}
	}
	return ""
}

func isTokenChar(r rune) bool {
	return r < unicode.MaxASCII && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		strings.ContainsRune("!#$%&'*+-.^_`|~", r))
}

// reservedClaimHeaders are set by the sidecar itself or by the request.
var reservedClaimHeaders = map[string]bool{
	"x-pomerium-jwt-assertion": true, "x-pomerium-authorization": true,
	"authorization": true, "cookie": true, "host": true,
}

func (d *decoder) checkClaimHeaders(hs []ClaimHeader) {
	byHeader := map[string]string{}
	for i, h := range hs {
		path := indexPath("jwt_claims_headers", i)
		if h.Claim == "" || strings.IndexFunc(h.Claim, notVisible) >= 0 {
			d.atPath(path, fmt.Sprintf("%q is not a claim name", clip(h.Claim)))
			continue
		}
		if h.Header == "" || strings.IndexFunc(h.Header, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
			d.atPath(path, fmt.Sprintf("%q is not a header name", clip(h.Header)))
			continue
		}
		if reservedClaimHeaders[h.Header] || strings.HasPrefix(h.Header, ":") {
			d.atPath(path, fmt.Sprintf("header %q is reserved", h.Header))
			continue
		}
		if prev, dup := byHeader[h.Header]; dup {
			d.atPath(path, fmt.Sprintf("header %q is already used for claim %q", h.Header, prev))
			continue
		}
		byHeader[h.Header] = h.Claim
	}
}

// notVisible is true for spaces and control characters.
func notVisible(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
}
