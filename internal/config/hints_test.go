package config

import (
	"errors"
	"strings"
	"testing"
)

// Pomerium settings that do not exist here say so, and what to use instead,
// rather than guessing a near key or blaming the indentation.
func TestPomeriumKeysGetTheirOwnHint(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
		not  string
	}{
		{"cookie_secret says the keys come from shared_secret, not cookie_secure",
			"cookie_secret: abc\n", `t.yaml:1:1: cookie_secret: unknown key "cookie_secret" (a Pomerium setting not supported here: the cookie keys are derived from shared_secret, so remove it)`, "cookie_secure"},
		{"idp_provider points at idp_provider_url",
			"idp_provider: google\n", `unknown key "idp_provider" (a Pomerium setting not supported here: name the provider by idp_provider_url`, "did you mean"},
		{"a route's policy is Pomerium Policy Language and names the allow rules",
			"policy:\n  - from: https://a.example\n    policy:\n      - allow: {or: [{email: {is: a@b.example}}]}\n",
			`t.yaml:3:5: policy[0].policy: unknown key "policy" (a Pomerium setting not supported here: Pomerium Policy Language is not read; write the rule with allowed_users, allowed_groups, allowed_domains`, "indentation"},
		{"a TLS certificate points at Envoy and the Check connection's keys",
			"certificate_file: /tls.crt\n", "TLS for users is Envoy's", "did you mean"},
		{"a route rewrite points at the Envoy route",
			"policy:\n  - from: https://a.example\n    allow_any_authenticated_user: true\n    prefix_rewrite: /x\n", "proxying is Envoy's", "did you mean"},
		{"the name of one of Config's embedded groups is not a key: its fields sit at the top level",
			"TokenKeys:\n  shared_secret: abc\n", `t.yaml:1:1: TokenKeys: unknown key "TokenKeys"`, "Pomerium setting"},
		{"a derived field is not a key either", "issuer: authenticate.evil.example\n", `unknown key "issuer"`, "Pomerium setting"},
		{"an unknown key that is not Pomerium's still gets the edit-distance guess",
			"cookie_secur: true\n", `(did you mean "cookie_secure"?)`, "Pomerium setting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(problemsOf(t, tt.src, withSecret), "\n")
			if !strings.Contains(got, tt.want) || strings.Contains(got, tt.not) {
				t.Errorf("problems:\n%s\nwant %q and not %q", got, tt.want, tt.not)
			}
		})
	}
}

// A YAML syntax error is the one problem: the keys YAML could not read are
// not also reported missing.
func TestASyntaxErrorIsTheOnlyProblem(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"an unclosed list without a secret reports only the syntax error",
			"cookie_name: a\npolicy: [\n", []string{`t.yaml:2: invalid YAML: did not find expected node content`}},
		{"a from starting with * gets a hint to quote it",
			"policy:\n  - from: *.corp.example\n    allow_any_authenticated_user: true\n",
			[]string{`t.yaml:2: invalid YAML: did not find expected alphabetic or numeric character (a value starting with * is a YAML alias: quote it, as in "*.corp.example")`}},
		{"a * value that names an anchor gets the same hint",
			"policy:\n  - from: *corp\n",
			[]string{`t.yaml: invalid YAML: unknown anchor 'corp' referenced (a value starting with * is a YAML alias: quote it, as in "*corp")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemsOf(t, tt.src, nil)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestWithoutSecretLetsThePolicyLoadWithoutTheRootOfTrust(t *testing.T) {
	src := []byte("policy:\n  - from: https://a.example\n    allowed_users: [a@corp.example]\n")
	t.Run("by default a missing shared_secret is a problem", func(t *testing.T) {
		if _, err := Parse(src, "t.yaml", nil); err == nil || !strings.Contains(err.Error(), "shared_secret: is required") {
			t.Errorf("Parse error = %v, want shared_secret required", err)
		}
	})
	t.Run("WithoutSecret loads the policy with no secrets", func(t *testing.T) {
		c, err := Parse(src, "t.yaml", nil, WithoutSecret())
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if len(c.CompiledPolicy.Routes) != 1 || len(c.Secrets()) != 0 {
			t.Errorf("routes %d, secrets %d; want 1 and none", len(c.CompiledPolicy.Routes), len(c.Secrets()))
		}
	})
	t.Run("WithoutSecret still checks a secret that is given", func(t *testing.T) {
		_, err := Parse(append([]byte("shared_secret: "+shortSecret+"\n"), src...), "t.yaml", nil, WithoutSecret())
		var ps Problems
		if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Key != "shared_secret" {
			t.Errorf("Parse error = %v, want one shared_secret problem", err)
		}
	})
}
