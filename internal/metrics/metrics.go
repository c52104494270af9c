// Package metrics is the sidecar's Prometheus instrumentation, on a registry of
// its own (never the global one), served at /metrics.
//
// Label values come from small fixed sets only: a decision's kind is mapped
// to a reason class, a token refusal's cause is its own short word, an impersonation's access to
// one of four words. No email, route, host, token or free text ever becomes a
// label value, so the series count is bounded whatever clients send.
//
// Every labelled child is resolved once, in New; the per-Check path
// (ObserveCheck) only picks a precomputed counter from an array and adds to it.
// Every method is safe on a nil *Metrics and then does nothing.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/extauthz/extauthz/internal/buildinfo"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
)

// Reason classes of extauthz_checks_total: why a Check was answered as it was.
const (
	ClassPublic              = "public"               // allowed: the route is public
	ClassPolicyAllow         = "policy_allow"         // allowed by the route's policy
	ClassNoToken             = "no_token"             // no Pomerium token or session (401, or 302 for browsers)
	ClassTokenInvalid        = "token_invalid"        // a token was presented and refused (401, or 302 for a bad cookie)
	ClassPolicyDeny          = "policy_deny"          // the route's policy denies the identity (403)
	ClassImpersonationDenied = "impersonation_denied" // impersonation refused: not an administrator, protected target, read-only (403)
	ClassNoRoute             = "no_route"             // no route matches (404)
	ClassBadRequest          = "bad_request"          // the CheckRequest carries no HTTP attributes (400)
	ClassNotReady            = "not_ready"            // refused before deciding: the replica has not read its shared store yet (503)
	ClassInternal            = "internal"             // fail closed on an internal error (500), or any status not listed above
)

// series is one (decision, status, reason_class) combination of
// extauthz_checks_total: the decision kind and status that land in it, and
// its class. The decision and status labels are read off the status (allow
// is 200, every other status a deny), so they cannot disagree with it. Only
// the combinations a Check can produce exist, so the exposition holds no
// impossible series.
type series struct {
	class string
	kind  decision.Kind
	code  decision.Status
}

// labels are s's label values, in the order of extauthz_checks_total's.
func (s series) labels() []string {
	outcome := "deny"
	if s.code == decision.StatusOK {
		outcome = "allow"
	}
	return []string{outcome, strconv.Itoa(int(s.code)), s.class}
}

// kindClasses gives each decision kind its reason_class and the statuses it
// answers with: one, but for a missing or refused token, which sends a
// browser to sign in (302) and answers an API client 401. Internal is last.
var kindClasses = [...]struct {
	kind  decision.Kind
	class string
	codes []decision.Status
}{
	{decision.KindPublic, ClassPublic, []decision.Status{decision.StatusOK}},
	{decision.KindAllowed, ClassPolicyAllow, []decision.Status{decision.StatusOK}},
	{decision.KindNoToken, ClassNoToken, []decision.Status{decision.StatusSignIn, decision.StatusUnauthorized}},
	{decision.KindBadToken, ClassTokenInvalid, []decision.Status{decision.StatusSignIn, decision.StatusUnauthorized}},
	{decision.KindDeniedByPolicy, ClassPolicyDeny, []decision.Status{decision.StatusForbidden}},
	{decision.KindImpersonationRefused, ClassImpersonationDenied, []decision.Status{decision.StatusForbidden}},
	{decision.KindNoRoute, ClassNoRoute, []decision.Status{decision.StatusNotFound}},
	{decision.KindBadRequest, ClassBadRequest, []decision.Status{decision.StatusBadRequest}},
	{decision.KindNotReady, ClassNotReady, []decision.Status{decision.StatusUnavailable}},
	{decision.KindInternal, ClassInternal, []decision.Status{decision.StatusInternal}},
}

// checkSeries lists every series, kindClasses expanded; the last, internal,
// is also where any other combination lands (fail closed).
var checkSeries = func() []series {
	var all []series
	for _, k := range kindClasses {
		for _, code := range k.codes {
			all = append(all, series{k.class, k.kind, code})
		}
	}
	return all
}()

var sInternal = len(checkSeries) - 1

// Reasons of extauthz_token_verification_failures_total: each
// identity.Cause is its own label value, and anything else counts as "other".
const tokenReasonOther = "other"

// Values of extauthz_impersonated_decisions_total{access}.
const (
	AccessReadOnly  = identity.AccessReadOnly  // "read_only"
	AccessReadWrite = identity.AccessReadWrite // "read_write"
	AccessEnded     = "ended"                  // the impersonation had expired; the holder acted as themselves
	AccessInvalid   = "invalid"                // the token named an access that is neither
)

const (
	accReadOnly = iota
	accReadWrite
	accEnded
	accInvalid
	nAccess
)

var accessNames = [nAccess]string{AccessReadOnly, AccessReadWrite, AccessEnded, AccessInvalid}

// DurationBuckets are the bounds of extauthz_check_duration_seconds, in
// seconds: a Check takes microseconds (a cached assertion) to a millisecond or
// so (an ES256 signature under load); the tail catches stalls.
var DurationBuckets = []float64{
	5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1,
}

// Metrics holds the sidecar's collectors. Build it with New.
type Metrics struct {
	reg *prometheus.Registry

	checks        []prometheus.Counter
	duration      prometheus.Histogram
	impersonated  [2][nAccess]prometheus.Counter // [allowed][access]
	tokenFailures map[identity.Cause]prometheus.Counter
	tokenOther    prometheus.Counter

	denialLogsDropped prometheus.Counter

	reloadOK, reloadFailed prometheus.Counter
	lastReloadSuccess      prometheus.Gauge
	lastReloadSuccessful   prometheus.Gauge
}

// New registers every collector on a fresh registry, with the Go runtime and
// process collectors beside the sidecar's own.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg}

	checks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "extauthz_checks_total",
		Help: "Check calls answered, by decision (allow or deny), HTTP status and reason class.",
	}, []string{"decision", "status", "reason_class"})
	m.checks = make([]prometheus.Counter, len(checkSeries))
	for i, s := range checkSeries {
		m.checks[i] = checks.WithLabelValues(s.labels()...)
	}

	m.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "extauthz_check_duration_seconds",
		Help:    "Time to answer one Check, from receiving the request to the response being built.",
		Buckets: DurationBuckets,
	})

	imp := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "extauthz_impersonated_decisions_total",
		Help: "Decisions on tokens that ask to impersonate, by decision and access (read_only, read_write, ended, invalid). Who impersonated whom is in the audit log, never here.",
	}, []string{"decision", "access"})
	for a := range nAccess {
		m.impersonated[0][a] = imp.WithLabelValues("deny", accessNames[a])
		m.impersonated[1][a] = imp.WithLabelValues("allow", accessNames[a])
	}

	tok := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "extauthz_token_verification_failures_total",
		Help: "Tokens presented and refused, by reason.",
	}, []string{"reason"})
	m.tokenFailures = make(map[identity.Cause]prometheus.Counter, len(identity.Causes()))
	for _, c := range identity.Causes() {
		m.tokenFailures[c] = tok.WithLabelValues(c.String())
	}
	m.tokenOther = tok.WithLabelValues(tokenReasonOther)

	m.denialLogsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "extauthz_denial_logs_dropped_total",
		Help: "Denials not logged at info because more than the per-second limit came in one second; extauthz_checks_total still counts them.",
	})

	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "extauthz_config_reloads_total",
		Help: "Config reloads attempted after start, by result (ok, or failed: the previous config kept serving).",
	}, []string{"result"})
	m.reloadOK = reloads.WithLabelValues("ok")
	m.reloadFailed = reloads.WithLabelValues("failed")
	m.lastReloadSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "extauthz_config_last_reload_success_timestamp_seconds",
		Help: "Unix time the config in force was loaded (at start, or by the last successful reload).",
	})
	m.lastReloadSuccessful = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "extauthz_config_last_reload_successful",
		Help: "1 when the last config load or reload succeeded, 0 when it was refused.",
	})

	version, goVersion := buildinfo.Version(), buildinfo.GoVersion()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "extauthz_build_info",
		Help:        "Always 1; the labels name the build.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": goVersion},
	})
	build.Set(1)

	reg.MustRegister(checks, m.duration, imp, tok, m.denialLogsDropped, reloads, m.lastReloadSuccess, m.lastReloadSuccessful, build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry is the registry the collectors are on; tests gather from it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ObserveCheck records one answered Check; its signature fits
// check.Server.Observe. It allocates nothing.
func (m *Metrics) ObserveCheck(d *decision.Decision, elapsed time.Duration) {
	if m == nil || d == nil {
		return
	}
	m.duration.Observe(elapsed.Seconds())
	m.checks[seriesOf(d)].Inc()
	if d.Kind == decision.KindBadToken {
		if c, ok := m.tokenFailures[d.Cause]; ok {
			c.Inc()
		} else {
			m.tokenOther.Inc()
		}
	}
	if d.AsksToImpersonate() {
		allowed := 0
		if d.Allowed() {
			allowed = 1
		}
		m.impersonated[allowed][accessOf(d)].Inc()
	}
}

// DenialLogDropped counts a denial the info log left out (sampling); its
// signature fits check.Server.DenialLogDropped.
func (m *Metrics) DenialLogDropped() {
	if m == nil {
		return
	}
	m.denialLogsDropped.Inc()
}

// seriesOf picks the series of extauthz_checks_total a decision's kind and
// status belong to; a combination no Check produces fails closed into internal.
func seriesOf(d *decision.Decision) int {
	for i := range checkSeries {
		if checkSeries[i].kind == d.Kind && checkSeries[i].code == d.Status {
			return i
		}
	}
	return sInternal
}

func accessOf(d *decision.Decision) int {
	switch {
	case d.Impersonation.Ended:
		return accEnded
	case d.Impersonation.Access == identity.AccessReadOnly:
		return accReadOnly
	case d.Impersonation.Access == identity.AccessReadWrite:
		return accReadWrite
	}
	return accInvalid
}

// ReloadSucceeded records a config put in force at t: a successful reload
// (counted) or, with counted false, the config loaded at start.
func (m *Metrics) ReloadSucceeded(t time.Time, counted bool) {
	if m == nil {
		return
	}
	if counted {
		m.reloadOK.Inc()
	}
	m.lastReloadSuccess.Set(float64(t.UnixNano()) / 1e9)
	m.lastReloadSuccessful.Set(1)
}

// ReloadFailed records a refused reload; the previous config keeps serving.
func (m *Metrics) ReloadFailed() {
	if m == nil {
		return
	}
	m.reloadFailed.Inc()
	m.lastReloadSuccessful.Set(0)
}
