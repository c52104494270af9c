package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/reload"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/internal/web"
)

// verdict is one route's answer as a caller shows it.
type verdict struct {
	Allowed bool
	Reason  string
}

// TestCheckTheDashboardAndExplainAgree generates a policy of routes and a
// set of identities, and for every pair asks the four callers of the one
// decision: Check over gRPC (the reason read from its Observe hook), the
// dashboard's JSON for a token the identity holds and for one an
// administrator impersonates it with, and `extauthz explain --json` run in
// process on the same config file. They must agree on allowed and on the
// reason, route by route. (The dashboard shows a non-administrator only the
// routes they can reach, so its denials are the routes it leaves out.)
func TestCheckTheDashboardAndExplainAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	groups := []string{"engineering", "finance", "support", "sales", "ops"}
	domains := []string{"corp.example", "partner.example", "contractor.example"}
	pick := func(from []string, max int) []string {
		var out []string
		for _, v := range from {
			if rng.IntN(len(from)) < max {
				out = append(out, v)
			}
		}
		return out
	}
	const nRoutes, nIDs, admin = 24, 16, "root@corp.example"
	emailOf := func(i int) string { return fmt.Sprintf("user%02d@%s", i, domains[i%len(domains)]) }
	hostOf := func(i int) string { return fmt.Sprintf("r%02d.example.com", i) }
	list := func(vs []string) string { return "[" + strings.Join(vs, ", ") + "]" }

	secret := base64.StdEncoding.EncodeToString([]byte("agreement test shared secret 32b"))
	var yaml strings.Builder
	fmt.Fprintf(&yaml, "shared_secret: %s\nadministrators: [%s]\npolicy:\n", secret, admin)
	for i := range nRoutes {
		fmt.Fprintf(&yaml, "  - name: r%02d\n    from: https://%s\n", i, hostOf(i))
		switch rng.IntN(8) {
		case 0:
			yaml.WriteString("    allow_public_unauthenticated_access: true\n")
		case 1:
			yaml.WriteString("    allow_any_authenticated_user: true\n")
		default:
			var users []string
			for range rng.IntN(4) {
				users = append(users, emailOf(rng.IntN(nIDs)))
			}
			fmt.Fprintf(&yaml, "    allowed_users: %s\n    allowed_groups: %s\n    allowed_domains: %s\n",
				list(users), list(pick(groups, 2)), list(pick(domains, 1)))
		}
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	snap, settings, err := reload.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}

	// Check, over gRPC; each answer's decision comes back through Observe.
	checker := check.New(snap, zap.NewNop())
	observed := make(chan decision.Decision, 1)
	checker.Observe = func(d *decision.Decision, _ time.Duration) { observed <- *d }
	conn := testkit.ServeCheck(t, checker, 0)
	client := authv3.NewAuthorizationClient(conn)
	checkOn := func(t *testing.T, host, token string) verdict {
		t.Helper()
		resp, err := client.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Host: host, Path: "/", Method: "GET", Scheme: "https",
				Headers: map[string]string{"authorization": "Pomerium " + token, "accept": "application/json"},
			}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		d := <-observed
		if (resp.GetOkResponse() != nil) != d.Allowed() {
			t.Fatalf("Check on %s answered %v but decided %d", host, resp.GetHttpResponse(), d.Status)
		}
		return verdict{d.Allowed(), d.Reason}
	}

	// The dashboard, as JSON.
	pages := httptest.NewServer(web.New(settings, zap.NewNop()))
	t.Cleanup(pages.Close)
	dashboard := func(t *testing.T, token string) map[string]verdict {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, pages.URL+"/.pomerium/", nil)
		req.Host = hostOf(0)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "Pomerium "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Routes []struct {
				Route   string `json:"route"`
				Allowed bool   `json:"allowed"`
				Reason  string `json:"reason"`
			} `json:"routes"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("dashboard: %d, %v", resp.StatusCode, err)
		}
		out := map[string]verdict{}
		for _, r := range body.Routes {
			out[r.Route] = verdict{r.Allowed, r.Reason}
		}
		return out
	}

	// explain --json, in process.
	explainJSON := func(t *testing.T, id identity.Identity) map[string]verdict {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args := []string{"extauthz", "explain", "--config", path, "--email", id.Email, "--json"}
		if len(id.Groups) > 0 {
			args = append(args, "--groups", strings.Join(id.Groups, ","))
		}
		if code := run(&env{args: args, stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}); code != 0 {
			t.Fatalf("explain exited %d: %s", code, stderr.String())
		}
		var rows []struct {
			Route   string `json:"route"`
			Allowed bool   `json:"allowed"`
			Reason  string `json:"reason"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
			t.Fatal(err)
		}
		out := map[string]verdict{}
		for _, r := range rows {
			out[r.Route] = verdict{r.Allowed, r.Reason}
		}
		return out
	}

	aud := make(jwt.ClaimStrings, nRoutes)
	for i := range aud {
		aud[i] = hostOf(i)
	}
	now := time.Now()
	mint := func(c identity.Claims) string {
		c.Audience = aud
		c.ExpiresAt = jwt.NewNumericDate(now.Add(time.Hour))
		c.IssuedAt = jwt.NewNumericDate(now.Add(-time.Minute))
		tok, err := identity.Mint(&c, secret)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	var allowed, denied int
	for i := range nIDs {
		id := identity.Identity{Email: emailOf(i), Groups: pick(groups, 2)}
		held := mint(identity.Claims{Email: id.Email, Groups: id.Groups})
		impersonated := mint(identity.Claims{Email: admin, ImpersonateEmail: id.Email, ImpersonateGroups: id.Groups})
		explained := explainJSON(t, id)
		for how, tok := range map[string]string{"held": held, "impersonated by an administrator": impersonated} {
			t.Run(id.Email+" "+how, func(t *testing.T) {
				shown := dashboard(t, tok)
				for r := range nRoutes {
					name := fmt.Sprintf("r%02d", r)
					byCheck := checkOn(t, hostOf(r), tok)
					if got := explained[name]; got != byCheck {
						t.Errorf("%s: explain says %+v, Check %+v", name, got, byCheck)
					}
					got, listed := shown[name]
					if listed != byCheck.Allowed || (listed && got != byCheck) {
						t.Errorf("%s: the dashboard shows %+v (listed %v), Check says %+v", name, got, listed, byCheck)
					}
					if byCheck.Allowed {
						allowed++
					} else {
						denied++
					}
				}
			})
		}
	}
	// The generated policy must exercise both outcomes, or agreement means little.
	if allowed < nRoutes || denied < nRoutes {
		t.Fatalf("generated policy is lopsided: %d allowed, %d denied", allowed, denied)
	}
}
