package identity_test

import (
	"errors"
	"testing"

	"github.com/extauthz/extauthz/internal/identity"
)

func TestCheckAddress(t *testing.T) {
	plain := []string{"", "bob@corp.example", "a@b", "first.last+tag@sub.example.co", "o'neil@corp.example", "BOB@CORP.EXAMPLE"}
	lookAlikes := map[string]string{
		"full-width letters":                 "ｓｅｃｕｒｉｔｙ@corp.example",
		"an accented letter":                 "sécurity@corp.example",
		"a decomposed accent":                "se\u0301curity@corp.example",
		"a Cyrillic e":                       "s\u0435curity@corp.example",
		"a Greek omicron in the domain":      "security@c\u03bfrp.example",
		"a full-width at sign":               "security＠corp.example",
		"a zero-width space":                 "secu\u200brity@corp.example",
		"an IDNA domain in Unicode":          "security@bücher.example",
		"a space inside":                     "secu rity@corp.example",
		"a leading space":                    " security@corp.example",
		"a trailing tab":                     "security@corp.example\t",
		"a NUL":                              "security@corp.example\x00",
		"a DEL":                              "security\x7f@corp.example",
		"no at sign":                         "security",
		"two at signs":                       "security@corp@example",
		"an empty local part":                "@corp.example",
		"an empty domain":                    "security@",
		"a lone at sign":                     "@",
		"invalid UTF-8":                      "secur\xffty@corp.example",
		"a right-to-left override":           "\u202esecurity@corp.example",
		"a non-breaking space before the at": "security\u00a0@corp.example",
	}
	for _, e := range plain {
		t.Run("the plain address "+e+" is accepted", func(t *testing.T) {
			if err := identity.CheckAddress(e); err != nil {
				t.Fatal(err)
			}
		})
	}
	for what, e := range lookAlikes {
		t.Run("a target with "+what+" is refused", func(t *testing.T) {
			if err := identity.CheckAddress(e); !errors.Is(err, identity.ErrNotPlainAddress) {
				t.Fatalf("CheckAddress(%+q) = %v, want ErrNotPlainAddress", e, err)
			}
		})
	}
}
