package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/identity"
)

// Revocation by session id through the real Envoy (contract section 8): a
// session started by a pasted token keeps its sid through every re-issue by
// the pages, and adding that sid to revoked_token_ids in the config file
// refuses every cookie of the lineage, while a fresh sign-in works.

// signInWithToken pastes token into the sign-in page of host, through Envoy,
// in a new cookie-keeping client, and returns that client.
func (s *stack) signInWithToken(t *testing.T, host, token string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := s.envoy.Client()
	c.Jar = jar
	base := s.envoy.URLFor(host)
	page := getBody(t, c, base+"/.pomerium/sign_in")
	resp := post(t, c, base+"/.pomerium/sign_in", url.Values{"_csrf": {csrfToken(t, page)}, "token": {token}})
	if resp.StatusCode != http.StatusSeeOther || sessionCookie(c, base) != token {
		t.Fatalf("pasting a token: %d, cookie set: %v", resp.StatusCode, sessionCookie(c, base) == token)
	}
	return c
}

// sessionCookie is the _pomerium cookie c holds for base.
func sessionCookie(c *http.Client, base string) string {
	u, _ := url.Parse(base)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "_pomerium" {
			return ck.Value
		}
	}
	return ""
}

// withCookie asks Envoy for path on host with only tok as the session
// cookie, as a browser (Accept: text/html) or as a script.
func (s *stack) withCookie(t *testing.T, host, path, tok string, browser bool) int {
	t.Helper()
	headers := []string{"Cookie: _pomerium=" + tok}
	if browser {
		headers = append(headers, "Accept: "+browserAccept)
	}
	resp, _ := s.do(t, "GET", host, path, headers...)
	return resp.StatusCode
}

// sessionsIssued returns the sidecar's session_issued audit entries.
func (s *stack) sessionsIssued(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, a := range s.auditEntries(t) {
		if a["msg"] == "session_issued" {
			out = append(out, a)
		}
	}
	return out
}

// awaitIssued returns the session_issued entries once there are at least n,
// or what there is after 5 s: the sidecar writes an entry before it answers,
// but its output reaches the test through a pipe, a little later.
func (s *stack) awaitIssued(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := s.sessionsIssued(t)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRevokingASessionIDThroughEnvoy(t *testing.T) {
	s := startStack(t)
	host, base := "app.localhost", s.envoy.URLFor("app.localhost")
	first := s.mint(t, identity.Claims{Email: "alice@corp.example", User: "alice", Groups: []string{"engineering"}})
	c := s.signInWithToken(t, host, first)

	// Impersonate on the dashboard, then stop: each re-issues the cookie.
	lineage := []string{first}
	for _, fields := range []url.Values{
		{"email": {"bob@corp.example"}, "groups": {"engineering"}, "access": {"read_only"}, "reason": {"ticket 12"}},
		{"email": {""}, "groups": {""}},
	} {
		fields.Set("_csrf", csrfToken(t, getBody(t, c, base+"/.pomerium/")))
		if resp := post(t, c, base+"/.pomerium/impersonate", fields); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("impersonate %v: %d", fields, resp.StatusCode)
		}
		lineage = append(lineage, sessionCookie(c, base))
	}

	issued := s.awaitIssued(t, 3)
	t.Run("every issued token is logged once with its jti and the first token's sid, never its value", func(t *testing.T) {
		if len(issued) != 3 {
			t.Fatalf("%d session_issued entries, want 3 (pasted token, impersonation started, stopped): %v", len(issued), issued)
		}
		seen := map[any]bool{}
		for i, want := range []string{"pasted_token", "impersonation_started", "impersonation_stopped"} {
			e := issued[i]
			if e["why"] != want || e["sid"] != issued[0]["jti"] || e["jti"] == "" || seen[e["jti"]] || e["email"] != "alice@corp.example" {
				t.Errorf("entry %d: %v; want why %s, a new jti and sid %v", i, e, want, issued[0]["jti"])
			}
			seen[e["jti"]] = true
		}
		for _, line := range strings.Split(s.logs.String(), "\n") {
			for _, tok := range lineage {
				if strings.Contains(line, tok) {
					t.Fatalf("a log line carries a session token: %.120s…", line)
				}
			}
		}
	})
	for i, tok := range lineage {
		if got := s.withCookie(t, host, "/headers", tok, true); got != http.StatusOK {
			t.Fatalf("cookie %d of the lineage before any revocation: %d, want 200", i, got)
		}
	}
	if len(issued) == 0 {
		t.Fatal("no session_issued entry names the session to revoke")
	}
	sid, _ := issued[0]["sid"].(string)
	if sid == "" {
		t.Fatal("the pasted token's session has no sid")
	}

	// Revoke the session in the config file; serve reloads it on change.
	cfg, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	revoked, _ := json.Marshal([]string{sid})
	if err := os.WriteFile(s.config, append(cfg, []byte("revoked_token_ids: "+string(revoked)+"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	// The first token's jti is the sid: it is refused once the reload is in force.
	deadline := time.Now().Add(15 * time.Second)
	for s.withCookie(t, host, "/headers", first, false) != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatalf("the reload did not revoke the session within 15 s:\n%s", s.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	for i, tok := range lineage {
		t.Run(fmt.Sprintf("cookie %d of the lineage is refused", i), func(t *testing.T) {
			if got := s.withCookie(t, host, "/headers", tok, true); got != http.StatusFound {
				t.Errorf("browser: %d, want 302 to sign in", got)
			}
			if got := s.withCookie(t, host, "/headers", tok, false); got != http.StatusUnauthorized {
				t.Errorf("script: %d, want 401", got)
			}
			if got := s.withCookie(t, host, "/.pomerium/", tok, true); got != http.StatusFound {
				t.Errorf("dashboard: %d, want 302 to sign in", got)
			}
		})
	}
	t.Run("the revoked session cannot be re-issued by stopping an impersonation", func(t *testing.T) {
		before := len(s.sessionsIssued(t))
		// The CSRF token of the sign-in page is as good as the dashboard's.
		page := getBody(t, c, base+"/.pomerium/sign_in")
		resp := post(t, c, base+"/.pomerium/impersonate", url.Values{"_csrf": {csrfToken(t, page)}})
		if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "/.pomerium/sign_in") {
			t.Errorf("impersonate with a revoked session: %d %q, want a redirect to sign in", resp.StatusCode, resp.Header.Get("Location"))
		}
		for _, ck := range resp.Cookies() {
			if ck.Name == "_pomerium" && ck.Value != "" {
				t.Error("a revoked session was re-issued")
			}
		}
		if n := len(s.sessionsIssued(t)); n != before {
			t.Errorf("%d tokens issued from a revoked session", n-before)
		}
	})
	t.Run("pasting the revoked token again is refused", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		fresh := s.envoy.Client()
		fresh.Jar = jar
		page := getBody(t, fresh, base+"/.pomerium/sign_in")
		resp := post(t, fresh, base+"/.pomerium/sign_in", url.Values{"_csrf": {csrfToken(t, page)}, "token": {first}})
		if resp.StatusCode != http.StatusBadRequest || sessionCookie(fresh, base) != "" {
			t.Errorf("pasting the revoked token: %d", resp.StatusCode)
		}
	})
	t.Run("a fresh sign-in works and starts a new session", func(t *testing.T) {
		tok := s.mint(t, identity.Claims{Email: "alice@corp.example", User: "alice", Groups: []string{"engineering"}})
		fresh := s.signInWithToken(t, host, tok)
		if resp := get(t, fresh, base+"/headers"); resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			t.Fatalf("a fresh session: %d, want 200", resp.StatusCode)
		} else {
			resp.Body.Close()
		}
		all := s.awaitIssued(t, len(issued)+1)
		if last := all[len(all)-1]; last["why"] != "pasted_token" || last["sid"] == sid || last["sid"] != last["jti"] {
			t.Errorf("fresh session_issued %v: want a new sid", last)
		}
	})
}
