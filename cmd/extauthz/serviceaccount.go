package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/identity"
)

// serviceAccount mints a token with the flags of the original pomerium-cli.
func serviceAccount(e *env, args []string) error {
	fs := newFlagSet(e, "service-account")
	var aud, groups, impGroups listFlag
	fs.Var(&aud, "aud", "Audience (e.g. httpbin.int.pomerium.io,prometheus.int.pomerium.io)")
	email := fs.String("email", "", "Email")
	expiry := new(time.Duration)
	*expiry = time.Hour
	fs.Var(durationFlag{expiry}, "expiry", "Expiry, a `duration` such as 1h or 30m")
	fs.Var(&groups, "groups", "Groups (e.g. admins@pomerium.io,users@pomerium.io)")
	impEmail := fs.String("impersonate_email", "", "Impersonation Email (optional)")
	fs.Var(&impGroups, "impersonate_groups", "Impersonation Groups (optional)")
	impAccess := fs.String("impersonate_access", "", "Impersonation access: read_only or read_write (optional; the server's default applies when unset)")
	impReason := fs.String("impersonate_reason", "", "Why this impersonation is needed; recorded in the audit log (optional)")
	iss := fs.String("iss", "", "Issuing Server (e.g authenticate.int.pomerium.io)")
	sub := fs.String("sub", "", "Subject (typically User's GUID)")
	user := fs.String("user", "", "User (typically User's GUID)")
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: pomerium-cli [flags] [base64d shared secret setting]\n\n")
		fs.SetOutput(e.stderr)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *email == "":
		return usagef("-email is required.")
	case len(aud) == 0:
		return usagef("-aud is required.")
	case *iss == "":
		return usagef("-iss is required.")
	case *expiry <= 0:
		return usagef("-expiry must be a positive duration such as 1h, got %s.", *expiry)
	case fs.NArg() > 1:
		return usagef("expected at most one argument (the shared secret), got %d.", fs.NArg())
	}
	if identity.CheckAddress(*impEmail) != nil {
		return usagef("-impersonate_email must be a plain ASCII address like name@example.com (one @, no spaces, no accented, full-width or other-script letters), got %+q.", *impEmail)
	}
	if *impAccess != "" && *impAccess != identity.AccessReadOnly && *impAccess != identity.AccessReadWrite {
		return usagef("-impersonate_access must be read_only or read_write, got %q.", *impAccess)
	}
	if (*impAccess != "" || *impReason != "") && *impEmail == "" && len(impGroups) == 0 {
		return usagef("-impersonate_access and -impersonate_reason need -impersonate_email or -impersonate_groups.")
	}
	secret, err := readSecret(e, fs.Args())
	if err != nil {
		return err
	}
	if *expiry > 24*time.Hour {
		fmt.Fprintf(e.stderr, "warning: -expiry %s is longer than a day; a leaked service-account token stays valid that long.\n", *expiry)
	}
	now := time.Now()
	claims := &identity.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    *iss,
			Subject:   *sub,
			Audience:  jwt.ClaimStrings(aud),
			ExpiresAt: jwt.NewNumericDate(now.Add(*expiry)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
		},
		Email:             *email,
		User:              *user,
		Groups:            groups,
		ImpersonateEmail:  *impEmail,
		ImpersonateGroups: impGroups,
		ImpersonateAccess: *impAccess,
		ImpersonateReason: strings.TrimSpace(*impReason),
	}
	tok, err := identity.Mint(claims, secret)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}

// readSecret takes the shared secret from the argument, POMERIUM_SHARED_KEY,
// or a prompt on stderr answered on stdin, in that order.
func readSecret(e *env, args []string) (string, error) {
	var secret string
	switch {
	case len(args) == 1:
		secret = args[0]
	case e.getenv("POMERIUM_SHARED_KEY") != "":
		secret = e.getenv("POMERIUM_SHARED_KEY")
	default:
		fmt.Fprint(e.stderr, "Enter base64 encoded shared key >")
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && line == "" {
			fmt.Fprintln(e.stderr)
			return "", usagef("the shared secret is empty.")
		}
		secret = line
	}
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return "", usagef("the shared secret is empty.")
	}
	if _, err := base64.StdEncoding.DecodeString(secret); err != nil {
		if _, err2 := base64.RawStdEncoding.DecodeString(secret); err2 != nil {
			return "", usagef("the shared secret is not base64; give the shared_secret value from the config.")
		}
	}
	return secret, nil
}
