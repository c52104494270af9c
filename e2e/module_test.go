package e2e_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/store/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
)

// The module deployment (issue 20): the same cases as through the sidecar,
// with the decision inside Envoy (envoy/envoy-module.yaml loading
// libextauthz.so) and the sidecar serving only the pages. Like a second
// replica, the module shares a redis-server and the signing_key with it.

// allowUnderscores lets header names with "_" through, as users' own Envoy
// configs may (the bundled ones reject them).
var allowUnderscores = []string{"headers_with_underscores_action: REJECT_REQUEST", "headers_with_underscores_action: ALLOW"}

// storeConfig is the config lines that share a redis-server, as the module
// requires.
func storeConfig(redis *redistest.Server) string {
	return "databroker_storage_type: redis\ndatabroker_storage_connection_string: " + redis.URL() + "\n"
}

// startModule puts an Envoy running envoy-module.yaml on the stack's config,
// changed as writeModuleConfig's pairs say, in front of it.
func (s *stack) startModule(t *testing.T, p ports, pairs ...string) {
	t.Helper()
	s.envoy = envoytest.Start(t, envoytest.Options{ConfigPath: envoytest.WriteModuleConfig(t, s.config, pairs...),
		ListenPort: p.listen, GRPCPort: p.grpc, HTTPPort: p.http, UpstreamPort: p.upstream, Env: envoytest.ModuleEnv(t)})
	s.module = true
}

// startModuleStack is startStack with the decision in Envoy: the demo config
// on a redis-server, the sidecar serving its pages, Envoy the module.
func startModuleStack(t *testing.T) *stack {
	t.Helper()
	s, _ := startModuleStackWith(t)
	return s
}

// deployments are the two ways to run extauthz in front of Envoy; the
// end-to-end cases run through both and expect the same answers.
var deployments = []struct {
	name  string
	start func(t *testing.T) *stack
}{
	{"the sidecar over ext_authz", startStack},
	{"the module inside Envoy", startModuleStack},
}

// TestModuleFailsClosed: what the module does when it cannot decide.
func TestModuleFailsClosed(t *testing.T) {
	envoytest.RequireBinary(t)
	p := freePorts(t)
	t.Run("a module whose store was never read answers 503 and lets nothing through", func(t *testing.T) {
		// Nothing listens on the store's port.
		config, secret := testkit.DemoConfig(t, p.listen, p.grpc, p.http,
			fmt.Sprintf("databroker_storage_type: redis\ndatabroker_storage_connection_string: redis://127.0.0.1:%d/0\n", envoytest.FreePort(t)))
		startEcho(t, p.upstream)
		s := &stack{secret: secret, config: testkit.WriteFile(t, "config.yaml", config)}
		s.startModule(t, p)
		bob := s.mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"},
			RegisteredClaims: jwt.RegisteredClaims{Subject: "u-bob"}})
		for _, host := range []string{"app.localhost", "public.localhost"} {
			resp, body := s.do(t, "GET", host, "/headers", "Authorization: Pomerium "+bob)
			if resp.StatusCode != 503 || strings.Contains(body, `"method"`) {
				t.Errorf("%s: %d %s, want 503 and no upstream answer", host, resp.StatusCode, body)
			}
			// The sidecar's own answer while it waits for its store (check.Server.NotReady).
			if resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, check.ReasonStarting) {
				t.Errorf("%s: Retry-After %q, body %q; want the not-ready answer", host, resp.Header.Get("Retry-After"), body)
			}
		}
		if log := s.envoy.Stderr(); !strings.Contains(log, "the shared store was not read in full yet") {
			t.Errorf("the module did not say why it answers 503:\n%s", log)
		}
	})

	t.Run("a config the module cannot serve keeps Envoy from starting, and says why", func(t *testing.T) {
		// The demo config as is: a memory store, which the sidecar alone can serve.
		config, _ := testkit.DemoConfig(t, p.listen, p.grpc, p.http, "")
		path := testkit.WriteFile(t, "config.yaml", config)
		_, err := envoytest.Launch(envoytest.Options{ConfigPath: envoytest.WriteModuleConfig(t, path), Env: envoytest.ModuleEnv(t)})
		if err == nil {
			t.Fatal("Envoy started with a module that cannot serve its config")
		}
		if !strings.Contains(err.Error(), "databroker_storage_type must be redis") {
			t.Errorf("Envoy's log does not say why:\n%v", err)
		}
	})
}

// TestModuleFollowsTheSidecar: the module decides with what the sidecar's
// side changes: a revocation recorded in the shared store, the config file,
// and the policy route each Envoy route names.
func TestModuleFollowsTheSidecar(t *testing.T) {
	s := startModuleStack(t)
	bob := func(jti string) string {
		return s.mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"},
			RegisteredClaims: jwt.RegisteredClaims{Subject: "u-bob", ID: jti}})
	}
	status := func(host, token string) func() int {
		return func() int {
			resp, _ := s.do(t, "GET", host, "/", "Authorization: Pomerium "+token)
			return resp.StatusCode
		}
	}

	t.Run("a user revoked through the sidecar's store is refused by the module within seconds", func(t *testing.T) {
		carol := s.mint(t, identity.Claims{Email: "carol@corp.example", Groups: []string{"engineering"}})
		if got := status("app.localhost", carol)(); got != 200 {
			t.Fatalf("before the revocation: %d, want 200", got)
		}
		time.Sleep(time.Second) // a revocation covers tokens issued up to its second
		if code, out := revoke(t, s.config, nil, "--email", "carol@corp.example"); code != 0 {
			t.Fatalf("extauthz revoke: exit %d\n%s", code, out)
		}
		if !waitFor(5*time.Second, func() bool { return status("app.localhost", carol)() == 401 }) {
			t.Errorf("the module still lets the revoked user in: %d", status("app.localhost", carol)())
		}
	})

	t.Run("a change to the config file is in force in the module without a restart", func(t *testing.T) {
		tok := bob("jti-reloaded")
		if got := status("app.localhost", tok)(); got != 200 {
			t.Fatalf("before the change: %d, want 200", got)
		}
		f, err := os.OpenFile(s.config, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("revoked_token_ids: [jti-reloaded]\n"); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if !waitFor(10*time.Second, func() bool { return status("app.localhost", tok)() == 401 }) {
			t.Errorf("the module did not reload: %d, want 401", status("app.localhost", tok)())
		}
		if got := status("app.localhost", bob(""))(); got != 200 {
			t.Errorf("another token after the reload: %d, want 200", got)
		}
	})

	t.Run("the policy route is the one the Envoy route's metadata names, not the host's", func(t *testing.T) {
		// The wiki virtual host named as the admin route: bob, whom wiki
		// allows (corp.example), is now refused by admin's policy.
		p := freePorts(t)
		config, secret := testkit.DemoConfig(t, p.listen, p.grpc, p.http, storeConfig(redistest.Start(t)))
		m := startSidecar(t, config, secret, p)
		tok := m.mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}})
		m.startModule(t, p)
		if resp, body := m.do(t, "GET", "wiki.localhost", "/", "Authorization: Pomerium "+tok); resp.StatusCode != 200 {
			t.Fatalf("wiki as itself: %d %s", resp.StatusCode, body)
		}
		m.envoy.Close()
		m.startModule(t, p, "extauthz: { route: wiki }", "extauthz: { route: admin }")
		resp, body := m.do(t, "GET", "wiki.localhost", "/", "Authorization: Pomerium "+tok)
		if resp.StatusCode != 403 || !strings.Contains(body, `route "admin"`) {
			t.Errorf("wiki named admin: %d %s, want admin's 403", resp.StatusCode, body)
		}
	})
}

// TestModuleUnderConcurrency: Envoy's two workers call into the Go runtime
// at once, many streams each; every request gets its own answer (no state
// leaks between streams, no crash, no request lost).
func TestModuleUnderConcurrency(t *testing.T) {
	s := startModuleStack(t)
	users := []string{"bob", "carol", "dave", "erin"}
	tokens := map[string]string{}
	for _, u := range users {
		tokens[u] = s.mint(t, identity.Claims{Email: u + "@corp.example", Groups: []string{"engineering"}})
	}
	const clients, each = 16, 60
	errs := make(chan error, clients*each)
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				u := users[(c+i)%len(users)]
				host, auth, want := "app.localhost", "Pomerium "+tokens[u], 200 // allowed: the app sees this request's user
				switch i % 3 {
				case 1:
					host, want = "admin.localhost", 403 // refused by the policy
				case 2:
					auth, want = "", 401 // no token
				}
				req, _ := http.NewRequest("GET", s.envoy.URLFor(host)+"/", nil)
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				resp, err := s.envoy.Client().Do(req)
				if err != nil {
					errs <- err
					continue
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body := string(raw)
				switch {
				case resp.StatusCode != want:
					errs <- fmt.Errorf("%s %s: %d, want %d: %s", u, host, resp.StatusCode, want, body)
				case want == 200 && !strings.Contains(body, `"x-pomerium-claim-email":"`+u+`@corp.example"`):
					errs <- fmt.Errorf("%s's request reached the app as someone else: %s", u, body)
				case want != 200 && !strings.Contains(body, resp.Header.Get("X-Request-Id")):
					errs <- fmt.Errorf("%s %s: the body does not carry its own request id: %s", u, host, body)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 0 {
		t.Errorf("%d of %d requests got another answer", n, clients*each)
	}
	if log := s.envoy.Stderr(); strings.Contains(log, "panic") || strings.Contains(log, "fatal error") {
		t.Errorf("the module panicked or crashed:\n%s", log)
	}
}

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}
