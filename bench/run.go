package main

// This file is one run: build the binaries, measure the layers cfg asks for,
// judge the targets and write the report.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/extauthz/extauthz/internal/envoytest"
)

// runEnv is what the layers share during a run.
type runEnv struct {
	cfg  Config
	root string
	dir  string
	bins binaries
	sec  secrets
	logf func(string, ...any)

	repeated atomic.Int64 // runs thrown away because other work disturbed them
}

func (c Config) has(list, item string) bool {
	for _, x := range strings.Split(list, ",") {
		if strings.TrimSpace(x) == item {
			return true
		}
	}
	return false
}

// envoyConfigKeys are the keys -envoy-configs takes, sorted.
func envoyConfigKeys() []string {
	keys := make([]string, 0, len(envoyConfigNames))
	for k := range envoyConfigNames {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// measuresEnvoy says whether the Envoy layer measures the configuration key.
func (c Config) measuresEnvoy(key string) bool {
	return key == cfgNone || strings.TrimSpace(c.EnvoyConfigs) == "" || c.has(c.EnvoyConfigs, key)
}

// checkEnvoyConfigs reports a key in c.EnvoyConfigs no configuration has.
func (c Config) checkEnvoyConfigs() error {
	if strings.TrimSpace(c.EnvoyConfigs) == "" {
		return nil
	}
	for _, k := range strings.Split(c.EnvoyConfigs, ",") {
		if _, ok := envoyConfigNames[strings.TrimSpace(k)]; !ok {
			return fmt.Errorf("-envoy-configs: no configuration is called %q (there are %s)", k, strings.Join(envoyConfigKeys(), ", "))
		}
	}
	return nil
}

// Run measures what cfg asks for and writes the report. On error it returns
// what it measured so far.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if cfg.Rounds < 1 || cfg.Duration <= 0 || cfg.GRPCConns < 1 || cfg.GRPCStreams < 1 || cfg.HTTPWorkers < 1 || cfg.MaxInFlight < 1 {
		return nil, errors.New("rounds, duration, connections, streams and workers must be positive")
	}
	if err := cfg.checkEnvoyConfigs(); err != nil {
		return nil, err
	}
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	started := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(logw, "[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
	}
	root, err := envoytest.RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "extauthz-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	logDir = dir
	env := &runEnv{cfg: cfg, root: root, dir: dir, logf: logf}

	res := &Results{Cfg: cfg, Start: started, Machine: describeMachine(), LoadStart: loadAvg()}
	if cfg.OursBin == "" {
		logf("building extauthz, bench/noop, bench/echo")
	} else {
		logf("building bench/noop, bench/echo; extauthz is %s", cfg.OursBin)
	}
	if env.bins, err = build(ctx, root, dir, cfg.OursBin == ""); err != nil {
		return res, err
	}
	if cfg.OursBin != "" {
		if env.bins.Ours, err = filepath.Abs(cfg.OursBin); err != nil {
			return res, err
		}
	}
	if env.sec, err = newSecrets(); err != nil {
		return res, err
	}

	if cfg.GoBench {
		logf("in-process benchmarks: %s", strings.Join(goBenchCommand(cfg.Benchtime), " "))
		res.GoBenchCmd = strings.Join(goBenchCommand(cfg.Benchtime), " ")
		if res.GoBench, _, err = runGoBench(ctx, root, cfg.Benchtime); err != nil {
			return res, err
		}
		if cfg.Profile {
			logf("profiling BenchmarkCheck")
			if res.ProfileCmd, res.Profile, err = profileCheck(ctx, root, dir); err != nil {
				return res, err
			}
		}
	}

	if cfg.has(cfg.Layers, "grpc") {
		for _, key := range []string{"mixed", "impersonated", "sessions"} {
			if !cfg.has(cfg.Workloads, key) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return res, err
			}
			r, err := runGRPCWorkload(ctx, env, key)
			if r != nil {
				res.GRPC = append(res.GRPC, r)
			}
			if err != nil {
				return res, fmt.Errorf("gRPC layer, %s: %w", key, err)
			}
		}
	}

	if cfg.has(cfg.Layers, "envoy") {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := runEnvoyLayer(ctx, env, res); err != nil {
			if errors.Is(err, errNoEnvoy) {
				res.EnvoySkipped = err.Error()
				logf("Envoy layer skipped: %v", err)
			} else {
				return res, fmt.Errorf("Envoy layer: %w", err)
			}
		}
	}

	res.Repeated = int(env.repeated.Load())
	res.End = time.Now()
	res.LoadEnd = loadAvg()
	res.judge()
	if cfg.Out != "" {
		if err := res.write(cfg.Out, cfg.Plot); err != nil {
			return res, err
		}
	}
	logf("done in %s", time.Since(started).Round(time.Second))
	return res, nil
}
