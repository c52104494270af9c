package identity_test

import (
	"errors"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/identity"
)

// TestAssertionExpiry: exp = min(iat + AssertionLifetime, NotAfter), in whole
// seconds, and always after iat (contract section 8).
func TestAssertionExpiry(t *testing.T) {
	mid := now.Add(400 * time.Millisecond) // a signing instant within a second
	tests := []struct {
		name     string
		notAfter time.Time
		at       time.Time
		want     time.Time
		err      error
	}{
		{"without a cap an assertion lives AssertionLifetime", time.Time{}, now, now.Add(identity.AssertionLifetime), nil},
		{"a nearer cap ends the assertion at the cap", now.Add(time.Minute), now, now.Add(time.Minute), nil},
		{"a farther cap leaves AssertionLifetime", now.Add(time.Hour), now, now.Add(identity.AssertionLifetime), nil},
		{"a cap within the signing second still gives an exp one second after iat", mid.Add(300 * time.Millisecond), mid, now.Add(time.Second), nil},
		{"a cap one second after iat is kept", now.Add(time.Second), now, now.Add(time.Second), nil},
		{"a cap at the signing instant is refused, never born expired", now, now, time.Time{}, identity.ErrAssertionExpired},
		{"a cap in the past is refused, never born expired", now.Add(-30 * time.Second), now, time.Time{}, identity.ErrAssertionExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := identity.Assertion{NotAfter: tc.notAfter}.Expiry(tc.at)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Expiry error = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if !got.Equal(tc.want) {
				t.Fatalf("Expiry = %v, want %v", got, tc.want)
			}
			if got.Unix() <= tc.at.Unix() {
				t.Fatalf("exp %d is not after iat %d", got.Unix(), tc.at.Unix())
			}
		})
	}
}

func TestSignRefusesAnAssertionBornExpired(t *testing.T) {
	key, err := identity.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a session that ended before now gets no assertion", func(t *testing.T) {
		_, err := key.Sign(identity.Assertion{Audience: "app.example.com", NotAfter: now.Add(-time.Second)}, now)
		if !errors.Is(err, identity.ErrAssertionExpired) {
			t.Fatalf("Sign error = %v, want ErrAssertionExpired", err)
		}
	})
	t.Run("a session ending within the signing second gets exp = iat + 1", func(t *testing.T) {
		at := now.Add(100 * time.Millisecond)
		tok, err := key.Sign(identity.Assertion{Audience: "app.example.com", NotAfter: at.Add(500 * time.Millisecond)}, at)
		if err != nil {
			t.Fatal(err)
		}
		_, claims := parseAssertion(t, tok, &key.Private.PublicKey, now)
		if string(claims["iat"]) != "1800000000" || string(claims["exp"]) != "1800000001" {
			t.Fatalf("iat, exp = %s, %s; want 1800000000, 1800000001", claims["iat"], claims["exp"])
		}
	})
}
