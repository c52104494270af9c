package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
	const admin = "root@corp.example"
	pop := testkit.NewPopulation(24, 16, 7)
	secret := testkit.Secret(t)
	// JSON is YAML: the config is the population's routes as written.
	raw, err := json.Marshal(map[string]any{"shared_secret": secret, "administrators": []string{admin}, "policy": pop.Routes})
	if err != nil {
		t.Fatal(err)
	}
	path := testkit.WriteFile(t, "config.yaml", string(raw))
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
		req.Host = testkit.Host(0)
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
		var rows []explainRow
		if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
			t.Fatal(err)
		}
		out := map[string]verdict{}
		for _, r := range rows {
			out[r.Route] = verdict{r.Allowed, r.Reason}
		}
		return out
	}

	now := time.Now()
	mint := func(c identity.Claims) string {
		c.Audience = pop.Audience()
		c.ExpiresAt = jwt.NewNumericDate(now.Add(time.Hour))
		c.IssuedAt = jwt.NewNumericDate(now.Add(-time.Minute))
		return testkit.Mint(t, secret, c)
	}

	var allowed, denied int
	for _, id := range pop.IDs {
		held := mint(identity.Claims{Email: id.Email, Groups: id.Groups})
		impersonated := mint(identity.Claims{Email: admin, ImpersonateEmail: id.Email, ImpersonateGroups: id.Groups})
		explained := explainJSON(t, id)
		for how, tok := range map[string]string{"held": held, "impersonated by an administrator": impersonated} {
			t.Run(id.Email+" "+how, func(t *testing.T) {
				shown := dashboard(t, tok)
				for r := range pop.Routes {
					name := testkit.RouteName(r)
					byCheck := checkOn(t, testkit.Host(r), tok)
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
	if allowed < len(pop.Routes) || denied < len(pop.Routes) {
		t.Fatalf("generated policy is lopsided: %d allowed, %d denied", allowed, denied)
	}
}
