package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzParse checks that no input makes Parse panic, and that a config it
// accepts is complete: a compiled policy and a signing key.
func FuzzParse(f *testing.F) {
	f.Add([]byte{}, "")
	f.Add(Example(), validSecret)
	f.Add(demoYAML, validSecret)
	f.Add([]byte("- a\n- b\n"), validSecret)
	f.Add([]byte("policy:\n  - &r\n    from: http://a.example\n  - <<: *r\n    name: b\n"), validSecret)
	f.Add([]byte("a: &a [*a]\nadministrators: *a\n"), validSecret)
	f.Add([]byte("jwt_claims_headers: {X-Email: email}\ncookie_expire: 1h\n"), shortSecret)
	f.Add([]byte("\x00\xff\xfe binary"), "")
	f.Add([]byte(strings.Repeat("[", 20000)), validSecret)
	f.Add([]byte("policy: &p [*p, {<<: *p}]\nset: &s {a: *s}\n"), validSecret)
	f.Add([]byte("policy: [&r {from: 'http://a', <<: *r, set_request_headers: &h {x: *h}}]\n"), validSecret)
	f.Add([]byte("? [a]\n: b\ncookie_secure: !!binary aGVsbG8=\n<<: *missing\n"), validSecret)
	f.Add([]byte("shared_secret: x\n---\n- 1\n"), "")
	if files, err := filepath.Glob("testdata/*.yaml"); err == nil {
		for _, name := range files {
			if data, err := os.ReadFile(name); err == nil {
				f.Add(data, "")
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, secretEnv string) {
		env := map[string]string{}
		if secretEnv != "" {
			env["SHARED_SECRET"] = secretEnv
		}
		// Go's fuzzer does not notice a hang: an input that takes this long
		// crashes the worker, which records it.
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("Parse hangs on %q", data)) })
		c, err := parse(data, "fuzz.yaml", envOf(env), loadOptions{}) // without Parse's recover
		watchdog.Stop()

		if err != nil {
			if c != nil {
				t.Fatal("a config came back with an error")
			}
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error is not a non-empty Problems: %v", err)
			}
			for _, p := range ps {
				if p.Msg == "" {
					t.Fatalf("problem without a message: %+v", p)
				}
			}
			return
		}
		if c.CompiledPolicy == nil || c.Key == nil || c.SharedSecret == "" {
			t.Fatalf("accepted config is incomplete: routes %v key %v", c.CompiledPolicy, c.Key)
		}
		if len(c.CompiledPolicy.Routes) != len(c.Policy) {
			t.Fatalf("%d routes compiled from %d specs", len(c.CompiledPolicy.Routes), len(c.Policy))
		}
		_ = c.String()
	})
}
