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

// The module's answer cache (docs/module.md, "The answer cache"): a request
// that repeats an earlier one exactly is answered in C without entering Go,
// and that must never change an answer. The module logs "decided in Go" at
// debug for every request Go decides, so these tests count what the cache
// answered.

// debugLog turns the module's debug log on, which counts requests decided in Go.
var debugLog = []string{"log_level: info", "log_level: debug"}

// startCachingModule is startModuleStack with the module's debug log on and
// the envoy-module.yaml pairs given after it.
func startCachingModule(t *testing.T, pairs ...string) *stack {
	t.Helper()
	s, _ := startModuleStackWith(t, append(debugLog, pairs...)...)
	return s
}

// decidedInGo is how many requests the module's Go side has decided. The
// line is written before the hook returns, so before Envoy answers.
func (s *stack) decidedInGo() int { return strings.Count(s.envoy.Stderr(), `"decided in Go"`) }

// repeat sends the same request n times with client, on one connection (so
// to one Envoy worker, whose cache it is), and returns each status and what the upstream
// saw of the allowed ones, and their claim email header.
func (s *stack) repeat(t *testing.T, client *http.Client, n int, host, path string, headers ...string) (codes []int, emails []string, seen []echoed) {
	t.Helper()
	for range n {
		req, err := http.NewRequest("GET", s.envoy.URLFor(host)+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range headers {
			k, v, _ := strings.Cut(h, ":")
			req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 200 {
			e := upstreamSaw(t, string(body))
			seen, emails = append(seen, e), append(emails, e.Headers["x-pomerium-claim-email"])
		}
	}
	return codes, emails, seen
}

func TestModuleAnswerCache(t *testing.T) {
	s := startCachingModule(t)
	person := func(email string, mod func(*identity.Claims)) string {
		c := identity.Claims{Email: email, Groups: []string{"engineering"},
			RegisteredClaims: jwt.RegisteredClaims{Subject: "u-" + strings.Split(email, "@")[0]}}
		if mod != nil {
			mod(&c)
		}
		return s.mint(t, c)
	}
	client := s.envoy.Client() // one connection: one worker's cache
	status := func(token string) int {
		codes, _, _ := s.repeat(t, client, 1, "app.localhost", "/", "Authorization: Pomerium "+token)
		return codes[0]
	}

	t.Run("a repeated request is answered from the cache, the same answer every time", func(t *testing.T) {
		bob := person("bob@corp.example", nil)
		before := s.decidedInGo()
		codes, emails, seen := s.repeat(t, client, 10, "app.localhost", "/headers", "Authorization: Pomerium "+bob)
		for i := range codes {
			if codes[i] != 200 || emails[i] != "bob@corp.example" {
				t.Fatalf("request %d: %d as %q, want 200 as bob", i, codes[i], emails[i])
			}
		}
		// On one connection, so one worker: the first decided, the rest replayed.
		if got := s.decidedInGo() - before; got != 1 {
			t.Errorf("%d of 10 identical requests were decided in Go, want the first only", got)
		}
		// A replayed assertion is the one Go signed: it verifies against the sidecar's JWKS.
		claims := s.verifyWithJWKS(t, seen[9].Headers["x-pomerium-jwt-assertion"])
		if claims["email"] != "bob@corp.example" || claims["aud"] != "app.localhost" {
			t.Errorf("the replayed assertion says %v", claims)
		}
	})

	t.Run("two users whose requests differ only by the token each get their own identity", func(t *testing.T) {
		// Names of one length: tokens of one length, so only their bytes differ.
		bob, bea := person("bob@corp.example", nil), person("bea@corp.example", nil)
		if len(bob) != len(bea) {
			t.Fatalf("tokens of %d and %d bytes, want one length", len(bob), len(bea))
		}
		for i := range 6 {
			for _, u := range []struct{ token, email string }{{bob, "bob@corp.example"}, {bea, "bea@corp.example"}} {
				_, emails, _ := s.repeat(t, client, 1, "app.localhost", "/same", "Authorization: Pomerium "+u.token)
				if len(emails) != 1 || emails[0] != u.email {
					t.Fatalf("round %d: %s's request reached the app as %v", i, u.email, emails)
				}
			}
		}
	})

	t.Run("a request with one header more is not served the other's answer", func(t *testing.T) {
		bob := person("bob@corp.example", nil)
		s.repeat(t, client, 3, "app.localhost", "/more", "Authorization: Pomerium "+bob)
		// The same request plus a header the answer must remove: decided
		// again, and the header removed.
		codes, _, seen := s.repeat(t, client, 1, "app.localhost", "/more", "Authorization: Pomerium "+bob, "X-Pomerium-Forged: ceo")
		if codes[0] != 200 {
			t.Fatalf("with the header: %d", codes[0])
		}
		if v, ok := seen[0].Headers["x-pomerium-forged"]; ok {
			t.Errorf("the app saw the client's x-pomerium-forged: %q (another request's answer was replayed)", v)
		}
	})

	t.Run("a request longer than the key's cap is decided in Go every time", func(t *testing.T) {
		bob := person("bob@corp.example", nil)
		// Past the key's cap (4 KiB) and the cache's whole scratch area: never copied.
		long := "X-Long: " + strings.Repeat("a", 45000)
		before := s.decidedInGo()
		codes, emails, _ := s.repeat(t, client, 3, "app.localhost", "/long", "Authorization: Pomerium "+bob, long)
		for i := range codes {
			if codes[i] != 200 || emails[i] != "bob@corp.example" {
				t.Fatalf("request %d: %d as %v, want 200 as bob", i, codes[i], emails)
			}
		}
		if got := s.decidedInGo() - before; got != 3 {
			t.Errorf("%d of 3 requests past the cap were decided in Go, want all 3", got)
		}
	})

	t.Run("a revocation refuses the very same repeated request within a second", func(t *testing.T) {
		dave := person("dave@corp.example", nil)
		for i := range 3 {
			if got := status(dave); got != 200 {
				t.Fatalf("request %d before the revocation: %d, want 200", i, got)
			}
		}
		time.Sleep(time.Second) // a revocation covers tokens issued up to its second
		if code, out := revoke(t, s.config, nil, "--email", "dave@corp.example"); code != 0 {
			t.Fatalf("extauthz revoke: exit %d\n%s", code, out)
		}
		if !waitFor(time.Second, func() bool { return status(dave) == 401 }) {
			t.Errorf("the repeated request is still let in a second after the revocation: %d", status(dave))
		}
	})

	t.Run("an impersonated request is audited every time it is repeated", func(t *testing.T) {
		aliceAsBob := s.mint(t, identity.Claims{Email: "alice@corp.example", User: "alice", Groups: []string{"admins"},
			RegisteredClaims: jwt.RegisteredClaims{Subject: "u-alice", ID: "jti-imp"},
			ImpersonateEmail: "bob@corp.example", ImpersonateGroups: []string{"engineering"}, ImpersonateReason: "ticket 9"})
		audited := func() int {
			n := 0
			for _, a := range s.auditEntries(t) {
				if a["token_id"] == "jti-imp" {
					n++
				}
			}
			return n
		}
		before := audited()
		codes, emails, _ := s.repeat(t, client, 5, "app.localhost", "/imp", "Authorization: Pomerium "+aliceAsBob)
		for i := range codes {
			if codes[i] != 200 || emails[i] != "bob@corp.example" {
				t.Fatalf("request %d: %d as %v, want 200 as bob", i, codes[i], emails)
			}
		}
		if got := audited() - before; got != 5 {
			t.Errorf("5 impersonated requests, %d audit entries", got)
		}
	})

	t.Run("a cached answer dies at the token's exp, and the token is refused when Go refuses it", func(t *testing.T) {
		// Valid for 2 s more: the second request is replayed, the one after
		// exp decided again (still allowed, within the verifier's leeway).
		exp := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
		short := person("erin@corp.example", func(c *identity.Claims) { c.ExpiresAt = jwt.NewNumericDate(exp) })
		before := s.decidedInGo()
		s.repeat(t, client, 2, "app.localhost", "/exp", "Authorization: Pomerium "+short)
		replayed := s.decidedInGo() - before
		// Past exp by 58 s: allowed by the 60 s leeway for 2 s more, never replayed.
		late := person("frank@corp.example", func(c *identity.Claims) {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-identity.MaxLeeway + 2*time.Second))
			c.IssuedAt = jwt.NewNumericDate(time.Now().Add(-5 * time.Minute))
		})
		if got := status(late); got != 200 {
			t.Fatalf("a token within its leeway: %d, want 200", got)
		}
		time.Sleep(time.Until(exp) + 100*time.Millisecond)
		before = s.decidedInGo()
		codes, _, _ := s.repeat(t, client, 1, "app.localhost", "/exp", "Authorization: Pomerium "+short)
		if codes[0] != 200 || s.decidedInGo()-before != 1 || replayed != 1 {
			t.Errorf("after exp: %d, %d decided in Go (before exp %d of 2); want 200 decided again, the first of 2 only",
				codes[0], s.decidedInGo()-before, replayed)
		}
		if !waitFor(5*time.Second, func() bool { return status(late) == 401 }) {
			t.Errorf("the repeated request with a token past its leeway is still let in: %d", status(late))
		}
	})

	t.Run("a config change that denies the route is in force on the repeated request", func(t *testing.T) {
		gina := person("gina@corp.example", nil)
		for range 3 {
			if got := status(gina); got != 200 {
				t.Fatalf("before the change: %d, want 200", got)
			}
		}
		raw, err := os.ReadFile(s.config)
		if err != nil {
			t.Fatal(err)
		}
		changed := strings.Replace(string(raw), "allowed_groups: [engineering]", "allowed_groups: [nobody]", 1)
		if changed == string(raw) {
			t.Fatal("the app route's allowed_groups is not in the config")
		}
		if err := os.WriteFile(s.config, []byte(changed), 0o600); err != nil {
			t.Fatal(err)
		}
		if !waitFor(10*time.Second, func() bool { return status(gina) == 403 }) {
			t.Errorf("the repeated request is still allowed after the route was closed: %d", status(gina))
		}
	})
}

// TestModuleAnswerCacheOff: answer_cache: false in the filter config sends
// every request to Go.
func TestModuleAnswerCacheOff(t *testing.T) {
	s := startCachingModule(t, "answer_cache: true", "answer_cache: false")
	bob := s.mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u-bob"}})
	before := s.decidedInGo()
	codes, _, _ := s.repeat(t, s.envoy.Client(), 5, "app.localhost", "/", "Authorization: Pomerium "+bob)
	if got := s.decidedInGo() - before; got != 5 || codes[4] != 200 {
		t.Errorf("with the cache off, %d of 5 identical requests were decided in Go (last %d), want 5", got, codes[4])
	}
}

// startModuleStackWith is startModuleStack with envoy-module.yaml changed by
// pairs (envoytest.ModuleConfig); it also returns the stack's ports.
func startModuleStackWith(t *testing.T, pairs ...string) (*stack, ports) {
	t.Helper()
	envoytest.RequireBinary(t)
	redis := redistest.Start(t)
	p := freePorts(t)
	config, secret := testkit.DemoConfig(t, p.listen, p.grpc, p.http, storeConfig(redis))
	s := startSidecar(t, config, secret, p)
	s.startModule(t, p, pairs...)
	return s, p
}
