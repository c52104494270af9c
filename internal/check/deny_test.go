package check_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/identity"
)

// A 403 names the route and that its policy denied, never whom the route
// allows, in every format and for anyone (contract section 8, "No policy
// disclosure"); the detail stays in the logs.
func TestPolicyDenialBodiesDiscloseNoPolicy(t *testing.T) {
	f := newFixture(t)
	bob := mint(t, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}})
	carol := mint(t, identity.Claims{Email: "carol@partner.example", Groups: []string{"sales"}})
	admin := mint(t, identity.Claims{Email: "alice@corp.example", Groups: []string{"admins"}})
	aliceAsBob := mint(t, identity.Claims{Email: "alice@corp.example", ImpersonateEmail: "bob@corp.example",
		ImpersonateGroups: []string{"sales"}, RegisteredClaims: jwt.RegisteredClaims{ID: "jti-imp"}})

	formats := []struct{ name, accept string }{
		{"JSON", "application/json"},
		{"HTML", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		{"plain text", "*/*"},
	}
	denials := []struct {
		name, url, token, route string
		// secrets are the policy's allowed values, which must not appear.
		secrets []string
	}{
		{"a user outside a route's allowed_users", "https://admin.example.com/", bob, "admin", []string{"alice@corp.example", "allowed_users", "needs one of"}},
		{"a user outside a route's allowed_groups", "https://app.example.com/", carol, "app", []string{"engineering", "allowed_groups", "needs one of"}},
		{"an administrator outside a route's allowed_groups", "https://app.example.com/", admin, "app", []string{"engineering", "allowed_groups", "needs one of"}},
		{"an administrator impersonating someone the route does not allow", "https://admin.example.com/", aliceAsBob, "admin", []string{"alice@corp.example", "allowed_users", "needs one of"}},
	}
	for _, dn := range denials {
		for _, fm := range formats {
			t.Run(dn.name+" gets a "+fm.name+" 403 that names the route and not whom it allows", func(t *testing.T) {
				resp := f.check(t, envoyRequest("GET", dn.url, map[string]string{"accept": fm.accept, "authorization": "Pomerium " + dn.token}, ""))
				d := resp.GetDeniedResponse()
				if got := d.GetStatus().GetCode(); got != 403 {
					t.Fatalf("status %d, want 403: %s", got, d.GetBody())
				}
				body := d.GetBody()
				if fm.name == "JSON" {
					var j struct {
						Error     string `json:"error"`
						RequestID string `json:"request_id"`
					}
					if err := json.Unmarshal([]byte(body), &j); err != nil {
						t.Fatalf("body is not JSON: %v: %s", err, body)
					}
					body = j.Error + " " + j.RequestID
				}
				for _, want := range []string{`route "` + dn.route + `"`, "policy", "req-123"} {
					if !strings.Contains(body, want) && !strings.Contains(body, strings.ReplaceAll(want, `"`, "&#34;")) {
						t.Errorf("body lacks %q:\n%s", want, body)
					}
				}
				for _, secret := range dn.secrets {
					if strings.Contains(body, secret) {
						t.Errorf("body discloses %q:\n%s", secret, body)
					}
				}
			})
		}
	}

	t.Run("the debug log keeps the rule that denied", func(t *testing.T) {
		var found bool
		for _, e := range f.logs.FilterMessage("denied").All() {
			if strings.Contains(e.ContextMap()["reason"].(string), "needs one of users alice@corp.example") {
				found = true
			}
		}
		if !found {
			t.Error("no denied debug entry names the rule")
		}
	})

	t.Run("the audit log of an impersonated denial keeps the rule that denied", func(t *testing.T) {
		var found bool
		for _, e := range f.logs.FilterLoggerName("audit").All() {
			m := e.ContextMap()
			if m["token_id"] == "jti-imp" && strings.Contains(m["reason"].(string), "needs one of users alice@corp.example") {
				found = true
			}
		}
		if !found {
			t.Error("no audit entry of the impersonated denial names the rule")
		}
	})

	t.Run("an impersonation refusal still says why, since it is about the token", func(t *testing.T) {
		carolAsBob := mint(t, identity.Claims{Email: "carol@partner.example", ImpersonateEmail: "bob@corp.example"})
		resp := f.check(t, envoyRequest("GET", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + carolAsBob}, ""))
		if body := resp.GetDeniedResponse().GetBody(); !strings.Contains(body, "impersonation requires an administrator") {
			t.Errorf("body %q", body)
		}
	})
}
