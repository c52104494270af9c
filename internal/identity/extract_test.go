package identity_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

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
		{name: "an empty session cookie does not hide a later one",
			h: headers{"cookie": "_pomerium=; a=b; _pomerium=tok"}, want: "tok", wantSrc: identity.SourceCookie},

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

func TestIsSidecarCookie(t *testing.T) {
	tests := []struct {
		name, cookie, session string
		want                  bool
	}{
		{"the session cookie itself is the sidecar's", "_pomerium", "_pomerium", true},
		{"the session cookie with the __Host- prefix is the sidecar's", "__Host-_pomerium", "_pomerium", true},
		{"the CSRF cookie is the sidecar's", "_pomerium_csrf", "_pomerium", true},
		{"the secure CSRF cookie is the sidecar's", "__Host-_pomerium_csrf", "_pomerium", true},
		{"the authenticate session cookie is the sidecar's", "_pomerium_authenticate", "_pomerium", true},
		{"the secure authenticate session cookie is the sidecar's", "__Host-_pomerium_authenticate", "_pomerium", true},
		{"a sign-in flow cookie is the sidecar's", "_pomerium_oidc_a1b2", "_pomerium", true},
		{"a secure sign-in flow cookie is the sidecar's", "__Host-_pomerium_oidc_a1b2", "_pomerium", true},
		{"a binding cookie is the sidecar's", "_pomerium_signin_a1b2", "_pomerium", true},
		{"a secure binding cookie is the sidecar's", "__Host-_pomerium_signin_a1b2", "_pomerium", true},
		{"a __host- prefix in another case is still read as the prefix", "__host-_pomerium_csrf", "_pomerium", true},
		{"a configured cookie name is followed", "__Host-sess_csrf", "sess", true},
		{"the default name is not ours under a configured name", "_pomerium_csrf", "sess", false},
		{"an app's cookie is not the sidecar's", "theme", "_pomerium", false},
		{"a cookie that only starts like the session cookie is not the sidecar's", "_pomerium2", "_pomerium", false},
		{"an unknown suffix is not the sidecar's", "_pomerium_prefs", "_pomerium", false},
		{"the session name in another case is not the sidecar's", "_POMERIUM", "_pomerium", false},
		{"the bare __Host- prefix is not the sidecar's", "__Host-", "_pomerium", false},
		{"a cookie named like the app's own __Host- cookie is not the sidecar's", "__Host-theme", "_pomerium", false},
		{"no session cookie name matches nothing", "_pomerium", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := identity.IsSidecarCookie(tc.cookie, tc.session); got != tc.want {
				t.Fatalf("IsSidecarCookie(%q, %q) = %v, want %v", tc.cookie, tc.session, got, tc.want)
			}
		})
	}
}

func TestWithoutCookies(t *testing.T) {
	sidecar := func(name string) bool { return identity.IsSidecarCookie(name, "_pomerium") }
	tests := []struct {
		name, header, want string
		removed            bool
	}{
		{"every sidecar cookie goes and the app's stay in order",
			"theme=dark; _pomerium=t; __Host-_pomerium_csrf=c; _pomerium_oidc_x=f; __Host-_pomerium_signin_x=b; _pomerium_authenticate=a; lang=en",
			"theme=dark; lang=en", true},
		{"a header of only sidecar cookies becomes empty", "_pomerium=t; _pomerium_csrf=c", "", true},
		{"a header without sidecar cookies is returned untouched", "theme=dark;lang=en", "theme=dark;lang=en", false},
		{"an empty header stays empty", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, removed := identity.WithoutCookies(tc.header, sidecar)
			if got != tc.want || removed != tc.removed {
				t.Fatalf("WithoutCookies(%q) = %q, %v; want %q, %v", tc.header, got, removed, tc.want, tc.removed)
			}
		})
	}
}

// TestVerifyCookies: with several session cookies, the answer is the same in
// every order of the cookies (contract section 4).
func TestVerifyCookies(t *testing.T) {
	v := newVerifier(t, identity.VerifierOptions{Secrets: []string{secret}, Issuer: testIssuer, Leeway: time.Minute})
	tok := func(edit map[string]any) string { return hs256(t, with(edit)) }
	bob := tok(map[string]any{"email": "bob@corp.example", "jti": "bob-1"})
	bobLater := tok(map[string]any{"email": "Bob@Corp.Example", "jti": "bob-2", "iat": unix(0)})
	carol := tok(map[string]any{"email": "carol@corp.example", "jti": "carol-1"})
	adminAsBob := tok(map[string]any{"email": "admin@corp.example", "impersonate_email": "bob@corp.example",
		"impersonate_groups": []string{"eng", "qa"}, "jti": "imp-1"})
	adminAsBobGroupsReordered := tok(map[string]any{"email": "admin@corp.example", "impersonate_email": "bob@corp.example",
		"impersonate_groups": []string{"qa", "eng"}, "jti": "imp-2"})
	adminAsBobOtherGroups := tok(map[string]any{"email": "admin@corp.example", "impersonate_email": "bob@corp.example",
		"impersonate_groups": []string{"eng"}, "jti": "imp-3"})
	adminAsCarol := tok(map[string]any{"email": "admin@corp.example", "impersonate_email": "carol@corp.example", "jti": "imp-4"})
	admin := tok(map[string]any{"email": "admin@corp.example", "jti": "admin-1"})
	expired := tok(map[string]any{"email": "carol@corp.example", "exp": unix(-time.Hour), "jti": "old"})
	forged := hs256(t, with(map[string]any{"email": "carol@corp.example"}))[:20] + "x.y.z"
	otherHost := tok(map[string]any{"email": "carol@corp.example", "aud": []string{"other.example.com"}})

	tests := []struct {
		name    string
		cookies []string
		wantJTI string // "" when refused
		reason  string // the refusal's reason
	}{
		{"one valid cookie is used", []string{bob}, "bob-1", ""},
		{"an expired cookie beside a valid one is ignored", []string{expired, bob}, "bob-1", ""},
		{"a forged cookie beside a valid one is ignored", []string{forged, bob}, "bob-1", ""},
		{"a cookie for another host beside a valid one is ignored", []string{otherHost, bob}, "bob-1", ""},
		{"two valid cookies of the same holder use the one issued last", []string{bob, bobLater}, "bob-2", ""},
		{"the same cookie twice is one session", []string{bob, bob}, "bob-1", ""},
		{"impersonated groups in another order are the same identity", []string{adminAsBob, adminAsBobGroupsReordered}, "imp-", ""},
		{"valid cookies of two holders are a bad token", []string{bob, carol}, "", identity.ReasonCookiesDisagree},
		{"valid cookies of two holders beside an invalid one are a bad token", []string{bob, expired, carol}, "", identity.ReasonCookiesDisagree},
		{"an impersonating and a plain cookie of the same holder are a bad token", []string{admin, adminAsBob}, "", identity.ReasonCookiesDisagree},
		{"cookies impersonating two emails are a bad token", []string{adminAsBob, adminAsCarol}, "", identity.ReasonCookiesDisagree},
		{"cookies impersonating two sets of groups are a bad token", []string{adminAsBob, adminAsBobOtherGroups}, "", identity.ReasonCookiesDisagree},
		{"only invalid cookies are refused", []string{expired, forged}, "", ""},
		{"more cookies than any browser holds are refused", []string{bob, bob, bob, bob, bob, bob, bob, bob, bob}, "", identity.ReasonTooManyCookies},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var answers []string
			for _, order := range permutations(tc.cookies) {
				parts := []string{"theme=dark"}
				for _, c := range order {
					parts = append(parts, "_pomerium="+c)
				}
				got, claims, err := v.VerifyCookies(strings.Join(parts, "; "), "_pomerium", testHost, now)
				answer := ""
				switch {
				case err != nil:
					var te *identity.TokenError
					if !errors.As(err, &te) {
						t.Fatalf("error %v is not a *TokenError", err)
					}
					answer = "refused: " + te.Reason
					if tc.wantJTI != "" {
						t.Fatalf("order %d: refused (%v), want %s", len(answers), err, tc.wantJTI)
					}
					if tc.reason != "" && te.Reason != tc.reason {
						t.Fatalf("reason = %q, want %q", te.Reason, tc.reason)
					}
				default:
					answer = claims.ID
					if tc.wantJTI == "" || !strings.HasPrefix(claims.ID, tc.wantJTI) {
						t.Fatalf("accepted %s, want %q", claims.ID, tc.wantJTI)
					}
					if !slices.Contains(tc.cookies, got) {
						t.Fatalf("the returned token is not one of the cookies")
					}
				}
				answers = append(answers, answer)
			}
			for _, a := range answers[1:] {
				if a != answers[0] {
					t.Fatalf("the order of the cookies changes the answer: %q", answers)
				}
			}
		})
	}
}

// permutations returns every order of s (s is short).
func permutations(s []string) [][]string {
	if len(s) <= 1 || len(s) > 4 {
		return [][]string{s}
	}
	var out [][]string
	for i := range s {
		rest := append(slices.Clone(s[:i]), s[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]string{s[i]}, p...))
		}
	}
	return out
}

// FuzzExtractToken: arbitrary header values never panic, a token is found
// exactly when a source is reported, and the carriers keep their order.
func FuzzExtractToken(f *testing.F) {
	f.Add("Pomerium tok", "", "")
	f.Add("Bearer Pomerium-tok", "x", "_pomerium=c")
	f.Add("bearer pomerium-", " ", "_pomerium=")
	f.Add("Basic dXNlcjpwYXNz", "tok", "a=1; _pomerium=tok; b=2")
	f.Add("Bearer app", "", `_pomerium="q"`)
	f.Add(" \t", "\x00", ";;=;_pomerium")
	f.Add("Pomerium", "", "_pomerium=x;_pomerium=y")

	f.Fuzz(func(t *testing.T, auth, xpa, cookie string) {
		h := headers{"authorization": auth, "x-pomerium-authorization": xpa, "cookie": cookie}
		tok, src := identity.ExtractToken(h.get, "_pomerium")
		if (tok == "") != (src == identity.SourceNone) {
			t.Fatalf("token %q with source %v", tok, src)
		}
		ours := identity.IsPomeriumAuthorization(auth)
		switch src {
		case identity.SourceAuthorization, identity.SourceBearer:
			if !ours || !strings.Contains(auth, tok) {
				t.Fatalf("token %q from %v not taken from Authorization %q", tok, src, auth)
			}
		case identity.SourcePomeriumAuthorization:
			if ours || tok != strings.TrimSpace(xpa) {
				t.Fatalf("X-Pomerium-Authorization %q read as %q (Authorization ours: %v)", xpa, tok, ours)
			}
		case identity.SourceCookie:
			v, ok := firstNonEmptyCookie(cookie, "_pomerium")
			if ours || strings.TrimSpace(xpa) != "" || !ok || v != tok {
				t.Fatalf("cookie token %q read despite a higher carrier, or not from %q", tok, cookie)
			}
		case identity.SourceNone:
			if ours || strings.TrimSpace(xpa) != "" {
				t.Fatalf("no token reported although a carrier holds one: %q %q", auth, xpa)
			}
		}
	})
}

// firstNonEmptyCookie is the first non-empty value of the named cookie: an
// empty copy carries no token and must not hide a later one.
func firstNonEmptyCookie(header, name string) (string, bool) {
	for _, part := range strings.Split(header, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if v = strings.Trim(v, `"`); ok && k == name && v != "" {
			return v, true
		}
	}
	return "", false
}

// FuzzCookie: removing a cookie never leaves that cookie behind, keeps every
// other cookie's value, and reports a removal exactly when the cookie was
// there; removing the sidecar's cookies leaves none of them and keeps the rest.
func FuzzCookie(f *testing.F) {
	f.Add("a=1; _pomerium=tok; b=2", "_pomerium", "a")
	f.Add("_pomerium=1;_pomerium=2", "_pomerium", "_pomerium")
	f.Add(`_pomerium="x"; c=3`, "_pomerium", "c")
	f.Add(";; =; a", "a", "")
	f.Add("x =1; x=2", "x ", "x")
	f.Add("a=b=c;\u00a0a=2", "a", "a")
	f.Add("theme=1; __Host-_pomerium_csrf=x; _pomerium_oidc_k=y; lang=2", "_pomerium", "lang")

	f.Fuzz(func(t *testing.T, header, name, other string) {
		sidecar := func(k string) bool { return identity.IsSidecarCookie(k, name) }
		kept, _ := identity.WithoutCookies(header, sidecar)
		for _, part := range strings.Split(kept, ";") {
			if k, _, _ := strings.Cut(strings.TrimSpace(part), "="); sidecar(k) {
				t.Fatalf("WithoutCookies(%q) = %q keeps the sidecar's cookie %q", header, kept, k)
			}
		}
		if !sidecar(other) {
			wantV, wantOK := identity.CookieValue(header, other)
			if gotV, gotOK := identity.CookieValue(kept, other); wantV != gotV || wantOK != gotOK {
				t.Fatalf("removing the sidecar's cookies changed %q: %q,%v -> %q,%v", other, wantV, wantOK, gotV, gotOK)
			}
		}

		out, removed := identity.WithoutCookie(header, name)
		if _, ok := identity.CookieValue(out, name); ok {
			t.Fatalf("WithoutCookie(%q, %q) = %q still holds the cookie", header, name, out)
		}
		if !removed && out != header {
			t.Fatalf("nothing removed but the header changed: %q -> %q", header, out)
		}
		if _, had := identity.CookieValue(header, name); had && !removed {
			t.Fatalf("cookie %q was in %q but not reported removed", name, header)
		}
		if other == name {
			return
		}
		wantV, wantOK := identity.CookieValue(header, other)
		gotV, gotOK := identity.CookieValue(out, other)
		if wantV != gotV || wantOK != gotOK {
			t.Fatalf("removing %q changed cookie %q: %q,%v -> %q,%v (header %q -> %q)",
				name, other, wantV, wantOK, gotV, gotOK, header, out)
		}
	})
}

// FuzzVerifyCookies: a Cookie header of session cookies drawn from valid,
// invalid and disagreeing tokens, plus arbitrary cookies, never panics, and
// gets the same answer in reverse order: the order of the cookies never
// decides (contract section 4).
func FuzzVerifyCookies(f *testing.F) {
	pool := []string{
		hs256(f, with(map[string]any{"jti": "bob-1", "email": "bob@corp.example"})),
		hs256(f, with(map[string]any{"jti": "bob-2", "email": "BOB@corp.example", "iat": unix(0)})),
		hs256(f, with(map[string]any{"jti": "carol", "email": "carol@corp.example"})),
		hs256(f, with(map[string]any{"jti": "old", "exp": unix(-time.Hour)})),
		hs256(f, with(map[string]any{"jti": "imp", "email": "bob@corp.example", "impersonate_email": "x@corp.example"})),
		"garbage",
		"",
	}
	f.Add([]byte{0, 3}, "theme=dark")
	f.Add([]byte{0, 1, 5}, "")
	f.Add([]byte{0, 2}, "_pomerium=")
	f.Add([]byte{4, 0, 6, 6}, "a=b; _pomerium_csrf=c")
	v := newVerifier(f, identity.VerifierOptions{Secrets: []string{secret}, Leeway: time.Minute})

	f.Fuzz(func(t *testing.T, picks []byte, extra string) {
		if len(picks) > 10 {
			picks = picks[:10]
		}
		var parts []string
		for _, p := range picks {
			parts = append(parts, "_pomerium="+pool[int(p)%len(pool)])
		}
		answer := func(parts []string) string {
			header := strings.Join(append(slices.Clone(parts), extra), "; ")
			tok, c, err := v.VerifyCookies(header, "_pomerium", testHost, now)
			if err != nil {
				var te *identity.TokenError
				if !errors.As(err, &te) {
					t.Fatalf("error %v is not a *TokenError", err)
				}
				return "refused"
			}
			if !slices.Contains(pool, tok) {
				// extra may carry a cookie of its own; it must then verify.
				if _, err := v.Verify(tok, testHost, now); err != nil {
					t.Fatalf("accepted a token that does not verify: %v", err)
				}
			}
			return c.ID
		}
		reversed := slices.Clone(parts)
		slices.Reverse(reversed)
		if a, b := answer(parts), answer(reversed); a != b {
			t.Fatalf("order decides: %q in order, %q reversed (picks %v)", a, b, picks)
		}
	})
}
