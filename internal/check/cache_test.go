package check_test

import (
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/identity"
)

func TestAssertionCacheAdmitsOnSecondSigning(t *testing.T) {
	key, err := identity.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a := identity.Assertion{Issuer: "app.example.com", Audience: "app.example.com",
		Identity: identity.Identity{Email: "bob@corp.example"}}
	for _, tc := range []struct {
		name      string
		gets      int
		wantLen   int
		wantReuse bool // the last Get returned what the one before it did
	}{
		{"a session's first assertion is signed and not kept", 1, 0, false},
		{"its second is signed again and kept", 2, 1, false},
		{"its third comes from the cache", 3, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := check.NewAssertionCache(100)
			var got []string
			for i := range tc.gets {
				jws, err := c.Get(key, "token", "app", a, now.Add(time.Duration(i)*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, jws)
			}
			if c.Len() != tc.wantLen {
				t.Fatalf("Len = %d after %d Gets, want %d", c.Len(), tc.gets, tc.wantLen)
			}
			if n := len(got); n >= 2 && (got[n-1] == got[n-2]) != tc.wantReuse {
				t.Fatalf("last assertion reused = %v, want %v", got[n-1] == got[n-2], tc.wantReuse)
			}
		})
	}
}
