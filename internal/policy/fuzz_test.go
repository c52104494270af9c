package policy_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/policy"
)

// FuzzCompile: arbitrary from, prefix, path and regex never panic; a compiled
// regex matches a path exactly when the operator's expression matches all of
// it; and a route that Match returns really matches the path.
func FuzzCompile(f *testing.F) {
	f.Add("https://app.example.com", "", "", "", "/")
	f.Add("https://*.example.com:8443", "/api/", "", "", "/api/v1")
	f.Add("http://app.example.com", "", "/exact", "", "/exact")
	f.Add("https://app.example.com", "", "", `/items/[0-9]+`, "/items/42")
	f.Add("https://app.example.com", "", "", `/a|/b`, "/b/c")
	f.Add("https://app.example.com", "", "", `/public)|(.*`, "/admin")
	f.Add("https://app.example.com", "", "", `(?i)/X$|^/y`, "/x")
	f.Add("https://[::1]:443", "/", "", "", "/")
	f.Add("ftp://x", "x", "y", "(", "")
	f.Add("https://%zz", "", "", `\`, "/")
	f.Add("https://*.", "", "", "", "/")

	f.Fuzz(func(t *testing.T, from, prefix, path, re, reqPath string) {
		p, err := policy.Compile([]policy.RouteSpec{{Name: "r", From: from, Prefix: prefix, Path: path, Regex: re,
			AllowAnyAuthenticatedUser: true}})
		if err != nil {
			if p != nil {
				t.Fatal("a policy returned with an error")
			}
			return
		}
		r := p.Routes[0]
		if re != "" {
			alone, err := regexp.Compile(re)
			if err != nil {
				t.Fatalf("regex %q compiled into a route although it does not compile alone", re)
			}
			// Leftmost-longest finds a match spanning the whole path iff one exists.
			alone.Longest()
			loc := alone.FindStringIndex(reqPath)
			whole := loc != nil && loc[0] == 0 && loc[1] == len(reqPath)
			if got := r.Regex.MatchString(reqPath); got != whole {
				t.Fatalf("regex %q on %q: route matches %v, whole-path match %v", re, reqPath, got, whole)
			}
		}
		host := r.Host
		if strings.HasPrefix(host, ".") {
			host = "x" + host
		}
		m, ok := p.Match(host, reqPath)
		if !ok {
			return
		}
		if i := strings.IndexAny(reqPath, "?#"); i >= 0 {
			reqPath = reqPath[:i]
		}
		switch {
		case m.Path != "" && reqPath != m.Path,
			m.Prefix != "" && !strings.HasPrefix(reqPath, m.Prefix),
			m.Regex != nil && !m.Regex.MatchString(reqPath):
			t.Fatalf("Match(%q, %q) returned route %+v that does not match the path", host, reqPath, m)
		}
	})
}
