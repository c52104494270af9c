package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/oidctest"
	"github.com/extauthz/extauthz/internal/testkit"
)

// oidcConfig starts an OpenID provider on loopback that knows users, and
// returns it with the demo config (internal/config/demo.yaml, through
// testkit.DemoConfig) signing in with it.
func oidcConfig(t *testing.T, p ports, users []oidctest.User) (provider *oidctest.Provider, config, secret string) {
	t.Helper()
	provider = oidctest.Start(t, oidctest.Options{
		ClientID:     "extauthz",
		ClientSecret: "e2e-client-secret",
		RedirectURIs: []string{fmt.Sprintf("http://authenticate.localhost:%d/.pomerium/callback", p.listen)},
		Users:        users,
	})
	config, secret = testkit.DemoConfig(t, p.listen, p.grpc, p.http,
		"idp_provider_url: "+provider.Issuer+"\nidp_client_id: extauthz\nidp_client_secret: e2e-client-secret\n")
	return provider, config, secret
}

// demoUsers are the provider's users unless a test names its own: alice
// (admins) and bob (engineering), as in the demo config.
var demoUsers = []oidctest.User{
	{ID: "alice-id", Name: "alice", Email: "alice@corp.example", Groups: []string{"admins"}},
	{ID: "bob-id", Name: "bob", Email: "bob@corp.example", Groups: []string{"engineering"}},
}

// oidcStack is the sidecar on oidcConfig behind the real Envoy, with an
// OpenID provider on loopback that knows alice (admins) and bob
// (engineering).
type oidcStack struct {
	*stack
	provider *oidctest.Provider
	listen   int
}

// startOIDCStack starts the stack; the provider knows users, alice and bob
// when none are given.
func startOIDCStack(t *testing.T, users ...oidctest.User) *oidcStack {
	t.Helper()
	envoytest.RequireBinary(t)
	if len(users) == 0 {
		users = demoUsers
	}
	p := freePorts(t)
	provider, config, secret := oidcConfig(t, p, users)
	s := startSidecar(t, config, secret, p)
	s.startEnvoy(t, "", p)
	return &oidcStack{stack: s, provider: provider, listen: p.listen}
}

// oidcBrowser keeps cookies and does not follow redirects by itself.
// *.localhost on Envoy's port goes to Envoy, ports listed in elsewhere to
// their address, and everything else (the provider) direct.
type oidcBrowser struct {
	*testkit.Browser
	t   *testing.T
	s   *oidcStack
	jar *cookiejar.Jar
}

func (s *oidcStack) browser(t *testing.T, elsewhere map[string]string) *oidcBrowser {
	envoyAddr := fmt.Sprintf("127.0.0.1:%d", s.listen)
	b := testkit.NewBrowser(func(host, port string) string {
		switch {
		case elsewhere[port] != "":
			return elsewhere[port]
		case strings.HasSuffix(host, ".localhost"):
			return envoyAddr
		}
		return ""
	})
	return &oidcBrowser{Browser: b, t: t, s: s, jar: b.Jar}
}

// browse follows redirects from start like a browser until an answer that
// is not a redirect, or until stop accepts the next URL (not visited); it
// returns the last status and body and the URLs visited after start.
func (b *oidcBrowser) browse(start string, stop func(*url.URL) bool) (int, string, []string) {
	b.t.Helper()
	resp, body, chain := b.Browse(b.t, start, stop, b.s.logs.String)
	return resp.StatusCode, body, chain
}

// TestOIDCThroughEnvoy signs a browser in through the real Envoy with the
// bundled config: Check sends it to sign in, the authenticate host (Envoy's
// catch-all virtual host) runs the flow against an OpenID provider on
// loopback, the route host gets its session by handoff, and the app sees the
// identity. A second route host needs no second login at the provider.
func TestOIDCThroughEnvoy(t *testing.T) {
	st := startOIDCStack(t)
	s, provider := st.stack, st.provider
	provider.AutoLogin("bob")
	b := st.browser(t, nil)
	jar := b.jar
	browse := func(start string) (int, string, []string) {
		t.Helper()
		return b.browse(start, nil)
	}

	app := s.envoy.URLFor("app.localhost") + "/headers"
	status, body, chain := browse(app)
	if status != http.StatusOK {
		t.Fatalf("app answered %d after %v\n%s\nsidecar:\n%s", status, chain, body, s.logs.String())
	}
	var seen struct {
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(body), &seen); err != nil {
		t.Fatalf("the app's answer: %v\n%s", err, body)
	}
	if got := seen.Headers["x-pomerium-claim-email"]; got != "bob@corp.example" {
		t.Errorf("the app sees email %q, want bob@corp.example (headers %v)", got, seen.Headers)
	}
	if seen.Headers["x-pomerium-jwt-assertion"] == "" {
		t.Error("no assertion upstream")
	}
	if c := seen.Headers["cookie"]; strings.Contains(c, "_pomerium") {
		t.Errorf("a sidecar cookie reached the app (Check removes them, contract section 5): %q", c)
	}
	var hosts []string
	for _, u := range chain {
		p, _ := url.Parse(u)
		hosts = append(hosts, p.Hostname()+p.Path)
	}
	want := []string{"app.localhost/.pomerium/sign_in", "authenticate.localhost/.pomerium/sign_in", "127.0.0.1/authorize",
		"127.0.0.1/login", "127.0.0.1/authorize/callback", "authenticate.localhost/.pomerium/callback",
		"app.localhost/.pomerium/callback", "app.localhost/headers"}
	if strings.Join(hosts, " ") != strings.Join(want, " ") {
		t.Errorf("redirect chain\n got %v\nwant %v", hosts, want)
	}

	// Single sign-on: the wiki needs no second login at the provider.
	provider.AutoLogin("")
	status, body, chain = browse(s.envoy.URLFor("wiki.localhost") + "/headers")
	if status != http.StatusOK || !strings.Contains(body, "bob@corp.example") {
		t.Fatalf("wiki answered %d after %v\n%s", status, chain, body)
	}
	if provider.Logins() != 1 {
		t.Errorf("the provider's login was reached %d times, want 1", provider.Logins())
	}
	// Bob is still refused where policy says so, with the session of his own host only.
	if status, _, chain = browse(s.envoy.URLFor("admin.localhost") + "/"); status != http.StatusForbidden {
		t.Errorf("admin answered %d after %v, want 403", status, chain)
	}

	// No session token ever went into a URL Envoy logged.
	u, _ := url.Parse(app)
	for _, c := range jar.Cookies(u) {
		if c.Name == "_pomerium" && strings.Contains(s.envoy.AccessLog(), c.Value) {
			t.Error("the session token is in Envoy's access log")
		}
	}
}
