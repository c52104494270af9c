package identity

import (
	"errors"
	"strings"
)

// ErrNotPlainAddress is why a look-alike or otherwise odd impersonation target
// is refused; callers say it in their own words (403 reason, form error, CLI).
var ErrNotPlainAddress = errors.New("the impersonation target is not a plain address " +
	"(printable ASCII, one @, a local part and a domain, no spaces)")

// CheckAddress refuses an impersonation target (impersonate_email) that is not a plain address:
// printable ASCII only, exactly one "@", a non-empty local part and domain, no
// spaces. Upstreams compare emails under case- and accent-insensitive
// collations (MySQL *_ai_ci, NFKC), where "ｓｅｃｕｒｉｔｙ@…", "sécurity@…" or a
// Cyrillic "е" become a protected user the protected-target check never saw;
// refusing everything outside ASCII closes that door for good. "" (no email,
// groups only) is allowed. Check, the dashboard form and the CLI all call this.
func CheckAddress(email string) error {
	if email == "" {
		return nil
	}
	for i := 0; i < len(email); i++ {
		if c := email[i]; c <= ' ' || c >= 0x7f { // controls, space, DEL and every non-ASCII byte
			return ErrNotPlainAddress
		}
	}
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return ErrNotPlainAddress
	}
	return nil
}
