package main

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Targets of issue 19 (2-core machine, same run, medians): the tail as a
// difference from the floor's at the same fixed rate, the cold path, CPU
// per Check, and the peer in both its modes.
const (
	targetP99Added     = 500 * time.Microsecond
	targetSessionShare = 0.50
	targetCPUFactor    = 1.1
)

// judge19 adds the targets of issue 19. Each miss says what bounds it with
// an excerpt of our server's CPU profile under that workload.
func (r *Results) judge19(add func(target)) {
	for _, g := range r.GRPC {
		t := target{Name: fmt.Sprintf("gRPC layer: p99 added over the floor's ≤ %s at half of our maximum rate, %s", fmtDur(targetP99Added), g.Name)}
		ours, floor := medianD(g.Ours.Fixed, p99), medianD(g.Noop.Fixed, p99)
		added := ours - floor
		t.Measured, t.Pass = true, added <= targetP99Added
		t.Got = fmt.Sprintf("%s (p99 %s vs the floor's %s at %s; the runner's pacer lag at p99: %s in ours' runs, %s in the floor's)",
			signedDur(added), fmtDur(ours), fmtDur(floor), fmtRate(g.Rate),
			fmtDur(medianD(g.Ours.Fixed, pacerLag)), fmtDur(medianD(g.Noop.Fixed, pacerLag)))
		if !t.Pass {
			t.Miss = fmt.Sprintf("over by %s", fmtDur(added-targetP99Added))
			t.Bound = fmt.Sprintf("At the same rate ours spends %s of CPU per Check against the floor's %s (closed loop), so "+
				"on %d shared cores each of our Checks keeps the load generator and the other Checks waiting longer, and our "+
				"garbage collector takes the cores in bursts. %s%s",
				fmtDur(medianD(g.Ours.Max, cpuPerOp)), fmtDur(medianD(g.Noop.Max, cpuPerOp)), r.Machine.CPUs,
				tailSpread(g.Ours.Fixed, g.Noop.Fixed, added), r.profileExcerpt(g.Key, funcsFor(g.Key)))
		}
		add(t)
	}

	t := target{Name: fmt.Sprintf("gRPC layer: %s-session throughput ≥ 50%% of the no-op floor's", humanCount(r.Cfg.Sessions))}
	if g := r.grpc("sessions"); g != nil {
		t.judgeShare(g.Ours.Max, g.Noop.Max, targetSessionShare, "Checks", "")
		if !t.Pass {
			t.Bound = fmt.Sprintf("Every request is a session's first: ours used %s of CPU per Check against the floor's %s. "+
				"A new (session, route) costs one ES256 signature of its assertion (BenchmarkSignAssertion) and one HS256 "+
				"verification (BenchmarkVerify/uncached); neither can be cached before the session's second request, and caching "+
				"more sessions would trade the 64 MiB bound away. %s",
				fmtDur(medianD(g.Ours.Max, cpuPerOp)), fmtDur(medianD(g.Noop.Max, cpuPerOp)), r.profileExcerpt("sessions", coldFuncs))
		}
	} else {
		t.Got = "not measured"
	}
	add(t)

	t = target{Name: "gRPC layer: CPU per Check ≤ 1.1× the floor's, (a) mixed"}
	if g := r.grpc("mixed"); g != nil {
		ours, floor := medianD(g.Ours.Max, cpuPerOp), medianD(g.Noop.Max, cpuPerOp)
		f := float64(ours) / float64(max(floor, 1))
		t.Measured, t.Pass = true, f <= targetCPUFactor
		t.Got = fmt.Sprintf("%.2f× (%s vs %s)", f, fmtDur(ours), fmtDur(floor))
		if !t.Pass {
			t.Miss = fmt.Sprintf("over by %.2f×", f-targetCPUFactor)
			t.Bound = fmt.Sprintf("Both servers receive the same CheckRequest; the floor decodes it with the generated code, "+
				"ours reads only the fields it uses (internal/check/wire.go), then decides, and encodes an answer with "+
				"headers where the floor's is a shared, empty OK. %s %s", r.inProcessNote(), r.profileExcerpt("mixed", tailFuncs))
		}
	} else {
		t.Got = "not measured"
	}
	add(t)
}

// The functions a profile excerpt shows: what makes the tail (collection,
// allocation, stack growth, our handler) and the cold path (signing,
// verification).
var (
	tailFuncs = regexp.MustCompile(`check\.\(\*Server\)\.Check$|audit\.\(\*Log\)\.Decision$|runtime\.gcBgMarkWorker$|runtime\.mallocgc$|runtime\.newstack$|runtime\.gcAssistAlloc$|proto\.Unmarshal$|proto\.Marshal$`)
	coldFuncs = regexp.MustCompile(`check\.\(\*Server\)\.Check$|identity\.\(\*SigningKey\)\.Sign$|ecdsa\.Sign$|identity\.\(\*Verifier\)\.Verify$|runtime\.gcBgMarkWorker$|runtime\.mallocgc$|runtime\.newstack$|proto\.Unmarshal$`)
)

// funcsFor is what to quote of the profile under workload key: its cold
// path when every session is new, else the tail's usual suspects.
func funcsFor(key string) *regexp.Regexp {
	if key == "sessions" {
		return coldFuncs
	}
	return tailFuncs
}

// profileExcerpt is the lines of our server's profile under workload key
// (bench/profserver, pprof -top -cum) whose function matches funcs.
func (r *Results) profileExcerpt(key string, funcs *regexp.Regexp) string {
	g := r.grpc(key)
	if g == nil || g.Profile == "" {
		return ""
	}
	prof := g.ProfileFull
	if prof == "" {
		prof = g.Profile
	}
	var lines []string
	for _, l := range strings.Split(prof, "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			continue
		}
		// A generic function's name has spaces: it is everything after cum%.
		if name := strings.Join(f[5:], " "); funcs.MatchString(name) {
			lines = append(lines, fmt.Sprintf("`%s` %s (%s)", name, f[4], f[3]))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return fmt.Sprintf("Our server's CPU profile under %s (share of its CPU spent in each, with what it calls): %s.", g.Name, strings.Join(lines, ", "))
}

func pacerLag(s sample) time.Duration { return s.PacerLagP99 }

// tailSpread says how far each server's p99 at the fixed rate moved from
// round to round. When the floor's own moves by more than the difference
// judged, a run of this length cannot resolve that difference: the bound is
// the measurement's, not the server's.
func tailSpread(ours, floor []sample, added time.Duration) string {
	if len(floor) < 2 {
		return ""
	}
	lo, hi := spanD(floor, p99)
	olo, ohi := spanD(ours, p99)
	s := fmt.Sprintf("Over the rounds the floor's p99 ranged from %s to %s, ours' from %s to %s", fmtDur(lo), fmtDur(hi), fmtDur(olo), fmtDur(ohi))
	if hi-lo > added {
		return s + fmt.Sprintf(": the floor's own round-to-round spread (%s) is larger than the difference judged (%s), which this run cannot resolve. ", fmtDur(hi-lo), signedDur(added))
	}
	return s + ". "
}

// spanD is the least and the greatest of f over xs.
func spanD(xs []sample, f func(sample) time.Duration) (lo, hi time.Duration) {
	for i, x := range xs {
		v := f(x)
		if i == 0 || v < lo {
			lo = v
		}
		if i == 0 || v > hi {
			hi = v
		}
	}
	return lo, hi
}
