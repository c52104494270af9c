package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/oidctest"
)

// plainBrowser keeps cookies, reaches *.localhost through Envoy and the
// provider directly, and follows redirects itself so that the chain is seen.
type plainBrowser struct {
	t      *testing.T
	env    *oidcStack
	jar    *cookiejar.Jar
	client *http.Client
}

func (e *oidcStack) plainBrowser(t *testing.T) *plainBrowser {
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
	return &plainBrowser{t: t, env: e, jar: jar, client: &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// browse GETs start as a browser would and follows redirects; it returns the
// last answer, its body and the URLs visited after start.
func (b *plainBrowser) browse(start string) (*http.Response, string, []string) {
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
func (e *oidcStack) sidecarLog(msg string) []map[string]any {
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
		b := e.plainBrowser(t)
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
		resp, body, chain := e.plainBrowser(t).browse(e.envoy.URLFor("admin.localhost") + "/headers")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("answered %d after %v\n%s", resp.StatusCode, chain, body)
		}
		seen := upstreamSaw(t, body)
		if got := seen.Headers["x-pomerium-claim-email"]; got != "alice@corp.example" {
			t.Errorf("the upstream sees email %q, want alice@corp.example", got)
		}
	})
}
