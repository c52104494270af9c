package check_test

import (
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap/zapcore"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/testkit"
)

// testkitMintFor mints a token whose only audience is host.
func testkitMintFor(t *testing.T, c identity.Claims, host string) string {
	t.Helper()
	return testkit.Mint(t, secret, testkit.Fill(c, "authenticate.example.com", now, host))
}

// Denials are visible at the default log level: one info line each, with
// what an operator holding a denial body's request id needs, and never the
// token or an email.
func TestCheckLogsEveryDenialAtInfo(t *testing.T) {
	f := newFixture(t)
	carol := mint(t, identity.Claims{Email: "carol@partner.example", Groups: []string{"sales"}})
	wrongAud := testkitMintFor(t, identity.Claims{Email: "bob@corp.example"}, "elsewhere.example.com")
	cases := []struct {
		name    string
		headers map[string]string
		url     string
		status  int64
		class   string
		cause   string
	}{
		{"a policy denial is logged with its route and reason class", map[string]string{"authorization": "Pomerium " + carol},
			"https://admin.example.com/", 403, "denied_by_policy", ""},
		{"a request without a token is logged", map[string]string{}, "https://app.example.com/", 401, "no_token", ""},
		{"a refused token is logged with its cause", map[string]string{"authorization": "Pomerium " + wrongAud},
			"https://app.example.com/", 401, "bad_token", "audience"},
		{"a request no route serves is logged", map[string]string{}, "https://nowhere.example.com/", 404, "no_route", ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := "req-deny-" + string(rune('a'+i))
			h := map[string]string{"x-request-id": id}
			for k, v := range tc.headers {
				h[k] = v
			}
			f.check(t, envoyRequest("GET", tc.url, h, ""))
			var found bool
			for _, e := range f.logs.FilterMessage("request denied").All() {
				m := e.ContextMap()
				if m["request_id"] != id {
					continue
				}
				found = true
				if e.Level != zapcore.InfoLevel || m["status"] != tc.status || m["reason_class"] != tc.class {
					t.Errorf("entry %v at %v, want info, status %d, reason_class %s", m, e.Level, tc.status, tc.class)
				}
				if tc.cause != "" && m["cause"] != tc.cause {
					t.Errorf("cause = %v, want %s", m["cause"], tc.cause)
				}
				if tc.status == 403 && m["route"] != "admin" {
					t.Errorf("route = %v, want admin", m["route"])
				}
				for _, v := range m {
					s, _ := v.(string)
					if strings.Contains(s, "@") || (len(s) > 40 && strings.Count(s, ".") == 2) {
						t.Errorf("the denial log holds %q (an email or a token)", s)
					}
				}
			}
			if !found {
				t.Errorf("no info line for request %s", id)
			}
		})
	}

	t.Run("a refusal for another host logs at debug the expected issuer and the request host", func(t *testing.T) {
		var found bool
		for _, e := range f.logs.FilterMessage("token refused: minted for another issuer or host").All() {
			m := e.ContextMap()
			if e.Level == zapcore.DebugLevel && m["expected_issuer"] == "authenticate.example.com" && m["request_host"] == "app.example.com" {
				found = true
			}
			for _, v := range m {
				if s, _ := v.(string); strings.Contains(s, wrongAud) {
					t.Errorf("the log holds the token")
				}
			}
		}
		if !found {
			t.Error("no debug line names the expected issuer and the request host")
		}
	})
}

// Above DenialLogsPerSecond in one second, denials are counted, not logged.
func TestCheckSamplesDenialLogsAboveARate(t *testing.T) {
	f := newFixture(t)
	var dropped atomic.Int64
	f.srv.SetDenialLogLimit(3)
	f.srv.DenialLogDropped = func() { dropped.Add(1) }
	for range 5 {
		f.check(t, envoyRequest("GET", "https://app.example.com/", nil, ""))
	}
	if got := f.logs.FilterMessage("request denied").Len(); got != 3 || dropped.Load() != 2 {
		t.Errorf("in one second: %d logged and %d dropped, want 3 and 2", got, dropped.Load())
	}
	f.setNow(now.Add(1e9))
	f.check(t, envoyRequest("GET", "https://app.example.com/", nil, ""))
	if got := f.logs.FilterMessage("request denied").Len(); got != 4 {
		t.Errorf("the next second logged %d in all, want 4", got)
	}
}
