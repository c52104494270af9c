package e2e_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/oidctest"
)

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
		b := e.browser(t, nil)
		resp, body, chain := b.Browse(t, wiki, nil, e.logs.String)
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
		if again, _, _ := b.Browse(t, wiki, nil, e.logs.String); again.StatusCode == http.StatusOK {
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
		resp, body, chain := e.browser(t, nil).Browse(t, e.envoy.URLFor("admin.localhost")+"/headers", nil, e.logs.String)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("answered %d after %v\n%s", resp.StatusCode, chain, body)
		}
		seen := upstreamSaw(t, body)
		if got := seen.Headers["x-pomerium-claim-email"]; got != "alice@corp.example" {
			t.Errorf("the upstream sees email %q, want alice@corp.example", got)
		}
	})
}
