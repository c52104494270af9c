package identity_test

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The shared secret as an operator writes it: base64 text decoding to 32 bytes.
var (
	secretBytes = []byte("0123456789abcdef0123456789abcdef")
	secret      = base64.StdEncoding.EncodeToString(secretBytes)
	oldSecret   = base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	otherSecret = base64.StdEncoding.EncodeToString([]byte("an entirely different shared key!"))
)

const (
	testHost   = "app.example.com"
	testIssuer = "authenticate.example.com"
)

// now is a fixed instant; every time claim is relative to it.
var now = time.Unix(1_800_000_000, 0)

func unix(d time.Duration) int64 { return now.Add(d).Unix() }

// baseClaims are the claims of a valid service-account token for testHost.
func baseClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss":    testIssuer,
		"sub":    "svc-1",
		"aud":    []string{testHost},
		"exp":    unix(time.Hour),
		"nbf":    unix(-time.Minute),
		"iat":    unix(-time.Minute),
		"email":  "svc@corp.example",
		"user":   "svc",
		"groups": []string{"robots"},
		"jti":    "token-1",
	}
}

// with returns baseClaims changed by edit; a nil value deletes the claim.
func with(edit map[string]any) jwt.MapClaims {
	c := baseClaims()
	for k, v := range edit {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

func sign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatalf("signing test token with %s: %v", m.Alg(), err)
	}
	return s
}

// hs256 signs claims the way pomerium-cli does: the secret's text is the key.
func hs256(t testing.TB, claims jwt.Claims) string {
	t.Helper()
	return sign(t, jwt.SigningMethodHS256, []byte(secret), claims)
}
