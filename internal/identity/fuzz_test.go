package identity_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/identity"
)

// FuzzVerify: no input panics, every refusal is a *TokenError with a known
// reason, and nothing verifies unless its signature is the HS256 MAC of its
// signing input under the secret's text.
func FuzzVerify(f *testing.F) {
	valid := hs256(f, baseClaims())
	f.Add(valid, testHost)
	f.Add(valid, testHost+":443")
	f.Add(hs256(f, with(map[string]any{"exp": unix(-time.Hour)})), testHost)
	f.Add(hs256(f, with(map[string]any{"aud": testHost, "exp": 1e300})), testHost)
	f.Add(hs256(f, with(map[string]any{"exp": "soon", "groups": "x"})), testHost)
	f.Add(sign(f, jwt.SigningMethodHS256, secretBytes, baseClaims()), testHost)
	f.Add(sign(f, jwt.SigningMethodHS512, []byte(secret), baseClaims()), testHost)
	f.Add(sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, baseClaims()), testHost)
	f.Add("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.", "")
	f.Add("a.b.c", "[::1]:80")
	f.Add("", "")
	f.Add(strings.Repeat(".", 100), testHost)

	v := newVerifier(f, identity.VerifierOptions{Leeway: time.Minute, Secrets: []string{secret, oldSecret},
		RevokedIDs: []string{"revoked"}, MaxLifetime: 24 * time.Hour})
	reasons := []string{identity.ReasonMalformed, identity.ReasonTooLarge, identity.ReasonAlgorithm, identity.ReasonSignature,
		identity.ReasonExpired, identity.ReasonNotYetValid, identity.ReasonIssuedInFuture, identity.ReasonMissingExpiry,
		identity.ReasonAudience, identity.ReasonIssuer, identity.ReasonRevoked, identity.ReasonLifetime}

	f.Fuzz(func(t *testing.T, token, host string) {
		claims, err := v.Verify(token, host, now)
		if err != nil {
			var te *identity.TokenError
			if !errors.As(err, &te) || !slices.Contains(reasons, te.Reason) {
				t.Fatalf("error %v (%T) is not a *TokenError with a known reason", err, err)
			}
			if claims != nil {
				t.Fatal("claims returned with an error")
			}
			return
		}
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			t.Fatalf("verified a token with %d segments", len(parts))
		}
		sig, derr := base64.RawURLEncoding.Strict().DecodeString(parts[2])
		if derr != nil {
			t.Fatalf("verified a token whose signature is not strict base64url: %v", derr)
		}
		signedBy := func(key string) bool {
			mac := hmac.New(sha256.New, []byte(key))
			mac.Write([]byte(parts[0] + "." + parts[1]))
			return hmac.Equal(mac.Sum(nil), sig)
		}
		if !signedBy(secret) && !signedBy(oldSecret) {
			t.Fatalf("verified a token not signed with a configured secret: %q", token)
		}
		if claims == nil || claims.ExpiresAt == nil || !now.Before(claims.ExpiresAt.Add(time.Minute)) {
			t.Fatalf("verified a token without a live exp: %+v", claims)
		}
	})
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
