package identity_test

import (
	"testing"

	"github.com/extauthz/extauthz/internal/identity"
)

// headers is a request's headers by lower-case name.
type headers map[string]string

func (h headers) get(name string) string { return h[name] }

func TestExtractToken(t *testing.T) {
	tests := []struct {
		name    string
		h       headers
		cookie  string // cookie name; "_pomerium" when empty
		want    string
		wantSrc identity.Source
	}{
		{name: "a request without any carrier has no token", h: headers{}, wantSrc: identity.SourceNone},
		{name: "Authorization: Pomerium carries the token",
			h: headers{"authorization": "Pomerium tok"}, want: "tok", wantSrc: identity.SourceAuthorization},
		{name: "the Pomerium scheme is case-insensitive in lower case",
			h: headers{"authorization": "pomerium tok"}, want: "tok", wantSrc: identity.SourceAuthorization},
		{name: "the Pomerium scheme is case-insensitive in upper case",
			h: headers{"authorization": "POMERIUM tok"}, want: "tok", wantSrc: identity.SourceAuthorization},
		{name: "surrounding whitespace is trimmed from the Pomerium scheme",
			h: headers{"authorization": "  Pomerium   tok  "}, want: "tok", wantSrc: identity.SourceAuthorization},
		{name: "Authorization: Bearer Pomerium- carries the token",
			h: headers{"authorization": "Bearer Pomerium-tok"}, want: "tok", wantSrc: identity.SourceBearer},
		{name: "the Bearer scheme is case-insensitive",
			h: headers{"authorization": "bEaReR Pomerium-tok"}, want: "tok", wantSrc: identity.SourceBearer},
		{name: "the Pomerium- prefix of a bearer token is case-insensitive",
			h: headers{"authorization": "Bearer pomerium-tok"}, want: "tok", wantSrc: identity.SourceBearer},
		{name: "X-Pomerium-Authorization carries the token",
			h: headers{"x-pomerium-authorization": "tok"}, want: "tok", wantSrc: identity.SourcePomeriumAuthorization},
		{name: "X-Pomerium-Authorization is trimmed",
			h: headers{"x-pomerium-authorization": " tok\t"}, want: "tok", wantSrc: identity.SourcePomeriumAuthorization},
		{name: "the _pomerium cookie carries the token",
			h: headers{"cookie": "_pomerium=tok"}, want: "tok", wantSrc: identity.SourceCookie},
		{name: "the session cookie is found among many",
			h: headers{"cookie": "theme=dark; _pomerium_csrf=nope; _pomerium=tok; lang=en"}, want: "tok", wantSrc: identity.SourceCookie},
		{name: "the configured cookie name is used",
			h: headers{"cookie": "_pomerium=other; sess=tok"}, cookie: "sess", want: "tok", wantSrc: identity.SourceCookie},
		{name: "a cookie whose name only starts with the session name is not the session",
			h: headers{"cookie": "_pomerium_csrf=nope"}, wantSrc: identity.SourceNone},
		{name: "an empty session cookie is no token",
			h: headers{"cookie": "_pomerium=; a=b"}, wantSrc: identity.SourceNone},

		{name: "Authorization: Pomerium wins over every other carrier",
			h:    headers{"authorization": "Pomerium first", "x-pomerium-authorization": "second", "cookie": "_pomerium=third"},
			want: "first", wantSrc: identity.SourceAuthorization},
		{name: "Bearer Pomerium- wins over X-Pomerium-Authorization and the cookie",
			h:    headers{"authorization": "Bearer Pomerium-first", "x-pomerium-authorization": "second", "cookie": "_pomerium=third"},
			want: "first", wantSrc: identity.SourceBearer},
		{name: "X-Pomerium-Authorization wins over the cookie",
			h:    headers{"x-pomerium-authorization": "second", "cookie": "_pomerium=third"},
			want: "second", wantSrc: identity.SourcePomeriumAuthorization},

		{name: "an unrelated Bearer token is ignored",
			h: headers{"authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"}, wantSrc: identity.SourceNone},
		{name: "an unrelated Bearer token leaves the cookie to be read",
			h: headers{"authorization": "Bearer app-token", "cookie": "_pomerium=tok"}, want: "tok", wantSrc: identity.SourceCookie},
		{name: "Basic credentials are ignored",
			h: headers{"authorization": "Basic dXNlcjpwYXNz", "x-pomerium-authorization": "tok"}, want: "tok", wantSrc: identity.SourcePomeriumAuthorization},
		{name: "a Pomerium scheme without a token is ignored",
			h: headers{"authorization": "Pomerium ", "cookie": "_pomerium=tok"}, want: "tok", wantSrc: identity.SourceCookie},
		{name: "a Bearer Pomerium- prefix without a token is ignored",
			h: headers{"authorization": "Bearer Pomerium-"}, wantSrc: identity.SourceNone},
		{name: "a scheme that only starts with Pomerium is ignored",
			h: headers{"authorization": "PomeriumX tok"}, wantSrc: identity.SourceNone},
		{name: "a blank X-Pomerium-Authorization is ignored",
			h: headers{"x-pomerium-authorization": "   ", "cookie": "_pomerium=tok"}, want: "tok", wantSrc: identity.SourceCookie},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := tc.cookie
			if name == "" {
				name = "_pomerium"
			}
			got, src := identity.ExtractToken(tc.h.get, name)
			if got != tc.want || src != tc.wantSrc {
				t.Fatalf("ExtractToken = %q, %v; want %q, %v", got, src, tc.want, tc.wantSrc)
			}
		})
	}
}

func TestSourceString(t *testing.T) {
	for src, want := range map[identity.Source]string{
		identity.SourceNone:                  "none",
		identity.SourceAuthorization:         "authorization",
		identity.SourceBearer:                "bearer",
		identity.SourcePomeriumAuthorization: "x-pomerium-authorization",
		identity.SourceCookie:                "cookie",
		identity.Source(99):                  "none",
	} {
		t.Run("source "+want+" has a stable name", func(t *testing.T) {
			if got := src.String(); got != want {
				t.Fatalf("Source(%d).String() = %q, want %q", src, got, want)
			}
		})
	}
}

func TestIsPomeriumAuthorization(t *testing.T) {
	tests := []struct {
		name string
		auth string
		want bool
	}{
		{"the Pomerium scheme is ours", "Pomerium tok", true},
		{"a Bearer Pomerium- token is ours", "bearer Pomerium-tok", true},
		{"a plain Bearer token belongs to the app", "Bearer tok", false},
		{"Basic credentials belong to the app", "Basic dXNlcjpwYXNz", false},
		{"an empty header is not ours", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := identity.IsPomeriumAuthorization(tc.auth); got != tc.want {
				t.Fatalf("IsPomeriumAuthorization(%q) = %v, want %v", tc.auth, got, tc.want)
			}
		})
	}
}

func TestCookieValue(t *testing.T) {
	tests := []struct {
		name, header, cookie, want string
		ok                         bool
	}{
		{"a lone cookie is found", "_pomerium=tok", "_pomerium", "tok", true},
		{"a cookie is found among many", "a=1; _pomerium=tok; b=2", "_pomerium", "tok", true},
		{"a cookie is found without spaces after the separators", "a=1;_pomerium=tok;b=2", "_pomerium", "tok", true},
		{"the first of repeated cookies wins", "_pomerium=one; _pomerium=two", "_pomerium", "one", true},
		{"a quoted value is unquoted", `_pomerium="tok"`, "_pomerium", "tok", true},
		{"a value may contain =", "_pomerium=a=b==", "_pomerium", "a=b==", true},
		{"an empty value is found as empty", "_pomerium=", "_pomerium", "", true},
		{"cookie names are case-sensitive", "_Pomerium=tok", "_pomerium", "", false},
		{"a longer name with the same prefix does not match", "_pomerium_csrf=x", "_pomerium", "", false},
		{"a value that mentions the name does not match", "a=_pomerium=tok", "_pomerium", "", false},
		{"a missing cookie is not found", "a=1; b=2", "_pomerium", "", false},
		{"an empty header holds no cookie", "", "_pomerium", "", false},
		{"an empty name matches nothing", "=tok", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := identity.CookieValue(tc.header, tc.cookie)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("CookieValue(%q, %q) = %q, %v; want %q, %v", tc.header, tc.cookie, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestWithoutCookie(t *testing.T) {
	tests := []struct {
		name, header, cookie, want string
		removed                    bool
	}{
		{"the only cookie is removed, leaving an empty header", "_pomerium=tok", "_pomerium", "", true},
		{"other cookies are kept in order", "a=1; _pomerium=tok; b=2", "_pomerium", "a=1; b=2", true},
		{"the session cookie is removed from the front", "_pomerium=tok; a=1", "_pomerium", "a=1", true},
		{"the session cookie is removed from the end", "a=1;_pomerium=tok", "_pomerium", "a=1", true},
		{"every copy of the session cookie is removed", "_pomerium=1; a=1; _pomerium=2", "_pomerium", "a=1", true},
		{"a cookie with a similar name is kept", "_pomerium_csrf=x; _pomerium=tok", "_pomerium", "_pomerium_csrf=x", true},
		{"a header without the cookie is returned unchanged", "a=1;  b=2", "_pomerium", "a=1;  b=2", false},
		{"an empty header is returned unchanged", "", "_pomerium", "", false},
		{"an empty name removes nothing", "a=1", "", "a=1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, removed := identity.WithoutCookie(tc.header, tc.cookie)
			if got != tc.want || removed != tc.removed {
				t.Fatalf("WithoutCookie(%q, %q) = %q, %v; want %q, %v", tc.header, tc.cookie, got, removed, tc.want, tc.removed)
			}
			if _, still := identity.CookieValue(got, tc.cookie); still {
				t.Fatalf("%q still holds cookie %q", got, tc.cookie)
			}
		})
	}
}
