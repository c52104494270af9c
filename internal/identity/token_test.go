package identity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/identity"
)

func newVerifier(t testing.TB, o identity.VerifierOptions) *identity.Verifier {
	t.Helper()
	if o.Secrets == nil {
		o.Secrets = []string{secret}
	}
	v, err := identity.NewVerifier(o)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// sizedToken returns a validly signed token exactly n characters long.
func sizedToken(t *testing.T, n int) string {
	t.Helper()
	for pad := n / 2; pad < n; pad++ {
		tok := hs256(t, with(map[string]any{"pad": strings.Repeat("x", pad)}))
		if len(tok) == n {
			return tok
		}
		if len(tok) > n {
			break
		}
	}
	t.Fatalf("could not build a token of exactly %d characters", n)
	return ""
}

func TestVerify(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	valid := hs256(t, baseClaims())
	parts := strings.Split(valid, ".")
	forgedPayload, _ := json.Marshal(with(map[string]any{"email": "admin@corp.example"}))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forgedPayload) + "." + parts[2]
	// Same claims, signature byte flipped.
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	noneTok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, baseClaims())
	// "none" with the signature of the valid token pasted on.
	noneWithSig := strings.Split(noneTok, ".")[0] + "." + parts[1] + "." + parts[2]

	leeway := identity.VerifierOptions{Leeway: time.Minute}
	withIssuer := identity.VerifierOptions{Leeway: time.Minute, Issuer: testIssuer}

	tests := []struct {
		name   string
		opts   identity.VerifierOptions
		token  string
		host   string
		at     time.Time
		reason string // "" means the token is accepted
	}{
		{name: "a valid token signed with the secret's text is accepted", opts: leeway, token: valid},
		{name: "a valid token is accepted with no leeway configured", token: valid},
		{name: "a token signed with the decoded bytes of the secret is refused",
			opts: leeway, token: sign(t, jwt.SigningMethodHS256, secretBytes, baseClaims()), reason: identity.ReasonSignature},
		{name: "a token signed with another secret is refused",
			opts: leeway, token: sign(t, jwt.SigningMethodHS256, []byte(otherSecret), baseClaims()), reason: identity.ReasonSignature},
		{name: "a token with a tampered payload is refused", opts: leeway, token: tampered, reason: identity.ReasonSignature},
		{name: "a token with a flipped signature bit is refused", opts: leeway, token: badSig, reason: identity.ReasonSignature},
		{name: "a token without a signature is refused", opts: leeway, token: parts[0] + "." + parts[1] + ".", reason: identity.ReasonSignature},

		{name: "an alg none token is refused", opts: leeway, token: noneTok, reason: identity.ReasonAlgorithm},
		{name: "an alg none token carrying a real signature is refused", opts: leeway, token: noneWithSig, reason: identity.ReasonAlgorithm},
		{name: "an HS512 token signed with the secret is refused",
			opts: leeway, token: sign(t, jwt.SigningMethodHS512, []byte(secret), baseClaims()), reason: identity.ReasonAlgorithm},
		{name: "an HS384 token signed with the secret is refused",
			opts: leeway, token: sign(t, jwt.SigningMethodHS384, []byte(secret), baseClaims()), reason: identity.ReasonAlgorithm},
		{name: "an RS256 token is refused",
			opts: leeway, token: sign(t, jwt.SigningMethodRS256, rsaKey, baseClaims()), reason: identity.ReasonAlgorithm},
		{name: "an ES256 token is refused",
			opts: leeway, token: sign(t, jwt.SigningMethodES256, ecKey, baseClaims()), reason: identity.ReasonAlgorithm},

		{name: "an expired token is refused",
			opts: leeway, token: hs256(t, with(map[string]any{"exp": unix(-time.Hour)})), reason: identity.ReasonExpired},
		{name: "a token expired 59 s ago is accepted within the 60 s leeway",
			opts: leeway, token: hs256(t, with(map[string]any{"exp": unix(-59 * time.Second)}))},
		{name: "a token expired exactly 60 s ago is refused at the leeway edge",
			opts: leeway, token: hs256(t, with(map[string]any{"exp": unix(-60 * time.Second)})), reason: identity.ReasonExpired},
		{name: "a token expired 61 s ago is refused beyond the leeway",
			opts: leeway, token: hs256(t, with(map[string]any{"exp": unix(-61 * time.Second)})), reason: identity.ReasonExpired},
		{name: "a token expiring this second is refused without leeway",
			token: hs256(t, with(map[string]any{"exp": unix(0)})), reason: identity.ReasonExpired},
		{name: "a leeway above 60 s is capped at 60 s",
			opts:  identity.VerifierOptions{Leeway: time.Hour},
			token: hs256(t, with(map[string]any{"exp": unix(-61 * time.Second)})), reason: identity.ReasonExpired},
		{name: "a negative leeway becomes the 60 s maximum",
			opts:  identity.VerifierOptions{Leeway: -time.Second},
			token: hs256(t, with(map[string]any{"exp": unix(-59 * time.Second)}))},

		{name: "a token whose nbf is in the future is refused",
			opts: leeway, token: hs256(t, with(map[string]any{"nbf": unix(time.Hour)})), reason: identity.ReasonNotYetValid},
		{name: "a token whose nbf is 61 s ahead is refused beyond the leeway",
			opts: leeway, token: hs256(t, with(map[string]any{"nbf": unix(61 * time.Second)})), reason: identity.ReasonNotYetValid},
		{name: "a token whose nbf is 60 s ahead is accepted within the leeway",
			opts: leeway, token: hs256(t, with(map[string]any{"nbf": unix(60 * time.Second)}))},
		{name: "a token without nbf is accepted", opts: leeway, token: hs256(t, with(map[string]any{"nbf": nil}))},

		{name: "a token issued in the future is refused",
			opts: leeway, token: hs256(t, with(map[string]any{"iat": unix(time.Hour), "nbf": nil})), reason: identity.ReasonIssuedInFuture},
		{name: "a token issued 61 s in the future is refused beyond the leeway",
			opts: leeway, token: hs256(t, with(map[string]any{"iat": unix(61 * time.Second), "nbf": nil})), reason: identity.ReasonIssuedInFuture},
		{name: "a token issued 30 s in the future is accepted within the leeway",
			opts: leeway, token: hs256(t, with(map[string]any{"iat": unix(30 * time.Second), "nbf": nil}))},
		{name: "a token without iat is accepted", opts: leeway, token: hs256(t, with(map[string]any{"iat": nil}))},

		{name: "a token without exp is refused",
			opts: leeway, token: hs256(t, with(map[string]any{"exp": nil})), reason: identity.ReasonMissingExpiry},
		{name: "a token without exp is refused even when the issuer is configured",
			opts: withIssuer, token: hs256(t, with(map[string]any{"exp": nil})), reason: identity.ReasonMissingExpiry},

		{name: "a token for another audience is refused",
			opts: leeway, token: hs256(t, with(map[string]any{"aud": []string{"other.example.com"}})), reason: identity.ReasonAudience},
		{name: "a token without aud is refused",
			opts: leeway, token: hs256(t, with(map[string]any{"aud": nil})), reason: identity.ReasonAudience},
		{name: "a token whose aud only ends with the host is refused",
			opts: leeway, token: hs256(t, with(map[string]any{"aud": []string{"evil-app.example.com", "example.com"}})), reason: identity.ReasonAudience},
		{name: "a token whose aud extends the host is refused",
			opts: leeway, token: hs256(t, with(map[string]any{"aud": []string{"app.example.com.evil.test"}})), reason: identity.ReasonAudience},
		{name: "a token is refused when the request has no host",
			opts: leeway, token: valid, host: "-", reason: identity.ReasonAudience},
		{name: "a token listing the host among several audiences is accepted",
			opts: leeway, token: hs256(t, with(map[string]any{"aud": []string{"a.example.com", testHost, "b.example.com"}}))},
		{name: "a token with aud as a single string is accepted",
			opts: leeway, token: hs256(t, with(map[string]any{"aud": testHost}))},
		{name: "a request host with a port matches an aud without one",
			opts: leeway, token: valid, host: testHost + ":8443"},
		{name: "an aud with a port matches a request host without one",
			opts: leeway, token: hs256(t, with(map[string]any{"aud": []string{testHost + ":443"}}))},
		{name: "aud and host are compared case-insensitively",
			opts: leeway, token: hs256(t, with(map[string]any{"aud": []string{"App.Example.COM"}})), host: "APP.example.com:443"},
		{name: "an IPv6 host with a port matches its bare address",
			opts: leeway, token: hs256(t, with(map[string]any{"aud": []string{"::1"}})), host: "[::1]:8443"},

		{name: "a token from the configured issuer is accepted", opts: withIssuer, token: valid},
		{name: "a token from another issuer is refused",
			opts: withIssuer, token: hs256(t, with(map[string]any{"iss": "evil.example.com"})), reason: identity.ReasonIssuer},
		{name: "a token without iss is refused when the issuer is configured",
			opts: withIssuer, token: hs256(t, with(map[string]any{"iss": nil})), reason: identity.ReasonIssuer},
		{name: "a token from any issuer is accepted when none is configured",
			opts: leeway, token: hs256(t, with(map[string]any{"iss": "whoever"}))},

		{name: "an empty string is refused as malformed", opts: leeway, token: "", reason: identity.ReasonMalformed},
		{name: "garbage is refused as malformed", opts: leeway, token: "not a token at all", reason: identity.ReasonMalformed},
		{name: "three garbage segments are refused as malformed", opts: leeway, token: "a.b.c", reason: identity.ReasonMalformed},
		{name: "a token with too many segments is refused as malformed", opts: leeway, token: valid + ".x", reason: identity.ReasonMalformed},
		{name: "a payload that is not JSON is refused as malformed",
			opts: leeway, token: parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("{nope")) + "." + parts[2], reason: identity.ReasonMalformed},
		{name: "padded base64 segments are refused as malformed", opts: leeway, token: parts[0] + "==." + parts[1] + "." + parts[2], reason: identity.ReasonMalformed},
		{name: "an unknown alg is refused", opts: leeway,
			token: base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"XX999","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2], reason: identity.ReasonMalformed},

		{name: "a token longer than 8 KiB is refused before parsing",
			opts: leeway, token: sizedToken(t, identity.MaxTokenLength+1), reason: identity.ReasonTooLarge},
		{name: "a huge token is refused before parsing",
			opts: leeway, token: strings.Repeat("A", 1<<20), reason: identity.ReasonTooLarge},
		{name: "a token of exactly 8 KiB is accepted", opts: leeway, token: sizedToken(t, identity.MaxTokenLength)},

		{name: "a revoked token is refused",
			opts: identity.VerifierOptions{RevokedIDs: []string{"other", "token-1"}}, token: valid, reason: identity.ReasonRevoked},
		{name: "a token with a jti that is not revoked is accepted",
			opts: identity.VerifierOptions{RevokedIDs: []string{"token-2"}}, token: valid},
		{name: "an empty revoked id does not refuse tokens without jti",
			opts: identity.VerifierOptions{RevokedIDs: []string{""}}, token: hs256(t, with(map[string]any{"jti": nil}))},
		{name: "a token whose sid is revoked is refused whatever its jti",
			opts:  identity.VerifierOptions{RevokedIDs: []string{"session-1"}},
			token: hs256(t, with(map[string]any{"sid": "session-1", "jti": "token-7"})), reason: identity.ReasonRevoked},
		{name: "a token whose jti is revoked is refused even when it carries a sid",
			opts:  identity.VerifierOptions{RevokedIDs: []string{"token-7"}},
			token: hs256(t, with(map[string]any{"sid": "session-1", "jti": "token-7"})), reason: identity.ReasonRevoked},
		{name: "a token whose sid and jti are not revoked is accepted",
			opts:  identity.VerifierOptions{RevokedIDs: []string{"session-2", "token-8"}},
			token: hs256(t, with(map[string]any{"sid": "session-1", "jti": "token-7"}))},
		{name: "a token without sid is refused when its jti, its session id, is revoked",
			opts: identity.VerifierOptions{RevokedIDs: []string{"token-1"}}, token: valid, reason: identity.ReasonRevoked},
		{name: "an empty revoked id does not refuse tokens with neither jti nor sid",
			opts: identity.VerifierOptions{RevokedIDs: []string{""}}, token: hs256(t, with(map[string]any{"jti": nil, "sid": ""}))},
		{name: "a sid that is not a string is refused as malformed",
			opts: leeway, token: hs256(t, with(map[string]any{"sid": 42})), reason: identity.ReasonMalformed},

		{name: "a token whose lifetime exceeds the maximum is refused",
			opts:  identity.VerifierOptions{MaxLifetime: time.Hour},
			token: hs256(t, with(map[string]any{"iat": unix(-time.Minute), "exp": unix(time.Hour)})), reason: identity.ReasonLifetime},
		{name: "a token whose lifetime equals the maximum is accepted",
			opts:  identity.VerifierOptions{MaxLifetime: time.Hour},
			token: hs256(t, with(map[string]any{"iat": unix(-time.Minute), "exp": unix(time.Hour - time.Minute)}))},
		{name: "a token without iat is refused when a maximum lifetime is set",
			opts: identity.VerifierOptions{MaxLifetime: time.Hour}, token: hs256(t, with(map[string]any{"iat": nil})), reason: identity.ReasonLifetime},
		{name: "a long-lived token is accepted when no maximum is set",
			token: hs256(t, with(map[string]any{"exp": unix(24 * 365 * time.Hour)}))},

		{name: "a token signed with the current secret is accepted during a rotation",
			opts: identity.VerifierOptions{Secrets: []string{secret, oldSecret}}, token: valid},
		{name: "a token signed with the previous secret is accepted during a rotation",
			opts:  identity.VerifierOptions{Secrets: []string{secret, oldSecret}},
			token: sign(t, jwt.SigningMethodHS256, []byte(oldSecret), baseClaims())},
		{name: "a token signed with a retired secret is refused after the rotation",
			opts:  identity.VerifierOptions{Secrets: []string{secret}},
			token: sign(t, jwt.SigningMethodHS256, []byte(oldSecret), baseClaims()), reason: identity.ReasonSignature},
		{name: "a token signed with neither secret is refused during a rotation",
			opts:  identity.VerifierOptions{Secrets: []string{secret, oldSecret}},
			token: sign(t, jwt.SigningMethodHS256, []byte(otherSecret), baseClaims()), reason: identity.ReasonSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, tc.opts)
			host := tc.host
			switch host {
			case "":
				host = testHost
			case "-":
				host = ""
			}
			at := tc.at
			if at.IsZero() {
				at = now
			}
			claims, err := v.Verify(tc.token, host, at)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Verify refused a good token: %v", err)
				}
				if claims == nil || claims.Email != "svc@corp.example" {
					t.Fatalf("Verify returned claims %+v, want the token's", claims)
				}
				return
			}
			if claims != nil {
				t.Errorf("Verify returned claims %+v alongside an error", claims)
			}
			var te *identity.TokenError
			if !errors.As(err, &te) {
				t.Fatalf("Verify error = %v (%T), want a *TokenError", err, err)
			}
			if te.Reason != tc.reason {
				t.Fatalf("reason = %q, want %q (error: %v)", te.Reason, tc.reason, err)
			}
			if strings.Contains(te.Reason, secret) || (len(tc.token) > 0 && strings.Contains(te.Error(), tc.token)) {
				t.Fatalf("error %q leaks the token or the secret", te.Error())
			}
		})
	}
}

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

func TestVerifyReturnsTheTokenClaims(t *testing.T) {
	v := newVerifier(t, identity.VerifierOptions{})
	tok := hs256(t, with(map[string]any{
		"impersonate_email":  "bob@corp.example",
		"impersonate_groups": []string{"eng", "ops"},
		"impersonate_access": "read_only",
		"impersonate_exp":    unix(10 * time.Minute),
		"impersonate_reason": "ticket 42",
	}))
	c, err := v.Verify(tok, testHost, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != testIssuer || c.Subject != "svc-1" || c.ID != "token-1" || !slices.Equal(c.Audience, []string{testHost}) {
		t.Errorf("registered claims = %+v", c.RegisteredClaims)
	}
	if c.Email != "svc@corp.example" || c.User != "svc" || !slices.Equal(c.Groups, []string{"robots"}) {
		t.Errorf("identity claims = %q %q %v", c.Email, c.User, c.Groups)
	}
	if c.ImpersonateEmail != "bob@corp.example" || !slices.Equal(c.ImpersonateGroups, []string{"eng", "ops"}) ||
		c.ImpersonateAccess != identity.AccessReadOnly || c.ImpersonateReason != "ticket 42" ||
		c.ImpersonateExp == nil || !c.ImpersonateExp.Equal(now.Add(10*time.Minute)) {
		t.Errorf("impersonation claims = %+v", c)
	}
	if !c.Impersonating() {
		t.Error("Impersonating() = false for a token with impersonate_email")
	}
	if h := c.Holder(); h.Email != "svc@corp.example" || h.Subject != "svc-1" || h.User != "svc" {
		t.Errorf("Holder() = %+v, want the token holder", h)
	}
}

func TestNewVerifier(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		ok      bool
	}{
		{"a verifier without secrets is refused", nil, false},
		{"a verifier with an empty secret is refused", []string{secret, ""}, false},
		{"a verifier with one secret is built", []string{secret}, true},
		{"a verifier with several secrets is built", []string{secret, oldSecret}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := identity.NewVerifier(identity.VerifierOptions{Secrets: tc.secrets})
			if (err == nil) != tc.ok || (v != nil) != tc.ok {
				t.Fatalf("NewVerifier = %v, %v; want ok=%v", v, err, tc.ok)
			}
		})
	}
	t.Run("the leeway is reported as configured, capped at 60 s", func(t *testing.T) {
		for in, want := range map[time.Duration]time.Duration{0: 0, 30 * time.Second: 30 * time.Second, time.Hour: time.Minute, -1: time.Minute} {
			if got := newVerifier(t, identity.VerifierOptions{Leeway: in}).Leeway(); got != want {
				t.Errorf("Leeway(%v) = %v, want %v", in, got, want)
			}
		}
	})
}

func decodeSegment(t *testing.T, tok string, i int) []byte {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments, want 3", len(parts))
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(parts[i])
	if err != nil {
		t.Fatalf("segment %d is not raw URL base64: %v", i, err)
	}
	return b
}

func TestMint(t *testing.T) {
	full := func() *identity.Claims {
		return &identity.Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer:    testIssuer,
				Subject:   "svc-1",
				Audience:  jwt.ClaimStrings{testHost},
				ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
				NotBefore: jwt.NewNumericDate(now),
				IssuedAt:  jwt.NewNumericDate(now),
			},
			Email:             "svc@corp.example",
			User:              "svc",
			Groups:            []string{"robots"},
			ImpersonateEmail:  "bob@corp.example",
			ImpersonateGroups: []string{"eng"},
			ImpersonateAccess: identity.AccessReadOnly,
			ImpersonateExp:    jwt.NewNumericDate(now.Add(30 * time.Minute)),
			ImpersonateReason: "ticket 42",
			SID:               "session-1",
		}
	}
	minimal := func() *identity.Claims {
		return &identity.Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer:    testIssuer,
				Audience:  jwt.ClaimStrings{testHost},
				ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
			},
			Email: "svc@corp.example",
		}
	}

	t.Run("the header is exactly HS256 and JWT", func(t *testing.T) {
		tok, err := identity.Mint(minimal(), secret)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(decodeSegment(t, tok, 0)); got != `{"alg":"HS256","typ":"JWT"}` {
			t.Fatalf("header = %s", got)
		}
	})
	t.Run("a single audience is written as an array", func(t *testing.T) {
		tok, err := identity.Mint(minimal(), secret)
		if err != nil {
			t.Fatal(err)
		}
		var payload map[string]json.RawMessage
		if err := json.Unmarshal(decodeSegment(t, tok, 1), &payload); err != nil {
			t.Fatal(err)
		}
		if got := string(payload["aud"]); got != `["`+testHost+`"]` {
			t.Fatalf("aud = %s, want a one-element array", got)
		}
	})
	t.Run("empty optional claims are omitted", func(t *testing.T) {
		tok, err := identity.Mint(minimal(), secret)
		if err != nil {
			t.Fatal(err)
		}
		var payload map[string]any
		if err := json.Unmarshal(decodeSegment(t, tok, 1), &payload); err != nil {
			t.Fatal(err)
		}
		var keys []string
		for k := range payload {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if want := []string{"aud", "email", "exp", "iss", "jti"}; !slices.Equal(keys, want) {
			t.Fatalf("claims = %v, want exactly %v", keys, want)
		}
	})
	t.Run("every claim is written under its contract name", func(t *testing.T) {
		tok, err := identity.Mint(full(), secret)
		if err != nil {
			t.Fatal(err)
		}
		var payload map[string]any
		if err := json.Unmarshal(decodeSegment(t, tok, 1), &payload); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "email", "user", "groups",
			"impersonate_email", "impersonate_groups", "impersonate_access", "impersonate_exp", "impersonate_reason", "jti", "sid"} {
			if _, ok := payload[k]; !ok {
				t.Errorf("claim %q missing from %v", k, payload)
			}
		}
		if exp, _ := payload["exp"].(float64); int64(exp) != now.Add(time.Hour).Unix() {
			t.Errorf("exp = %v, want a NumericDate in whole seconds", payload["exp"])
		}
	})
	t.Run("the jti is unique per token", func(t *testing.T) {
		seen := map[string]bool{}
		for range 200 {
			c := minimal()
			if _, err := identity.Mint(c, secret); err != nil {
				t.Fatal(err)
			}
			if c.ID == "" || seen[c.ID] {
				t.Fatalf("jti %q is empty or repeated", c.ID)
			}
			seen[c.ID] = true
		}
	})
	t.Run("a jti set by the caller is kept", func(t *testing.T) {
		c := minimal()
		c.ID = "chosen"
		tok, err := identity.Mint(c, secret)
		if err != nil {
			t.Fatal(err)
		}
		got, err := newVerifier(t, identity.VerifierOptions{}).Verify(tok, testHost, now)
		if err != nil || got.ID != "chosen" {
			t.Fatalf("Verify = %+v, %v; want jti chosen", got, err)
		}
	})
	t.Run("a minted token verifies with the secret's text and round-trips every claim", func(t *testing.T) {
		want := full()
		tok, err := identity.Mint(want, secret)
		if err != nil {
			t.Fatal(err)
		}
		got, err := newVerifier(t, identity.VerifierOptions{Issuer: testIssuer}).Verify(tok, testHost, now)
		if err != nil {
			t.Fatal(err)
		}
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		if string(gj) != string(wj) {
			t.Fatalf("round trip:\n got %s\nwant %s", gj, wj)
		}
		// And as a plain HS256 JWT keyed with the text, as pomerium-cli would check it.
		if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte(secret), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return now })); err != nil {
			t.Fatalf("golang-jwt with the secret text: %v", err)
		}
	})
	t.Run("a minted token does not verify with the decoded secret bytes", func(t *testing.T) {
		tok, err := identity.Mint(minimal(), secret)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return secretBytes, nil },
			jwt.WithTimeFunc(func() time.Time { return now })); !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			t.Fatalf("decoded key: err = %v, want a signature error", err)
		}
	})
	t.Run("minting with an empty secret fails", func(t *testing.T) {
		if tok, err := identity.Mint(minimal(), ""); err == nil || tok != "" {
			t.Fatalf("Mint with no secret = %q, %v", tok, err)
		}
	})
}

func TestNewTokenID(t *testing.T) {
	t.Run("token ids are URL-safe and distinct", func(t *testing.T) {
		a, err := identity.NewTokenID()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := identity.NewTokenID()
		if a == b || len(a) < 22 || strings.ContainsAny(a, "+/=") {
			t.Fatalf("ids %q and %q", a, b)
		}
	})
}

func TestHostWithoutPort(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"a bare host is lower-cased", "App.Example.COM", "app.example.com"},
		{"a port is removed", "app.example.com:8443", "app.example.com"},
		{"an IPv6 address loses brackets and port", "[::1]:443", "::1"},
		{"a bracketed IPv6 address without port loses brackets", "[::1]", "::1"},
		{"an empty authority stays empty", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := identity.HostWithoutPort(tc.in); got != tc.want {
				t.Fatalf("HostWithoutPort(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestClaimHelpers(t *testing.T) {
	t.Run("emails are trimmed and lower-cased", func(t *testing.T) {
		if got := identity.NormalizeEmail("  Alice@Corp.Example "); got != "alice@corp.example" {
			t.Fatal(got)
		}
	})
	domains := []struct{ name, email, want string }{
		{"the domain is the part after the @", "a@corp.example", "corp.example"},
		{"the domain is lower-cased", "a@CORP.Example", "corp.example"},
		{"the domain follows the last @", "a@b@corp.example", "corp.example"},
		{"an email without @ has no domain", "corp.example", ""},
		{"an email ending in @ has no domain", "a@", ""},
	}
	for _, tc := range domains {
		t.Run(tc.name, func(t *testing.T) {
			if got := identity.EmailDomain(tc.email); got != tc.want {
				t.Fatalf("EmailDomain(%q) = %q, want %q", tc.email, got, tc.want)
			}
		})
	}
	t.Run("a comma list is split, trimmed, and emptied of blanks", func(t *testing.T) {
		if got := identity.SplitList(" a, b ,,c ,"); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Fatalf("SplitList = %q", got)
		}
		if got := identity.SplitList(" , "); got != nil {
			t.Fatalf("SplitList of blanks = %q, want nil", got)
		}
	})
	sessions := []struct {
		name string
		c    identity.Claims
		want string
	}{
		{"a token with a sid belongs to that session", identity.Claims{SID: "s-1", RegisteredClaims: jwt.RegisteredClaims{ID: "j-2"}}, "s-1"},
		{"a token without sid uses its jti as its session id", identity.Claims{RegisteredClaims: jwt.RegisteredClaims{ID: "j-2"}}, "j-2"},
		{"a token with neither sid nor jti has no session id", identity.Claims{}, ""},
	}
	for _, tc := range sessions {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.SessionID(); got != tc.want {
				t.Fatalf("SessionID() = %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("a token with only impersonate_groups is impersonating", func(t *testing.T) {
		c := &identity.Claims{ImpersonateGroups: []string{"eng"}}
		if !c.Impersonating() {
			t.Fatal("Impersonating() = false")
		}
		if (&identity.Claims{ImpersonateAccess: "read_only"}).Impersonating() {
			t.Fatal("a token with only impersonate_access is not impersonating anyone")
		}
	})
}
