package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/extauthz/extauthz/internal/envoytest"
)

// serverRuns are one server's measured runs on one workload or configuration.
type serverRuns struct {
	Name  string
	Max   []sample // closed loop, one per round
	Fixed []sample // open loop at the layer's fixed rate, one per round
	Low   []sample // Envoy layer: open loop at the lower rate, one per round

	// gRPC layer only: /proc of the server's process, which served this
	// workload only (started for it).
	PeakRSS, EndRSS uint64
	CPU             time.Duration // over the measured runs
	Served          int           // answers over the measured runs
}

// The kinds of run.
const (
	loadMax   = iota // closed loop
	loadFixed        // open loop at the layer's fixed rate
	loadLow          // Envoy layer: open loop at the lower rate
)

func (s *serverRuns) add(kind int, x sample) {
	switch kind {
	case loadMax:
		s.Max = append(s.Max, x)
	case loadFixed:
		s.Fixed = append(s.Fixed, x)
	case loadLow:
		s.Low = append(s.Low, x)
	}
	s.CPU += x.CPU
	s.Served += x.Requests - x.Errors
}

func foreign(s sample) float64 { return s.Foreign }

// grpcResult is the gRPC layer on one workload: ours and the floor.
type grpcResult struct {
	Key, Name, Shape string
	Ours, Noop       *serverRuns
	Rate             float64 // the fixed rate: half of our median maximum
	Profile          string  // pprof -top of our Check path under this workload (mixed and sessions only), 30 nodes
	ProfileFull      string  // the same, 100 nodes: what the targets quote from
}

// envoyResult is one Envoy configuration.
type envoyResult struct {
	Key, Name string
	Runs      *serverRuns // PeakRSS and EndRSS are Envoy's
	// AuthorizerRSS is the peak RSS of the ext_authz server behind Envoy
	// after the runs; 0 where there is none (Envoy alone, the module).
	AuthorizerRSS uint64
}

func medianF(xs []sample, f func(sample) float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func medianD(xs []sample, f func(sample) time.Duration) time.Duration {
	return time.Duration(medianF(xs, func(s sample) float64 { return float64(f(s)) }))
}

func rate(s sample) float64                { return s.Rate }
func p50(s sample) time.Duration           { return s.P50 }
func p99(s sample) time.Duration           { return s.P99 }
func p999(s sample) time.Duration          { return s.P999 }
func cpuPerOp(s sample) time.Duration      { return s.CPUPerOp }
func proxyCPUPerOp(s sample) time.Duration { return s.ProxyCPUPerOp }
func errShare(s sample) float64            { return float64(s.Errors) / math.Max(1, float64(s.Requests)) }
func achieved(s sample) float64            { return s.Rate }

// steady is measured, repeated (up to cfg.Repeats more times) while other work
// on the machine took more than cfg.MaxForeign CPUs during the run: a
// measurement disturbed by someone else's build or test is not kept when a
// quieter one can be had.
func (env *runEnv) steady(p *proc, f func() sample) (sample, error) {
	for attempt := 0; ; attempt++ {
		env.settle()
		x, err := measured(p, f)
		if err != nil || x.Foreign <= env.cfg.MaxForeign || attempt >= env.cfg.Repeats {
			x.Repeats = attempt
			return x, err
		}
		env.logf("other work on the machine took %.2f CPUs during that run: repeating it", x.Foreign)
		env.repeated.Add(1)
		time.Sleep(time.Second)
	}
}

// settle waits until the machine is idle (under settleBusy CPUs over a
// settleWindow), at most cfg.Settle: a server still working off the backlog of
// the previous run (oauth2-proxy finishes requests Envoy gave up on) must not
// slow the next configuration down.
func (env *runEnv) settle() {
	if env.cfg.Settle <= 0 {
		return
	}
	deadline := time.Now().Add(env.cfg.Settle)
	for {
		a := takeCPUSnap()
		time.Sleep(settleWindow)
		b := takeCPUSnap()
		busy := (b.system - a.system).Seconds() / b.at.Sub(a.at).Seconds()
		if busy < settleBusy {
			return
		}
		if time.Now().After(deadline) {
			env.logf("the machine is still busy (%.2f CPUs) after %s; measuring anyway", busy, env.cfg.Settle)
			return
		}
	}
}

const (
	settleBusy   = 0.25
	settleWindow = 200 * time.Millisecond
)

// runGRPCWorkload measures ours and the no-op server on one workload, each in
// a process started for it: closed-loop rounds, then open-loop rounds at half
// of our median maximum, alternating which server goes first.
func runGRPCWorkload(ctx context.Context, env *runEnv, key string) (*grpcResult, error) {
	cfg := env.cfg
	var w *workload
	var err error
	switch key {
	case "mixed":
		w, err = mixedWorkload(env.sec, cfg.MixedUsers)
	case "impersonated":
		w, err = impersonationWorkload(env.sec, cfg.PerAdmin)
	case "sessions":
		env.logf("minting %d session tokens", cfg.Sessions)
		w, err = sessionsWorkload(env.sec, cfg.Sessions)
	default:
		return nil, fmt.Errorf("unknown workload %q", key)
	}
	if err != nil {
		return nil, err
	}
	var ours, noop *proc
	defer func() { stopAll(ours, noop) }()
	ours, oursAddr, err := startOurs(env)
	if err != nil {
		return nil, err
	}
	noop, noopAddr, err := startNoop(env.bins.Noop)
	if err != nil {
		return nil, err
	}

	type server struct {
		runs   *serverRuns
		p      *proc
		c      *grpcClient
		isNoop bool
	}
	var servers [2]*server
	for i, x := range []struct {
		name   string
		p      *proc
		addr   string
		isNoop bool
	}{{"extauthz", ours, oursAddr, false}, {"no-op", noop, noopAddr, true}} {
		c, err := dialGRPC(x.addr, cfg.GRPCConns)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		if err := c.verify(w, 200, x.isNoop); err != nil {
			return nil, x.p.failure(fmt.Errorf("%w: %v", errMisconfigured, err))
		}
		servers[i] = &server{runs: &serverRuns{Name: x.name}, p: x.p, c: c, isNoop: x.isNoop}
	}
	res := &grpcResult{Key: w.Key, Name: w.Name, Shape: w.Shape, Ours: servers[0].runs, Noop: servers[1].runs}
	workers := cfg.GRPCConns * cfg.GRPCStreams

	check := func(s *server, x sample) error {
		if x.Requests == 0 {
			return s.p.failure(fmt.Errorf("no answers"))
		}
		if es := errShare(x); es > 0.001 {
			return s.p.failure(fmt.Errorf("%d of %d calls failed", x.Errors, x.Requests))
		}
		// Every run sends pool[0], pool[1], ... in order, so exactly how many
		// must be allowed is known.
		want := x.Requests
		if !s.isNoop {
			want = w.allowedAmong(x.Requests)
		}
		if d := x.Allowed - want; d > x.Errors || -d > x.Errors {
			return s.p.failure(fmt.Errorf("%w: allowed %d of %d requests of %s, want %d", errMisconfigured, x.Allowed, x.Requests, w.Key, want))
		}
		return nil
	}
	if cfg.Warmup > 0 {
		for _, s := range servers {
			env.logf("gRPC %s: warming up %s for %s", w.Key, s.runs.Name, cfg.Warmup)
			if err := check(s, s.c.closedLoop(w.pool, workers, cfg.Warmup)); err != nil {
				return res, err
			}
		}
	}
	order := func(round int) []*server {
		if round%2 == 0 {
			return []*server{servers[0], servers[1]}
		}
		return []*server{servers[1], servers[0]}
	}
	for r := range cfg.Rounds {
		for _, s := range order(r) {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			x, err := env.steady(s.p, func() sample { return s.c.closedLoop(w.pool, workers, cfg.Duration) })
			if err != nil {
				return res, err
			}
			if err := check(s, x); err != nil {
				return res, err
			}
			s.runs.add(loadMax, x)
			env.logf("gRPC %s round %d %-8s max %8.0f/s  p50 %-8s p99 %-8s cpu %s/op  %s  other load %.2f CPUs",
				w.Key, r+1, s.runs.Name, x.Rate, fmtDur(x.P50), fmtDur(x.P99), fmtDur(x.CPUPerOp), gcNote(x), x.Foreign)
		}
	}
	res.Rate = medianF(res.Ours.Max, rate) / 2
	for r := range cfg.Rounds {
		for _, s := range order(r) {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			x, err := env.steady(s.p, func() sample { return s.c.openLoop(w.pool, res.Rate, cfg.Duration, cfg.MaxInFlight) })
			if err != nil {
				return res, err
			}
			if err := check(s, x); err != nil {
				return res, err
			}
			s.runs.add(loadFixed, x)
			env.logf("gRPC %s round %d %-8s at %6.0f/s  p50 %-8s p99 %-8s p99.9 %-8s pacer lag p99 %-8s runner GCs %d  %s  other load %.2f CPUs",
				w.Key, r+1, s.runs.Name, res.Rate, fmtDur(x.P50), fmtDur(x.P99), fmtDur(x.P999), fmtDur(x.PacerLagP99), x.RunnerGCs, gcNote(x), x.Foreign)
		}
	}
	for _, s := range servers {
		st, err := readProcStat(s.p.Pid())
		if err != nil {
			return res, err
		}
		s.runs.PeakRSS, s.runs.EndRSS = st.PeakRSS, st.RSS
	}
	// Each workload's profile is quoted where its targets miss: the mixed
	// workload shows the common path, the impersonated one the audited
	// path, the sessions workload the cold one.
	if cfg.Profile {
		stopAll(ours, noop)
		env.logf("gRPC %s: profiling our Check path (bench/profserver) for %s", w.Key, cfg.Duration)
		if res.ProfileFull, err = profileOurs(env, w, cfg.Duration); err != nil {
			return res, err
		}
		res.Profile = trimTop(res.ProfileFull, 30)
	}
	return res, nil
}

// runEnvoyLayer starts the Envoy stack and measures its configurations:
// closed-loop rounds, then constant-rate rounds at half of (i)'s median
// maximum, rotating which configuration goes first, and checking each
// configuration's answers before each of its runs.
func runEnvoyLayer(ctx context.Context, env *runEnv, res *Results) error {
	cfg := env.cfg
	if _, err := envoytest.Binary(); err != nil {
		if envoytest.InCI() {
			return fmt.Errorf("CI=true but Envoy is required: %w", err)
		}
		return fmt.Errorf("%w: %v", errNoEnvoy, err)
	}
	oauth2Bin := ""
	mode := cfg.OAuth2Proxy
	if !cfg.measuresEnvoy(cfgOAuth2) && !cfg.measuresEnvoy(cfgOAuth2Cookie) && (mode == "install" || mode == "if-built") {
		mode, res.OAuth2Skipped = "", "not in -envoy-configs"
	}
	switch mode {
	case "":
	case "install":
		bin, err := installOAuth2Proxy(ctx, env.root, env.logf)
		if err != nil {
			return err
		}
		oauth2Bin = bin
	case "if-built":
		if oauth2ProxyBuilt(env.root) {
			oauth2Bin = oauth2ProxyPath(env.root)
		} else {
			res.OAuth2Skipped = fmt.Sprintf("oauth2-proxy %s is not built in bench/.bin (-oauth2-proxy if-built)", oauth2ProxyVersion)
		}
	case "off":
		res.OAuth2Skipped = "-oauth2-proxy off"
	default:
		return fmt.Errorf("-oauth2-proxy must be install, if-built or off, got %q", cfg.OAuth2Proxy)
	}
	env.logf("Envoy layer: starting the echo upstream, the authorizers and an Envoy for each configuration")
	st, err := startEnvoyStack(ctx, env, oauth2Bin, cfg.EnvoySessions)
	if err != nil {
		return err
	}
	defer st.Close()
	res.EnvoyVersion = st.version
	if oauth2Bin != "" {
		res.OAuth2Version = oauth2ProxyVersion
	}
	runs := map[string]*serverRuns{}
	for _, c := range st.confs {
		runs[c.Key] = &serverRuns{Name: c.Name}
		res.Envoy = append(res.Envoy, &envoyResult{Key: c.Key, Name: c.Name, Runs: runs[c.Key]})
	}
	order := func(round int) []*envoyConf {
		n := len(st.confs)
		out := make([]*envoyConf, n)
		for i := range n {
			out[i] = st.confs[(i+round)%n]
		}
		return out
	}
	one := func(c *envoyConf, f func() sample) (sample, error) {
		if err := c.assertCorrect(); err != nil {
			return sample{}, err
		}
		return env.steady(c.authorizer, func() sample {
			envoyBefore, errB := readProcStat(c.envoy.Pid())
			runnerBefore, _, okB := statCPU("self")
			s := f()
			envoyAfter, errA := readProcStat(c.envoy.Pid())
			runnerAfter, _, okA := statCPU("self")
			if ok := time.Duration(s.Requests - s.Errors); ok > 0 {
				if errB == nil && errA == nil {
					s.ProxyCPUPerOp = (envoyAfter.CPU - envoyBefore.CPU) / ok
				}
				if okB && okA {
					s.RunnerCPUPerOp = (runnerAfter - runnerBefore) / ok
				}
			}
			return s
		})
	}
	if cfg.Warmup > 0 {
		for _, c := range st.confs {
			env.logf("Envoy %s: warming up for %s", c.Key, cfg.Warmup)
			if _, err := one(c, func() sample { return httpClosedLoop(c.targets, cfg.HTTPWorkers, cfg.Warmup) }); err != nil {
				return err
			}
		}
	}
	for r := range cfg.Rounds {
		for _, c := range order(r) {
			if err := ctx.Err(); err != nil {
				return err
			}
			x, err := one(c, func() sample { return httpClosedLoop(c.targets, cfg.HTTPWorkers, cfg.Duration) })
			if err != nil {
				return err
			}
			runs[c.Key].add(loadMax, x)
			env.logf("Envoy round %d %-13s max %8.0f/s  p50 %-8s p99 %-8s errors %d  CPU per request: Envoy %s, authorizer %s, runner %s  other load %.2f CPUs",
				r+1, c.Key, x.Rate, fmtDur(x.P50), fmtDur(x.P99), x.Errors, fmtDur(x.ProxyCPUPerOp), fmtDur(x.CPUPerOp), fmtDur(x.RunnerCPUPerOp), x.Foreign)
		}
	}
	// atRate runs every round open loop at perSec, kept as load.
	atRate := func(perSec float64, load int) error {
		for r := range cfg.Rounds {
			for _, c := range order(r) {
				if err := ctx.Err(); err != nil {
					return err
				}
				x, err := one(c, func() sample {
					return httpConstant(c.targets, perSec, cfg.HTTPWorkers, cfg.MaxInFlight, cfg.Duration)
				})
				if err != nil {
					return err
				}
				runs[c.Key].add(load, x)
				env.logf("Envoy round %d %-13s at %6.0f/s  p50 %-8s p99 %-8s p99.9 %-8s errors %d  other load %.2f CPUs", r+1, c.Key, perSec, fmtDur(x.P50), fmtDur(x.P99), fmtDur(x.P999), x.Errors, x.Foreign)
			}
		}
		return nil
	}
	res.EnvoyRate = medianF(runs[cfgNone].Max, rate) / 2
	if err := atRate(res.EnvoyRate, loadFixed); err != nil {
		return err
	}
	if cfg.EnvoyLowShare > 0 {
		res.EnvoyLowRate = medianF(runs[cfgNone].Max, rate) * cfg.EnvoyLowShare
		if err := atRate(res.EnvoyLowRate, loadLow); err != nil {
			return err
		}
	}
	// Envoy's own memory after all its runs: with the module loaded it holds
	// a Go runtime, the decision's caches and the answer cache (issue 20).
	for _, c := range st.confs {
		ps, err := readProcStat(c.envoy.Pid())
		if err != nil {
			return fmt.Errorf("reading the memory of Envoy for %s: %w", c.Key, err)
		}
		runs[c.Key].PeakRSS, runs[c.Key].EndRSS = ps.PeakRSS, ps.RSS
		if c.authorizer != nil {
			if ps, err = readProcStat(c.authorizer.Pid()); err != nil {
				return fmt.Errorf("reading the memory of the authorizer of %s: %w", c.Key, err)
			}
			res.envoy(c.Key).AuthorizerRSS = ps.PeakRSS
		}
	}
	return nil
}
