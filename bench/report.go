package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Results is one run's measurements, ready to print.
type Results struct {
	Cfg                Config
	Start, End         time.Time
	Machine            machine
	LoadStart, LoadEnd string

	GRPC []*grpcResult

	Envoy         []*envoyResult
	EnvoyRate     float64
	EnvoyLowRate  float64
	EnvoyVersion  string
	EnvoySkipped  string
	OAuth2Version string
	OAuth2Skipped string

	GoBench    []goBench
	GoBenchCmd string
	ProfileCmd string
	Profile    string

	Targets  []target
	PlotPath string
	// GRPCPlotPath is the gRPC layer's latency distributions (plotGRPC).
	GRPCPlotPath string
	Repeated     int // runs thrown away because other work disturbed them
}

type machine struct {
	CPUs   int
	Model  string
	Memory string
	Kernel string
	Go     string
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Model: "unknown", Memory: "unknown", Kernel: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				var kb float64
				fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
				m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// loadAvg is the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " / ")
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.1f µs", float64(d)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

func fmtRate(r float64) string {
	if math.IsNaN(r) {
		return "-"
	}
	return fmt.Sprintf("%.0f/s", r)
}

func fmtMiB(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func fmtPct(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*x)
}

func humanCount(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

func signedDur(d time.Duration) string {
	if d < 0 {
		return "−" + fmtDur(-d)
	}
	return "+" + fmtDur(d)
}

// table renders a markdown table.
func table(head []string, rows [][]string) string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(head, " | ") + " |\n|")
	for range head {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}

func (r *Results) grpcTable() string {
	if len(r.GRPC) == 0 {
		return "_gRPC layer not measured in this run._\n"
	}
	var rows [][]string
	for _, g := range r.GRPC {
		floor := medianF(g.Noop.Max, rate)
		for _, s := range []*serverRuns{g.Ours, g.Noop} {
			max := medianF(s.Max, rate)
			rows = append(rows, []string{g.Name, s.Name, fmtRate(max), fmtPct(max / floor),
				fmtRate(g.Rate), fmtDur(medianD(s.Fixed, p50)), fmtDur(medianD(s.Fixed, p99)), fmtDur(medianD(s.Fixed, p999)),
				fmtDur(medianD(s.Max, cpuPerOp)), fmtMiB(s.PeakRSS)})
		}
	}
	return table([]string{"workload", "server", "max Check/s", "of no-op", "fixed rate", "p50", "p99", "p99.9", "CPU per Check", "peak RSS"}, rows)
}

func (r *Results) resourceTable() string {
	if len(r.GRPC) == 0 {
		return ""
	}
	var rows [][]string
	for _, g := range r.GRPC {
		o := g.Ours
		rows = append(rows, []string{g.Name, fmtMiB(o.PeakRSS), fmtMiB(o.EndRSS),
			fmt.Sprintf("%.1f s", o.CPU.Seconds()), fmt.Sprint(o.Served),
			fmtDur(medianD(o.Max, cpuPerOp)), fmtDur(medianD(g.Noop.Max, cpuPerOp)), gcRate(o.Max), gcRate(o.Fixed)})
	}
	return table([]string{"workload", "ours: peak RSS (VmHWM)", "RSS at the end", "CPU time (measured runs)", "Checks answered",
		"ours: CPU per Check", "no-op: CPU per Check", "ours: GC cycles/s at max", "at the fixed rate"}, rows)
}

func (r *Results) envoyTable() string {
	if len(r.Envoy) == 0 {
		if r.EnvoySkipped != "" {
			return "_Envoy layer skipped: " + r.EnvoySkipped + "._\n"
		}
		return "_Envoy layer not measured in this run._\n"
	}
	base := r.envoy(cfgNone)
	var baseMax float64
	var base50, base99 time.Duration
	if base != nil {
		baseMax = medianF(base.Runs.Max, rate)
		base50, base99 = medianD(base.Runs.Fixed, p50), medianD(base.Runs.Fixed, p99)
	}
	var rows [][]string
	for _, e := range r.Envoy {
		s := e.Runs
		max := medianF(s.Max, rate)
		add50, add99 := "-", "-"
		if e.Key != cfgNone && base != nil {
			add50, add99 = signedDur(medianD(s.Fixed, p50)-base50), signedDur(medianD(s.Fixed, p99)-base99)
		}
		cpu := "-"
		if e.Key != cfgNone {
			cpu = fmtDur(medianD(s.Max, cpuPerOp))
		}
		errs := medianF(s.Fixed, errShare)
		rows = append(rows, []string{e.Name, fmtRate(max), fmtPct(max / baseMax),
			fmt.Sprintf("%s (got %s)", fmtRate(r.EnvoyRate), fmtRate(medianF(s.Fixed, achieved))),
			fmtDur(medianD(s.Fixed, p50)), fmtDur(medianD(s.Fixed, p99)), fmtDur(medianD(s.Fixed, p999)),
			add50, add99, fmt.Sprintf("%.2f%%", 100*errs), fmtDur(medianD(s.Max, proxyCPUPerOp)), cpu, fmtMiB(s.PeakRSS)})
	}
	return table([]string{"configuration", "max req/s", "of (i)", "fixed rate", "p50", "p99", "p99.9", "p50 added over (i)", "p99 added over (i)", "non-200 at fixed rate", "Envoy's CPU per request", "authorizer CPU per request", "Envoy's peak RSS"}, rows)
}

// envoyLowTable is latency through Envoy at the lower rate, where every
// configuration has headroom.
func (r *Results) envoyLowTable() string {
	base := r.envoy(cfgNone)
	if base == nil || len(base.Runs.Low) == 0 {
		return ""
	}
	b50, b99 := medianD(base.Runs.Low, p50), medianD(base.Runs.Low, p99)
	var rows [][]string
	for _, e := range r.Envoy {
		s := e.Runs
		add50, add99 := "-", "-"
		if e.Key != cfgNone {
			add50, add99 = signedDur(medianD(s.Low, p50)-b50), signedDur(medianD(s.Low, p99)-b99)
		}
		rows = append(rows, []string{e.Name, fmt.Sprintf("%s (got %s)", fmtRate(r.EnvoyLowRate), fmtRate(medianF(s.Low, achieved))),
			fmtDur(medianD(s.Low, p50)), fmtDur(medianD(s.Low, p99)), fmtDur(medianD(s.Low, p999)), add50, add99,
			fmt.Sprintf("%.2f%%", 100*medianF(s.Low, errShare))})
	}
	return table([]string{"configuration", "fixed rate", "p50", "p99", "p99.9", "p50 added over (i)", "p99 added over (i)", "non-200"}, rows)
}

func (r *Results) goBenchTable() string {
	if len(r.GoBench) == 0 {
		return "_In-process benchmarks not run (-gobench=false)._\n"
	}
	var rows [][]string
	for _, b := range r.GoBench {
		rows = append(rows, []string{strings.TrimPrefix(b.Pkg, "github.com/extauthz/extauthz/"), b.Name,
			fmtDur(time.Duration(b.NsPerOp)), fmt.Sprintf("%.0f", b.BytesPerOp), fmt.Sprintf("%.0f", b.AllocsPerOp)})
	}
	return table([]string{"package", "benchmark", "time/op", "B/op", "allocs/op"}, rows)
}

func (r *Results) targetTable() string {
	var rows [][]string
	for _, t := range r.Targets {
		verdict := "not measured"
		if t.Measured {
			verdict = "**PASS**"
			if !t.Pass {
				verdict = "**MISS**: " + t.Miss
			}
		}
		rows = append(rows, []string{t.Name, t.Got, verdict})
	}
	return table([]string{"target (issue 10)", "measured in this run", "result"}, rows)
}

func (r *Results) envoy(key string) *envoyResult {
	for _, e := range r.Envoy {
		if e.Key == key {
			return e
		}
	}
	return nil
}

func (r *Results) grpc(key string) *grpcResult {
	for _, g := range r.GRPC {
		if g.Key == key {
			return g
		}
	}
	return nil
}

// Tables is what the runner prints: the targets and one table per layer.
func (r *Results) Tables() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Targets\n\n%s\n", r.targetTable())
	fmt.Fprintf(&b, "## gRPC layer: Check alone (median of %d rounds)\n\n%s\n", r.Cfg.Rounds, r.grpcTable())
	if t := r.resourceTable(); t != "" {
		fmt.Fprintf(&b, "### extauthz per workload: memory and CPU (from /proc)\n\n%s\n", t)
	}
	fmt.Fprintf(&b, "## Envoy layer: what users feel (median of %d rounds)\n\n%s\n", r.Cfg.Rounds, r.envoyTable())
	if t := r.envoyLowTable(); t != "" {
		fmt.Fprintf(&b, "### Envoy layer at %.0f%% of (i)'s maximum\n\n%s\n", 100*r.Cfg.EnvoyLowShare, t)
	}
	if len(r.GoBench) > 0 {
		fmt.Fprintf(&b, "## In-process benchmarks\n\n%s\n", r.goBenchTable())
	}
	return b.String()
}

// roundsTable lists every measured run, so the medians can be checked.
func (r *Results) roundsTable() string {
	c := r.Cfg
	var rows [][]string
	add := func(layer, what, server string, s *serverRuns) {
		for i, x := range s.Max {
			rows = append(rows, []string{layer, what, server, fmt.Sprint(i + 1), "max", fmtRate(x.Rate), fmtDur(x.P50), fmtDur(x.P99), fmtDur(x.P999), fmt.Sprint(x.Errors), fmt.Sprintf("%.2f", x.Foreign)})
		}
		for i, x := range append(append([]sample(nil), s.Fixed...), s.Low...) {
			rows = append(rows, []string{layer, what, server, fmt.Sprint(i%c.Rounds + 1), "fixed " + fmtRate(x.Target), fmtRate(x.Rate), fmtDur(x.P50), fmtDur(x.P99), fmtDur(x.P999), fmt.Sprint(x.Errors), fmt.Sprintf("%.2f", x.Foreign)})
		}
	}
	for _, g := range r.GRPC {
		add("gRPC", g.Name, g.Ours.Name, g.Ours)
		add("gRPC", g.Name, g.Noop.Name, g.Noop)
	}
	for _, e := range r.Envoy {
		add("Envoy", e.Name, "", e.Runs)
	}
	return table([]string{"layer", "workload / configuration", "server", "round", "load", "answered/s", "p50", "p99", "p99.9", "errors", "other work (CPUs)"}, rows)
}

// allSamples is every measured run.
func (r *Results) allSamples() []sample {
	var all []sample
	for _, g := range r.GRPC {
		for _, s := range []*serverRuns{g.Ours, g.Noop} {
			all = append(append(all, s.Max...), s.Fixed...)
		}
	}
	for _, e := range r.Envoy {
		all = append(append(append(all, e.Runs.Max...), e.Runs.Fixed...), e.Runs.Low...)
	}
	return all
}

// foreignSummary says how much CPU other work took during the measured runs.
func (r *Results) foreignSummary() string {
	all := r.allSamples()
	if len(all) == 0 {
		return "-"
	}
	worst := 0.0
	for _, s := range all {
		worst = math.Max(worst, s.Foreign)
	}
	return fmt.Sprintf("median %.2f, worst %.2f of %d CPUs in the runs kept; runs repeated because other work took over %.2f CPUs: %d", medianF(all, foreign), worst, r.Machine.CPUs, r.Cfg.MaxForeign, r.Repeated)
}

// write writes the markdown report and the plot.
func (r *Results) write(out, plotPath string) error {
	if plotPath == "" {
		plotPath = filepath.Join(filepath.Dir(out), "bench-latency.png")
	}
	r.PlotPath = plotPath
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	hasPlot := false
	if len(r.Envoy) > 0 {
		if err := r.plot(plotPath); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		hasPlot = true
	}
	rel, err := filepath.Rel(filepath.Dir(out), plotPath)
	if err != nil {
		rel = plotPath
	}
	if len(r.GRPC) > 0 {
		r.GRPCPlotPath = strings.TrimSuffix(plotPath, ".png") + "-grpc.png"
		if err := r.plotGRPC(r.GRPCPlotPath); err != nil {
			return fmt.Errorf("gRPC plot: %w", err)
		}
	}
	md := r.markdown(rel, hasPlot)
	return os.WriteFile(out, []byte(md), 0o644)
}

// gcRate is the median rate of ours' garbage collections over runs ("-"
// when unknown).
func gcRate(runs []sample) string {
	var known []sample
	for _, x := range runs {
		if x.ServerGCs >= 0 && x.Elapsed > 0 {
			known = append(known, x)
		}
	}
	if len(known) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", medianF(known, func(x sample) float64 { return float64(x.ServerGCs) / x.Elapsed.Seconds() }))
}
