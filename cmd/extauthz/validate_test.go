package main

import (
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/testkit"
)

// testSecret is a valid shared_secret: base64 of 32 bytes.
const testSecret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// newSigningKey returns a P-256 key and its signing_key config value.
func newSigningKey(t *testing.T) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, encoded := testkit.SigningKey(t)
	return key.Private, encoded
}

// at is where a problem must be reported: the 1-based line of the first line
// of the config containing lineHas, and the column where token starts on it.
type at struct {
	lineHas, token, key string
}

func (a at) locate(t *testing.T, content string) (line, col int) {
	t.Helper()
	for i, l := range strings.Split(content, "\n") {
		if strings.Contains(l, a.lineHas) {
			c := strings.Index(l, a.token)
			if c < 0 {
				t.Fatalf("line %d %q has no %q", i+1, l, a.token)
			}
			return i + 1, c + 1
		}
	}
	t.Fatalf("no line of the config contains %q", a.lineHas)
	return 0, 0
}

func TestValidate(t *testing.T) {
	_, signingKey := newSigningKey(t)
	good := explainConfig + "signing_key: " + signingKey + "\nauthenticate_service_url: https://authenticate.corp.example\n"

	t.Run("a good config prints ok on stdout and exits 0", func(t *testing.T) {
		path := testkit.WriteFile(t, "good.yaml", good)
		r := execBin(t, invocation{args: []string{"validate", "--config", path}})
		if r.code != exitOK {
			t.Fatalf("want exit 0\n%s", r)
		}
		if !strings.Contains(r.stdout, path+": ok") || !strings.Contains(r.stdout, "4 routes") {
			t.Errorf("stdout = %q, want the file, ok and the route count", r.stdout)
		}
		if r.stderr != "" {
			t.Errorf("stderr = %q, want nothing", r.stderr)
		}
	})

	t.Run("idp_allow_unverified_email is accepted beside an identity provider", func(t *testing.T) {
		path := testkit.WriteFile(t, "unverified.yaml", good+"idp_provider_url: https://login.microsoftonline.com/tenant/v2.0\nidp_client_id: extauthz\nidp_allow_unverified_email: true\n")
		r := execBin(t, invocation{args: []string{"validate", "--config", path}})
		if r.code != exitOK || !strings.Contains(r.stdout, path+": ok") {
			t.Fatalf("want exit 0 and ok\n%s", r)
		}
	})

	t.Run("SHARED_SECRET in the environment completes a config that lacks shared_secret", func(t *testing.T) {
		path := testkit.WriteFile(t, "nosecret.yaml", strings.Replace(good, "shared_secret: "+testSecret+"\n", "", 1))
		r := execBin(t, invocation{args: []string{"validate", "--config", path}, env: map[string]string{"SHARED_SECRET": testSecret}})
		if r.code != exitOK {
			t.Fatalf("want exit 0\n%s", r)
		}
	})

	tests := []struct {
		name    string
		content string
		env     map[string]string
		want    []at     // located problems, in file order
		wantEnv []string // problems that must be reported as coming from the environment
	}{
		{
			name: "a config with several problems reports each at its line and column",
			content: `shared_secret: AAECAw==
signing_key: bm90IGEga2V5
bogus_key: 1
administrators: [alice@corp.example]
policy:
  - name: app
    from: "http://[::1"
    allowed_groups: [engineering]
  - name: re
    from: https://re.corp.example
    regex: "([a-z"
    allow_any_authenticated_user: true
`,
			want: []at{
				{"shared_secret:", "AAECAw==", "shared_secret"},
				{"signing_key:", "bm90IGEga2V5", "signing_key"},
				{"bogus_key:", "bogus_key", "bogus_key"},
				{"from: \"http://[::1", "\"http", "policy[0].from"},
				{"regex:", "\"([a-z", "policy[1].regex"},
			},
		},
		{
			name:    "a shared secret that is not base64 is located",
			content: "shared_secret: \"not*base64!!\"\npolicy:\n  - from: https://app.corp.example\n    allow_any_authenticated_user: true\n",
			want:    []at{{"shared_secret:", "\"not*", "shared_secret"}},
		},
		{
			name:    "a bad SHARED_SECRET override is reported against the environment",
			content: "policy:\n  - from: https://app.corp.example\n    allow_any_authenticated_user: true\n",
			env:     map[string]string{"SHARED_SECRET": "short"},
			wantEnv: []string{"SHARED_SECRET"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := testkit.WriteFile(t, "bad.yaml", tt.content)
			r := execBin(t, invocation{args: []string{"validate", "--config", path}, env: tt.env})
			if r.code != exitFailure {
				t.Fatalf("exit code = %d, want 1\n%s", r.code, r)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing for a bad config", r.stdout)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if len(lines) < len(tt.want)+len(tt.wantEnv) {
				t.Errorf("%d problems printed, want at least %d:\n%s", len(lines), len(tt.want)+len(tt.wantEnv), r.stderr)
			}
			next := 0 // problems must come in file order
			for _, w := range tt.want {
				line, col := w.locate(t, tt.content)
				prefix := fmt.Sprintf("%s:%d:%d: %s: ", path, line, col, w.key)
				found := -1
				for i := next; i < len(lines); i++ {
					if strings.HasPrefix(lines[i], prefix) && len(lines[i]) > len(prefix) {
						found = i
						break
					}
				}
				if found < 0 {
					t.Errorf("no problem %q... (in file order) on stderr:\n%s", prefix, r.stderr)
					continue
				}
				next = found + 1
			}
			for _, name := range tt.wantEnv {
				if !regexp.MustCompile(`(?m)^env: ` + name + `: \S`).MatchString(r.stderr) {
					t.Errorf("no problem located at env: %s on stderr:\n%s", name, r.stderr)
				}
			}
			if strings.Contains(r.stderr, "short") && len(tt.env) > 0 {
				t.Errorf("the rejected secret's value is echoed on stderr:\n%s", r.stderr)
			}
		})
	}

	usage := []struct {
		name string
		args []string
		want string
	}{
		{"a missing --config", []string{"validate"}, "--config is required"},
		{"a stray argument", []string{"validate", "--config", "x.yaml", "extra"}, `unexpected argument "extra"`},
		{"an unknown flag", []string{"validate", "--strict"}, "unknown flag -strict"},
	}
	for _, tt := range usage {
		t.Run(tt.name+" is a usage error", func(t *testing.T) {
			t.Parallel()
			assertUsageError(t, execBin(t, invocation{args: tt.args}), tt.want)
		})
	}

	t.Run("a config file that does not exist exits 1 and says so", func(t *testing.T) {
		r := execBin(t, invocation{args: []string{"validate", "--config", filepath.Join(t.TempDir(), "missing.yaml")}})
		if r.code != exitFailure || !strings.Contains(r.stderr, "missing.yaml") || r.stdout != "" {
			t.Errorf("want exit 1 naming the file on stderr\n%s", r)
		}
	})
}

// explainConfig has one route of each kind of rule, in a known order.
const explainConfig = `shared_secret: ` + testSecret + `
administrators: [alice@corp.example]
policy:
  - name: app
    from: https://app.corp.example
    allowed_groups: [engineering]
  - name: admin
    from: https://admin.corp.example
    allowed_users: [alice@corp.example]
  - name: wiki
    from: https://wiki.corp.example
    allowed_domains: [corp.example]
  - name: public
    from: https://public.corp.example
    allow_public_unauthenticated_access: true
`

func TestExplain(t *testing.T) {
	path := testkit.WriteFile(t, "policy.yaml", explainConfig)
	bob := []string{"explain", "--config", path, "--email", "bob@corp.example", "--groups", "engineering"}
	tests := []struct {
		name string
		args []string
		want []explainRow // reasons are only checked to be present
	}{
		{
			name: "every route is listed in policy order with its verdict",
			args: bob,
			want: []explainRow{
				{Route: "app", From: "https://app.corp.example", Allowed: true},
				{Route: "admin", From: "https://admin.corp.example", Allowed: false},
				{Route: "wiki", From: "https://wiki.corp.example", Allowed: true},
				{Route: "public", From: "https://public.corp.example", Allowed: true},
			},
		},
		{
			name: "an outsider is denied everything but the public route",
			args: []string{"explain", "--config", path, "--email", "eve@elsewhere.example"},
			want: []explainRow{
				{Route: "app", From: "https://app.corp.example"},
				{Route: "admin", From: "https://admin.corp.example"},
				{Route: "wiki", From: "https://wiki.corp.example"},
				{Route: "public", From: "https://public.corp.example", Allowed: true},
			},
		},
		{
			name: "--route narrows to the named route",
			args: with(bob, "--route", "admin"),
			want: []explainRow{{Route: "admin", From: "https://admin.corp.example"}},
		},
		{
			name: "--url narrows to the route that serves it, port ignored",
			args: with(bob, "--url", "https://wiki.corp.example:8443/some/page?x=1"),
			want: []explainRow{{Route: "wiki", From: "https://wiki.corp.example", Allowed: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			t.Run("as JSON", func(t *testing.T) {
				r := execBin(t, invocation{args: append(tt.args, "--json")})
				if r.code != exitOK {
					t.Fatalf("want exit 0\n%s", r)
				}
				var raw []map[string]any
				if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
					t.Fatalf("stdout is not a JSON array: %v\n%s", err, r.stdout)
				}
				for i, obj := range raw {
					if len(obj) != 4 {
						t.Errorf("row %d has keys %v, want exactly route, from, allowed, reason", i, keys(obj))
					}
				}
				var rows []explainRow
				if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
					t.Fatal(err)
				}
				if len(rows) != len(tt.want) {
					t.Fatalf("%d rows, want %d:\n%s", len(rows), len(tt.want), r.stdout)
				}
				for i, row := range rows {
					if row.Reason == "" {
						t.Errorf("row %d (%s) has no reason", i, row.Route)
					}
					row.Reason = ""
					if row != tt.want[i] {
						t.Errorf("row %d = %+v, want %+v", i, row, tt.want[i])
					}
				}
			})
			t.Run("as a text table", func(t *testing.T) {
				r := execBin(t, invocation{args: tt.args})
				if r.code != exitOK {
					t.Fatalf("want exit 0\n%s", r)
				}
				lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
				if len(lines) != len(tt.want)+1 {
					t.Fatalf("%d lines, want a header and %d rows:\n%s", len(lines), len(tt.want), r.stdout)
				}
				if f := strings.Fields(lines[0]); strings.Join(f, " ") != "ROUTE FROM PATHS ACCESS WHY" {
					t.Errorf("header = %q", lines[0])
				}
				for i, w := range tt.want {
					f := strings.Fields(lines[i+1])
					access := "denied"
					if w.Allowed {
						access = "allowed"
					}
					if len(f) < 5 || f[0] != w.Route || f[1] != w.From || f[2] != "all" || f[3] != access {
						t.Errorf("row %d = %q, want %s %s all %s and a reason", i, lines[i+1], w.Route, w.From, access)
					}
				}
			})
		})
	}

	usage := []struct {
		name string
		args []string
		want string
	}{
		{"an unknown --route", with(bob, "--route", "nope"), `no route named "nope"`},
		{"a --url no route serves", with(bob, "--url", "https://nothing.example/"), "no route serves https://nothing.example/"},
		{"a relative --url", with(bob, "--url", "/just/a/path"), "--url must be an absolute URL"},
		{"both --route and --url", with(bob, "--route", "app", "--url", "https://app.corp.example/"), "not both"},
		{"a missing --email", []string{"explain", "--config", path}, "--email is required"},
		{"a missing --config", []string{"explain", "--email", "bob@corp.example"}, "--config is required"},
		{"a stray argument", with(bob, "app"), `unexpected argument "app"`},
	}
	for _, tt := range usage {
		t.Run(tt.name+" is a usage error", func(t *testing.T) {
			t.Parallel()
			assertUsageError(t, execBin(t, invocation{args: tt.args}), tt.want)
		})
	}

	t.Run("a config with problems exits 1 with the located problems", func(t *testing.T) {
		bad := testkit.WriteFile(t, "bad.yaml", "shared_secret: AAECAw==\n")
		r := execBin(t, invocation{args: []string{"explain", "--config", bad, "--email", "bob@corp.example"}})
		if r.code != exitFailure || !strings.Contains(r.stderr, bad+":1:16: shared_secret: ") || r.stdout != "" {
			t.Errorf("want exit 1 and the located problem on stderr\n%s", r)
		}
	})
}

// with returns base followed by more, never sharing base's array.
func with(base []string, more ...string) []string {
	return append(slices.Clone(base), more...)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
