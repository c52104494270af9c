//go:build unix

package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/testkit"
)

// TestServeDemoFromTheEnvironment runs the embedded demo with the overrides a
// user reaches for first: their own secret (to mint with it) and other ports
// (when the defaults are taken).
func TestServeDemoFromTheEnvironment(t *testing.T) {
	secret := testkit.Secret(t)
	s := startServe(t, map[string]string{
		"SHARED_SECRET": secret,
		"GRPC_ADDRESS":  "127.0.0.1:0",
		"HTTP_ADDRESS":  "127.0.0.1:0",
	}, "--log-format", "json")
	s.waitServing(t)
	if !s.waitFor(func() bool { return strings.Contains(s.stdout.String(), "Mint your own") }) {
		t.Fatalf("the demo printed no banner\n%s", s)
	}
	out := s.stdout.String()

	t.Run("it listens where GRPC_ADDRESS and HTTP_ADDRESS say", func(t *testing.T) {
		for _, addr := range []string{s.grpc, s.http} {
			if strings.HasSuffix(addr, ":9191") || strings.HasSuffix(addr, ":9292") || !strings.HasPrefix(addr, "127.0.0.1:") {
				t.Errorf("listening on %s, want a port the kernel chose on loopback", addr)
			}
		}
	})
	t.Run("it prints the secret from SHARED_SECRET, to mint with", func(t *testing.T) {
		if !strings.Contains(out, "\n  export POMERIUM_SHARED_KEY="+secret+"\n") {
			t.Errorf("no export line with the environment's secret\n%s", out)
		}
		if strings.Contains(out, "fresh and random") || !strings.Contains(out, "from the environment: SHARED_SECRET, GRPC_ADDRESS, HTTP_ADDRESS") {
			t.Errorf("the banner does not say the secret and listeners came from the environment\n%s", out)
		}
	})
	t.Run("a token minted with that secret is allowed at the printed address", func(t *testing.T) {
		if !strings.Contains(out, "check --addr "+s.grpc+" ") {
			t.Errorf("the check commands do not name the listener %s\n%s", s.grpc, out)
		}
		tok, _ := mint(t, invocation{
			args: []string{"-email", "carol@corp.example", "-groups", "engineering",
				"-aud", "app.localhost", "-iss", "authenticate.localhost", secret},
		})
		c := runCheck(t, s.grpc, "--url", "http://app.localhost/", "--token", tok.raw)
		if c.decision != "ALLOW" {
			t.Errorf("a token minted with SHARED_SECRET was not allowed\n%s", c.raw)
		}
	})
	t.Run("every export line it prints is valid shell", func(t *testing.T) {
		plain := regexp.MustCompile(`^[A-Za-z0-9+/=._-]+$`)
		for _, m := range regexp.MustCompile(`(?m)^  export ([A-Z_]+)=(\S+)$`).FindAllStringSubmatch(out, -1) {
			if !plain.MatchString(m[2]) {
				t.Errorf("%s's value needs quoting in a shell: %s", m[1], m[2])
			}
		}
	})
}
