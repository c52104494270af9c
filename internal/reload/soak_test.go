package reload_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/testkit"
)

// TestLoadAndReload runs mixed Checks from several goroutines over real gRPC
// while the config file is rewritten again and again, some rewrites broken,
// and the file watcher applies them. It asserts zero transport errors and
// zero answers that differ from what the config in force decides.
//
// Configs A and B decide differently for the same tokens, and every answer
// says which one answered: an allow carries the route's x-config-gen header
// and an assertion signed by that config's key, a 403 names the config's
// marker group in its reason, and a 401 "token revoked" can only come from B.
// Since a Check reads one snapshot when it starts, each answer must be
// exactly what its generation decides.
//
// By default it runs a few seconds (CI). The long version, 60 s with 100
// rewrites of which 10 are broken, is
//
//	EXTAUTHZ_SOAK=1 go test -race -count=1 -run TestLoadAndReload -timeout 10m -v ./internal/reload
func TestLoadAndReload(t *testing.T) {
	duration, rewrites, broken := 3*time.Second, 20, 3
	if os.Getenv("EXTAUTHZ_SOAK") != "" {
		duration, rewrites, broken = 60*time.Second, 100, 10
	}
	if testing.Short() {
		duration, rewrites, broken = time.Second, 6, 2
	}
	const workers = 8

	keyA, encA := testkit.SigningKey(t)
	keyB, encB := testkit.SigningKey(t)
	configs := map[string]spec{
		"A": {Gen: "A", Key: encA, AppGroups: []string{"engineering"}},
		"B": {Gen: "B", Key: encB, AppGroups: []string{"ops"}, Revoked: []string{"dan-1"}},
	}
	keyOf := map[string]string{"A": keyA.ID, "B": keyB.ID}
	s := newStack(t, configs["A"])
	s.watch()

	dan := identity.Claims{Email: "dan@corp.example", User: "dan", Groups: []string{"engineering", "ops"}}
	dan.ID = "dan-1"
	type kase struct {
		name    string
		host    string
		headers map[string]string
		// want is the answer under each generation.
		want map[string]answer
	}
	cases := []kase{
		{name: "bob (engineering)", host: appHost, headers: bearer(mint(t, secretA, bobClaims)), want: map[string]answer{
			"A": {status: 200, gen: "A"},
			"B": {status: 403, reason: "no rule matched: needs one of groups gen-b-marker, ops"}}},
		{name: "carol (ops)", host: appHost, headers: bearer(mint(t, secretA, carolClaims)), want: map[string]answer{
			"A": {status: 403, reason: "no rule matched: needs one of groups engineering, gen-a-marker"},
			"B": {status: 200, gen: "B"}}},
		{name: "dan (revoked in B)", host: appHost, headers: bearer(mint(t, secretA, dan)), want: map[string]answer{
			"A": {status: 200, gen: "A"},
			"B": {status: 401, reason: identity.ReasonRevoked}}},
		{name: "no token", host: appHost, headers: nil, want: map[string]answer{
			"A": {status: 401, reason: "no Pomerium token or session"},
			"B": {status: 401, reason: "no Pomerium token or session"}}},
		{name: "a browser without a session", host: appHost, headers: map[string]string{"accept": "text/html"}, want: map[string]answer{
			"A": {status: 302, reason: "no Pomerium token or session"},
			"B": {status: 302, reason: "no Pomerium token or session"}}},
		{name: "a public route", host: publicHost, headers: nil, want: map[string]answer{
			"A": {status: 200, gen: "A"},
			"B": {status: 200, gen: "B"}}},
	}

	var (
		stop       atomic.Bool
		total      atomic.Int64
		transport  atomic.Int64
		mismatches atomic.Int64
		seen       [2]atomic.Int64 // answers attributable to A, B
		mu         sync.Mutex
		examples   []string
		wg         sync.WaitGroup
	)
	report := func(format string, args ...any) {
		mismatches.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if len(examples) < 10 {
			examples = append(examples, fmt.Sprintf(format, args...))
		}
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; !stop.Load(); i++ {
				c := cases[i%len(cases)]
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := s.client.Check(ctx, request(c.host, "/", c.headers))
				cancel()
				total.Add(1)
				if err != nil {
					transport.Add(1)
					report("%s: transport error %v", c.name, err)
					continue
				}
				got := summarize(resp)
				gen := generationOf(got)
				switch gen {
				case "":
					// Not attributable: it must be what both configs say.
					if got != c.want["A"] || got != c.want["B"] {
						report("%s: got %v, which neither config decides", c.name, got)
					}
					continue
				case "A":
					seen[0].Add(1)
				case "B":
					seen[1].Add(1)
				default:
					report("%s: got %v from an unknown generation %q", c.name, got, gen)
					continue
				}
				if want := c.want[gen]; got != want {
					report("%s: got %v, but config %s decides %v", c.name, got, gen, want)
					continue
				}
				if got.status == 200 && c.headers != nil {
					if kid := assertionKid(resp); kid != keyOf[gen] {
						report("%s: an allow from config %s is signed with key %q, not %q", c.name, gen, kid, keyOf[gen])
					}
				}
			}
		}()
	}

	// The writer: rewrites spread over the duration, every so often a broken
	// one; each waits for the watcher to have dealt with it, so the reload
	// counts are exact.
	brokenEvery := rewrites / max(broken, 1)
	slot := duration / time.Duration(rewrites)
	start := time.Now()
	valid, refused := 0, 0
	for i := range rewrites {
		before := s.reloads("ok") + s.reloads("failed")
		var content string
		if broken > 0 && i%brokenEvery == brokenEvery-1 && refused < broken {
			content = brokenConfig(refused, configs["A"])
			refused++
		} else {
			valid++
			gen := "B"
			if valid%2 == 0 {
				gen = "A"
			}
			content = configs[gen].render() + fmt.Sprintf("# rewrite %d\n", i)
		}
		s.write(content)
		deadline := time.Now().Add(10 * time.Second)
		for s.reloads("ok")+s.reloads("failed") == before {
			if time.Now().After(deadline) {
				stop.Store(true)
				wg.Wait()
				t.Fatalf("rewrite %d was not reloaded within 10 s", i)
			}
			time.Sleep(2 * time.Millisecond)
		}
		if next := start.Add(time.Duration(i+1) * slot); time.Until(next) > 0 {
			time.Sleep(time.Until(next))
		}
	}
	stop.Store(true)
	wg.Wait()

	t.Logf("%d Checks from %d goroutines over %v; %d rewrites (%d broken); answers from A: %d, from B: %d",
		total.Load(), workers, time.Since(start).Round(time.Millisecond), rewrites, refused, seen[0].Load(), seen[1].Load())
	if n := transport.Load(); n != 0 {
		t.Errorf("%d transport errors", n)
	}
	if n := mismatches.Load(); n != 0 {
		t.Errorf("%d answers differ from the config in force, e.g.:\n%s", n, strings.Join(examples, "\n"))
	}
	if seen[0].Load() == 0 || seen[1].Load() == 0 {
		t.Errorf("answers from A: %d, from B: %d; both configs should have served", seen[0].Load(), seen[1].Load())
	}
	if ok, failed := s.reloads("ok"), s.reloads("failed"); ok != float64(valid) || failed != float64(refused) {
		t.Errorf("reloads ok=%v failed=%v, want %d and %d", ok, failed, valid, refused)
	}
	var counted float64
	for _, st := range []string{"200", "302", "401", "403"} {
		counted += counterValue(t, s.metrics, "extauthz_checks_total", map[string]string{"status": st})
	}
	if counted != float64(total.Load()) {
		t.Errorf("extauthz_checks_total counts %v Checks, the clients made %d", counted, total.Load())
	}
}

// generationOf says which config gave an answer, when the answer shows it.
func generationOf(a answer) string {
	switch {
	case a.status == 200:
		return a.gen
	case a.status == 403 && strings.Contains(a.reason, "gen-a-marker"):
		return "A"
	case a.status == 403 && strings.Contains(a.reason, "gen-b-marker"):
		return "B"
	case a.status == 401 && a.reason == identity.ReasonRevoked:
		return "B"
	}
	return ""
}

// assertionKid is the kid of the assertion an allow carries ("" for none).
func assertionKid(resp *authv3.CheckResponse) string {
	for _, h := range resp.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() != check.HeaderAssertion {
			continue
		}
		tok, _, err := jwt.NewParser().ParseUnverified(h.GetHeader().GetValue(), jwt.MapClaims{})
		if err != nil {
			return "unparseable: " + err.Error()
		}
		kid, _ := tok.Header["kid"].(string)
		return kid
	}
	return ""
}

// brokenConfig returns the i-th of a series of configs that must be refused,
// each different, so that none is skipped as unchanged content.
func brokenConfig(i int, base spec) string {
	valid := base.render()
	variants := []string{
		"shared_secret: [unclosed\n", // YAML syntax
		strings.Replace(valid, "shared_secret: ", "shared_secret: c2hvcnQ= #", 1),          // secret too short
		valid + "cookie_expire: forever\n",                                                 // bad duration
		valid + "administratros: [x@corp.example]\n",                                       // unknown key
		strings.Replace(valid, "allowed_groups:", "regex: \"([\"\n    allowed_groups:", 1), // bad regex
		valid + "signing_key: bm90IGEga2V5\n",                                              // duplicate key, not a key
		"- just\n- a list\n",                                                               // not a mapping
		"",                                                                                 // empty: no shared_secret
		strings.Replace(valid, "https://"+appHost, "not a url", 1),                         // bad from
		valid + "max_service_account_lifetime: -1h\n",                                      // negative duration
	}
	return variants[i%len(variants)] + fmt.Sprintf("# broken %d\n", i)
}
