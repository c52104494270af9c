package config

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

const (
	// validSecret is base64 of the 32 bytes 0..31.
	validSecret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	// shortSecret is base64 of 16 bytes.
	shortSecret = "AAECAwQFBgcICQoLDA0ODw=="
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// withSecret supplies a valid SHARED_SECRET so a case can focus on one key.
var withSecret = map[string]string{"SHARED_SECRET": validSecret}

// secretAnd is env with a valid SHARED_SECRET added unless env sets one.
func secretAnd(env map[string]string) map[string]string {
	out := map[string]string{"SHARED_SECRET": validSecret}
	maps.Copy(out, env)
	return out
}

// problemsOf parses src as t.yaml and returns every problem rendered.
func problemsOf(t *testing.T, src string, env map[string]string) []string {
	t.Helper()
	c, err := Parse([]byte(src), "t.yaml", envOf(env))
	if err == nil {
		if c == nil || c.CompiledPolicy == nil || c.Key == nil {
			t.Fatalf("Parse returned no error but an incomplete config: %+v", c)
		}
		return nil
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Parse error is %T (%v), want Problems", err, err)
	}
	if c != nil {
		t.Errorf("Parse returned a config along with problems")
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Error()
	}
	return out
}

func TestParseReportsEachProblemWhereItIs(t *testing.T) {
	tests := []struct {
		name string
		src  string
		env  map[string]string
		want []string
	}{
		{
			name: "an unknown top-level key is reported at the key",
			src:  "foo: 1\n",
			env:  withSecret,
			want: []string{`t.yaml:1:1: foo: unknown key "foo"`},
		},
		{
			name: "a misspelt key suggests the right one",
			src:  "cookie_nmae: x\n",
			env:  withSecret,
			want: []string{`t.yaml:1:1: cookie_nmae: unknown key "cookie_nmae" (did you mean "cookie_name"?)`},
		},
		{
			name: "a key in the wrong case suggests the lower-case one",
			src:  "Cookie_Name: x\n",
			env:  withSecret,
			want: []string{`t.yaml:1:1: Cookie_Name: unknown key "Cookie_Name" (did you mean "cookie_name"?)`},
		},
		{
			name: "a route key at the top level says where it belongs",
			src:  "allowed_groups: [a]\n",
			env:  withSecret,
			want: []string{`t.yaml:1:1: allowed_groups: unknown key "allowed_groups" (it is a route key: routes go in the list under "policy")`},
		},
		{
			name: "pomerium's routes key points at policy",
			src:  "routes: []\n",
			env:  withSecret,
			want: []string{`t.yaml:1:1: routes: unknown key "routes" (routes go under "policy")`},
		},
		{
			name: "an unknown route key is reported inside its route",
			src:  "policy:\n  - from: http://a.example\n    frm: x\n",
			env:  withSecret,
			want: []string{`t.yaml:3:5: policy[0].frm: unknown key "frm" (did you mean "from"?)`},
		},
		{
			name: "pomerium's to key in a route explains that envoy holds the upstream",
			src:  "policy:\n  - from: http://a.example\n    to: http://upstream:8080\n",
			env:  withSecret,
			want: []string{`t.yaml:3:5: policy[0].to: unknown key "to" (the upstream is configured in Envoy, not here)`},
		},
		{
			name: "a top-level key inside a route points at the indentation",
			src:  "policy:\n  - from: http://a.example\n    administrators: [a@b.c]\n",
			env:  withSecret,
			want: []string{`t.yaml:3:5: policy[0].administrators: unknown key "administrators" in a route (it is a top-level key: check the indentation)`},
		},
		{
			name: "a key written twice is reported at the second one",
			src:  "cookie_name: a\ncookie_name: b\n",
			env:  withSecret,
			want: []string{`t.yaml:2:1: cookie_name: is set twice; the first is on line 1`},
		},
		{
			name: "a missing shared secret is reported without a position",
			src:  "cookie_name: x\n",
			want: []string{`t.yaml: shared_secret: is required: base64 of at least 32 random bytes (head -c32 /dev/urandom | base64)`},
		},
		{
			name: "an empty file still needs a shared secret",
			src:  "",
			want: []string{`t.yaml: shared_secret: is required: base64 of at least 32 random bytes (head -c32 /dev/urandom | base64)`},
		},
		{
			name: "a short shared secret says how many bytes it decodes to",
			src:  "shared_secret: " + shortSecret + "\n",
			want: []string{`t.yaml:1:16: shared_secret: decodes to 16 bytes, need at least 32`},
		},
		{
			name: "a shared secret that is not base64 says so",
			src:  "shared_secret: \"not base64!\"\n",
			want: []string{`t.yaml:1:16: shared_secret: is not valid base64 (the standard alphabet, with or without padding)`},
		},
		{
			name: "a url-safe base64 shared secret names the alphabet to use",
			src:  "shared_secret: " + strings.Repeat("-_", 22) + "\n",
			want: []string{`t.yaml:1:16: shared_secret: is not standard base64: it uses the URL-safe alphabet (- and _); encode it with + and / instead`},
		},
		{
			name: "a short previous shared secret is reported at its entry",
			src:  "previous_shared_secrets:\n  - " + validSecret + "\n  - " + shortSecret + "\n",
			env:  withSecret,
			want: []string{`t.yaml:3:5: previous_shared_secrets[1]: decodes to 16 bytes, need at least 32`},
		},
		{
			name: "a signing key that is not a pem is reported at its value",
			src:  "signing_key: bm90IGEga2V5\n", // base64 of "not a key"
			env:  withSecret,
			want: []string{`t.yaml:1:14: signing_key: is not a PEM block`},
		},
		{
			name: "a previous signing key that is not base64 is reported at its entry",
			src:  "previous_signing_keys: [\"%%%\"]\n",
			env:  withSecret,
			want: []string{`t.yaml:1:25: previous_signing_keys[0]: is not base64: illegal base64 data at input byte 0`},
		},
		{
			name: "an administrator that is not an email is reported at its entry",
			src:  "administrators:\n  - alice@corp.example\n  - bob\n",
			env:  withSecret,
			want: []string{`t.yaml:3:5: administrators[1]: "bob" is not an email`},
		},
		{
			name: "an authenticate service url without a scheme is refused",
			src:  "authenticate_service_url: authenticate.corp.example\n",
			env:  withSecret,
			want: []string{`t.yaml:1:27: authenticate_service_url: must be an absolute http or https URL, found "authenticate.corp.example"`},
		},
		{
			name: "an identity provider url that is not http is refused",
			src:  "idp_provider_url: ftp://idp.example\nidp_client_id: x\n",
			env:  withSecret,
			want: []string{`t.yaml:1:19: idp_provider_url: must be an absolute http or https URL, found "ftp://idp.example"`},
		},
		{
			name: "an identity provider without a client id is reported at the provider",
			src:  "idp_provider_url: https://idp.example\n",
			env:  withSecret,
			want: []string{`t.yaml:1:19: idp_client_id: is required when idp_provider_url is set`},
		},
		{
			name: "a client secret without an identity provider is reported and not quoted",
			src:  "idp_client_secret: s3cr3t-value\n",
			env:  withSecret,
			want: []string{`t.yaml:1:20: idp_client_secret: is set but idp_provider_url is not`},
		},
		{
			name: "allowing unverified emails without an identity provider is reported",
			src:  "idp_allow_unverified_email: true\n",
			env:  withSecret,
			want: []string{`t.yaml:1:29: idp_allow_unverified_email: is set but idp_provider_url is not`},
		},
		{
			name: "allowing unverified emails takes a boolean",
			src:  "idp_provider_url: https://idp.example\nidp_client_id: x\nidp_allow_unverified_email: sometimes\n",
			env:  withSecret,
			want: []string{`t.yaml:3:29: idp_allow_unverified_email: must be true or false, found "sometimes"`},
		},
		{
			name: "a scope with a space is reported at its entry",
			src:  "idp_provider_url: https://idp.example\nidp_client_id: x\nidp_scopes: [\"open id\"]\n",
			env:  withSecret,
			want: []string{`t.yaml:3:14: idp_scopes[0]: "open id" is not a scope: scopes are single words without spaces`},
		},
		{
			name: "a cookie name with a space is refused",
			src:  "cookie_name: \"my cookie\"\n",
			env:  withSecret,
			want: []string{"t.yaml:1:14: cookie_name: \"my cookie\" is not a cookie name: use letters, digits and !#$%&'*+-.^_`|~ only"},
		},
		{
			name: "an empty cookie name is refused",
			src:  "cookie_name: \"\"\n",
			env:  withSecret,
			want: []string{`t.yaml:1:14: cookie_name: must not be empty`},
		},
		{
			name: "a duration without a unit says the unit is missing",
			src:  "cookie_expire: 30\n",
			env:  withSecret,
			want: []string{`t.yaml:1:16: cookie_expire: must be a duration such as "30m" or "14h" (units h, m, s, ms), found "30" (missing unit)`},
		},
		{
			name: "a negative cookie expiry is refused",
			src:  "cookie_expire: -1h\n",
			env:  withSecret,
			want: []string{`t.yaml:1:16: cookie_expire: must be positive, found -1h0m0s`},
		},
		{
			name: "a boolean that is neither true nor false is refused",
			src:  "cookie_secure: maybe\n",
			env:  withSecret,
			want: []string{`t.yaml:1:16: cookie_secure: must be true or false, found "maybe"`},
		},
		{
			name: "a cookie domain that is a url is refused",
			src:  "cookie_domain: https://corp.example\n",
			env:  withSecret,
			want: []string{`t.yaml:1:16: cookie_domain: "https://corp.example" is not a domain`},
		},
		{
			name: "an address without a port is refused",
			src:  "grpc_address: localhost\n",
			env:  withSecret,
			want: []string{`t.yaml:1:15: grpc_address: must be host:port, such as 127.0.0.1:9191 or :9191, found "localhost"`},
		},
		{
			name: "an address with a named port is refused",
			src:  "http_address: 127.0.0.1:http\n",
			env:  withSecret,
			want: []string{`t.yaml:1:15: http_address: port "http" is not a number from 0 to 65535`},
		},
		{
			name: "the two listeners on one address are refused",
			src:  "grpc_address: 127.0.0.1:9000\nhttp_address: 127.0.0.1:9000\n",
			env:  withSecret,
			want: []string{`t.yaml:2:15: http_address: is the same as grpc_address (127.0.0.1:9000); the two listeners need different addresses`},
		},
		{
			name: "a claim header that the sidecar sets itself is refused",
			src:  "jwt_claims_headers:\n  X-Pomerium-Jwt-Assertion: email\n",
			env:  withSecret,
			want: []string{`t.yaml:2:3: jwt_claims_headers[0]: header "x-pomerium-jwt-assertion" is reserved`},
		},
		{
			name: "two claims in one header are refused",
			src:  "jwt_claims_headers: [email, Email]\n",
			env:  withSecret,
			want: []string{`t.yaml:1:29: jwt_claims_headers[1]: header "x-pomerium-claim-email" is already used for claim "email"`},
		},
		{
			name: "an empty revoked token id is refused",
			src:  "revoked_token_ids: [\"\", abc]\n",
			env:  withSecret,
			want: []string{`t.yaml:1:21: revoked_token_ids[0]: is empty`},
		},
		{
			name: "a negative service account lifetime is refused",
			src:  "max_service_account_lifetime: -5m\n",
			env:  withSecret,
			want: []string{`t.yaml:1:31: max_service_account_lifetime: must not be negative (0 means no limit), found -5m0s`},
		},
		{
			name: "an unknown impersonation access is refused",
			src:  "impersonation_default_access: admin\n",
			env:  withSecret,
			want: []string{`t.yaml:1:31: impersonation_default_access: must be "read_only" or "read_write", found "admin"`},
		},
		{
			name: "a zero impersonation duration is refused",
			src:  "impersonation_max_duration: 0s\n",
			env:  withSecret,
			want: []string{`t.yaml:1:29: impersonation_max_duration: must be positive, found 0s`},
		},
		{
			name: "a require-reason that is not a boolean is refused",
			src:  "impersonation_require_reason: sometimes\n",
			env:  withSecret,
			want: []string{`t.yaml:1:31: impersonation_require_reason: must be true or false, found "sometimes"`},
		},
		{
			name: "a protected target with a space is refused",
			src:  "impersonation_protected:\n  - security team\n",
			env:  withSecret,
			want: []string{`t.yaml:2:5: impersonation_protected[0]: "security team" is neither an email nor a group name: it must be non-empty, without spaces`},
		},
		{
			name: "a zero drain timeout is refused",
			src:  "drain_timeout: 0s\n",
			env:  withSecret,
			want: []string{`t.yaml:1:16: drain_timeout: must be positive, found 0s`},
		},
		{
			name: "a mapping where a list belongs is refused",
			src:  "administrators: {alice: bob}\n",
			env:  withSecret,
			want: []string{`t.yaml:1:17: administrators: must be a list of strings, found a mapping`},
		},
		{
			name: "a list inside a list of strings is refused at the entry",
			src:  "idp_provider_url: https://idp.example\nidp_client_id: x\nidp_scopes: [openid, [email]]\n",
			env:  withSecret,
			want: []string{`t.yaml:3:22: idp_scopes[1]: each entry must be a string, found a list`},
		},
		{
			name: "a list where a string belongs is refused",
			src:  "cookie_name: [a]\n",
			env:  withSecret,
			want: []string{`t.yaml:1:14: cookie_name: must be a string, found a list`},
		},
		{
			name: "a policy that is not a list is refused",
			src:  "policy: {from: http://a.example}\n",
			env:  withSecret,
			want: []string{`t.yaml:1:9: policy: must be a list of routes, found a mapping`},
		},
		{
			name: "a route that is not a mapping is refused",
			src:  "policy:\n  - http://a.example\n",
			env:  withSecret,
			want: []string{`t.yaml:2:5: policy[0]: each route must be a mapping of keys (name, from, ...), found a string`},
		},
		{
			name: "a route without from is reported at the route",
			src:  "policy:\n  - name: a\n    prefix: /a\n",
			env:  withSecret,
			want: []string{`t.yaml:2:5: policy[0].from: is required`},
		},
		{
			name: "a route prefix without a slash is reported at the prefix",
			src:  "policy:\n  - from: http://a.example\n    prefix: a\n",
			env:  withSecret,
			want: []string{`t.yaml:3:13: policy[0].prefix: "a" must start with /`},
		},
		{
			name: "a route regex that does not compile is reported at the regex",
			src:  "policy:\n  - from: http://a.example\n    regex: \"(\"\n",
			env:  withSecret,
			want: []string{"t.yaml:3:12: policy[0].regex: does not compile: error parsing regexp: missing closing ): `(`"},
		},
		{
			name: "a route name used twice is reported at the second name",
			src:  "policy:\n  - name: a\n    from: http://a.example\n  - name: a\n    from: http://b.example\n",
			env:  withSecret,
			want: []string{`t.yaml:4:11: policy[1].name: route name "a" is used twice`},
		},
		{
			name: "a route boolean that is not a boolean is reported once",
			src:  "policy:\n  - from: http://a.example\n    allow_any_authenticated_user: perhaps\n",
			env:  withSecret,
			want: []string{`t.yaml:3:35: policy[0].allow_any_authenticated_user: must be true or false, found "perhaps"`},
		},
		{
			name: "route headers given as a list are refused",
			src:  "policy:\n  - from: http://a.example\n    set_request_headers: [a]\n",
			env:  withSecret,
			want: []string{`t.yaml:3:26: policy[0].set_request_headers: must be a mapping of names to values, found a list`},
		},
		{
			name: "a list at the top level is refused",
			src:  "- a\n- b\n",
			env:  withSecret,
			want: []string{`t.yaml:1:1: the top level must be a mapping of keys (shared_secret: ..., policy: ...), found a list`},
		},
		{
			name: "a yaml syntax error is reported at its line",
			src:  "cookie_name: a\npolicy: [\n",
			env:  withSecret,
			want: []string{`t.yaml:2: invalid YAML: did not find expected node content`},
		},
		{
			name: "a second yaml document is refused",
			src:  "cookie_name: a\n---\ncookie_name: b\n",
			env:  withSecret,
			want: []string{`t.yaml:2:1: a second YAML document: the config is a single document`},
		},
		{
			name: "a merge key of a string is refused",
			src:  "<<: abc\n",
			env:  withSecret,
			want: []string{`t.yaml:1:5: a merge key (<<) must merge a mapping or a list of mappings`},
		},
		// What yaml.v3's own decoding (Decoder.KnownFields into the Config
		// structs) would lose, and why the config is walked node by node
		// (yamlnodes.go): it drops a mapping at its first duplicate key, its
		// errors carry a line but no column, and a bad merge key is fatal
		// and unlocated. Each of these four cases fails under such a decoder.
		{
			name: "a duplicate top-level key does not hide the other keys' problems or the secret",
			src:  "shared_secret: " + validSecret + "\ncookie_name: a\ncookie_name: b\nbogus: 1\n",
			want: []string{
				`t.yaml:3:1: cookie_name: is set twice; the first is on line 2`,
				`t.yaml:4:1: bogus: unknown key "bogus"`,
			},
		},
		{
			name: "a duplicate key in a route keeps the route and checks the rest of it",
			src:  "policy:\n  - from: http://a.example\n    from: http://b.example\n    frm: x\n",
			env:  withSecret,
			want: []string{
				`t.yaml:3:5: policy[0].from: is set twice; the first is on line 2`,
				`t.yaml:4:5: policy[0].frm: unknown key "frm" (did you mean "from"?)`,
			},
		},
		{
			name: "two routes on one line are told apart by column",
			src:  "policy: [{from: http://a.example, frm: x}, {from: http://b.example, frm: y}]\n",
			env:  withSecret,
			want: []string{
				`t.yaml:1:35: policy[0].frm: unknown key "frm" (did you mean "from"?)`,
				`t.yaml:1:69: policy[1].frm: unknown key "frm" (did you mean "from"?)`,
			},
		},
		{
			name: "a bad merge key is located and does not stop the rest",
			src:  "<<: abc\nbogus: 1\n",
			env:  withSecret,
			want: []string{
				`t.yaml:1:5: a merge key (<<) must merge a mapping or a list of mappings`,
				`t.yaml:2:1: bogus: unknown key "bogus"`,
			},
		},
		{
			name: "an invalid environment value is reported with its variable",
			src:  "",
			env:  map[string]string{"SHARED_SECRET": validSecret, "COOKIE_EXPIRE": "soon"},
			want: []string{`env: COOKIE_EXPIRE: must be a duration such as "30m" or "14h" (units h, m, s, ms), found "soon"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemsOf(t, tt.src, tt.env)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseReportsAllProblemsAtOnce(t *testing.T) {
	src := `shared_secret: ` + shortSecret + `
cookie_expire: 30
unknown_thing: true
administrators: [bob]
policy:
  - name: app
    from: ftp://app.example
    prefix: nope
  - name: app
    from: http://other.example
    bogus: 1
grpc_address: nowhere
`
	want := []string{
		`t.yaml:1:16: shared_secret: decodes to 16 bytes, need at least 32`,
		`t.yaml:2:16: cookie_expire: must be a duration such as "30m" or "14h" (units h, m, s, ms), found "30" (missing unit)`,
		`t.yaml:3:1: unknown_thing: unknown key "unknown_thing"`,
		`t.yaml:4:18: administrators[0]: "bob" is not an email`,
		`t.yaml:7:11: policy[0].from: "ftp://app.example" must be an http or https URL`,
		`t.yaml:8:13: policy[0].prefix: "nope" must start with /`,
		`t.yaml:9:11: policy[1].name: route name "app" is used twice`,
		`t.yaml:11:5: policy[1].bogus: unknown key "bogus"`,
		`t.yaml:12:15: grpc_address: must be host:port, such as 127.0.0.1:9191 or :9191, found "nowhere"`,
	}
	got := problemsOf(t, src, nil)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	_, err := Parse([]byte(src), "t.yaml", nil)
	if n := strings.Count(err.Error(), "\n") + 1; n != len(want) {
		t.Errorf("Problems.Error() has %d lines, want one per problem (%d)", n, len(want))
	}
}

func TestProblemRendersOnlyWhatIsKnown(t *testing.T) {
	tests := []struct {
		name string
		p    Problem
		want string
	}{
		{"a full problem reads file:line:col: key: msg", Problem{"a.yaml", 3, 7, "k", "bad"}, "a.yaml:3:7: k: bad"},
		{"a problem without a column leaves it out", Problem{"a.yaml", 3, 0, "k", "bad"}, "a.yaml:3: k: bad"},
		{"a problem without a line leaves both out", Problem{"env", 0, 0, "COOKIE_NAME", "bad"}, "env: COOKIE_NAME: bad"},
		{"a problem without a key leaves it out", Problem{"a.yaml", 1, 1, "", "bad"}, "a.yaml:1:1: bad"},
		{"a problem without a file says config", Problem{Msg: "bad"}, "config: bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestProblemsNeverQuoteASecret(t *testing.T) {
	secrets := map[string]string{
		"shared_secret":           "c2VjcmV0LXRleHQ=",
		"previous_shared_secrets": "[c2VjcmV0LXRleHQ=]",
		"signing_key":             "c2VjcmV0LXRleHQ=",
		"previous_signing_keys":   "[c2VjcmV0LXRleHQ=]",
		"idp_client_secret":       "c2VjcmV0LXRleHQ=",
	}
	for key, val := range secrets {
		t.Run("a bad "+key+" is not quoted in its problem", func(t *testing.T) {
			for _, p := range problemsOf(t, key+": "+val+"\n", map[string]string{}) {
				if strings.Contains(p, "c2VjcmV0LXRleHQ") {
					t.Errorf("problem quotes the secret: %s", p)
				}
			}
		})
		t.Run("a bad "+strings.ToUpper(key)+" is not quoted in its problem", func(t *testing.T) {
			for _, p := range problemsOf(t, "", map[string]string{strings.ToUpper(key): "c2VjcmV0LXRleHQ="}) {
				if strings.Contains(p, "c2VjcmV0LXRleHQ") {
					t.Errorf("problem quotes the secret: %s", p)
				}
			}
		})
	}
}

func TestProblemsStopAtAThousand(t *testing.T) {
	src := "administrators: [" + strings.Repeat("nobody, ", 1500) + "]\n"
	got := problemsOf(t, src, withSecret)
	if len(got) != maxProblems+1 {
		t.Fatalf("%d problems, want %d and a last one saying it stopped", len(got), maxProblems+1)
	}
	if last := got[len(got)-1]; last != "t.yaml: too many problems; stopped after 1000" {
		t.Errorf("last problem %q", last)
	}
}
