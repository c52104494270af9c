package identity_test

import (
	"errors"
	"testing"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/testkit"
)

func TestCheckAddress(t *testing.T) {
	plain := []string{"", "bob@corp.example", "a@b", "first.last+tag@sub.example.co", "o'neil@corp.example", "BOB@CORP.EXAMPLE"}
	for _, e := range plain {
		t.Run("the plain address "+e+" is accepted", func(t *testing.T) {
			if err := identity.CheckAddress(e); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, catalogue := range []map[string]string{testkit.LookAlikeAddresses, testkit.MalformedAddresses} {
		for what, e := range catalogue {
			t.Run("a target with "+what+" is refused", func(t *testing.T) {
				if err := identity.CheckAddress(e); !errors.Is(err, identity.ErrNotPlainAddress) {
					t.Fatalf("CheckAddress(%+q) = %v, want ErrNotPlainAddress", e, err)
				}
			})
		}
	}
}
