package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/testkit"
)

func TestValidateCountsAndWarns(t *testing.T) {
	t.Run("one route and one administrator are counted in the singular", func(t *testing.T) {
		path := testkit.WriteFile(t, "one.yaml", "shared_secret: "+testSecret+"\nadministrators: [alice@corp.example]\npolicy:\n  - from: https://app.corp.example\n    allow_any_authenticated_user: true\n")
		r := execBin(t, invocation{args: []string{"validate", "--config", path}})
		if r.code != exitOK || !strings.Contains(r.stdout, path+": ok (1 route, 1 administrator)") {
			t.Errorf("want exit 0 and a singular count\n%s", r)
		}
	})

	config := "shared_secret: " + testSecret + `
policy:
  - name: everything
    from: https://app.corp.example
    allowed_groups: [engineering]
  - name: api
    from: https://app.corp.example
    prefix: /api
    allowed_groups: [api]
  - name: nobody
    from: https://nobody.corp.example
  - name: wild
    from: https://*.corp.example
    prefix: /v1
    allow_any_authenticated_user: true
  - name: under-wild
    from: https://x.corp.example
    path: /v1/status
    allow_any_authenticated_user: true
  - name: fine
    from: https://other.corp.example
    prefix: /a
    allow_any_authenticated_user: true
  - name: also-fine
    from: https://other.corp.example
    prefix: /b
    allow_any_authenticated_user: true
`
	path := testkit.WriteFile(t, "lint.yaml", config)
	r := execBin(t, invocation{args: []string{"validate", "--config", path}})
	t.Run("warnings do not fail the config", func(t *testing.T) {
		if r.code != exitOK || !strings.Contains(r.stdout, path+": ok (7 routes, 0 administrators)") {
			t.Fatalf("want exit 0 and ok\n%s", r)
		}
	})
	warnings := []struct{ name, want string }{
		{"a route shadowed by an earlier one on the same host is warned about at the route",
			"warning: " + path + `:6:5: policy[1]: route "api" is shadowed by route "everything" (policy[0])`},
		{"a route that allows no one is warned about at the route",
			"warning: " + path + `:10:5: policy[2]: route "nobody" allows no one`},
		{"a wildcard route shadows a host it covers when its prefix covers the path",
			"warning: " + path + `:16:5: policy[4]: route "under-wild" is shadowed by route "wild" (policy[3])`},
	}
	for _, w := range warnings {
		t.Run(w.name, func(t *testing.T) {
			if !strings.Contains(r.stderr, w.want) {
				t.Errorf("stderr lacks %q:\n%s", w.want, r.stderr)
			}
		})
	}
	t.Run("routes that split a host by path are not warned about", func(t *testing.T) {
		if n := strings.Count(r.stderr, "warning: "); n != len(warnings) || strings.Contains(r.stderr, "fine") {
			t.Errorf("%d warnings, want %d:\n%s", n, len(warnings), r.stderr)
		}
	})
}

// explainPaths has no shared_secret: explain reads only the policy.
const explainPaths = `administrators: [alice@corp.example]
policy:
  - name: api
    from: https://app.corp.example
    prefix: /api
    allowed_groups: [api, platform]
  - name: status
    from: https://app.corp.example
    path: /status
    allowed_users: [carol@corp.example, dan@corp.example]
  - name: reports
    from: https://app.corp.example
    regex: ^/reports/[0-9]+$
    allow_any_authenticated_user: true
`

func TestExplainReadsOnlyThePolicy(t *testing.T) {
	path := testkit.WriteFile(t, "paths.yaml", explainPaths)

	t.Run("a config without shared_secret is explained", func(t *testing.T) {
		r := execBin(t, invocation{args: []string{"explain", "--config", path, "--email", "bob@corp.example"}})
		if r.code != exitOK {
			t.Fatalf("want exit 0\n%s", r)
		}
	})

	t.Run("the text table shows each route's prefix, path or regex and lists like a, b", func(t *testing.T) {
		r := execBin(t, invocation{args: []string{"explain", "--config", path, "--email", "bob@corp.example", "--groups", "sales,ops"}})
		for _, want := range []string{"prefix=/api", "path=/status", "regex=^/reports/[0-9]+$",
			"needs one of groups api, platform", "needs one of users carol@corp.example, dan@corp.example"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "[api") || strings.Contains(r.stdout, "[carol") {
			t.Errorf("stdout prints a Go-style list:\n%s", r.stdout)
		}
		if !strings.Contains(r.stderr, "as bob@corp.example (groups sales, ops)") {
			t.Errorf("stderr = %q, want whom it explains, groups as a, b", r.stderr)
		}
	})

	t.Run("JSON carries prefix, path and regex", func(t *testing.T) {
		r := execBin(t, invocation{args: []string{"explain", "--config", path, "--email", "bob@corp.example", "--json"}})
		var rows []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 3 {
			t.Fatalf("stdout is not 3 rows (%v):\n%s", err, r.stdout)
		}
		if rows[0]["prefix"] != "/api" || rows[1]["path"] != "/status" || rows[2]["regex"] != "^/reports/[0-9]+$" {
			t.Errorf("rows = %v", rows)
		}
	})

	t.Run("an administrator is told that explain shows what they reach as themselves", func(t *testing.T) {
		r := execBin(t, invocation{args: []string{"explain", "--config", path, "--email", "alice@corp.example"}})
		if r.code != exitOK || !strings.Contains(r.stderr, "alice@corp.example is an administrator: this shows what they reach as themselves") {
			t.Errorf("want the administrator note on stderr\n%s", r)
		}
	})

	for _, bad := range []string{"cfo", "cfo@", "@corp.example", "a b@corp.example"} {
		t.Run("--email "+bad+" is not an address and is a usage error", func(t *testing.T) {
			assertUsageError(t, execBin(t, invocation{args: []string{"explain", "--config", path, "--email", bad}}), "--email must be an address")
		})
	}
}
