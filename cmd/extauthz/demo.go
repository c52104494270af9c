package main

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/identity"
)

// demoToken mints a 12-hour token on the demo's secret for the app route.
func demoToken(cfg *config.Config, c identity.Claims) (string, error) {
	c.RegisteredClaims = jwt.RegisteredClaims{Issuer: cfg.Issuer, Subject: c.User, Audience: jwt.ClaimStrings{"app.localhost", "admin.localhost", "wiki.localhost"}}
	return mintFor(c, cfg.SharedSecret, 12*time.Hour)
}

// printDemo prints ready-to-paste tokens and commands for the embedded demo.
func printDemo(e *env, cfg *config.Config, grpcAddr, httpAddr string) error {
	if _, ok := cfg.CompiledPolicy.Lookup("app"); !ok {
		return errNoDemo
	}
	bob, err := demoToken(cfg, identity.Claims{Email: "bob@corp.example", User: "bob", Groups: []string{"engineering"}})
	if err != nil {
		return err
	}
	alice, err := demoToken(cfg, identity.Claims{Email: "alice@corp.example", User: "alice", Groups: []string{"admins"}})
	if err != nil {
		return err
	}
	aliceAsBob, err := demoToken(cfg, identity.Claims{
		Email: "alice@corp.example", User: "alice", Groups: []string{"admins"},
		ImpersonateEmail: "bob@corp.example", ImpersonateGroups: []string{"engineering"},
		ImpersonateAccess: identity.AccessReadOnly, ImpersonateReason: "demo: see what bob sees",
	})
	if err != nil {
		return err
	}
	self := selfCommand(e.args[0])
	if self == e.args[0] {
		self = shellQuote(self) // a path with spaces must still paste
	}
	_, httpPort, _ := net.SplitHostPort(httpAddr)
	fmt.Fprintf(e.stdout, `
extauthz demo is running (embedded config; %s).
  ext_authz gRPC:  %s   (point Envoy's ext_authz filter here)
  pages, JWKS:     http://%s/.pomerium/ , http://%s/.well-known/pomerium/jwks.json
  administrator:   alice@corp.example      routes: app, admin, wiki, public (*.localhost)

Shared secret (tokens minted with it verify here; set SHARED_SECRET to choose it):
  export POMERIUM_SHARED_KEY=%s

Tokens (12h, audiences app/admin/wiki.localhost):
  export BOB=%s
  export ALICE=%s
  export ALICE_AS_BOB=%s

Ask the server as Envoy would (app.localhost allows group "engineering"):
  %s check --addr %s --url http://app.localhost/ --token "$BOB"            # ALLOW: bob is in engineering
  %s check --addr %s --url http://app.localhost/ --token "$ALICE"          # DENY 403: alice is only in admins
  %s check --addr %s --url http://app.localhost/ --token "$ALICE_AS_BOB"   # ALLOW as bob, audited with alice as actor

Curl the dashboard with a token:
  curl -H "Host: app.localhost" -H "Accept: application/json" -H "Authorization: Pomerium $BOB" http://127.0.0.1:%s/.pomerium/

Mint your own:
  %s service-account -email carol@corp.example -groups engineering -aud app.localhost -iss %s %s

`, demoOrigin(e), grpcAddr, httpAddr, httpAddr, cfg.SharedSecret, bob, alice, aliceAsBob,
		self, grpcAddr, self, grpcAddr, self, grpcAddr, httpPort, self, cfg.Issuer, cfg.SharedSecret)
	return nil
}

// demoOrigin says where the demo's secrets came from: config.DemoEnv lets
// the environment set them, and the printed banner must not call them random
// then.
func demoOrigin(e *env) string {
	var set []string
	for _, name := range config.DemoEnv {
		if strings.TrimSpace(e.getenv(name)) != "" {
			set = append(set, name)
		}
	}
	if len(set) == 0 {
		return "secret and signing key are fresh and random"
	}
	return "from the environment: " + strings.Join(set, ", ") + "; the rest as embedded"
}

// shellQuote quotes s for a POSIX shell when it holds anything but plain path
// characters.
func shellQuote(s string) string {
	plain := func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+,:@", r)
	}
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool { return !plain(r) }) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
