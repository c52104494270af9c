package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/reload"
)

// target is one target of issue 10, judged from this run's numbers.
type target struct {
	Name     string
	Got      string
	Measured bool
	Pass     bool
	Miss     string // by how much, when missed
	Bound    string // what bounds it, when missed
}

// Targets of issue 10 (2-core machine); issue 19's are in targets19.go.
const (
	targetGRPCShare     = 0.85
	targetRSS           = 64 << 20
	targetEnvoyShare    = 0.90
	targetOAuth2Factor  = 1.5
	targetDecideTime    = 5 * time.Microsecond
	targetDecideAllocs  = 10
	decideBenchmarkName = "BenchmarkDecideWithAssertion"
)

func (r *Results) judge() {
	r.Targets = nil
	add := func(t target) { r.Targets = append(r.Targets, t) }

	// gRPC layer: mixed throughput against the floor.
	t := target{Name: "gRPC layer: mixed workload throughput ≥ 85% of the no-op floor's, same run"}
	if g := r.grpc("mixed"); g != nil {
		t.judgeShare(g.Ours.Max, g.Noop.Max, targetGRPCShare, "Checks", "")
		if !t.Pass {
			oursCPU, floorCPU := medianD(g.Ours.Max, cpuPerOp), medianD(g.Noop.Max, cpuPerOp)
			t.Bound = fmt.Sprintf("On %d cores the load generator, the server and the kernel's loopback share the CPUs, so "+
				"throughput is set by CPU per Check: ours used %s per Check against the no-op's %s (+%s). %s",
				r.Machine.CPUs, fmtDur(oursCPU), fmtDur(floorCPU), fmtDur(oursCPU-floorCPU), r.inProcessNote())
		}
	} else {
		t.Got = "not measured"
	}
	add(t)

	// gRPC layer: the tail, the cold path and CPU per Check (issue 19; its
	// p99 over the floor's replaces issue 10's absolute p99 ≤ 1 ms, which no
	// server can meet while the load generator shares the 2 cores).
	r.judge19(add)

	// RSS after the many-sessions workload.
	t = target{Name: "gRPC layer: RSS ≤ 64 MiB after the 100k-session workload"}
	if g := r.grpc("sessions"); g != nil {
		t.Name = fmt.Sprintf("gRPC layer: RSS ≤ 64 MiB after the %s-session workload", humanCount(r.Cfg.Sessions))
		t.Measured, t.Pass = true, g.Ours.PeakRSS <= targetRSS
		t.Got = fmt.Sprintf("peak %s (VmHWM), %s at the end (VmRSS)", fmtMiB(g.Ours.PeakRSS), fmtMiB(g.Ours.EndRSS))
		if !t.Pass {
			t.Miss = fmt.Sprintf("peak over by %s", fmtMiB(g.Ours.PeakRSS-targetRSS))
			t.Bound = fmt.Sprintf("The no-op server peaked at %s on the same load; the rest is what ours keeps per session, "+
				"up to %d verified tokens (identity.DefaultCacheSize) and %d signed assertions (reload.AssertionCacheSize), "+
				"and the garbage between collections.", fmtMiB(g.Noop.PeakRSS), identity.DefaultCacheSize, reload.AssertionCacheSize)
		}
	} else {
		t.Got = "not measured"
	}
	add(t)

	// Envoy layer.
	none, noop, ours := r.envoy(cfgNone), r.envoy(cfgNoop), r.envoy(cfgOurs)
	// The peer is the faster of oauth2-proxy's two modes (issue 19).
	o2p := r.fasterOAuth2Proxy()
	t = target{Name: "Envoy layer: Envoy + ours ≥ 90% of Envoy + no-op ext_authz throughput"}
	if noop != nil && ours != nil {
		t.judgeShare(ours.Runs.Max, noop.Runs.Max, targetEnvoyShare, "requests", "")
		if !t.Pass {
			t.Bound = fmt.Sprintf("Envoy, vegeta, the echo upstream and the authorizer share %d cores: every µs of authorizer CPU "+
				"is taken from Envoy. Ours used %s of CPU per request, the no-op %s.", r.Machine.CPUs,
				fmtDur(medianD(ours.Runs.Max, cpuPerOp)), fmtDur(medianD(noop.Runs.Max, cpuPerOp)))
		}
	} else {
		t.Got = "not measured"
	}
	add(t)

	// Issue 16: beside Envoy, the socket must pay for ours' own work.
	t = target{Name: "Envoy layer: Envoy + ours over a Unix socket ≥ Envoy + no-op ext_authz over TCP throughput"}
	if uds := r.envoy(cfgOursUDS); noop != nil && uds != nil && ours != nil {
		t.judgeShare(uds.Runs.Max, noop.Runs.Max, 1, "requests", "; ours over TCP "+fmtRate(medianF(ours.Runs.Max, rate)))
		if !t.Pass {
			t.Bound = r.socketBound(none, noop, uds)
		}
	} else {
		t.Got = "not measured"
	}
	add(t)

	t = target{Name: "Envoy layer: Envoy + ours ≥ 1.5× Envoy + oauth2-proxy throughput, its faster mode"}
	t2 := target{Name: "Envoy layer: Envoy + ours p99 lower than Envoy + oauth2-proxy's (its faster mode) at the same fixed rate"}
	if ours != nil && o2p != nil {
		a, b := medianF(ours.Runs.Max, rate), medianF(o2p.Runs.Max, rate)
		f, rounds := pairedRatio(ours.Runs.Max, o2p.Runs.Max)
		t.Measured, t.Pass = true, f >= targetOAuth2Factor
		t.Got = fmt.Sprintf("%.2f× (per round %s; medians %s vs %s, %s)", f, joinFloats(rounds, "%.2f×"), fmtRate(a), fmtRate(b), o2p.Name)
		if !t.Pass {
			t.Miss = fmt.Sprintf("short by %.2f× (about %s more requests/s needed)", targetOAuth2Factor-f, fmtRate((targetOAuth2Factor-f)*b))
			t.Bound = fmt.Sprintf("The authorizers' own CPU per request: ours %s, oauth2-proxy %s; the rest of each request's cost "+
				"(Envoy, vegeta, the upstream) is the same for both and dilutes the difference.",
				fmtDur(medianD(ours.Runs.Max, cpuPerOp)), fmtDur(medianD(o2p.Runs.Max, cpuPerOp)))
			if noop != nil {
				// What an authorizer that does nothing reaches over the
				// same gRPC ext_authz bounds every gRPC authorizer.
				nf, _ := pairedRatio(noop.Runs.Max, o2p.Runs.Max)
				t.Bound += fmt.Sprintf(" Envoy + the no-op gRPC ext_authz server, which does no work at all, reaches %.2f× "+
					"in this run: no ext_authz server can do better than the round trip it pays, so the factor left is "+
					"Envoy's gRPC ext_authz call, not the decision (the dynamic module, which has no round trip, is "+
					"judged below).", nf)
			}
		}
		pa, pb := medianD(ours.Runs.Fixed, p99), medianD(o2p.Runs.Fixed, p99)
		t2.Measured, t2.Pass = true, pa < pb
		t2.Got = fmt.Sprintf("%s vs %s at %s", fmtDur(pa), fmtDur(pb), fmtRate(r.EnvoyRate))
		if !t2.Pass {
			t2.Miss = fmt.Sprintf("higher by %s", fmtDur(pa-pb))
		}
	} else {
		why := "not measured"
		if r.OAuth2Skipped != "" {
			why = "not measured: " + r.OAuth2Skipped
		}
		t.Got, t2.Got = why, why
	}
	add(t)
	add(t2)
	_ = none

	// In-process decision including the assertion, cached path.
	var found []goBench
	for _, b := range r.GoBench {
		if strings.HasPrefix(b.Name, decideBenchmarkName+"/") || b.Name == decideBenchmarkName {
			found = append(found, b)
		}
	}
	t = target{Name: "in-process decision including the assertion ≤ 5 µs/op, cached path (" + decideBenchmarkName + ")"}
	t3 := target{Name: "in-process decision including the assertion ≤ 10 allocs/op, cached path"}
	if len(found) > 0 {
		t.Measured, t.Pass, t3.Measured, t3.Pass = true, true, true, true
		var got, got3 []string
		for _, b := range found {
			sub := strings.TrimPrefix(b.Name, decideBenchmarkName+"/")
			got = append(got, fmt.Sprintf("%s %s", sub, fmtDur(time.Duration(b.NsPerOp))))
			got3 = append(got3, fmt.Sprintf("%s %.0f", sub, b.AllocsPerOp))
			if time.Duration(b.NsPerOp) > targetDecideTime {
				t.Pass = false
				t.Miss = strings.TrimPrefix(t.Miss+fmt.Sprintf("; %s over by %s", sub, fmtDur(time.Duration(b.NsPerOp)-targetDecideTime)), "; ")
			}
			if b.AllocsPerOp > targetDecideAllocs {
				t3.Pass = false
				t3.Miss = strings.TrimPrefix(t3.Miss+fmt.Sprintf("; %s over by %.0f", sub, b.AllocsPerOp-targetDecideAllocs), "; ")
			}
		}
		t.Got, t3.Got = strings.Join(got, ", "), strings.Join(got3, ", ")+" allocs/op"
	} else {
		t.Got, t3.Got = "not measured", "not measured"
	}
	add(t)
	add(t3)
	r.Targets = append(r.Targets, r.moduleTargets()...)
}

// socketBound says what keeps Envoy + ours over the socket (uds) from
// Envoy + the no-op over TCP: what the socket is worth to the no-op itself
// ((ii-u), when measured), and where each configuration's CPU went.
func (r *Results) socketBound(none, noop, uds *envoyResult) string {
	envoyCPU := func(e *envoyResult) string { return fmtDur(medianD(e.Runs.Max, proxyCPUPerOp)) }
	b := "The socket saves only the TCP work of the Check's round trip"
	noopUDS := r.envoy(cfgNoopUDS)
	if noopUDS != nil {
		f, rounds := pairedRatio(noopUDS.Runs.Max, noop.Runs.Max)
		b += fmt.Sprintf(", and in this run it made the no-op server itself %.0f%% as fast as over TCP (per round %s)",
			100*f, joinFloats(scale(rounds, 100), "%.0f%%"))
	}
	b += fmt.Sprintf(". Envoy's CPU per request: %s with the no-op over TCP, %s with ours over the socket", envoyCPU(noop), envoyCPU(uds))
	if noopUDS != nil {
		b += fmt.Sprintf(", %s with the no-op over the socket", envoyCPU(noopUDS))
	}
	if none != nil {
		b += fmt.Sprintf(", %s without ext_authz", envoyCPU(none))
	}
	b += fmt.Sprintf("; the authorizer's: ours %s over the socket, the no-op %s over TCP, on the same %d cores. "+
		"Ours answers with the assertion and claim headers and the session token's removal, which Envoy applies to the "+
		"upstream request; the no-op answers an empty OK.",
		fmtDur(medianD(uds.Runs.Max, cpuPerOp)), fmtDur(medianD(noop.Runs.Max, cpuPerOp)), r.Machine.CPUs)
	if shaped := r.envoy(cfgNoopShaped); shaped != nil {
		f, rounds := pairedRatio(shaped.Runs.Max, noop.Runs.Max)
		g, _ := pairedRatio(uds.Runs.Max, shaped.Runs.Max)
		b += fmt.Sprintf(" The no-op answering with those headers over the socket, doing nothing else, reached %.0f%% of the "+
			"no-op over TCP (per round %s), and ours %.0f%% of it: what is missing is Envoy's work on the answer the "+
			"contract asks for, not ours'.", 100*f, joinFloats(scale(rounds, 100), "%.0f%%"), 100*g)
	}
	return b
}

// judgeShare judges a throughput target: ours' rate over the floor's, paired
// round by round, must reach want. It sets Measured, Pass, Got (note goes
// inside its parentheses) and Miss, whose rate counts unit ("Checks",
// "requests"); what bounds a miss differs per target, so Bound is the caller's.
func (t *target) judgeShare(ours, floor []sample, want float64, unit, note string) {
	a, b := medianF(ours, rate), medianF(floor, rate)
	share, rounds := pairedRatio(ours, floor)
	t.Measured, t.Pass = true, share >= want
	t.Got = fmt.Sprintf("%.0f%% (per round %s; medians %s vs %s%s)", 100*share,
		joinFloats(scale(rounds, 100), "%.0f%%"), fmtRate(a), fmtRate(b), note)
	if !t.Pass {
		// What is missing, from the judged (paired) ratio: the medians'
		// own ratio can be on the other side of the target.
		t.Miss = fmt.Sprintf("short by %.0f percentage points (about %s more %s/s needed)", 100*(want-share), fmtRate((want-share)*b), unit)
	}
}

// pairedRatio is the median over rounds of a's throughput ÷ b's in the same
// round. The two were measured back to back within each round, so a round's
// ratio is free of what drifted between rounds (other work, the host), which
// the ratio of the two medians is not.
func pairedRatio(a, b []sample) (float64, []float64) {
	n := min(len(a), len(b))
	ratios := make([]sample, n)
	per := make([]float64, n)
	for i := range n {
		per[i] = a[i].Rate / b[i].Rate
		ratios[i].Rate = per[i]
	}
	return medianF(ratios, rate), per
}

func scale(xs []float64, k float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = k * x
	}
	return out
}

func joinFloats(xs []float64, format string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, ", ")
}

// inProcessNote compares the in-process Check cost with what the server spent.
func (r *Results) inProcessNote() string {
	var parts []string
	for _, b := range r.GoBench {
		if strings.HasPrefix(b.Name, "BenchmarkCheck/") {
			parts = append(parts, fmt.Sprintf("%s %s", strings.TrimPrefix(b.Name, "BenchmarkCheck/"), fmtDur(time.Duration(b.NsPerOp))))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "In process, the whole Check handler costs " + strings.Join(parts, ", ") +
		" (BenchmarkCheck); the rest of the difference is the gRPC transport, reading a request that carries a token " +
		"and encoding an answer with headers. The profiles below (our server under this load, and the handler in process) show where the time goes."
}

// fasterOAuth2Proxy is whichever oauth2-proxy configuration, bearer JWTs or
// its cookie sessions, had the higher median maximum (nil when neither ran).
func (r *Results) fasterOAuth2Proxy() *envoyResult {
	a, b := r.envoy(cfgOAuth2), r.envoy(cfgOAuth2Cookie)
	if a == nil || (b != nil && medianF(b.Runs.Max, rate) > medianF(a.Runs.Max, rate)) {
		return b
	}
	return a
}
