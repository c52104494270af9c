package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	dto "github.com/prometheus/client_model/go"

	"github.com/extauthz/extauthz/internal/buildinfo"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/impersonation"
	"github.com/extauthz/extauthz/internal/metrics"
	"github.com/extauthz/extauthz/internal/policy"
)

var (
	publicRoute  = &policy.Route{Name: "public", Public: true}
	privateRoute = &policy.Route{Name: "app"}
	holder       = &identity.Claims{Email: "bob@corp.example"}
	impersonator = &identity.Claims{Email: "alice@corp.example", ImpersonateEmail: "bob@corp.example"}
)

// series returns every sample of a metric family as "label=value,..." -> value.
func series(t *testing.T, m *metrics.Metrics, name string) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			out[labels(mt)] = value(mt)
		}
	}
	return out
}

func labels(mt *dto.Metric) string {
	parts := make([]string, 0, len(mt.GetLabel()))
	for _, lp := range mt.GetLabel() {
		parts = append(parts, lp.GetName()+"="+lp.GetValue())
	}
	return strings.Join(parts, ",")
}

func value(mt *dto.Metric) float64 {
	switch {
	case mt.GetCounter() != nil:
		return mt.GetCounter().GetValue()
	case mt.GetGauge() != nil:
		return mt.GetGauge().GetValue()
	case mt.GetHistogram() != nil:
		return float64(mt.GetHistogram().GetSampleCount())
	}
	return 0
}

func TestChecksAreCountedByDecisionStatusAndReasonClass(t *testing.T) {
	cases := []struct {
		name string
		d    decision.Decision
		want string
	}{
		{"a public route", decision.Decision{Kind: decision.KindPublic, Status: 200, Route: publicRoute, Reason: decision.ReasonPublic},
			"decision=allow,reason_class=public,status=200"},
		{"a policy allow", decision.Decision{Kind: decision.KindAllowed, Status: 200, Route: privateRoute, Claims: holder, Source: identity.SourceAuthorization, Reason: "allowed_users"},
			"decision=allow,reason_class=policy_allow,status=200"},
		{"no token, API client", decision.Decision{Kind: decision.KindNoToken, Status: 401, Route: privateRoute, Reason: "no Pomerium token or session"},
			"decision=deny,reason_class=no_token,status=401"},
		{"no token, browser", decision.Decision{Kind: decision.KindNoToken, Status: 302, Route: privateRoute, Reason: "no Pomerium token or session"},
			"decision=deny,reason_class=no_token,status=302"},
		{"a bad token", decision.Decision{Kind: decision.KindBadToken, Status: 401, Route: privateRoute, Source: identity.SourceBearer, Cause: identity.CauseSignature, Reason: identity.ReasonSignature},
			"decision=deny,reason_class=token_invalid,status=401"},
		{"an expired cookie, browser", decision.Decision{Kind: decision.KindBadToken, Status: 302, Route: privateRoute, Source: identity.SourceCookie, Cause: identity.CauseExpired, Reason: identity.ReasonExpired},
			"decision=deny,reason_class=token_invalid,status=302"},
		{"a policy deny", decision.Decision{Kind: decision.KindDeniedByPolicy, Status: 403, Route: privateRoute, Claims: holder, Source: identity.SourceAuthorization, Reason: "no rule matched"},
			"decision=deny,reason_class=policy_deny,status=403"},
		{"an impersonation refused", decision.Decision{Kind: decision.KindImpersonationRefused, Status: 403, Route: privateRoute, Claims: impersonator, Source: identity.SourceAuthorization,
			Impersonation: impersonation.Outcome{Impersonating: true, Refusal: "impersonation requires an administrator"}},
			"decision=deny,reason_class=impersonation_denied,status=403"},
		{"no route", decision.Decision{Kind: decision.KindNoRoute, Status: 404, Reason: "no route matches this host and path"},
			"decision=deny,reason_class=no_route,status=404"},
		{"a malformed CheckRequest", decision.Decision{Kind: decision.KindBadRequest, Status: 400, Reason: "malformed check request"},
			"decision=deny,reason_class=bad_request,status=400"},
		{"a replica that has not read its store yet", decision.Decision{Kind: decision.KindNotReady, Status: 503, Reason: "the authorizer is starting"},
			"decision=deny,reason_class=not_ready,status=503"},
		{"an internal error", decision.Decision{Kind: decision.KindInternal, Status: 500, Route: privateRoute, Reason: "internal error"},
			"decision=deny,reason_class=internal,status=500"},
		{"a status nothing produces fails closed into internal", decision.Decision{Kind: decision.KindAllowed, Status: 418},
			"decision=deny,reason_class=internal,status=500"},
		{"a kind nothing produces fails closed into internal", decision.Decision{Kind: 200, Status: 200},
			"decision=deny,reason_class=internal,status=500"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := metrics.New()
			m.ObserveCheck(&c.d, 42*time.Microsecond)
			got := series(t, m, "extauthz_checks_total")
			for k, v := range got {
				want := 0.0
				if k == c.want {
					want = 1
				}
				if v != want {
					t.Errorf("%s = %v, want %v", k, v, want)
				}
			}
			if _, ok := got[c.want]; !ok {
				t.Errorf("no series %s among %v", c.want, got)
			}
			if h := series(t, m, "extauthz_check_duration_seconds"); h[""] != 1 {
				t.Errorf("duration histogram = %v, want one observation", h)
			}
		})
	}
}

func TestTheSeriesAreFixedWhateverTheInput(t *testing.T) {
	m := metrics.New()
	count := func() int {
		n := 0
		for _, name := range []string{"extauthz_checks_total", "extauthz_token_verification_failures_total", "extauthz_impersonated_decisions_total"} {
			n += len(series(t, m, name))
		}
		return n
	}
	before := count()
	hostile := []string{"alice@corp.example", "<script>", strings.Repeat("x", 10000), "\x00\xff", "token expired\n", ""}
	for i, h := range hostile {
		for _, st := range []decision.Status{200, 302, 401, 403, 404, 500, 0, 999, decision.Status(i)} {
			d := decision.Decision{Kind: decision.Kind(i + int(st)), Status: st, Reason: h, Cause: identity.Cause(i * 40), Route: privateRoute, Source: identity.SourceCookie,
				Claims:        &identity.Claims{Email: h, ImpersonateEmail: h + "x", ImpersonateAccess: h},
				Impersonation: impersonation.Outcome{Access: h, Refusal: h}}
			m.ObserveCheck(&d, time.Duration(i))
		}
	}
	if after := count(); after != before {
		t.Errorf("series went from %d to %d: client input became label values", before, after)
	}
	body := scrape(t, m)
	for _, h := range []string{"alice@corp.example", "<script>", "bob@"} {
		if strings.Contains(body, h) {
			t.Errorf("/metrics contains %q", h)
		}
	}
	if got := series(t, m, "extauthz_token_verification_failures_total")["reason=other"]; got == 0 {
		t.Error("unknown token refusals are not counted as other")
	}
}

func TestEveryTokenRefusalReasonHasItsOwnSlug(t *testing.T) {
	m := metrics.New()
	slugs := map[string]string{}
	for _, cause := range identity.Causes() {
		name := cause.String()
		before := series(t, m, "extauthz_token_verification_failures_total")
		m.ObserveCheck(&decision.Decision{Kind: decision.KindBadToken, Status: 401, Route: privateRoute, Source: identity.SourceAuthorization, Cause: cause}, 0)
		after := series(t, m, "extauthz_token_verification_failures_total")
		var moved []string
		for k, v := range after {
			if v != before[k] {
				moved = append(moved, k)
			}
		}
		if len(moved) != 1 {
			t.Errorf("%s moved %v", name, moved)
			continue
		}
		slug := strings.TrimPrefix(moved[0], "reason=")
		if slug == "other" {
			t.Errorf("%s (%q) has no slug of its own", name, cause)
		}
		if prev, dup := slugs[slug]; dup {
			t.Errorf("%s and %s share the slug %s", name, prev, slug)
		}
		slugs[slug] = name
		for _, r := range slug {
			if !(r >= 'a' && r <= 'z' || r == '_') {
				t.Errorf("slug %q is not a short snake_case word", slug)
				break
			}
		}
	}
	// A token that verified is not a verification failure, whatever follows.
	before := series(t, m, "extauthz_token_verification_failures_total")
	m.ObserveCheck(&decision.Decision{Kind: decision.KindDeniedByPolicy, Status: 403, Route: privateRoute, Claims: holder, Source: identity.SourceAuthorization, Cause: identity.CauseExpired, Reason: identity.ReasonExpired}, 0)
	m.ObserveCheck(&decision.Decision{Kind: decision.KindNoToken, Status: 401, Route: privateRoute, Reason: "no Pomerium token or session"}, 0)
	after := series(t, m, "extauthz_token_verification_failures_total")
	for k, v := range after {
		if v != before[k] {
			t.Errorf("%s moved on a decision that is not a token refusal", k)
		}
	}
}

func TestImpersonatedDecisionsAreCountedByDecisionAndAccess(t *testing.T) {
	m := metrics.New()
	obs := func(status decision.Status, out impersonation.Outcome) {
		kind := decision.KindAllowed
		if status != 200 {
			kind = decision.KindImpersonationRefused
		}
		m.ObserveCheck(&decision.Decision{Kind: kind, Status: status, Route: privateRoute, Claims: impersonator, Source: identity.SourceCookie, Impersonation: out}, 0)
	}
	obs(200, impersonation.Outcome{Impersonating: true, Access: identity.AccessReadOnly})
	obs(200, impersonation.Outcome{Impersonating: true, Access: identity.AccessReadOnly})
	obs(403, impersonation.Outcome{Impersonating: true, Access: identity.AccessReadOnly, Refusal: "read-only"})
	obs(200, impersonation.Outcome{Impersonating: true, Access: identity.AccessReadWrite})
	obs(200, impersonation.Outcome{Ended: true})
	obs(403, impersonation.Outcome{Impersonating: true, Access: "superuser", Refusal: "impersonate_access must be"})
	// Not an impersonation: not counted.
	m.ObserveCheck(&decision.Decision{Status: 200, Route: privateRoute, Claims: holder}, 0)
	want := map[string]float64{
		"access=read_only,decision=allow":  2,
		"access=read_only,decision=deny":   1,
		"access=read_write,decision=allow": 1,
		"access=ended,decision=allow":      1,
		"access=invalid,decision=deny":     1,
	}
	for k, v := range series(t, m, "extauthz_impersonated_decisions_total") {
		if v != want[k] {
			t.Errorf("%s = %v, want %v", k, v, want[k])
		}
	}
}

func TestReloadsAreCounted(t *testing.T) {
	m := metrics.New()
	start := time.Unix(1_700_000_000, 0)
	m.ReloadSucceeded(start, false)
	got := series(t, m, "extauthz_config_reloads_total")
	if got["result=ok"] != 0 || got["result=failed"] != 0 {
		t.Errorf("the config loaded at start counted as a reload: %v", got)
	}
	if ts := series(t, m, "extauthz_config_last_reload_success_timestamp_seconds")[""]; ts != 1_700_000_000 {
		t.Errorf("last success = %v, want the start time", ts)
	}
	m.ReloadFailed()
	if ok := series(t, m, "extauthz_config_last_reload_successful")[""]; ok != 0 {
		t.Errorf("last_reload_successful = %v after a failure", ok)
	}
	m.ReloadSucceeded(start.Add(time.Minute), true)
	got = series(t, m, "extauthz_config_reloads_total")
	if got["result=ok"] != 1 || got["result=failed"] != 1 {
		t.Errorf("reloads = %v, want ok 1 failed 1", got)
	}
	if ts := series(t, m, "extauthz_config_last_reload_success_timestamp_seconds")[""]; ts != 1_700_000_060 {
		t.Errorf("last success = %v", ts)
	}
	if ok := series(t, m, "extauthz_config_last_reload_successful")[""]; ok != 1 {
		t.Errorf("last_reload_successful = %v after a success", ok)
	}
}

func TestDenialLogsDroppedBySamplingAreCounted(t *testing.T) {
	m := metrics.New()
	if got := series(t, m, "extauthz_denial_logs_dropped_total")[""]; got != 0 {
		t.Fatalf("dropped = %v before any drop", got)
	}
	m.DenialLogDropped()
	m.DenialLogDropped()
	if got := series(t, m, "extauthz_denial_logs_dropped_total")[""]; got != 2 {
		t.Errorf("dropped = %v, want 2", got)
	}
	var none *metrics.Metrics
	none.DenialLogDropped() // a nil *Metrics does nothing
}

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics answered %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestTheHandlerExposesEveryMetric(t *testing.T) {
	m := metrics.New()
	m.ObserveCheck(&decision.Decision{Status: 200, Route: publicRoute}, time.Millisecond)
	body := scrape(t, m)
	for _, name := range []string{
		"extauthz_checks_total", "extauthz_check_duration_seconds_bucket", "extauthz_impersonated_decisions_total",
		"extauthz_config_reloads_total", "extauthz_config_last_reload_success_timestamp_seconds",
		"extauthz_token_verification_failures_total", "extauthz_denial_logs_dropped_total", "extauthz_build_info", "go_goroutines", "process_start_time_seconds",
	} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	version, goVersion := buildinfo.Version(), buildinfo.GoVersion()
	bi := series(t, m, "extauthz_build_info")
	if bi["goversion="+goVersion+",version="+version] != 1 {
		t.Errorf("extauthz_build_info = %v", bi)
	}
	if !strings.Contains(body, `le="5e-06"`) || !strings.Contains(body, `le="0.001"`) {
		t.Error("the duration buckets do not start in microseconds")
	}
}

func TestMetricsUseTheirOwnRegistry(t *testing.T) {
	// Two instances (as tests and a reload path may build) must not clash,
	// which they would on the global registry.
	a, b := metrics.New(), metrics.New()
	a.ObserveCheck(&decision.Decision{Status: 404}, 0)
	if got := series(t, b, "extauthz_checks_total")["decision=deny,reason_class=no_route,status=404"]; got != 0 {
		t.Errorf("instances share state: %v", got)
	}
}

func TestANilMetricsDoesNothing(t *testing.T) {
	var m *metrics.Metrics
	m.ObserveCheck(&decision.Decision{Status: 200}, 0)
	m.ReloadSucceeded(time.Now(), true)
	m.ReloadFailed()
}

func TestObserveCheckAllocatesNothing(t *testing.T) {
	m := metrics.New()
	decisions := []decision.Decision{
		{Status: 200, Route: privateRoute, Claims: holder},
		{Status: 401, Route: privateRoute, Source: identity.SourceAuthorization, Reason: identity.ReasonExpired},
		{Status: 403, Route: privateRoute, Claims: impersonator, Impersonation: impersonation.Outcome{Impersonating: true, Access: identity.AccessReadOnly}},
		{Status: 404},
	}
	for _, d := range decisions {
		if n := testing.AllocsPerRun(200, func() { m.ObserveCheck(&d, 3*time.Microsecond) }); n != 0 {
			t.Errorf("ObserveCheck(status %d) allocates %v times per call", d.Status, n)
		}
	}
}

func BenchmarkObserveCheck(b *testing.B) {
	m := metrics.New()
	d := decision.Decision{Status: 401, Route: privateRoute, Source: identity.SourceAuthorization, Reason: identity.ReasonExpired,
		Claims: &identity.Claims{RegisteredClaims: jwt.RegisteredClaims{ID: "x"}}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveCheck(&d, 5*time.Microsecond)
		}
	})
}
