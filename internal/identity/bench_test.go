package identity_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/identity"
)

// BenchmarkVerify is token verification in process: "cached" is a session's
// every request after its first (time claims and audience re-checked),
// "uncached" its first (signature, JSON decode, every claim), which is what
// every request costs when sessions are all new (the 100k-session workload).
func BenchmarkVerify(b *testing.B) {
	tokens := make([]string, 4096)
	for i := range tokens {
		tokens[i] = hs256(b, with(map[string]any{"jti": fmt.Sprintf("token-%d", i), "email": fmt.Sprintf("user%d@corp.example", i)}))
	}
	opts := identity.VerifierOptions{Leeway: time.Minute, Secrets: []string{secret}, Issuer: testIssuer}
	b.Run("cached", func(b *testing.B) {
		v, err := identity.NewVerifier(opts)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(tokens[0], testHost, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		o := opts
		o.CacheSize = 1 // one entry per shard: 64 of the 4096 tokens at most
		v, err := identity.NewVerifier(o)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := v.Verify(tokens[i%len(tokens)], testHost, now); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("bad signature", func(b *testing.B) {
		v, err := identity.NewVerifier(opts)
		if err != nil {
			b.Fatal(err)
		}
		forged := sign(b, jwt.SigningMethodHS256, []byte(otherSecret), baseClaims())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(forged, testHost, now); err == nil {
				b.Fatal("a forged token verified")
			}
		}
	})
}
