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
			v, ok := identity.CookieValue(cookie, "_pomerium")
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

// FuzzCookie: removing a cookie never leaves that cookie behind, keeps every
// other cookie's value, and reports a removal exactly when the cookie was there.
func FuzzCookie(f *testing.F) {
	f.Add("a=1; _pomerium=tok; b=2", "_pomerium", "a")
	f.Add("_pomerium=1;_pomerium=2", "_pomerium", "_pomerium")
	f.Add(`_pomerium="x"; c=3`, "_pomerium", "c")
	f.Add(";; =; a", "a", "")
	f.Add("x =1; x=2", "x ", "x")
	f.Add("a=b=c;\u00a0a=2", "a", "a")

	f.Fuzz(func(t *testing.T, header, name, other string) {
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
