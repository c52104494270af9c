package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"text/tabwriter"

	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/reload"
)

// validate loads a config and prints every problem with its location.
func validate(e *env, args []string) error {
	fs := newFlagSet(e, "validate")
	path := fs.String("config", "", "config file to check (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
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
	fmt.Fprintf(e.stdout, "%s: ok (%d routes, %d administrators)\n", *path, len(cfg.CompiledPolicy.Routes), len(cfg.Administrators))
	return nil
}

// explain prints what an identity could reach, route by route, as
// decision.Engine.Explain answers: what Check answers a token that identity holds.
func explain(e *env, args []string) error {
	fs := newFlagSet(e, "explain")
	path := fs.String("config", "", "config file (required)")
	email := fs.String("email", "", "email of the identity to preview (required)")
	var groups listFlag
	fs.Var(&groups, "groups", "groups of the identity (comma list)")
	routeName := fs.String("route", "", "only this route")
	rawURL := fs.String("url", "", "only the route that serves this URL")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	switch {
	case *path == "":
		return usagef("--config is required.")
	case *email == "":
		return usagef("--email is required.")
	case *routeName != "" && *rawURL != "":
		return usagef("give --route or --url, not both.")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return errReported
	}
	engine, err := reload.NewEngine(cfg)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return errReported
	}
	// Only one route: the named one, or the one that serves the URL.
	keep := func(decision.Verdict) bool { return true }
	switch {
	case *routeName != "":
		r, ok := cfg.CompiledPolicy.Lookup(*routeName)
		if !ok {
			return usagef("no route named %q in %s.", *routeName, *path)
		}
		keep = func(v decision.Verdict) bool { return v.Route == r }
	case *rawURL != "":
		u, err := url.Parse(*rawURL)
		if err != nil || u.Host == "" {
			return usagef("--url must be an absolute URL, got %q.", *rawURL)
		}
		r, ok := cfg.CompiledPolicy.Match(u.Host, u.RequestURI())
		if !ok {
			return usagef("no route serves %s.", *rawURL)
		}
		keep = func(v decision.Verdict) bool { return v.Route == r }
	}
	id := identity.Identity{Email: *email, User: *email, Subject: *email, Groups: groups}
	type row struct {
		Route   string `json:"route"`
		From    string `json:"from"`
		Allowed bool   `json:"allowed"`
		Reason  string `json:"reason"`
	}
	rows := []row{}
	for _, v := range engine.Explain(decision.As(id)) {
		if keep(v) {
			rows = append(rows, row{Route: v.Route.Name, From: v.Route.From, Allowed: v.Allowed, Reason: v.Reason})
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tFROM\tACCESS\tWHY")
	for _, r := range rows {
		access := "denied"
		if r.Allowed {
			access = "allowed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Route, r.From, access, r.Reason)
	}
	return tw.Flush()
}
