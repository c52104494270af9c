package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/oidctest"
	"github.com/extauthz/extauthz/internal/testkit"
)

// The sidecar as deployed behind a TLS-terminating load balancer: every
// public URL is https on the default port, and cookies are Secure.
const lbStackConfig = `shared_secret: %s
signing_key: %s
grpc_address: 127.0.0.1:%d
http_address: 127.0.0.1:%d
authenticate_service_url: https://authenticate.localhost
cookie_secure: true
administrators: [alice@corp.example]
jwt_claims_headers: [email, groups]
%s
policy:
  - name: app
    from: https://app.localhost
    allowed_groups: [engineering]
  - name: wiki
    from: https://wiki.localhost
    allowed_domains: [corp.example]
`

// lbPorts are the ports of one sidecar and its upstream, for the Envoys put
// in front of it.
type lbPorts struct{ grpc, http, upstream int }

// startLBSidecar runs the sidecar on lbStackConfig (extra adds keys, such as
// the identity provider) and an echo upstream.
func startLBSidecar(t *testing.T, extra string) (*stack, lbPorts) {
	t.Helper()
	envoytest.RequireBinary(t)
	p := freePorts(t)
	secret := testkit.Secret(t)
	_, key := testkit.SigningKey(t)
	s := startSidecar(t, fmt.Sprintf(lbStackConfig, secret, key, p.grpc, p.http, extra), secret, p)
	ports := lbPorts{p.grpc, p.http, p.upstream}
	return s, ports
}

// startBundledEnvoy runs the bundled Envoy config file (in envoy/) in front of
// the sidecar and upstream of ports.
func startBundledEnvoy(t *testing.T, file string, ports lbPorts, listen int) *envoytest.Envoy {
	t.Helper()
	root, err := envoytest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return envoytest.Start(t, envoytest.Options{ConfigPath: filepath.Join(root, "envoy", file),
		ListenPort: listen, GRPCPort: ports.grpc, HTTPPort: ports.http, UpstreamPort: ports.upstream})
}

// balancer is what a TLS-terminating load balancer does to a browser's
// request: https://*.localhost is sent to Envoy's plain-HTTP listener with the
// same Host, X-Forwarded-Proto: https and the client's address in
// X-Forwarded-For. Anything else (the identity provider) is reached directly.
type balancer struct {
	envoyAddr string
	next      http.RoundTripper
}

func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" || !strings.HasSuffix(req.URL.Hostname(), ".localhost") {
		return b.next.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = "http", b.envoyAddr, req.URL.Host
	out.Header.Set("X-Forwarded-Proto", "https")
	out.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, err := b.next.RoundTrip(out)
	if resp != nil {
		resp.Request = req // Location and cookies resolve against the URL the browser used
	}
	return resp, err
}

// lbBrowser is a browser on https URLs behind a balancer in front of e: it
// keeps (Secure) cookies, does not follow redirects, and sends Origin on
// POSTs as browsers do.
type lbBrowser struct {
	t      *testing.T
	client *http.Client
}

func newLBBrowser(t *testing.T, e *envoytest.Envoy) *lbBrowser {
	jar, _ := cookiejar.New(nil)
	var d net.Dialer
	direct := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(direct.CloseIdleConnections)
	return &lbBrowser{t: t, client: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		Transport:     &balancer{envoyAddr: fmt.Sprintf("127.0.0.1:%d", e.Options().ListenPort), next: direct},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *lbBrowser) do(method, u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", browserAccept)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", req.URL.Scheme+"://"+req.URL.Host)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

// follow GETs start and follows redirects, returning the final answer and
// every URL it was sent to.
func (b *lbBrowser) follow(start string) (int, string, []string) {
	b.t.Helper()
	next, chain := start, []string(nil)
	for range 20 {
		resp, body := b.do(http.MethodGet, next, nil)
		loc := resp.Header.Get("Location")
		if resp.StatusCode < 300 || resp.StatusCode > 399 || loc == "" {
			return resp.StatusCode, body, chain
		}
		u, err := resp.Request.URL.Parse(loc)
		if err != nil {
			b.t.Fatalf("Location %q: %v", loc, err)
		}
		next = u.String()
		chain = append(chain, next)
	}
	b.t.Fatalf("too many redirects: %v", chain)
	return 0, "", nil
}

// signInRedirect is where Check sends a browser without a session for
// app.localhost/private?x=1: the sign-in page with the URL to come back to.
func signInRedirect(t *testing.T, b *lbBrowser) string {
	t.Helper()
	resp, body := b.do(http.MethodGet, "https://app.localhost/private?x=1", nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("without a session: %d, want 302: %s", resp.StatusCode, body)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("pomerium_redirect_uri")
}

// TestBehindLoadBalancer runs the sidecar's pages through the real Envoy with
// envoy/envoy-behind-lb.yaml, reached the way a TLS-terminating load balancer
// reaches it (X-Forwarded-Proto: https): every page form posts, and
// redirects stay on https. Through envoy/envoy.yaml, an edge proxy, the same
// header is not trusted.
func TestBehindLoadBalancer(t *testing.T) {
	s, ports := startLBSidecar(t, "")
	behind := startBundledEnvoy(t, "envoy-behind-lb.yaml", ports, 0)
	edge := startBundledEnvoy(t, "envoy.yaml", ports, 0)
	alice := s.mint(t, identity.Claims{Email: "alice@corp.example", User: "alice", Groups: []string{"admins"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u-alice", Audience: jwt.ClaimStrings{"app.localhost"}}})

	t.Run("behind a balancer, Check sends a browser to sign in with its https URL", func(t *testing.T) {
		if got := signInRedirect(t, newLBBrowser(t, behind)); got != "https://app.localhost/private?x=1" {
			t.Errorf("pomerium_redirect_uri %q, want the https URL", got)
		}
	})

	t.Run("behind a balancer, every page form posts with an https Origin", func(t *testing.T) {
		b := newLBBrowser(t, behind)
		const home = "https://app.localhost/.pomerium/"

		// Sign in by pasted token, coming back to an https page.
		resp, page := b.do(http.MethodGet, "https://app.localhost/.pomerium/sign_in?pomerium_redirect_uri="+url.QueryEscape("https://app.localhost/.pomerium/"), nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("sign-in page: %d: %s", resp.StatusCode, page)
		}
		resp, body := b.do(http.MethodPost, "https://app.localhost/.pomerium/sign_in", url.Values{
			"_csrf": {csrfToken(t, page)}, "token": {alice}, "pomerium_redirect_uri": {"https://app.localhost/.pomerium/"}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign in by pasted token: %d: %s\nsidecar:\n%s", resp.StatusCode, body, s.logs.String())
		}
		if loc := resp.Header.Get("Location"); loc != home && loc != "/.pomerium/" {
			t.Errorf("after sign-in, Location %q, want %s", loc, home)
		}

		// Preview another identity's access.
		_, page = b.do(http.MethodGet, home, nil)
		resp, body = b.do(http.MethodPost, "https://app.localhost/.pomerium/preview", url.Values{
			"_csrf": {csrfToken(t, page)}, "email": {"bob@corp.example"}, "groups": {"engineering"}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="preview-result"`) {
			t.Fatalf("preview: %d: %s", resp.StatusCode, body)
		}

		// Impersonate, then stop.
		resp, body = b.do(http.MethodPost, "https://app.localhost/.pomerium/impersonate", url.Values{
			"_csrf": {csrfToken(t, page)}, "email": {"bob@corp.example"}, "groups": {"engineering"}, "reason": {"INC-7"}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("impersonate: %d: %s", resp.StatusCode, body)
		}
		if status, body, _ := b.follow("https://app.localhost/headers"); status != http.StatusOK || !strings.Contains(body, `"x-pomerium-claim-email":"bob@corp.example"`) {
			t.Fatalf("the app as bob: %d: %s", status, body)
		}
		_, page = b.do(http.MethodGet, home, nil)
		resp, body = b.do(http.MethodPost, "https://app.localhost/.pomerium/impersonate", url.Values{
			"_csrf": {csrfToken(t, page)}, "email": {""}, "groups": {""}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("stop impersonating: %d: %s", resp.StatusCode, body)
		}
		if _, page = b.do(http.MethodGet, home, nil); strings.Contains(page, `class="banner`) {
			t.Error("still impersonating after stopping")
		}

		// Sign out.
		resp, body = b.do(http.MethodPost, "https://app.localhost/.pomerium/sign_out", url.Values{"_csrf": {csrfToken(t, page)}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign out: %d: %s", resp.StatusCode, body)
		}
		if resp, _ := b.do(http.MethodGet, home, nil); resp.StatusCode != http.StatusFound {
			t.Errorf("after sign-out the dashboard answers %d, want 302 to sign in", resp.StatusCode)
		}
	})

	t.Run("at the edge, a client's X-Forwarded-Proto is not trusted", func(t *testing.T) {
		b := newLBBrowser(t, edge) // forges what a balancer would send
		if got := signInRedirect(t, b); got != "http://app.localhost/private?x=1" {
			t.Errorf("pomerium_redirect_uri %q, want the http URL Envoy really served", got)
		}
		resp, page := b.do(http.MethodGet, "https://app.localhost/.pomerium/sign_in", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("sign-in page: %d", resp.StatusCode)
		}
		resp, body := b.do(http.MethodPost, "https://app.localhost/.pomerium/sign_in", url.Values{
			"_csrf": {csrfToken(t, page)}, "token": {alice}})
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "origin") {
			t.Errorf("an https Origin over Envoy's plain listener: %d, want 403 naming the origin: %s", resp.StatusCode, body)
		}
	})
}

// TestHandoffBehindLoadBalancer signs a browser in with the identity provider
// through envoy/envoy-behind-lb.yaml: every hop of the sign-in stays on
// https, and Envoy's access log holds the /.pomerium/ paths without their
// query (no handoff, no code), while other paths keep theirs.
func TestHandoffBehindLoadBalancer(t *testing.T) {
	envoytest.RequireBinary(t)
	provider := oidctest.Start(t, oidctest.Options{
		ClientID:     "extauthz",
		ClientSecret: "e2e-client-secret",
		RedirectURIs: []string{"https://authenticate.localhost/.pomerium/callback"},
		Users:        []oidctest.User{{ID: "bob-id", Name: "bob", Email: "bob@corp.example", Groups: []string{"engineering"}}},
	})
	provider.AutoLogin("bob")
	s, ports := startLBSidecar(t, fmt.Sprintf("idp_provider_url: %s\nidp_client_id: extauthz\nidp_client_secret: e2e-client-secret", provider.Issuer))
	behind := startBundledEnvoy(t, "envoy-behind-lb.yaml", ports, 0)
	b := newLBBrowser(t, behind)

	status, body, chain := b.follow("https://app.localhost/headers?x=1")
	if status != http.StatusOK || !strings.Contains(body, "bob@corp.example") {
		t.Fatalf("app answered %d after %v\n%s\nsidecar:\n%s", status, chain, body, s.logs.String())
	}
	var handoff string
	for _, u := range chain {
		p, _ := url.Parse(u)
		if strings.HasSuffix(p.Hostname(), ".localhost") && p.Scheme != "https" {
			t.Errorf("the sign-in went to %s, not https", u)
		}
		if h := p.Query().Get("pomerium_handoff"); h != "" {
			handoff = h
		}
	}
	if handoff == "" {
		t.Fatalf("no handoff in the redirect chain %v", chain)
	}

	behind.Stop() // flushes the access log
	log := behind.AccessLog()
	for what, secret := range map[string]string{"the handoff": handoff, "a handoff parameter": "pomerium_handoff=", "the provider's code": "code="} {
		if strings.Contains(log, secret) {
			t.Errorf("Envoy's access log holds %s", what)
		}
	}
	for _, want := range []string{`"GET /.pomerium/callback HTTP/1.1"`, `"GET /headers?x=1 HTTP/1.1"`} {
		if !strings.Contains(log, want) {
			t.Errorf("Envoy's access log lacks %s:\n%s", want, log)
		}
	}
}

// TestEdgeAccessLogLeavesOutPageQueries reads the access log of the real Envoy
// running envoy/envoy.yaml: /.pomerium/ paths without their query, other
// paths (even ones that look alike) with it.
func TestEdgeAccessLogLeavesOutPageQueries(t *testing.T) {
	s := startStack(t)
	paths := []struct {
		path, logged string
	}{
		{"/.pomerium/callback?pomerium_handoff=SECRET-HANDOFF", "/.pomerium/callback "},
		{"/.pomerium/sign_in?pomerium_redirect_uri=SECRET-REDIRECT", "/.pomerium/sign_in "},
		{"/.pomerium?SECRET-BARE", "/.pomerium "},
		{"/headers?keep=KEPT-1", "/headers?keep=KEPT-1 "},
		{"/.pomeriumx?keep=KEPT-2", "/.pomeriumx?keep=KEPT-2 "},
	}
	for _, p := range paths {
		s.do(t, "GET", "app.localhost", p.path)
	}
	s.envoy.Stop() // flushes the access log
	log := s.envoy.AccessLog()
	for _, p := range paths {
		t.Run(p.path+" is logged as "+p.logged, func(t *testing.T) {
			if !strings.Contains(log, `"GET `+p.logged) {
				t.Errorf("access log lacks %q:\n%s", p.logged, log)
			}
		})
	}
	if strings.Contains(log, "SECRET") {
		t.Errorf("the access log holds a /.pomerium query:\n%s", log)
	}
}
