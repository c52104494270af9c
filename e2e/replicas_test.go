package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/oidctest"
	"github.com/extauthz/extauthz/internal/store/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
)

// Two sidecar replicas share one real redis-server and sit behind one real
// Envoy whose extauthz_grpc and extauthz_http clusters have both as
// endpoints (round robin): what one replica does (a redeemed handoff, a
// revocation, a sign-out) is in force on the other, and the store failing
// fails no Check.

// replica is one sidecar process of the pair. The second listens on
// 127.0.0.2 with the first one's ports, so that Envoy's config can name both
// with the ports the test harness rewrites.
type replica struct {
	sidecar    *testkit.Sidecar
	ip         string
	grpc, http int
	check      authv3.AuthorizationClient
}

func (r *replica) httpAddr() string { return fmt.Sprintf("%s:%d", r.ip, r.http) }

type replicaStack struct {
	replicas [2]*replica
	redis    *redistest.Server
	envoy    *envoytest.Envoy
	provider *oidctest.Provider
	secret   string
	config   string // replica 0's config file, for `extauthz revoke`
	env      []string
	listen   int
}

// twoEndpoints gives the cluster whose only endpoint is 127.0.0.1:port a
// second one, 127.0.0.2:port (Envoy's default policy is round robin).
func twoEndpoints(t *testing.T, cfg string, port int) string {
	t.Helper()
	one := fmt.Sprintf("              - endpoint:\n                  address:\n                    socket_address: { address: 127.0.0.1, port_value: %d }\n", port)
	if strings.Count(cfg, one) != 1 {
		t.Fatalf("envoy/envoy.yaml no longer has one endpoint on port %d", port)
	}
	return strings.Replace(cfg, one, one+strings.Replace(one, "127.0.0.1", "127.0.0.2", 1), 1)
}

func startReplicas(t *testing.T) *replicaStack {
	t.Helper()
	envoytest.RequireBinary(t)
	redis := redistest.Start(t)
	p := freePorts(t)
	provider, config, secret := oidcConfig(t, p, demoUsers)
	// The connection string comes from the environment, as the README
	// recommends (it may hold a password).
	store := "databroker_storage_type: redis\nrevocation_ttl: 24h\n"
	t.Setenv("DATABROKER_STORAGE_CONNECTION_STRING", redis.URL())
	s := &replicaStack{redis: redis, provider: provider, secret: secret, listen: p.listen,
		env: append(os.Environ(), "DATABROKER_STORAGE_CONNECTION_STRING="+redis.URL())}
	first := startSidecar(t, config+store, secret, p)
	s.config = first.config
	s.replicas[0] = &replica{sidecar: first.sidecar, ip: "127.0.0.1", grpc: p.grpc, http: p.http}
	cfg2 := strings.NewReplacer(fmt.Sprintf("127.0.0.1:%d", p.grpc), fmt.Sprintf("127.0.0.2:%d", p.grpc),
		fmt.Sprintf("127.0.0.1:%d", p.http), fmt.Sprintf("127.0.0.2:%d", p.http)).Replace(config)
	// StartSidecar waits for 127.0.0.1's /healthz (the first replica's): wait for the second's below.
	second := &replica{sidecar: testkit.StartSidecar(t, binary, cfg2+store, p.http), ip: "127.0.0.2", grpc: p.grpc, http: p.http}
	s.replicas[1] = second
	deadline := time.Now().Add(15 * time.Second)
	for !healthy(second.httpAddr()) {
		if time.Now().After(deadline) {
			t.Fatalf("the second replica did not become ready:\n%s", second.sidecar.Logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, r := range s.replicas {
		conn, err := grpc.NewClient(fmt.Sprintf("%s:%d", r.ip, r.grpc), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		r.check = authv3.NewAuthorizationClient(conn)
	}

	src := envoytest.ReadConfig(t, "envoy.yaml")
	cfg := twoEndpoints(t, string(src), 9191)
	cfg = twoEndpoints(t, cfg, 9292)
	s.envoy = envoytest.Start(t, envoytest.Options{ConfigPath: testkit.WriteFile(t, "envoy-replicas.yaml", cfg), ListenPort: p.listen, GRPCPort: p.grpc,
		HTTPPort: p.http, UpstreamPort: p.upstream})
	return s
}

func (s *replicaStack) logs() string {
	return "--- replica 0:\n" + s.replicas[0].sidecar.Logs.String() + "--- replica 1:\n" + s.replicas[1].sidecar.Logs.String()
}

// browser reaches *.localhost through Envoy and the provider directly.
func (s *replicaStack) browser() *testkit.Browser {
	envoyAddr := fmt.Sprintf("127.0.0.1:%d", s.listen)
	return testkit.NewBrowser(func(host, _ string) string {
		if strings.HasSuffix(host, ".localhost") {
			return envoyAddr
		}
		return ""
	})
}

func (s *replicaStack) url(host, path string) string {
	return fmt.Sprintf("http://%s.localhost:%d%s", host, s.listen, path)
}

// signIn signs b in as user at the provider, through Envoy, to the app.
func (s *replicaStack) signIn(t *testing.T, b *testkit.Browser, user string) (int, string) {
	t.Helper()
	s.provider.AutoLogin(user)
	resp, body, _ := b.Browse(t, s.url("app", "/private"), nil, s.logs)
	return resp.StatusCode, body
}

// checkStatus asks replica r straight over gRPC about a GET of the app with
// token as the session cookie, as Envoy would; it returns the HTTP status of
// the answer (200 allowed).
func (s *replicaStack) checkStatus(ctx context.Context, r *replica, token string, browser bool) (int, error) {
	host := fmt.Sprintf("app.localhost:%d", s.listen)
	h := map[string]string{":authority": host, ":path": "/private", ":method": "GET", ":scheme": "http", "accept": "*/*"}
	if browser {
		h["accept"], h["cookie"] = "text/html", "_pomerium="+token
	} else {
		h["authorization"] = "Pomerium " + token
	}
	resp, err := r.check.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Id: "1", Method: "GET", Host: host, Path: "/private", Scheme: "http",
			Protocol: "HTTP/1.1", Headers: h}}}})
	if err != nil {
		return 0, err
	}
	if resp.GetStatus().GetCode() == 0 {
		return http.StatusOK, nil
	}
	return int(resp.GetDeniedResponse().GetStatus().GetCode()), nil
}

// refusedByBoth waits up to a second until both replicas refuse token.
func (s *replicaStack) refusedByBoth(t *testing.T, token string, browser bool) {
	t.Helper()
	start := time.Now()
	for _, r := range s.replicas {
		for {
			code, err := s.checkStatus(context.Background(), r, token, browser)
			if err != nil {
				t.Fatal(err)
			}
			if code != http.StatusOK {
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("replica on %s still allows the token %v after the revocation\n%s", r.ip, time.Since(start), s.logs())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("both replicas refuse it %v after the revocation", time.Since(start).Round(time.Millisecond))
}

// revoke runs `extauthz revoke --config config args...` with env (nil: this
// process's) and returns its exit code and output.
func revoke(t *testing.T, config string, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"revoke", "--config", config}, args...)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// mint is a session for the app host, issued a minute ago.
func (s *replicaStack) mint(t *testing.T, email, sid string) string {
	t.Helper()
	now := time.Now()
	c := &identity.Claims{Email: email, User: strings.Split(email, "@")[0], Groups: []string{"engineering"}, SID: sid}
	c.ID, c.Subject, c.Issuer = sid+"-jti", "sub-"+c.User, "authenticate.localhost"
	c.Audience = jwt.ClaimStrings{"app.localhost"}
	c.IssuedAt, c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)), jwt.NewNumericDate(now.Add(time.Hour))
	tok, err := identity.Mint(c, s.secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func sessionID(t *testing.T, tok string) string {
	t.Helper()
	var c identity.Claims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil {
		t.Fatal(err)
	}
	return c.SessionID()
}

var csrfInput = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

func TestReplicasThroughEnvoy(t *testing.T) {
	s := startReplicas(t)
	appCookie := func(b *testkit.Browser) string { return b.Cookie(s.url("app", "/"), "_pomerium") }

	t.Run("OIDC sign-in completes across the replicas, and a replayed handoff is refused by each", func(t *testing.T) {
		b := s.browser()
		s.provider.AutoLogin("bob")
		var handoff string
		resp, body, _ := b.Browse(t, s.url("app", "/private"), func(u *url.URL) bool {
			if u.Query().Get("pomerium_handoff") != "" {
				handoff = u.String()
				return true
			}
			return false
		}, s.logs)
		if handoff == "" {
			t.Fatalf("no handoff: %d %s", resp.StatusCode, body)
		}
		resp, body, _ = b.Browse(t, handoff, nil, s.logs)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"bob@corp.example"`) {
			t.Fatalf("sign-in did not reach the app: %d %s", resp.StatusCode, body)
		}
		// The replay, straight to each replica's pages.
		u, _ := url.Parse(handoff)
		for _, r := range s.replicas {
			req, _ := http.NewRequest(http.MethodGet, "http://"+r.httpAddr()+u.RequestURI(), nil)
			req.Host = u.Host
			req.Header.Set("Accept", "text/html")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(page), "already used") {
				t.Errorf("replayed handoff on the replica at %s: %d\n%s", r.httpAddr(), resp.StatusCode, page)
			}
		}
		// The session works whichever replica Envoy asks.
		for i := range 4 {
			resp, body, _ := b.Browse(t, s.url("app", "/private"), nil, s.logs)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("request %d with the session: %d %s", i, resp.StatusCode, body)
			}
		}
		// Envoy spread both the pages and the Checks over both replicas.
		resp, err := http.Get(s.envoy.AdminURL() + "/clusters")
		if err != nil {
			t.Fatal(err)
		}
		clusters, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, cluster := range []string{"extauthz_http", "extauthz_grpc"} {
			for _, r := range s.replicas {
				port := r.http
				if cluster == "extauthz_grpc" {
					port = r.grpc
				}
				m := regexp.MustCompile(regexp.QuoteMeta(fmt.Sprintf("%s::%s:%d::rq_total::", cluster, r.ip, port)) + `(\d+)`).FindSubmatch(clusters)
				if m == nil || string(m[1]) == "0" {
					t.Errorf("Envoy sent no request of %s to the replica on %s", cluster, r.ip)
				}
			}
		}
	})

	t.Run("revoking a session id from the CLI is refused by both replicas within a second", func(t *testing.T) {
		b := s.browser()
		if code, body := s.signIn(t, b, "bob"); code != http.StatusOK {
			t.Fatalf("sign-in: %d %s", code, body)
		}
		tok := appCookie(b)
		if code, out := revoke(t, s.config, s.env, "--sid", sessionID(t, tok)); code != 0 {
			t.Fatalf("revoke exited %d: %s", code, out)
		}
		s.refusedByBoth(t, tok, true)
		if resp, _, _ := b.Browse(t, s.url("app", "/private"), func(*url.URL) bool { return true }, s.logs); resp.StatusCode != http.StatusFound {
			t.Errorf("the revoked session through Envoy: %d, want a sign-in redirect", resp.StatusCode)
		}
	})

	t.Run("revoking a user by email from the CLI is refused by both replicas within a second", func(t *testing.T) {
		tok := s.mint(t, "carol@corp.example", "carol-session")
		for _, r := range s.replicas {
			if code, err := s.checkStatus(context.Background(), r, tok, false); err != nil || code != http.StatusOK {
				t.Fatalf("before: %d %v", code, err)
			}
		}
		if code, out := revoke(t, s.config, s.env, "--email", "Carol@corp.example"); code != 0 {
			t.Fatalf("revoke exited %d: %s", code, out)
		}
		s.refusedByBoth(t, tok, false)
	})

	t.Run("signing out on one replica makes a copied cookie useless on the other", func(t *testing.T) {
		b := s.browser()
		if code, body := s.signIn(t, b, "bob"); code != http.StatusOK {
			t.Fatalf("sign-in: %d %s", code, body)
		}
		tok := appCookie(b)
		if code, status := s.signOut(t, b); code != http.StatusSeeOther {
			t.Fatalf("sign-out: %d %s", code, status)
		}
		if appCookie(b) != "" {
			t.Error("sign-out left the session cookie")
		}
		s.refusedByBoth(t, tok, true)
	})

	t.Run("with Redis down for 5 s Checks all answer right, sign-in is 503, and after it revocations and sign-in work", func(t *testing.T) {
		valid := []string{s.mint(t, "dave@corp.example", "dave-1"), s.mint(t, "erin@corp.example", "erin-1")}
		revoked := []string{s.mint(t, "frank@corp.example", "frank-1"), s.mint(t, "carol@corp.example", "carol-2")}
		if code, out := revoke(t, s.config, s.env, "--sid", "frank-1"); code != 0 {
			t.Fatalf("revoke exited %d: %s", code, out)
		}
		s.refusedByBoth(t, revoked[0], false)

		ctx, cancel := context.WithCancel(context.Background())
		var checks, failed, wrong atomic.Int64
		var firstErr sync.Once
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					r := s.replicas[(w+i)%2]
					tok, want := valid[i%2], http.StatusOK
					if (i/2)%2 == 1 {
						tok, want = revoked[i%2], http.StatusUnauthorized
					}
					cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
					code, err := s.checkStatus(cctx, r, tok, false)
					ccancel()
					checks.Add(1)
					switch {
					case err != nil:
						failed.Add(1)
						firstErr.Do(func() { t.Errorf("a Check failed: %v", err) })
					case code != want:
						wrong.Add(1)
						firstErr.Do(func() { t.Errorf("a Check answered %d, want %d", code, want) })
					}
				}
			}()
		}
		time.Sleep(300 * time.Millisecond)
		s.redis.Kill()
		down := time.Now()

		// Meanwhile: sign-in cannot prove a handoff unused, and the CLI fails.
		time.Sleep(1500 * time.Millisecond) // the replicas notice within about a second
		if code, body := s.signIn(t, s.browser(), "alice"); code != http.StatusServiceUnavailable || !strings.Contains(body, "Try again") {
			t.Errorf("sign-in with Redis down: %d, want 503 with a page\n%s", code, body)
		}
		if code, out := revoke(t, s.config, s.env, "--sid", "during-outage"); code != 1 {
			t.Errorf("revoke with Redis down exited %d, want 1: %s", code, out)
		}
		for i, r := range s.replicas {
			if m := metricsOf(t, r.httpAddr()); !strings.Contains(m, "extauthz_store_up 0") {
				t.Errorf("replica %d does not export extauthz_store_up 0 during the outage", i)
			}
		}
		time.Sleep(time.Until(down.Add(5 * time.Second)))
		s.redis.Restart()
		time.Sleep(500 * time.Millisecond)
		cancel()
		wg.Wait()
		t.Logf("%d Checks during the outage: %d failed, %d wrong", checks.Load(), failed.Load(), wrong.Load())
		if failed.Load() != 0 || wrong.Load() != 0 || checks.Load() == 0 {
			t.Fatalf("%d Checks: %d failed, %d wrong answers", checks.Load(), failed.Load(), wrong.Load())
		}

		// Back: every replica reconnects and a new revocation reaches both.
		deadline := time.Now().Add(10 * time.Second)
		for i, r := range s.replicas {
			for !strings.Contains(metricsOf(t, r.httpAddr()), "extauthz_store_up 1") {
				if time.Now().After(deadline) {
					t.Fatalf("replica %d did not reconnect\n%s", i, s.logs())
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		if code, out := revoke(t, s.config, s.env, "--sid", "erin-1"); code != 0 {
			t.Fatalf("revoke after the outage exited %d: %s", code, out)
		}
		s.refusedByBoth(t, valid[1], false)
		for _, tok := range revoked {
			for _, r := range s.replicas {
				if code, err := s.checkStatus(context.Background(), r, tok, false); err != nil || code == http.StatusOK {
					t.Errorf("a revocation from before the outage was lost: %d %v", code, err)
				}
			}
		}
		b := s.browser()
		if code, body := s.signIn(t, b, "alice"); code != http.StatusForbidden && code != http.StatusOK {
			t.Errorf("sign-in after the outage: %d\n%s", code, body)
		}
		if appCookie(b) == "" {
			t.Error("sign-in after the outage set no session")
		}
	})
}

// signOut posts the sign-out form of the app host's dashboard through Envoy.
func (s *replicaStack) signOut(t *testing.T, b *testkit.Browser) (int, string) {
	t.Helper()
	resp, dash, _ := b.Browse(t, s.url("app", "/.pomerium/"), nil, s.logs)
	m := csrfInput.FindStringSubmatch(dash)
	if m == nil {
		t.Fatalf("no CSRF token on the dashboard (%d):\n%s", resp.StatusCode, dash)
	}
	token := strings.NewReplacer("&#43;", "+", "&#x2b;", "+", "&#x2f;", "/", "&#47;", "/", "&#61;", "=", "&#x3d;", "=", "&amp;", "&").Replace(m[1])
	req, _ := http.NewRequest(http.MethodPost, s.url("app", "/.pomerium/sign_out"), strings.NewReader(url.Values{"_csrf": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Origin", s.url("app", ""))
	out, err := b.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	body, _ := io.ReadAll(out.Body)
	return out.StatusCode, string(body)
}

func healthy(addr string) bool {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func metricsOf(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
