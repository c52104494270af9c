// Command demo-idp is the OpenID Connect provider of the docker-compose
// example: the provider the tests run (internal/oidctest, on zitadel/oidc)
// served as a program, with static users and their groups read from a small
// YAML file, so that the stack shows group-based routes without an outside
// account.
//
// A demo only. Its login page lets whoever reaches it pick any listed user,
// administrators included, without a password; its signing key lives in
// memory and changes on every start; it knows one client. Publish it on
// loopback only, and point the sidecar at a real provider (Dex, Keycloak,
// Google: examples/docker-compose/README.md) for anything else.
//
//	demo-idp [--config FILE] [--addr HOST:PORT]   serve (the client secret comes from IDP_CLIENT_SECRET)
//	demo-idp healthcheck [--url URL]              exit 0 when the provider answers its discovery document
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/oidctest"
)

// usageError is a mistake in the command line: exit 2, as flag does.
type usageError struct{ error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "demo-idp: %v\n", err)
	if errors.As(err, new(usageError)) || errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	os.Exit(1)
}

// run is main without the process: it serves until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("demo-idp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/demo-idp/config.yaml", "the provider's users and client (YAML)")
	addr := fs.String("addr", "", "listen address (default: the config's listen)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	opts, err := loadFile(*path, getenv)
	if err != nil {
		return err
	}
	if *addr != "" {
		opts.Addr = *addr
	}

	log, err := zap.NewProduction()
	if err != nil {
		return fmt.Errorf("starting the logger: %w", err)
	}
	defer func() { _ = log.Sync() }()

	p, err := oidctest.New(opts)
	if err != nil {
		return fmt.Errorf("starting the provider on %s: %w", opts.Addr, err)
	}
	defer p.Close()
	users := make([]string, 0, len(opts.Users))
	for _, u := range opts.Users {
		users = append(users, u.Email)
	}
	log.Warn("demo OpenID provider: whoever reaches its login page signs in as any listed user, without a password; never expose it",
		zap.String("issuer", p.Issuer), zap.String("addr", p.Addr()), zap.String("client_id", opts.ClientID),
		zap.Strings("redirect_uris", opts.RedirectURIs), zap.Strings("users", users))
	<-ctx.Done()
	log.Info("stopping")
	return nil
}
