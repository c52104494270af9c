package e2e_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/testkit"
)

const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

// verifyWithJWKS checks an assertion against the JWKS fetched through Envoy,
// as an upstream would.
func (s *stack) verifyWithJWKS(t *testing.T, assertion string) jwt.MapClaims {
	t.Helper()
	resp, body := s.do(t, "GET", "app.localhost", "/.well-known/pomerium/jwks.json")
	if resp.StatusCode != 200 {
		t.Fatalf("JWKS through Envoy: %d %s", resp.StatusCode, body)
	}
	return testkit.VerifyAssertion(t, []byte(body), assertion, "app.localhost")
}

func upstreamSaw(t *testing.T, body string) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("upstream answer is not the echo: %v: %s", err, body)
	}
	return e
}

// TestThroughEnvoy runs once per deployment: the same requests, the same
// answers, whether the sidecar decides over ext_authz or the module inside
// Envoy.
func TestThroughEnvoy(t *testing.T) {
	for _, d := range deployments {
		t.Run("with "+d.name, func(t *testing.T) { throughEnvoy(t, d.start(t)) })
	}
}

func throughEnvoy(t *testing.T, s *stack) {
	bob := s.mint(t, identity.Claims{Email: "bob@corp.example", User: "bob", Groups: []string{"engineering"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u-bob"}})

	carriers := []struct {
		name   string
		header string
	}{
		{"Authorization: Pomerium", "Authorization: Pomerium " + bob},
		{"Authorization: Bearer Pomerium-", "Authorization: Bearer Pomerium-" + bob},
		{"the session cookie", "Cookie: theme=dark; _pomerium=" + bob + "; lang=en"},
	}
	for _, c := range carriers {
		t.Run("a service-account token in "+c.name+" reaches the app as a verified identity and nothing of ours leaks", func(t *testing.T) {
			resp, body := s.do(t, "GET", "app.localhost", "/headers?x=1", c.header,
				"X-Pomerium-Jwt-Assertion: forged", "X-Pomerium-Claim-Email: ceo@corp.example", "X-Pomerium-Claim-Role: root")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			e := s.seenAsBob(t, body)
			if e.Headers["x-pomerium-claim-email"] != "bob@corp.example" || e.Headers["x-pomerium-claim-groups"] != "engineering" {
				t.Errorf("claim headers: %v", e.Headers)
			}
			if _, ok := e.Headers["x-pomerium-claim-role"]; ok {
				t.Error("a client-sent x-pomerium header reached the app")
			}
			for name, v := range e.Headers {
				if strings.Contains(v, bob) {
					t.Errorf("the token reached the app in %s", name)
				}
			}
			if strings.HasPrefix(c.header, "Cookie") && e.Headers["cookie"] != "theme=dark; lang=en" {
				t.Errorf("cookie upstream = %q, want the other cookies kept", e.Headers["cookie"])
			}
			if e.Path != "/headers?x=1" {
				t.Errorf("path upstream = %q", e.Path)
			}
		})
	}

	t.Run("a header spelled x_pomerium_ never reaches the app", func(t *testing.T) { s.refusesUnderscoredHeader(t, bob) })

	denials := []struct {
		name, host, path string
		headers          []string
		status           int
		bodyHas          string
	}{
		{"a browser without a token is redirected to sign in", "app.localhost", "/a?b=c", []string{"Accept: " + browserAccept}, 302, ""},
		{"curl without a token gets 401", "app.localhost", "/", nil, 401, "no Pomerium token"},
		{"a bad token is 401", "app.localhost", "/", []string{"Authorization: Pomerium not.a.token"}, 401, "malformed"},
		{"a policy deny is 403", "admin.localhost", "/", []string{"Authorization: Pomerium " + bob}, 403, `policy of route "admin"`},
		{"an unknown host is 404", "nowhere.localhost", "/", []string{"Authorization: Pomerium " + bob}, 404, "no route"},
	}
	for _, d := range denials {
		t.Run(d.name+" with the request id Envoy generated", func(t *testing.T) {
			resp, body := s.do(t, "GET", d.host, d.path, d.headers...)
			if resp.StatusCode != d.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, d.status, body)
			}
			rid := resp.Header.Get("X-Request-Id")
			if d.status == 302 {
				want := "/.pomerium/sign_in?pomerium_redirect_uri=" + url.QueryEscape(s.envoy.URLFor(d.host)+d.path)
				if loc := resp.Header.Get("Location"); loc != want {
					t.Errorf("Location = %q, want %q", loc, want)
				}
				return
			}
			if rid == "" || !strings.Contains(body, rid) {
				t.Errorf("body %q does not carry the request id %q", body, rid)
			}
			if !strings.Contains(body, d.bodyHas) {
				t.Errorf("body %q lacks %q", body, d.bodyHas)
			}
			if d.status == 401 && resp.Header.Get("WWW-Authenticate") != "Pomerium" {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}

	t.Run("a claim with a line break never reaches the app as a header: the answer is a 500", func(t *testing.T) {
		evil := s.mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering\r\nx-evil: 1"}})
		resp, body := s.do(t, "GET", "wiki.localhost", "/", "Authorization: Pomerium "+evil)
		if resp.StatusCode != 500 || strings.Contains(body, `"method"`) {
			t.Fatalf("status %d, want 500 and no upstream answer: %s", resp.StatusCode, body)
		}
	})

	t.Run("JSON clients get a JSON denial", func(t *testing.T) {
		resp, body := s.do(t, "GET", "admin.localhost", "/", "Accept: application/json", "Authorization: Pomerium "+bob)
		var got struct {
			Error     string `json:"error"`
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil || got.RequestID != resp.Header.Get("X-Request-Id") {
			t.Fatalf("body %q, request id %q: %v", body, resp.Header.Get("X-Request-Id"), err)
		}
	})

	t.Run("a public route needs no token and gets no identity", func(t *testing.T) {
		resp, body := s.do(t, "GET", "public.localhost", "/", "X-Pomerium-Claim-Email: forged@corp.example")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		e := upstreamSaw(t, body)
		for name := range e.Headers {
			if strings.HasPrefix(name, "x-pomerium-") {
				t.Errorf("public route passed %s", name)
			}
		}
	})

	t.Run("an administrator impersonates through the dashboard form and the app sees the target with act", func(t *testing.T) {
		alice := s.mint(t, identity.Claims{Email: "alice@corp.example", User: "alice", Groups: []string{"admins"},
			RegisteredClaims: jwt.RegisteredClaims{Subject: "u-alice"}})
		client := s.browser(t, "app.localhost", alice)

		// Alice alone cannot use the app.
		resp := get(t, client, s.envoy.URLFor("app.localhost")+"/")
		if resp.StatusCode != 403 {
			t.Fatalf("alice on app: %d, want 403", resp.StatusCode)
		}
		page := getBody(t, client, s.envoy.URLFor("app.localhost")+"/.pomerium/")
		token := csrfToken(t, page)
		form := url.Values{"_csrf": {token}, "email": {"bob@corp.example"}, "groups": {"engineering, "},
			"access": {"read_only"}, "reason": {"ticket 7: bob cannot see reports"}}
		resp = post(t, client, s.envoy.URLFor("app.localhost")+"/.pomerium/impersonate", form)
		if resp.StatusCode != 303 && resp.StatusCode != 302 {
			t.Fatalf("impersonate: %d", resp.StatusCode)
		}
		page = getBody(t, client, s.envoy.URLFor("app.localhost")+"/.pomerium/")
		if !strings.Contains(page, "bob@corp.example") || !strings.Contains(strings.ToLower(page), "read-only") {
			t.Errorf("dashboard does not show the impersonation")
		}
		resp = get(t, client, s.envoy.URLFor("app.localhost")+"/headers")
		if resp.StatusCode != 200 {
			t.Fatalf("app as bob: %d", resp.StatusCode)
		}
		var e echoed
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		claims := s.verifyWithJWKS(t, e.Headers["x-pomerium-jwt-assertion"])
		act, _ := claims["act"].(map[string]any)
		if claims["email"] != "bob@corp.example" || act["email"] != "alice@corp.example" {
			t.Errorf("assertion = %v", claims)
		}
		// Read-only: a write is refused.
		req, _ := http.NewRequest("POST", s.envoy.URLFor("app.localhost")+"/headers", strings.NewReader("x"))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("POST under read-only impersonation: %d, want 403", resp.StatusCode)
		}
		var audited bool
		for _, a := range s.auditEntries(t) {
			if a["actor_email"] == "alice@corp.example" && a["impersonated_email"] == "bob@corp.example" &&
				a["impersonation_reason"] == "ticket 7: bob cannot see reports" && a["access"] == "read_only" {
				audited = true
			}
			raw, _ := json.Marshal(a)
			if strings.Contains(string(raw), alice) {
				t.Errorf("an audit entry carries the token")
			}
		}
		if !audited {
			t.Error("no audit entry names alice as actor and bob as target with the reason")
		}
	})

	t.Run("a non-administrator is refused by the impersonate handler", func(t *testing.T) {
		client := s.browser(t, "app.localhost", bob)
		page := getBody(t, client, s.envoy.URLFor("app.localhost")+"/.pomerium/")
		token := csrfToken(t, page)
		resp := post(t, client, s.envoy.URLFor("app.localhost")+"/.pomerium/impersonate",
			url.Values{"_csrf": {token}, "email": {"carol@corp.example"}, "reason": {"x"}})
		if resp.StatusCode != 403 {
			t.Fatalf("non-admin impersonate: %d, want 403", resp.StatusCode)
		}
	})

	if s.module {
		return // the module decides without the sidecar: TestModuleFailsClosed covers its failures
	}
	t.Run("with the sidecar stopped Envoy fails closed", func(t *testing.T) {
		s.stopSidecar()
		resp, body := s.do(t, "GET", "app.localhost", "/headers", "Authorization: Pomerium "+bob)
		if resp.StatusCode == 200 || strings.Contains(body, "x-pomerium-jwt-assertion") || strings.Contains(body, `"method"`) {
			t.Fatalf("request went through with the sidecar down: %d %s", resp.StatusCode, body)
		}
		if resp.StatusCode < 500 {
			t.Errorf("status %d, want a 5xx", resp.StatusCode)
		}
	})
}

// browser returns a cookie-keeping client whose session cookie for host holds token.
func (s *stack) browser(t *testing.T, host, token string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(s.envoy.URLFor(host))
	jar.SetCookies(u, []*http.Cookie{{Name: "_pomerium", Value: token, Path: "/"}})
	c := s.envoy.Client()
	c.Jar = jar
	c.Timeout = 15 * time.Second
	return c
}

var csrfField = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

func csrfToken(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field on the page")
	}
	return strings.ReplaceAll(m[1], "&#43;", "+")
}

func get(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Accept", browserAccept)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func getBody(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp := get(t, c, u)
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b.String())
	}
	return b.String()
}

func post(t *testing.T, c *http.Client, u string, form url.Values) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", browserAccept)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}
