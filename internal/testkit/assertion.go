package testkit

import (
	"encoding/json"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// VerifyAssertion checks an x-pomerium-jwt-assertion as an upstream would:
// an ES256 signature by the key its kid names in jwks (the body of
// /.well-known/pomerium/jwks.json), audience among its aud, an exp present
// and not passed. It returns the claims, failing t otherwise.
func VerifyAssertion(t testing.TB, jwks []byte, assertion, audience string) jwt.MapClaims {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatalf("the JWKS is not JSON: %v: %s", err, jwks)
	}
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(audience), jwt.WithExpirationRequired()).
		ParseWithClaims(assertion, claims, func(tok *jwt.Token) (any, error) {
			kid, _ := tok.Header["kid"].(string)
			if keys := set.Key(kid); len(keys) == 1 {
				return keys[0].Key, nil
			}
			return nil, jwt.ErrTokenUnverifiable
		})
	if err != nil {
		t.Fatalf("the assertion does not verify against the JWKS: %v", err)
	}
	return claims
}
