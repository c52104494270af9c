package config

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/policy"
	"github.com/extauthz/extauthz/internal/testkit"
)

func mustParse(t *testing.T, src string, env map[string]string) *Config {
	t.Helper()
	c, err := Parse([]byte(src), "t.yaml", envOf(env))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestDefaultsFillWhatIsUnset(t *testing.T) {
	c := mustParse(t, "shared_secret: "+validSecret+"\n", nil)
	checks := []struct {
		name      string
		got, want any
	}{
		{"the cookie is called _pomerium", c.CookieName, "_pomerium"},
		{"the cookie is secure", c.CookieSecureOrDefault(), true},
		{"the cookie lasts 14 hours", c.ExpireDuration(), 14 * time.Hour},
		{"the cookie has no domain", c.CookieDomain, ""},
		{"grpc listens on loopback 9191", c.GRPCAddress, "127.0.0.1:9191"},
		{"http listens on loopback 9292", c.HTTPAddress, "127.0.0.1:9292"},
		{"impersonation defaults to read_write", c.ImpersonationDefaultAccess, "read_write"},
		{"impersonation lasts 30 minutes", c.ImpersonationMaxDuration.Std(), 30 * time.Minute},
		{"impersonation requires a reason", c.ImpersonationRequireReasonOrDefault(), true},
		{"unverified email addresses are refused", c.IdpAllowUnverifiedEmail, false},
		{"drain waits 10 seconds", c.DrainTimeout.Std(), 10 * time.Second},
		{"service accounts have no lifetime limit", c.MaxServiceAccountLifetime.Std(), time.Duration(0)},
		{"there is no issuer", c.Issuer, ""},
		{"the signing key is generated", c.KeyGenerated, true},
		{"there are no routes", len(c.CompiledPolicy.Routes), 0},
		{"the source is the name given", c.Source, "t.yaml"},
		{"the secret is the only one", c.Secrets(), []string{validSecret}},
		{"the generated key is the only published one", len(c.SigningKeys()), 1},
	}
	for _, ch := range checks {
		t.Run(ch.name, func(t *testing.T) {
			if !reflect.DeepEqual(ch.got, ch.want) {
				t.Errorf("got %#v, want %#v", ch.got, ch.want)
			}
		})
	}
	t.Run("the pointer defaults are set so readers need not check nil", func(t *testing.T) {
		if c.CookieSecure == nil || c.ImpersonationRequireReason == nil {
			t.Error("a *bool default is still nil after Parse")
		}
	})
	t.Run("a zero config answers the defaults from its accessors", func(t *testing.T) {
		var z Config
		if !z.CookieSecureOrDefault() || !z.ImpersonationRequireReasonOrDefault() || z.ExpireDuration() != DefaultCookieExpire ||
			z.ImpersonationMaxDurationOrDefault() != DefaultImpersonationMaxDuration || z.DrainTimeoutOrDefault() != DefaultDrainTimeout {
			t.Error("a zero Config's accessors do not return the defaults")
		}
	})
}

func TestExplicitValuesWinOverDefaults(t *testing.T) {
	c := mustParse(t, `shared_secret: `+validSecret+`
cookie_name: _session
cookie_secure: false
cookie_expire: 1h
impersonation_require_reason: no
impersonation_default_access: read_only
drain_timeout: 1s
grpc_address: ":0"
http_address: ":0"
authenticate_service_url: https://Authenticate.Corp.Example:8443/path
idp_provider_url: https://idp.corp.example
idp_client_id: extauthz
idp_allow_unverified_email: true
`, nil)
	if c.CookieName != "_session" || c.CookieSecureOrDefault() || c.ExpireDuration() != time.Hour ||
		c.ImpersonationRequireReasonOrDefault() || c.ImpersonationDefaultAccess != "read_only" || c.DrainTimeout.Std() != time.Second ||
		!c.IdpAllowUnverifiedEmail {
		t.Errorf("explicit values were not kept: %+v", c)
	}
	if c.Issuer != "authenticate.corp.example" {
		t.Errorf("Issuer = %q, want the lower-case host without port", c.Issuer)
	}
}

func TestEnvironmentOverridesKeys(t *testing.T) {
	const idpKeys = "idp_provider_url: https://idp.corp.example\nidp_client_id: extauthz\n"
	routes := base64.StdEncoding.EncodeToString([]byte("- name: env\n  from: http://env.example\n  allowed_users: [a@b.c]\n"))
	tests := []struct {
		name  string
		src   string
		env   map[string]string
		check func(*Config) bool
	}{
		{"a scalar variable sets its key", "", map[string]string{"COOKIE_NAME": "_env"},
			func(c *Config) bool { return c.CookieName == "_env" }},
		{"a variable overrides the file's value", "cookie_name: _file\n", map[string]string{"COOKIE_NAME": "_env"},
			func(c *Config) bool { return c.CookieName == "_env" }},
		{"an empty variable counts as unset", "cookie_name: _file\n", map[string]string{"COOKIE_NAME": ""},
			func(c *Config) bool { return c.CookieName == "_file" }},
		{"a list variable is comma-separated", "administrators: [x@y.z]\n", map[string]string{"ADMINISTRATORS": " Alice@Corp.example, bob@corp.example ,"},
			func(c *Config) bool {
				return slices.Equal(c.Administrators, []string{"alice@corp.example", "bob@corp.example"})
			}},
		{"a duration variable is a go duration", "", map[string]string{"COOKIE_EXPIRE": "90m"},
			func(c *Config) bool { return c.ExpireDuration() == 90*time.Minute }},
		{"a boolean variable accepts false", "", map[string]string{"COOKIE_SECURE": "false"},
			func(c *Config) bool { return !c.CookieSecureOrDefault() }},
		{"IDP_ALLOW_UNVERIFIED_EMAIL turns the email check off", idpKeys, map[string]string{"IDP_ALLOW_UNVERIFIED_EMAIL": "true"},
			func(c *Config) bool { return c.IdpAllowUnverifiedEmail }},
		{"IDP_ALLOW_UNVERIFIED_EMAIL=false overrides the file's true", idpKeys + "idp_allow_unverified_email: true\n", map[string]string{"IDP_ALLOW_UNVERIFIED_EMAIL": "false"},
			func(c *Config) bool { return !c.IdpAllowUnverifiedEmail }},
		{"claim headers are comma-separated claims", "", map[string]string{"JWT_CLAIMS_HEADERS": "email, groups"},
			func(c *Config) bool {
				return slices.Equal(c.ClaimHeaders, []ClaimHeader{{"email", "x-pomerium-claim-email"}, {"groups", "x-pomerium-claim-groups"}}) &&
					slices.Equal(c.JWTClaimsHeaders, []string{"email", "groups"})
			}},
		{"previous secrets are comma-separated", "", map[string]string{"PREVIOUS_SHARED_SECRETS": validSecret + "," + validSecret},
			func(c *Config) bool { return len(c.Secrets()) == 3 }},
		{"policy is base64 of a yaml route list", "policy: [{name: file, from: http://file.example}]\n", map[string]string{"POLICY": routes},
			func(c *Config) bool {
				_, env := c.CompiledPolicy.Lookup("env")
				_, file := c.CompiledPolicy.Lookup("file")
				return env && !file && len(c.CompiledPolicy.Routes) == 1
			}},
		{"an environment value replaces a bad file value and its problem", "cookie_expire: 30\n", map[string]string{"COOKIE_EXPIRE": "2h"},
			func(c *Config) bool { return c.ExpireDuration() == 2*time.Hour }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.src, secretAnd(tt.env))
			if !tt.check(c) {
				t.Errorf("override not applied: %+v", c)
			}
		})
	}
}

func TestInvalidEnvironmentValuesAreProblemsOfTheirVariable(t *testing.T) {
	badRoute := base64.StdEncoding.EncodeToString([]byte("- name: x\n  from: ftp://x.example\n"))
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"a short secret names SHARED_SECRET", map[string]string{"SHARED_SECRET": shortSecret},
			[]string{`env: SHARED_SECRET: decodes to 16 bytes, need at least 32`}},
		{"a bad list entry names the list's variable", map[string]string{"ADMINISTRATORS": "alice@corp.example,bob"},
			[]string{`env: ADMINISTRATORS: "bob" is not an email`}},
		{"a bad boolean names its variable", map[string]string{"COOKIE_SECURE": "sometimes"},
			[]string{`env: COOKIE_SECURE: must be true or false, found "sometimes"`}},
		{"a bad IDP_ALLOW_UNVERIFIED_EMAIL names its variable", map[string]string{"IDP_ALLOW_UNVERIFIED_EMAIL": "yes please"},
			[]string{`env: IDP_ALLOW_UNVERIFIED_EMAIL: must be true or false, found "yes please"`}},
		{"a bad duration names its variable", map[string]string{"IMPERSONATION_MAX_DURATION": "1 hour"},
			[]string{`env: IMPERSONATION_MAX_DURATION: must be a duration such as "30m" or "14h" (units h, m, s, ms), found "1 hour"`}},
		{"a policy that is not base64 names POLICY", map[string]string{"POLICY": "- from: http://x"},
			[]string{`env: POLICY: must be base64 of a YAML list of routes; it is not valid base64`}},
		{"a bad route in POLICY is located in the decoded yaml", map[string]string{"POLICY": badRoute},
			[]string{`env:2:9: POLICY[0].from: "ftp://x.example" must be an http or https URL`}},
		{"an unknown key in POLICY is located in the decoded yaml", map[string]string{"POLICY": base64.StdEncoding.EncodeToString([]byte("- from: http://x.example\n  frm: 1\n"))},
			[]string{`env:2:3: POLICY[0].frm: unknown key "frm" (did you mean "from"?)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemsOf(t, "", secretAnd(tt.env))
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDemoIsReadyToServe(t *testing.T) {
	c, err := Demo()
	if err != nil {
		t.Fatalf("Demo: %v", err)
	}
	t.Run("it names itself the embedded demo", func(t *testing.T) {
		if c.Source != "embedded demo" {
			t.Errorf("Source = %q", c.Source)
		}
	})
	t.Run("it listens on loopback only", func(t *testing.T) {
		if c.GRPCAddress != "127.0.0.1:9191" || c.HTTPAddress != "127.0.0.1:9292" {
			t.Errorf("addresses %s, %s", c.GRPCAddress, c.HTTPAddress)
		}
	})
	t.Run("it has a fresh 32-byte secret and a configured key", func(t *testing.T) {
		raw, err := base64.StdEncoding.DecodeString(c.SharedSecret)
		if err != nil || len(raw) != 32 {
			t.Errorf("secret decodes to %d bytes (%v)", len(raw), err)
		}
		if c.Key == nil || c.KeyGenerated || c.SigningKey == "" {
			t.Errorf("key %v generated %t", c.Key, c.KeyGenerated)
		}
		again, err := Demo()
		if err != nil {
			t.Fatal(err)
		}
		if again.SharedSecret == c.SharedSecret || again.Key.ID == c.Key.ID {
			t.Error("two demos share a secret or a key")
		}
	})
	t.Run("it ignores the process environment", func(t *testing.T) {
		t.Setenv("COOKIE_NAME", "_from_env")
		d, err := Demo()
		if err != nil {
			t.Fatal(err)
		}
		if d.CookieName != "_pomerium" {
			t.Errorf("CookieName = %q", d.CookieName)
		}
	})
	t.Run("its cookie is not secure so plain http works", func(t *testing.T) {
		if c.CookieSecureOrDefault() {
			t.Error("cookie_secure is true")
		}
	})
	t.Run("alice administers and security is protected", func(t *testing.T) {
		if !slices.Equal(c.Administrators, []string{"alice@corp.example"}) || !slices.Equal(c.ImpersonationProtected, []string{"security@corp.example"}) {
			t.Errorf("administrators %v, protected %v", c.Administrators, c.ImpersonationProtected)
		}
	})
	t.Run("its issuer is the authenticate host", func(t *testing.T) {
		if c.AuthenticateServiceURL != "http://authenticate.localhost:8080" || c.Issuer != "authenticate.localhost" {
			t.Errorf("url %q issuer %q", c.AuthenticateServiceURL, c.Issuer)
		}
	})
	t.Run("it passes email and groups claims", func(t *testing.T) {
		want := []ClaimHeader{{"email", "x-pomerium-claim-email"}, {"groups", "x-pomerium-claim-groups"}}
		if !slices.Equal(c.ClaimHeaders, want) || !slices.Equal(c.JWTClaimsHeaders, []string{"email", "groups"}) {
			t.Errorf("claim headers %v (%v)", c.ClaimHeaders, c.JWTClaimsHeaders)
		}
	})
	routes := []struct {
		name, host string
		allowed    identity.Identity
		denied     identity.Identity
		public     bool
	}{
		{"app", "app.localhost", identity.Identity{Email: "bob@corp.example", Groups: []string{"engineering"}}, identity.Identity{Email: "eve@else.example"}, false},
		{"admin", "admin.localhost", identity.Identity{Email: "alice@corp.example", Groups: []string{"admins"}}, identity.Identity{Email: "bob@corp.example", Groups: []string{"engineering"}}, false},
		{"wiki", "wiki.localhost", identity.Identity{Email: "carol@corp.example"}, identity.Identity{Email: "eve@else.example"}, false},
		{"public", "public.localhost", identity.Identity{}, identity.Identity{}, true},
	}
	for _, r := range routes {
		t.Run("route "+r.name+" serves "+r.host, func(t *testing.T) {
			route, ok := c.CompiledPolicy.Lookup(r.name)
			if !ok {
				t.Fatalf("no route %q", r.name)
			}
			if m, ok := c.CompiledPolicy.Match(r.host+":8080", "/"); !ok || m != route {
				t.Errorf("%s does not match route %s", r.host, r.name)
			}
			if route.Public != r.public {
				t.Errorf("Public = %t", route.Public)
			}
			if !route.Evaluate(r.allowed).Allowed {
				t.Errorf("%+v is denied", r.allowed)
			}
			if !r.public && route.Evaluate(r.denied).Allowed {
				t.Errorf("%+v is allowed", r.denied)
			}
		})
	}
	t.Run("routes are in the demo's order", func(t *testing.T) {
		var names []string
		for _, r := range c.CompiledPolicy.Routes {
			names = append(names, r.Name)
		}
		if !slices.Equal(names, []string{"app", "admin", "wiki", "public"}) {
			t.Errorf("routes %v", names)
		}
	})
	t.Run("its description shows no secret", func(t *testing.T) {
		if s := c.String(); strings.Contains(s, c.SharedSecret) || strings.Contains(s, c.SigningKey) {
			t.Errorf("description leaks a secret:\n%s", s)
		}
	})
}

func TestExampleDocumentsEveryKeyAndParses(t *testing.T) {
	ex := Example()
	t.Run("it parses cleanly given a secret", func(t *testing.T) {
		c, err := Parse(ex, "example.yaml", envOf(withSecret))
		if err != nil {
			t.Fatalf("example has problems:\n%v", err)
		}
		if len(c.CompiledPolicy.Routes) == 0 || c.Issuer == "" || len(c.Administrators) == 0 {
			t.Errorf("example is thin: %s", c)
		}
	})
	t.Run("without a secret its only problem is the missing secret", func(t *testing.T) {
		got := problemsOf(t, string(ex), nil)
		if len(got) != 1 || !strings.Contains(got[0], "shared_secret: is required") {
			t.Errorf("problems: %v", got)
		}
	})
	t.Run("with its commented keys uncommented it still parses", func(t *testing.T) {
		_, enc := testkit.SigningKey(t)
		src := strings.NewReplacer(
			`# shared_secret: "<base64 of 32 random bytes>"`, "shared_secret: "+validSecret,
			"# previous_shared_secrets:\n#   - \"<the old shared_secret>\"", "previous_shared_secrets:\n  - "+validSecret,
			`# signing_key: "<base64 PEM>"`, "signing_key: "+enc,
			"# previous_signing_keys:\n#   - \"<the old signing_key>\"", "previous_signing_keys:\n  - "+enc,
			`# idp_client_secret: "<client secret>"`, "idp_client_secret: s",
		).Replace(string(ex))
		c := mustParse(t, src, nil)
		if c.SharedSecret != validSecret || c.KeyGenerated || c.IdpClientSecret != "s" || len(c.PreviousSharedSecrets) != 1 {
			t.Errorf("uncommented keys not read: %s", c)
		}
		if len(c.PreviousKeys) != 0 {
			t.Error("a previous key equal to the current one is published twice")
		}
	})
	text := string(ex)
	documented := func(key string) bool {
		return regexp.MustCompile(`(?m)^\s*(#\s*)?(-\s*)?` + regexp.QuoteMeta(key) + `:`).MatchString(text)
	}
	for _, f := range configFields.list {
		t.Run("it documents "+f.key, func(t *testing.T) {
			if !documented(f.key) {
				t.Errorf("example.yaml does not show %s", f.key)
			}
		})
	}
	for _, f := range routeFields.list {
		t.Run("it documents the route key "+f.key, func(t *testing.T) {
			if !documented(f.key) {
				t.Errorf("example.yaml does not show %s", f.key)
			}
		})
	}
	t.Run("it returns a copy callers may change", func(t *testing.T) {
		ex[0] = 'X'
		if Example()[0] == 'X' {
			t.Error("Example returned the embedded bytes")
		}
	})
}

func TestClaimHeadersAcceptPomeriumsForms(t *testing.T) {
	both := []ClaimHeader{{"email", "x-pomerium-claim-email"}, {"groups", "x-pomerium-claim-groups"}}
	tests := []struct {
		name string
		src  string
		want []ClaimHeader
	}{
		{"a list of claims gets x-pomerium-claim headers", "jwt_claims_headers: [email, groups]\n", both},
		{"a string of claims is split on commas and spaces", "jwt_claims_headers: email, groups\n", both},
		{"a mapping names each header for its claim", "jwt_claims_headers:\n  X-Email: email\n  X-Team: custom_team\n",
			[]ClaimHeader{{"email", "x-email"}, {"custom_team", "x-team"}}},
		{"a claim name keeps its case and the header is lower-cased", "jwt_claims_headers: [Department]\n",
			[]ClaimHeader{{"Department", "x-pomerium-claim-department"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.src, withSecret)
			if !slices.Equal(c.ClaimHeaders, tt.want) {
				t.Errorf("got %v, want %v", c.ClaimHeaders, tt.want)
			}
			var claims []string
			for _, h := range tt.want {
				claims = append(claims, h.Claim)
			}
			if !slices.Equal(c.JWTClaimsHeaders, claims) {
				t.Errorf("JWTClaimsHeaders = %v, want the claims %v", c.JWTClaimsHeaders, claims)
			}
		})
	}
	t.Run("the map form is also available keyed by claim", func(t *testing.T) {
		c := mustParse(t, "jwt_claims_headers: [email]\n", withSecret)
		if c.ClaimHeaderNames()["email"] != "x-pomerium-claim-email" {
			t.Errorf("ClaimHeaderNames = %v", c.ClaimHeaderNames())
		}
	})
}

func TestSigningKeys(t *testing.T) {
	k1, e1 := testkit.SigningKey(t)
	k2, e2 := testkit.SigningKey(t)
	t.Run("a configured key is parsed and not generated", func(t *testing.T) {
		c := mustParse(t, "signing_key: "+e1+"\n", withSecret)
		if c.KeyGenerated || c.Key.ID != k1.ID {
			t.Errorf("key %s generated %t", c.Key.ID, c.KeyGenerated)
		}
	})
	t.Run("previous keys are published after the current one without duplicates", func(t *testing.T) {
		c := mustParse(t, "signing_key: "+e1+"\nprevious_signing_keys: ["+e2+", "+e1+", "+e2+"]\n", withSecret)
		var ids []string
		for _, k := range c.SigningKeys() {
			ids = append(ids, k.ID)
		}
		if !slices.Equal(ids, []string{k1.ID, k2.ID}) {
			t.Errorf("published %v, want [%s %s]", ids, k1.ID, k2.ID)
		}
	})
	t.Run("a raw pem block is accepted as a block scalar", func(t *testing.T) {
		pemText, _ := base64.StdEncoding.DecodeString(e1)
		indented := "  " + strings.ReplaceAll(strings.TrimSpace(string(pemText)), "\n", "\n  ")
		c := mustParse(t, "signing_key: |\n"+indented+"\n", withSecret)
		if c.Key.ID != k1.ID {
			t.Error("PEM key not read")
		}
	})
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	t.Run("a route can merge another route's keys and override them", func(t *testing.T) {
		c := mustParse(t, `policy:
  - &base
    name: one
    from: http://one.example
    allowed_groups: [eng]
  - <<: *base
    name: two
    from: http://two.example
`, withSecret)
		two, ok := c.CompiledPolicy.Lookup("two")
		if !ok || two.Host != "two.example" || !two.Evaluate(identity.Identity{Groups: []string{"eng"}}).Allowed {
			t.Errorf("merged route wrong: %+v", two)
		}
	})
	t.Run("an alias reuses a list", func(t *testing.T) {
		c := mustParse(t, "administrators: &admins [a@corp.example]\nimpersonation_protected: *admins\n", withSecret)
		if !slices.Equal(c.ImpersonationProtected, []string{"a@corp.example"}) {
			t.Errorf("protected %v", c.ImpersonationProtected)
		}
	})
	t.Run("a billion laughs is refused quickly", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("administrators: &a0 [x@y.z, x@y.z, x@y.z, x@y.z, x@y.z, x@y.z, x@y.z, x@y.z, x@y.z, x@y.z]\n")
		b.WriteString("policy:\n  - &r0\n    from: http://a.example\n    allowed_users: *a0\n    allowed_groups: *a0\n")
		b.WriteString("  - &r1 {<<: [*r0, *r0, *r0, *r0, *r0, *r0, *r0, *r0, *r0, *r0]}\n")
		for i := 2; i < 9; i++ {
			b.WriteString("  - &r" + string(rune('0'+i)) + " {<<: [")
			for j := range 10 {
				if j > 0 {
					b.WriteString(", ")
				}
				b.WriteString("*r" + string(rune('0'+i-1)))
			}
			b.WriteString("]}\n")
		}
		start := time.Now()
		got := problemsOf(t, b.String(), withSecret)
		if len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), "too many aliases") {
			t.Errorf("problems %v", got)
		}
		if time.Since(start) > 10*time.Second {
			t.Errorf("took %v", time.Since(start))
		}
	})
	t.Run("a list of many aliased routes is refused by the alias budget", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("policy:\n  - &r\n    from: http://a.example\n    allowed_users: [")
		for j := range 1000 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("u@x.y")
		}
		b.WriteString("]\n")
		for range 2000 {
			b.WriteString("  - *r\n")
		}
		got := problemsOf(t, b.String(), withSecret)
		if len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), "too many aliases") {
			t.Errorf("problems %v", got)
		}
	})
	t.Run("a mapping merged into itself is refused", func(t *testing.T) {
		got := problemsOf(t, "policy:\n  - &r\n    from: http://a.example\n    <<: *r\n", withSecret)
		if len(got) == 0 {
			t.Error("accepted")
		}
	})
}

func TestOversizedDocumentsAreRefused(t *testing.T) {
	data := make([]byte, MaxSize+1)
	for i := range data {
		data[i] = '#'
	}
	_, err := Parse(data, "big.yaml", nil)
	if err == nil || err.Error() != "big.yaml: is larger than 4 MiB; refusing it" {
		t.Errorf("err = %v", err)
	}
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "larger than 4 MiB") {
		t.Errorf("Load err = %v", err)
	}
}

func TestLoad(t *testing.T) {
	t.Run("it reads a file and names it as the source", func(t *testing.T) {
		t.Setenv("SHARED_SECRET", "")
		c, err := Load("testdata/valid.yaml")
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if c.Source != "testdata/valid.yaml" || len(c.CompiledPolicy.Routes) != 2 {
			t.Errorf("source %q, %d routes", c.Source, len(c.CompiledPolicy.Routes))
		}
	})
	t.Run("it applies the process environment", func(t *testing.T) {
		t.Setenv("COOKIE_NAME", "_from_env")
		c, err := Load("testdata/valid.yaml")
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if c.CookieName != "_from_env" {
			t.Errorf("CookieName = %q", c.CookieName)
		}
	})
	t.Run("it reports every problem of an invalid file by its path", func(t *testing.T) {
		_, err := Load("testdata/invalid.yaml")
		var ps Problems
		if !errors.As(err, &ps) || len(ps) < 3 {
			t.Fatalf("err = %v", err)
		}
		for _, p := range ps {
			if p.File != "testdata/invalid.yaml" || p.Line == 0 {
				t.Errorf("problem without its place: %v", p)
			}
		}
	})
	t.Run("a missing file is a plain error", func(t *testing.T) {
		_, err := Load("testdata/does-not-exist.yaml")
		var ps Problems
		if err == nil || errors.As(err, &ps) || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1h30m")); err != nil || d.Std() != 90*time.Minute {
		t.Errorf("UnmarshalText: %v %v", d, err)
	}
	if b, _ := d.MarshalText(); string(b) != "1h30m0s" {
		t.Errorf("MarshalText = %s", b)
	}
	if err := d.UnmarshalText([]byte("1d")); err == nil {
		t.Error("1d accepted")
	}
}

// The decoder must follow policy.RouteSpec: every field it has is readable.
func TestEveryRouteFieldIsDecoded(t *testing.T) {
	c := mustParse(t, `policy:
  - name: all
    from: http://all.example
    prefix: /p
    allowed_users: [a@b.c]
    allowed_groups: [g]
    allowed_domains: [b.c]
    allow_any_authenticated_user: true
    pass_identity_headers: false
    set_request_headers: {X-A: "1"}
    remove_request_headers: [X-B]
  - from: http://pub.example
    path: /x
    allow_public_unauthenticated_access: true
  - from: http://re.example
    regex: /r/[0-9]+
`, withSecret)
	want := []policy.RouteSpec{{
		Name: "all", From: "http://all.example", Prefix: "/p", AllowedUsers: []string{"a@b.c"}, AllowedGroups: []string{"g"},
		AllowedDomains: []string{"b.c"}, AllowAnyAuthenticatedUser: true, PassIdentityHeaders: new(false),
		SetRequestHeaders: map[string]string{"X-A": "1"}, RemoveRequestHeaders: []string{"X-B"},
	}, {From: "http://pub.example", Path: "/x", AllowPublicUnauthenticatedAccess: true},
		{From: "http://re.example", Regex: "/r/[0-9]+"}}
	if !reflect.DeepEqual(c.Policy, want) {
		t.Errorf("routes\n%+v\nwant\n%+v", c.Policy, want)
	}
}
