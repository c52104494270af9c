package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/impersonation"
)

// explainRow is one route of explain's answer, as `explain --json` prints it.
type explainRow struct {
	Route   string `json:"route"`
	From    string `json:"from"`
	Prefix  string `json:"prefix,omitempty"`
	Path    string `json:"path,omitempty"`
	Regex   string `json:"regex,omitempty"`
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"`
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
	if err := parseOnlyFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *path == "":
		return usagef("--config is required.")
	case *email == "":
		return usagef("--email is required.")
	case !strings.Contains(*email, "@") || identity.CheckAddress(*email) != nil:
		return usagef("--email must be an address like name@example.com, got %+q.", *email)
	case *routeName != "" && *rawURL != "":
		return usagef("give --route or --url, not both.")
	}
	// Only the policy is read: a preview or a CI lint needs no shared secret.
	cfg, err := config.Load(*path, config.WithoutSecret())
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return errReported
	}
	// Explain verifies no token: the policy and the administrators are all
	// it reads.
	engine := &decision.Engine{Policy: cfg.CompiledPolicy}
	admin := impersonation.NewRules(cfg.Administrators, nil, "", 0).IsAdministrator(*email)
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
	rows := []explainRow{}
	for i, v := range engine.Explain(decision.As(id)) {
		if keep(v) {
			r := explainRow{Route: v.Route.Name, From: v.Route.From, Prefix: v.Route.Prefix, Path: v.Route.Path, Allowed: v.Allowed, Reason: v.Reason}
			if v.Route.Regex != nil && i < len(cfg.Policy) {
				r.Regex = cfg.Policy[i].Regex // as written: the compiled one is anchored
			}
			rows = append(rows, r)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	// Who is explained, on stderr so that stdout stays the table.
	who := *email
	if len(groups) > 0 {
		who += " (groups " + strings.Join(groups, ", ") + ")"
	}
	fmt.Fprintf(e.stderr, "as %s\n", who)
	if admin {
		fmt.Fprintf(e.stderr, "%s is an administrator: this shows what they reach as themselves; while impersonating, they reach what the impersonated identity does\n", *email)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tFROM\tPATHS\tACCESS\tWHY")
	for _, r := range rows {
		access := "denied"
		if r.Allowed {
			access = "allowed"
		}
		paths := "all"
		switch {
		case r.Path != "":
			paths = "path=" + r.Path
		case r.Prefix != "":
			paths = "prefix=" + r.Prefix
		case r.Regex != "":
			paths = "regex=" + r.Regex
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Route, r.From, paths, access, r.Reason)
	}
	return tw.Flush()
}
