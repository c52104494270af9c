package main

import (
	"errors"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"time"
)

// A sample is what one measured run saw; measured takes one around a load
// function, with the CPU the server and the rest of the machine used, and
// the runner's own garbage collections.

// sample is one measured run.
type sample struct {
	Requests int           // answered
	Errors   int           // transport errors or non-2xx (HTTP)
	Allowed  int           // gRPC: status OK
	Elapsed  time.Duration // from the first send to the last answer
	P50      time.Duration
	P99      time.Duration
	P999     time.Duration
	Max      time.Duration
	Rate     float64       // answered per second
	Target   float64       // the fixed rate asked for (0: closed loop)
	CPU      time.Duration // CPU the measured server used during the run
	CPUPerOp time.Duration
	// Envoy layer: Envoy's CPU and the runner's (the load generator's) per
	// answered request, to see where a configuration's CPU goes.
	ProxyCPUPerOp, RunnerCPUPerOp time.Duration
	Foreign                       float64 // CPUs other work on the machine used during the run, on average
	// Open loop: how late the pacer handed requests out (99th percentile),
	// and how many times the runner itself collected garbage.
	PacerLagP99 time.Duration
	RunnerGCs   uint64
	// ServerGCs is how many times ours collected garbage during the run
	// (its go_gc_duration_seconds_count; -1 when unknown).
	ServerGCs int64
	// Spectrum is the latency at each of spectrumQuantiles, for the plot of
	// the distributions.
	Spectrum []time.Duration
	Repeats  int // runs thrown away before this one because other work disturbed them
}

// latencies merges per-worker latencies and fills the quantiles.
func (s *sample) setLatencies(parts [][]time.Duration) {
	var all []time.Duration
	for _, p := range parts {
		all = append(all, p...)
	}
	slices.Sort(all)
	s.P50, s.P99, s.P999 = quantile(all, 0.50), quantile(all, 0.99), quantile(all, 0.999)
	s.Spectrum = make([]time.Duration, len(spectrumQuantiles))
	for i, q := range spectrumQuantiles {
		s.Spectrum[i] = quantile(all, q)
	}
	if len(all) > 0 {
		s.Max = all[len(all)-1]
	}
}

// spectrumQuantiles are where a latency distribution is kept, denser toward
// the tail: from the median to 99.99%.
var spectrumQuantiles = []float64{0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999}

// quantile is the nearest-rank quantile of sorted values.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// runnerGC makes the runner's own garbage collector as quiet as it can be
// during a run (a collection first, then one at four times the live heap at
// most: the runner's heap is mostly the request pool, and a run allocates a
// few hundred MB at most) and returns a func that restores the setting and
// says how many collections the runner ran meanwhile. A runner collecting
// under load takes CPU, and stalls its callers, at moments that have nothing
// to do with the server measured.
func runnerGC() (done func() uint64) {
	runtime.GC()
	old := debug.SetGCPercent(400)
	before := gcCycles()
	return func() uint64 {
		n := gcCycles() - before
		debug.SetGCPercent(old)
		return n
	}
}

func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// newSample sums what each worker saw into one sample over elapsed (at the
// target rate, 0 for a closed loop).
func newSample(elapsed time.Duration, target float64, lats [][]time.Duration, errs, allowed []int) sample {
	s := sample{Elapsed: elapsed, Target: target}
	for w := range lats {
		s.Requests += len(lats[w])
		s.Errors += errs[w]
		s.Allowed += allowed[w]
	}
	s.setLatencies(lats)
	s.Rate = float64(s.Requests-s.Errors) / s.Elapsed.Seconds()
	return s
}

// measured runs f while reading p's CPU time (p may be nil) and how much CPU
// other work on the machine used meanwhile.
func measured(p *proc, f func() sample) (sample, error) {
	var before procStat
	var err error
	if p != nil {
		if before, err = readProcStat(p.Pid()); err != nil {
			return sample{}, p.failure(err)
		}
	}
	gcsBefore := gcCount(p)
	snap := takeCPUSnap()
	s := f()
	s.Foreign = foreignCores(snap, takeCPUSnap())
	if p == nil {
		return s, nil
	}
	after, err := readProcStat(p.Pid())
	if err != nil {
		return s, p.failure(err)
	}
	s.CPU = after.CPU - before.CPU
	s.ServerGCs = -1
	if gcsAfter := gcCount(p); gcsBefore >= 0 && gcsAfter >= 0 {
		s.ServerGCs = gcsAfter - gcsBefore
	}
	if ok := s.Requests - s.Errors; ok > 0 {
		s.CPUPerOp = s.CPU / time.Duration(ok)
	}
	return s, nil
}

var errMisconfigured = errors.New("misconfigured")
