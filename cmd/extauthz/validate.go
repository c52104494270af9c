package main

import (
	"fmt"

	"github.com/extauthz/extauthz/internal/config"
)

// validate loads a config and prints every problem with its location.
func validate(e *env, args []string) error {
	fs := newFlagSet(e, "validate")
	path := fs.String("config", "", "config file to check (required)")
	if err := parseOnlyFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return usagef("--config is required.")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return errReported
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(e.stdout, "%s: ok (%s, %s)\n", *path, count(len(cfg.CompiledPolicy.Routes), "route"), count(len(cfg.Administrators), "administrator"))
	return nil
}

// count is "1 route", "2 routes", "0 routes".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
