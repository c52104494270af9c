package hostile_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/config"
)

// validConfig is configYAML as lines, for cases that break one thing.
func withExtra(extra string) string { return configYAML() + extra }

func route(lines string) string {
	return configYAML() + "  - name: extra\n" + lines
}

func TestHostileConfigs(t *testing.T) {
	bomb := "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
	prev := "a"
	for i := range 9 {
		name := string(rune('b' + i))
		bomb += fmt.Sprintf("%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n", name, name, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = name
	}
	rsaPEM := "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm\no3qGy0t6z09AIJtH+5OeRV1be+N4cDYJKffGzDa88vQENZiRm0GRq6a+HPGQMd2k\nTQIhAKMSvzIBnni7ot/OSie2TmJLY4SwTQAevXysE2RbFDYdAiEBCUEaRQnMnbp7\n9mxDXDf6AU0cN/RPBjb9qSHDcWZHGzUCIG2Es59z8ugGrDY+pxLQnwfotadxd+Uy\nv/Ow5T0q5gIJAiEAyS4RaI9YG8EWx/2w0T67ZUVAw8eOMB6BIUg0Xcu+3okCIBOs\n/5OiPgoTdSy7bcF9IGpSE8ZgGKzgYQVZeN97YE00\n-----END RSA PRIVATE KEY-----\n"
	cases := []struct {
		name string
		doc  string
		env  map[string]string
	}{
		{name: "a billion-laughs alias bomb", doc: bomb},
		{name: "lists nested 100000 deep", doc: "policy: " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n"},
		{name: "maps nested 10000 deep", doc: strings.Repeat("{a: ", 10000) + "1" + strings.Repeat("}", 10000) + "\n"},
		{name: "a document over 4 MiB", doc: withExtra("# " + strings.Repeat("x", config.MaxSize))},
		{name: "NUL bytes", doc: "shared_secret: \x00\x00\n"},
		{name: "bytes that are not UTF-8", doc: "shared_secret: \xff\xfe\n"},
		{name: "a YAML syntax error", doc: "shared_secret: [\n"},
		{name: "tabs for indentation", doc: "policy:\n\t- from: https://x.example\n"},
		{name: "a top-level scalar", doc: "just a string\n"},
		{name: "a top-level list", doc: "- shared_secret: x\n"},
		{name: "a custom tag", doc: withExtra("cookie_name: !!python/object:os.system [\"id\"]\n")},
		{name: "a merge key that smuggles in an unknown key", doc: withExtra("<<: {alowed_everyone: true}\n")},
		{name: "an empty document", doc: ""},
		{name: "shared_secret too short", doc: strings.Replace(configYAML(), secret, base64.StdEncoding.EncodeToString([]byte("short")), 1)},
		{name: "shared_secret not base64", doc: strings.Replace(configYAML(), secret, "this is not base64 at all, but long enough to pass", 1)},
		{name: "shared_secret twice", doc: withExtra("shared_secret: " + secret + "\n")},
		{name: "a typo in an allow rule (alowed_users)", doc: route("    from: https://x.corp.example\n    alowed_users: [bob@corp.example]\n")},
		{name: "a typo in a top-level key (administratros)", doc: withExtra("administratros: [mallory@corp.example]\n")},
		{name: "allow_public_unauthenticated_access as a phrase", doc: route("    from: https://x.corp.example\n    allow_public_unauthenticated_access: \"yes please\"\n")},
		{name: "a route from javascript:", doc: route("    from: javascript:alert(1)\n")},
		{name: "a route from without a host", doc: route("    from: https://\n")},
		{name: "a route regex that does not compile", doc: route("    from: https://x.corp.example\n    regex: \"([\"\n    allow_any_authenticated_user: true\n")},
		{name: "a route that sets the assertion header", doc: route("    from: https://x.corp.example\n    allow_any_authenticated_user: true\n    set_request_headers: {X-Pomerium-Jwt-Assertion: forged}\n")},
		{name: "a route that sets :authority", doc: route("    from: https://x.corp.example\n    allow_any_authenticated_user: true\n    set_request_headers: {\":authority\": evil.example}\n")},
		{name: "an administrator that is not an email", doc: withExtra("administrators: [\"*\"]\n")},
		{name: "a cookie name with attributes", doc: withExtra("cookie_name: \"_pomerium; Domain=evil.example\"\n")},
		{name: "an RSA signing key", doc: withExtra("signing_key: " + base64.StdEncoding.EncodeToString([]byte(rsaPEM)) + "\n")},
		{name: "a signing key that is not a key", doc: withExtra("signing_key: bm90IGEga2V5\n")},
		{name: "a negative max_service_account_lifetime", doc: withExtra("max_service_account_lifetime: -1h\n")},
		{name: "an empty revoked token id", doc: strings.Replace(configYAML(), "[revoked-jti]", "[revoked-jti, \"\"]", 1)},
		{name: "an unknown impersonation_default_access", doc: withExtra("impersonation_default_access: root\n")},
		{name: "a zero drain_timeout", doc: withExtra("drain_timeout: 0s\n")},
		{name: "a duration with an overflow", doc: withExtra("cookie_expire: 99999999999999999999h\n")},
		{name: "the same address for both listeners", doc: withExtra("grpc_address: 127.0.0.1:9000\nhttp_address: 127.0.0.1:9000\n")},
		{name: "POLICY in the environment that is not base64", doc: configYAML(), env: map[string]string{"POLICY": "%%%"}},
		{name: "SHARED_SECRET in the environment that is too short", doc: configYAML(), env: map[string]string{"SHARED_SECRET": "c2hvcnQ="}},
		{name: "COOKIE_SECURE in the environment that is not a boolean", doc: configYAML(), env: map[string]string{"COOKIE_SECURE": "maybe"}},
	}
	if len(cases) < 30 {
		t.Fatalf("only %d config cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name+" is refused", func(t *testing.T) {
			lookup := func(k string) (string, bool) {
				v, ok := c.env[k]
				return v, ok
			}
			start := time.Now()
			cfg, err := config.Parse([]byte(c.doc), "hostile.yaml", lookup)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Parse took %v", took)
			}
			if err == nil {
				t.Fatalf("accepted: %s", cfg)
			}
			var ps config.Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("refused with %T %v, want located problems", err, err)
			}
			for _, p := range ps {
				if p.File == "" || p.Msg == "" {
					t.Errorf("problem without a place or message: %+v", p)
				}
				if strings.Contains(p.Error(), secret) {
					t.Errorf("a problem quotes the shared secret: %s", p.Error())
				}
				if len(p.Error()) > 2000 {
					t.Errorf("a problem of %d bytes", len(p.Error()))
				}
			}
		})
	}
}
