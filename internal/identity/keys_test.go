package identity_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/identity"
)

func pemOf(t *testing.T, typ string, der []byte) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func sec1(t *testing.T, k *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "EC PRIVATE KEY", der)
}

func pkcs8(t *testing.T, k any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PRIVATE KEY", der)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// wrapped breaks base64 into 76-column lines, as base64(1) writes it.
func wrapped(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	return b.String() + s + "\n"
}

// thumbprint is the RFC 7638 JWK thumbprint of an EC P-256 public key,
// computed independently of the package.
func thumbprint(t *testing.T, pub *ecdsa.PublicKey) string {
	t.Helper()
	raw, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	// encoding/json sorts map keys, which is the canonical member order.
	canon, _ := json.Marshal(map[string]string{
		"crv": "P-256", "kty": "EC",
		"x": base64.RawURLEncoding.EncodeToString(raw[1:33]),
		"y": base64.RawURLEncoding.EncodeToString(raw[33:]),
	})
	sum := sha256.Sum256(canon)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestParseSigningKey(t *testing.T) {
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	good := []struct{ name, value string }{
		{"base64 of a SEC 1 PEM is accepted", b64(sec1(t, p256))},
		{"base64 of a PKCS #8 PEM is accepted", b64(pkcs8(t, p256))},
		{"a raw SEC 1 PEM is accepted", sec1(t, p256)},
		{"a raw PKCS #8 PEM is accepted", pkcs8(t, p256)},
		{"base64 wrapped at 76 columns is accepted", wrapped(b64(sec1(t, p256)))},
		{"surrounding whitespace is ignored", "\n  " + b64(pkcs8(t, p256)) + "  \n"},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			k, err := identity.ParseSigningKey(tc.value)
			if err != nil {
				t.Fatalf("ParseSigningKey: %v", err)
			}
			if !k.Private.Equal(p256) {
				t.Fatal("parsed a different key")
			}
			if want := thumbprint(t, &p256.PublicKey); k.ID != want {
				t.Fatalf("kid = %q, want the RFC 7638 thumbprint %q", k.ID, want)
			}
		})
	}

	bad := []struct{ name, value, says string }{
		{"an empty key is refused", "  ", "empty"},
		{"garbage is refused", "not a key!", "base64"},
		{"base64 of something that is not PEM is refused", b64("hello"), "PEM"},
		{"a PEM of another type is refused", b64(pemOf(t, "CERTIFICATE", []byte{1, 2, 3})), "CERTIFICATE"},
		{"a corrupt SEC 1 body is refused", b64(pemOf(t, "EC PRIVATE KEY", []byte{1, 2, 3})), "SEC 1"},
		{"a corrupt PKCS #8 body is refused", b64(pemOf(t, "PRIVATE KEY", []byte{1, 2, 3})), "PKCS #8"},
		{"an RSA key in PKCS #8 is refused", b64(pkcs8(t, rsaKey)), "rsa"},
		{"an RSA key in PKCS #1 is refused", b64(pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey))), "RSA PRIVATE KEY"},
		{"an Ed25519 key is refused", b64(pkcs8(t, edKey)), "ed25519"},
		{"a P-384 key in SEC 1 is refused", b64(sec1(t, p384)), "P-384"},
		{"a P-384 key in PKCS #8 is refused", pkcs8(t, p384), "P-384"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			k, err := identity.ParseSigningKey(tc.value)
			if err == nil {
				t.Fatalf("ParseSigningKey accepted it: kid %s", k.ID)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %q does not mention %q", err, tc.says)
			}
		})
	}
}

func TestSigningKeyID(t *testing.T) {
	a, err := identity.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := identity.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the kid survives encoding and parsing, as across restarts", func(t *testing.T) {
		enc, err := identity.EncodeSigningKey(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := base64.StdEncoding.DecodeString(enc); err != nil {
			t.Fatalf("EncodeSigningKey is not base64: %v", err)
		}
		again, err := identity.ParseSigningKey(enc)
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != a.ID || !again.Private.Equal(a.Private) {
			t.Fatalf("kid %q after round trip, want %q", again.ID, a.ID)
		}
	})
	t.Run("the kid is the same whichever PEM form holds the key", func(t *testing.T) {
		s, _ := identity.ParseSigningKey(sec1(t, a.Private))
		p, _ := identity.ParseSigningKey(pkcs8(t, a.Private))
		if s == nil || p == nil || s.ID != a.ID || p.ID != a.ID {
			t.Fatalf("kids differ: %v %v %q", s, p, a.ID)
		}
	})
	t.Run("different keys have different kids", func(t *testing.T) {
		if a.ID == b.ID {
			t.Fatalf("two keys share kid %q", a.ID)
		}
	})
	t.Run("a generated key is P-256", func(t *testing.T) {
		if a.Private.Curve != elliptic.P256() {
			t.Fatalf("curve %s", a.Private.Curve.Params().Name)
		}
	})
}

func TestJWKS(t *testing.T) {
	cur, _ := identity.GenerateSigningKey()
	prev, _ := identity.GenerateSigningKey()
	raw, err := identity.MarshalJWKS(cur, prev)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("JWKS is not a JWK set: %v\n%s", err, raw)
	}
	t.Run("the set lists every key, current first", func(t *testing.T) {
		if len(set.Keys) != 2 || set.Keys[0].KeyID != cur.ID || set.Keys[1].KeyID != prev.ID {
			t.Fatalf("keys = %+v", set.Keys)
		}
	})
	t.Run("each key is a public EC P-256 signing key for ES256", func(t *testing.T) {
		var doc struct{ Keys []map[string]any }
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		for _, k := range doc.Keys {
			if k["kty"] != "EC" || k["crv"] != "P-256" || k["use"] != "sig" || k["alg"] != "ES256" {
				t.Fatalf("key %+v", k)
			}
		}
		if strings.Contains(string(raw), `"d"`) {
			t.Fatalf("JWKS leaks a private part: %s", raw)
		}
	})
	t.Run("each public key round-trips", func(t *testing.T) {
		for i, want := range []*identity.SigningKey{cur, prev} {
			pub, ok := set.Keys[i].Key.(*ecdsa.PublicKey)
			if !ok || !pub.Equal(&want.Private.PublicKey) {
				t.Fatalf("key %d differs after the round trip", i)
			}
		}
	})
	t.Run("the kid is the RFC 7638 thumbprint, as kids were before go-jose computed them", func(t *testing.T) {
		k := set.Keys[0]
		pub := k.Key.(*ecdsa.PublicKey)
		b, _ := pub.Bytes()
		canonical := `{"crv":"P-256","kty":"EC","x":"` + base64.RawURLEncoding.EncodeToString(b[1:33]) +
			`","y":"` + base64.RawURLEncoding.EncodeToString(b[33:]) + `"}`
		sum := sha256.Sum256([]byte(canonical))
		if want := base64.RawURLEncoding.EncodeToString(sum[:]); k.KeyID != want {
			t.Fatalf("kid %q, want %q", k.KeyID, want)
		}
	})
	t.Run("an empty set is an empty keys array", func(t *testing.T) {
		raw, err := identity.MarshalJWKS()
		if err != nil || string(raw) != `{"keys":[]}` {
			t.Fatalf("MarshalJWKS() = %s, %v", raw, err)
		}
	})
}

// parseAssertion verifies an assertion with pub as an upstream would, and
// returns its header and raw claims.
func parseAssertion(t *testing.T, tok string, pub *ecdsa.PublicKey, at time.Time) (map[string]any, map[string]json.RawMessage) {
	t.Helper()
	parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(func() time.Time { return at }),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		t.Fatalf("assertion does not verify with the public key: %v", err)
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(decodeSegment(t, tok, 1), &claims); err != nil {
		t.Fatal(err)
	}
	return parsed.Header, claims
}

func TestSign(t *testing.T) {
	key, err := identity.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := identity.MarshalJWKS(key)
	var set jose.JSONWebKeySet
	_ = json.Unmarshal(jwks, &set)
	pub, ok := set.Keys[0].Key.(*ecdsa.PublicKey)
	if !ok {
		err = errors.New("not an EC key")
	}
	if err != nil {
		t.Fatal(err)
	}
	admin := &identity.Actor{Subject: "admin-sub", Email: "admin@corp.example"}

	tests := []struct {
		name      string
		a         identity.Assertion
		wantExp   time.Time
		wantClaim map[string]string // claim -> exact JSON
		absent    []string
	}{
		{
			name: "an assertion carries the identity and the contract's claims",
			a: identity.Assertion{Issuer: "authenticate.example.com", Audience: "app.example.com",
				Identity: identity.Identity{Subject: "sub-1", User: "alice", Email: "alice@corp.example", Groups: []string{"eng", "ops"}}},
			wantExp: now.Add(identity.AssertionLifetime),
			wantClaim: map[string]string{
				"iss": `"authenticate.example.com"`, "aud": `"app.example.com"`, "sub": `"sub-1"`, "user": `"alice"`,
				"email": `"alice@corp.example"`, "groups": `["eng","ops"]`,
			},
			absent: []string{"act", "nbf"},
		},
		{
			name:      "an identity without groups has an empty groups array",
			a:         identity.Assertion{Audience: "app.example.com", Identity: identity.Identity{Email: "svc@corp.example"}},
			wantExp:   now.Add(identity.AssertionLifetime),
			wantClaim: map[string]string{"groups": `[]`},
			absent:    []string{"act"},
		},
		{
			name:      "an identity with an empty groups slice has an empty groups array",
			a:         identity.Assertion{Audience: "app.example.com", Identity: identity.Identity{Groups: []string{}}},
			wantExp:   now.Add(identity.AssertionLifetime),
			wantClaim: map[string]string{"groups": `[]`, "email": `""`, "sub": `""`, "user": `""`},
		},
		{
			name: "an impersonated assertion names the real administrator in act",
			a: identity.Assertion{Audience: "app.example.com", Actor: admin,
				Identity: identity.Identity{Subject: "bob@corp.example", User: "bob@corp.example", Email: "bob@corp.example"}},
			wantExp: now.Add(identity.AssertionLifetime),
			wantClaim: map[string]string{
				"act": `{"sub":"admin-sub","email":"admin@corp.example"}`, "email": `"bob@corp.example"`, "sub": `"bob@corp.example"`,
			},
		},
		{
			name:    "the session's expiry caps the assertion's",
			a:       identity.Assertion{Audience: "app.example.com", NotAfter: now.Add(time.Minute)},
			wantExp: now.Add(time.Minute),
		},
		{
			name:    "a later session expiry does not extend the assertion",
			a:       identity.Assertion{Audience: "app.example.com", NotAfter: now.Add(time.Hour)},
			wantExp: now.Add(identity.AssertionLifetime),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := key.Sign(tc.a, now)
			if err != nil {
				t.Fatal(err)
			}
			hdr, claims := parseAssertion(t, tok, pub, now)
			if hdr["alg"] != "ES256" || hdr["typ"] != "JWT" || hdr["kid"] != key.ID || len(hdr) != 3 {
				t.Errorf("header = %v, want alg ES256, typ JWT, kid %s", hdr, key.ID)
			}
			for _, c := range []string{"iss", "aud", "jti", "iat", "exp", "sub", "user", "email", "groups"} {
				if _, ok := claims[c]; !ok {
					t.Errorf("claim %q missing", c)
				}
			}
			for c, want := range tc.wantClaim {
				if got := string(claims[c]); got != want {
					t.Errorf("claim %s = %s, want %s", c, got, want)
				}
			}
			for _, c := range tc.absent {
				if v, ok := claims[c]; ok {
					t.Errorf("claim %s = %s, want it absent", c, v)
				}
			}
			if got := string(claims["iat"]); got != jsonInt(now.Unix()) {
				t.Errorf("iat = %s, want %d", got, now.Unix())
			}
			if got := string(claims["exp"]); got != jsonInt(tc.wantExp.Unix()) {
				t.Errorf("exp = %s, want %d", got, tc.wantExp.Unix())
			}
		})
	}

	t.Run("each assertion has its own jti", func(t *testing.T) {
		var ids []string
		for range 3 {
			tok, err := key.Sign(identity.Assertion{Audience: "app.example.com"}, now)
			if err != nil {
				t.Fatal(err)
			}
			_, c := parseAssertion(t, tok, pub, now)
			ids = append(ids, string(c["jti"]))
		}
		slices.Sort(ids)
		if len(slices.Compact(ids)) != 3 {
			t.Fatalf("jtis repeat: %v", ids)
		}
	})
	t.Run("an assertion does not verify with another key", func(t *testing.T) {
		other, _ := identity.GenerateSigningKey()
		tok, _ := key.Sign(identity.Assertion{Audience: "app.example.com"}, now)
		if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return &other.Private.PublicKey, nil },
			jwt.WithTimeFunc(func() time.Time { return now })); err == nil {
			t.Fatal("verified with the wrong key")
		}
	})
	t.Run("an assertion is expired once its lifetime has passed", func(t *testing.T) {
		tok, _ := key.Sign(identity.Assertion{Audience: "app.example.com"}, now)
		if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return pub, nil },
			jwt.WithTimeFunc(func() time.Time { return now.Add(identity.AssertionLifetime) })); err == nil {
			t.Fatal("an assertion outlived AssertionLifetime")
		}
	})
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
