package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/term"

	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/identity"
)

// serviceAccount mints a token with the flags of the original pomerium-cli
// and prints it. The shared secret comes from the argument, else
// POMERIUM_SHARED_KEY or a prompt (readSecret); flags the server would refuse
// the token for (a URL as -iss or -aud) are refused here, with the reason.
func serviceAccount(e *env, args []string) error {
	// Installed as pomerium-cli, it answers to that name in its usage.
	prog := "extauthz service-account"
	if e.asPomeriumCLI() {
		prog = "pomerium-cli"
	}
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
		fmt.Fprintf(e.stderr, "Usage: %s [flags] [base64d shared secret setting]\n\n", prog)
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
	// The server compares hosts: a URL here mints a token it will refuse
	// with nothing but "wrong issuer" or "wrong audience".
	if strings.Contains(*iss, "/") {
		return usagef("-iss is the authenticate host name (such as authenticate.example.com), not a URL; got %q.", *iss)
	}
	for _, a := range aud {
		if strings.Contains(a, "/") {
			return usagef("-aud takes route host names (such as app.example.com), not URLs; got %q.", a)
		}
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
	if *sub == "" {
		fmt.Fprintln(e.stderr, "warning: -sub is not set; give each service account a stable subject, since apps key identities on sub.")
	}
	if *expiry > 24*time.Hour {
		fmt.Fprintf(e.stderr, "warning: -expiry %s is longer than a day; a leaked service-account token stays valid that long.\n", *expiry)
	}
	claims := identity.Claims{
		RegisteredClaims:  jwt.RegisteredClaims{Issuer: *iss, Subject: *sub, Audience: jwt.ClaimStrings(aud)},
		Email:             *email,
		User:              *user,
		Groups:            groups,
		ImpersonateEmail:  *impEmail,
		ImpersonateGroups: impGroups,
		ImpersonateAccess: *impAccess,
		ImpersonateReason: strings.TrimSpace(*impReason),
	}
	tok, err := mintFor(claims, secret, *expiry)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}

// mintFor signs c with secret, issued now and valid for ttl: a
// service-account token, or one of the demo's.
func mintFor(c identity.Claims, secret string, ttl time.Duration) (string, error) {
	now := time.Now()
	c.IssuedAt, c.NotBefore = jwt.NewNumericDate(now), jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	return identity.Mint(&c, secret)
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
		// On a terminal the secret is read without echo, so it does not stay
		// on screen or in a recording; piped, it is read as a line.
		if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(e.stderr)
			if err != nil {
				return "", fmt.Errorf("reading the shared secret: %w", err)
			}
			secret = string(b)
			break
		}
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
	raw, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(secret); err != nil {
			return "", usagef("the shared secret is not base64; give the shared_secret value from the config.")
		}
	}
	if len(raw) < config.MinSecretBytes {
		return "", usagef("the shared secret decodes to %d bytes, but a sidecar's shared_secret must decode to at least %d, so none would accept this token; give the shared_secret value from the config.", len(raw), config.MinSecretBytes)
	}
	return secret, nil
}
