package e2e_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/oidctest"
)

// oidcEnv is the sidecar with an identity provider, behind the real Envoy.
type oidcEnv struct {
	*stack
	provider *oidctest.Provider
	listen   int
}

// startOIDCStack runs an OpenID provider with users, the sidecar on
// oidcStackConfig (the routes' from written with Envoy's public port), the
// echo upstream and Envoy on the bundled config.
func startOIDCStack(t *testing.T, users ...oidctest.User) *oidcEnv {
	t.Helper()
	envoytest.RequireBinary(t)
	listen, grpcPort, httpPort, upstreamPort := envoytest.FreePort(t), envoytest.FreePort(t), envoytest.FreePort(t), envoytest.FreePort(t)
	provider := oidctest.Start(t, oidctest.Options{
		ClientID:     "extauthz",
		ClientSecret: "e2e-client-secret",
		RedirectURIs: []string{fmt.Sprintf("http://authenticate.localhost:%d/.pomerium/callback", listen)},
		Users:        users,
	})
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	key, err := identity.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	encodedKey, err := identity.EncodeSigningKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(oidcStackConfig, base64.StdEncoding.EncodeToString(raw), encodedKey, grpcPort, httpPort, listen, provider.Issuer)
	for _, host := range []string{"app", "admin", "wiki"} {
		cfg = strings.Replace(cfg, "from: http://"+host+".localhost\n", fmt.Sprintf("from: http://%s.localhost:%d\n", host, listen), 1)
	}
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	startEcho(t, upstreamPort)
	s := &stack{logs: &syncBuffer{}, done: make(chan struct{})}
	s.sidecar = exec.Command(binary, "serve", "--config", cfgPath, "--log-format", "json")
	s.sidecar.Stdout, s.sidecar.Stderr = s.logs, s.logs
	if err := s.sidecar.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.sidecar.Wait(); close(s.done) }()
	t.Cleanup(s.stopSidecar)
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", httpPort), s)
	s.envoy = envoytest.Start(t, envoytest.Options{ListenPort: listen, GRPCPort: grpcPort, HTTPPort: httpPort, UpstreamPort: upstreamPort})
	return &oidcEnv{stack: s, provider: provider, listen: listen}
}

// oidcBrowser keeps cookies, reaches *.localhost through Envoy and the
// provider directly, and follows redirects itself so that the chain is seen.
type oidcBrowser struct {
	t      *testing.T
	env    *oidcEnv
	jar    *cookiejar.Jar
	client *http.Client
}

func (e *oidcEnv) browser(t *testing.T) *oidcBrowser {
	jar, _ := cookiejar.New(nil)
	envoyAddr := fmt.Sprintf("127.0.0.1:%d", e.listen)
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, _ := net.SplitHostPort(addr); strings.HasSuffix(host, ".localhost") {
			addr = envoyAddr
		}
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &oidcBrowser{t: t, env: e, jar: jar, client: &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// browse GETs start as a browser would and follows redirects; it returns the
// last answer, its body and the URLs visited after start.
func (b *oidcBrowser) browse(start string) (*http.Response, string, []string) {
	b.t.Helper()
	next := start
	var chain []string
	for range 20 {
		req, _ := http.NewRequest(http.MethodGet, next, nil)
		req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
		resp, err := b.client.Do(req)
		if err != nil {
			b.t.Fatalf("GET %s: %v\nsidecar:\n%s", next, err, b.env.logs.String())
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode < 300 || resp.StatusCode > 399 || loc == "" {
			return resp, string(body), chain
		}
		u, _ := resp.Request.URL.Parse(loc)
		next = u.String()
		chain = append(chain, next)
	}
	b.t.Fatalf("too many redirects: %v", chain)
	return nil, "", nil
}

// sidecarLog returns the sidecar's JSON log entries whose msg is msg.
func (e *oidcEnv) sidecarLog(msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(e.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestVerifiedEmailThroughEnvoy: a provider account whose unverified address
// equals an administrator's (in another case) does not sign in through the
// real Envoy, and gets a page saying why; the administrator's own, verified
// account does. Before the check, the unverified account reached the wiki
// (allowed_domains) as alice@corp.example, and would have been the
// administrator on every page.
func TestVerifiedEmailThroughEnvoy(t *testing.T) {
	e := startOIDCStack(t,
		oidctest.User{ID: "alice-id", Name: "alice", Email: "alice@corp.example", Groups: []string{"admins"}},
		oidctest.User{ID: "mallory-id", Name: "mallory", Email: "Alice@Corp.Example", EmailVerified: false},
	)
	wiki := e.envoy.URLFor("wiki.localhost") + "/headers"

	t.Run("an unverified account with an administrator's address does not sign in and gets the page", func(t *testing.T) {
		e.provider.AutoLogin("mallory")
		b := e.browser(t)
		resp, body, chain := b.browse(wiki)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("answered %d after %v\n%s\nsidecar:\n%s", resp.StatusCode, chain, body, e.logs.String())
		}
		if resp.Request.URL.Hostname() != "authenticate.localhost" || resp.Request.URL.Path != "/.pomerium/callback" {
			t.Errorf("refused at %s, want the authenticate host's callback", resp.Request.URL)
		}
		id := resp.Header.Get("X-Request-Id")
		for _, want := range []string{"did not confirm that your email address is verified", "idp_allow_unverified_email", id} {
			if want == "" || !strings.Contains(body, want) {
				t.Errorf("the page lacks %q:\n%s", want, body)
			}
		}
		for _, host := range []string{"wiki.localhost", "authenticate.localhost"} {
			u, _ := url.Parse(e.envoy.URLFor(host) + "/.pomerium/")
			for _, c := range b.jar.Cookies(u) {
				if c.Name == "_pomerium" || c.Name == "_pomerium_authenticate" {
					t.Errorf("%s holds a session cookie %s after the refusal", host, c.Name)
				}
			}
		}
		if again, _, _ := b.browse(wiki); again.StatusCode == http.StatusOK {
			t.Error("the wiki answered 200 after the refusal")
		}
		var logged bool
		for _, m := range e.sidecarLog("sign-in refused") {
			if m["reason"] == "email not verified" && m["request_id"] == id && m["issuer"] == e.provider.Issuer && m["email_verified"] == "false" {
				logged = true
			}
		}
		if !logged {
			t.Errorf("no log line with the request id %s and issuer %s:\n%s", id, e.provider.Issuer, e.logs.String())
		}
	})

	t.Run("the administrator's verified account signs in", func(t *testing.T) {
		e.provider.AutoLogin("alice")
		resp, body, chain := e.browser(t).browse(e.envoy.URLFor("admin.localhost") + "/headers")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("answered %d after %v\n%s", resp.StatusCode, chain, body)
		}
		seen := upstreamSaw(t, body)
		if got := seen.Headers["x-pomerium-claim-email"]; got != "alice@corp.example" {
			t.Errorf("the upstream sees email %q, want alice@corp.example", got)
		}
	})
}
