// Command bench measures extauthz against the floor and a real peer, through a
// real Envoy, in one run, on loopback:
//
//	go run ./bench -out docs/benchmarks.md
//
// It builds extauthz, a no-op ext_authz server (bench/noop) and an echo
// upstream (bench/echo), installs oauth2-proxy v7.15.6 into bench/.bin when it
// is not there, and then measures two layers, interleaving the configurations
// of each layer round by round and reporting the median of the rounds:
//
//   - gRPC layer: Check alone, ours against the no-op server, with a grpc-go
//     load generator (N connections x M streams, closed loop for throughput,
//     open loop at half of our throughput for latency) on three workloads:
//     mixed, impersonated administrators, 100k distinct sessions. Peak RSS and
//     CPU time of ours per workload come from /proc.
//   - Envoy layer: Envoy 1.40 in front of an echo upstream, loaded over HTTP
//     with vegeta (max rate for throughput, constant rate at half of the
//     no-authorization floor's throughput for latency), with no ext_authz, the
//     no-op ext_authz (over TCP, over a Unix socket, and answering with ours'
//     headers), ours over TCP and over a Unix socket, oauth2-proxy, and ours
//     as a dynamic module; -envoy-configs picks a subset.
//
// It also runs the in-process `go test -bench` benchmarks, judges the targets
// of issues 10, 16, 19 and 20, and writes everything, with a latency plot, to
// -out.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Config is everything a run can be told.
type Config struct {
	Rounds   int
	Duration time.Duration // of each measured run
	Warmup   time.Duration // unmeasured load before a server's first run

	GRPCConns   int // gRPC connections per server
	GRPCStreams int // concurrent streams per connection (closed loop)
	MaxInFlight int // open loop: most calls or requests in flight
	HTTPWorkers int // Envoy layer: concurrent HTTP/1.1 connections (closed loop)
	// EnvoyLowShare adds Envoy-layer latency runs at this share of (i)'s
	// maximum, below the 50% the targets use (0: none).
	EnvoyLowShare float64

	MixedUsers    int // (a): distinct allowed sessions (denied: a tenth of it)
	PerAdmin      int // (b): users each administrator impersonates
	Sessions      int // (c): distinct sessions
	EnvoySessions int // Envoy layer: distinct users rotated through

	// A run during which other work on the machine used more than MaxForeign
	// CPUs is repeated, up to Repeats times.
	MaxForeign float64
	Repeats    int
	// Settle is the longest wait, before each run, for the machine to be idle
	// (0: do not wait).
	Settle time.Duration

	Layers string // "grpc", "envoy" or both, comma-separated
	// EnvoyConfigs are the Envoy layer's configurations to measure, by key
	// (cfgNone, cfgNoop, ...), comma-separated; "" measures all. cfgNone is
	// always measured: the others are compared with it.
	EnvoyConfigs string
	Workloads    string // "mixed,impersonated,sessions" or a subset
	OAuth2Proxy  string // "install", "if-built" or "off"
	LogLevel     string // ours

	GoBench   bool   // run the in-process go test benchmarks
	Benchtime string // their -benchtime ("" = go test's default)
	Profile   bool   // profile BenchmarkCheck and include pprof -top
	// ProfileDir, when set, keeps our server's CPU profiles there (one a
	// workload) for go tool pprof.
	ProfileDir string

	OursBin string // measure this extauthz binary instead of building ./cmd/extauthz
	// OursGOMEMLIMIT, when set, is ours' GOMEMLIMIT ("off" lifts serve's
	// 48 MiB soft limit): to see what the limit costs in collections.
	OursGOMEMLIMIT string

	Out  string // markdown report ("" = stdout only)
	Plot string // PNG latency plot ("" = next to Out as bench-latency.png)

	Command string    // how this run was started, for the report
	Log     io.Writer // progress (nil = discard)
}

// DefaultConfig is what `go run ./bench` does without flags.
func DefaultConfig() Config {
	return Config{
		Rounds: 3, Duration: 5 * time.Second, Warmup: time.Second,
		GRPCConns: 2, GRPCStreams: 32, MaxInFlight: 1024, HTTPWorkers: 64, EnvoyLowShare: 0.25,
		MixedUsers: 1000, PerAdmin: 10, Sessions: 100_000, EnvoySessions: 1000,
		MaxForeign: 0.25, Repeats: 2, Settle: 30 * time.Second,
		Layers: "grpc,envoy", Workloads: "mixed,impersonated,sessions",
		OAuth2Proxy: "install", LogLevel: "warn",
		GoBench: true, Profile: true,
	}
}

func main() {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "interleaved rounds per configuration (the median is reported)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "length of each measured run")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unmeasured load before each server's first run")
	fs.IntVar(&cfg.GRPCConns, "grpc-conns", cfg.GRPCConns, "gRPC layer: connections per server")
	fs.IntVar(&cfg.GRPCStreams, "grpc-streams", cfg.GRPCStreams, "gRPC layer: concurrent streams per connection (closed loop)")
	fs.IntVar(&cfg.MaxInFlight, "max-in-flight", cfg.MaxInFlight, "fixed-rate runs: most requests in flight")
	fs.IntVar(&cfg.HTTPWorkers, "http-workers", cfg.HTTPWorkers, "Envoy layer: concurrent connections (closed loop)")
	fs.Float64Var(&cfg.EnvoyLowShare, "envoy-low-rate", cfg.EnvoyLowShare, "Envoy layer: also measure latency at this share of (i)'s maximum (0: no)")
	fs.IntVar(&cfg.MixedUsers, "mixed-users", cfg.MixedUsers, "(a) mixed: distinct allowed sessions")
	fs.IntVar(&cfg.PerAdmin, "per-admin", cfg.PerAdmin, "(b) impersonated: users each of the 10 administrators impersonates")
	fs.IntVar(&cfg.Sessions, "sessions", cfg.Sessions, "(c): distinct sessions")
	fs.IntVar(&cfg.EnvoySessions, "envoy-sessions", cfg.EnvoySessions, "Envoy layer: distinct users")
	fs.Float64Var(&cfg.MaxForeign, "max-other-load", cfg.MaxForeign, "repeat a run during which other work used more CPUs than this")
	fs.IntVar(&cfg.Repeats, "repeats", cfg.Repeats, "how many times a disturbed run may be repeated")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "before each run, wait up to this long for the machine to be idle (0: no)")
	fs.StringVar(&cfg.Layers, "layers", cfg.Layers, "layers to measure: grpc, envoy")
	fs.StringVar(&cfg.EnvoyConfigs, "envoy-configs", cfg.EnvoyConfigs, "Envoy layer: configurations to measure ("+strings.Join(envoyConfigKeys(), ", ")+"; none is always measured; empty: all)")
	fs.StringVar(&cfg.Workloads, "workloads", cfg.Workloads, "gRPC workloads: mixed, impersonated, sessions")
	fs.StringVar(&cfg.OAuth2Proxy, "oauth2-proxy", cfg.OAuth2Proxy, "install (into bench/.bin when missing), if-built, or off")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "extauthz log level")
	fs.BoolVar(&cfg.GoBench, "gobench", cfg.GoBench, "run the in-process go test benchmarks")
	fs.StringVar(&cfg.Benchtime, "benchtime", cfg.Benchtime, "their -benchtime")
	fs.BoolVar(&cfg.Profile, "profile", cfg.Profile, "profile BenchmarkCheck and include pprof -top")
	fs.StringVar(&cfg.ProfileDir, "profile-dir", "", "also keep our server's CPU profiles in this directory, for go tool pprof")
	fs.StringVar(&cfg.OursBin, "extauthz-bin", cfg.OursBin, "measure this extauthz binary instead of building ./cmd/extauthz")
	fs.StringVar(&cfg.OursGOMEMLIMIT, "extauthz-gomemlimit", cfg.OursGOMEMLIMIT, "run extauthz with this GOMEMLIMIT (off: without serve's 48 MiB soft limit; default: serve's)")
	fs.StringVar(&cfg.Out, "out", cfg.Out, "write the markdown report here (e.g. docs/benchmarks.md)")
	fs.StringVar(&cfg.Plot, "plot", cfg.Plot, "latency plot PNG (default: bench-latency.png next to -out)")
	_ = fs.Parse(os.Args[1:])
	cfg.Command = "go run ./bench " + strings.Join(os.Args[1:], " ")
	cfg.Log = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := Run(ctx, cfg)
	if res != nil {
		fmt.Print(res.Tables())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if cfg.Out != "" {
		fmt.Fprintf(os.Stderr, "wrote %s and %s\n", cfg.Out, res.PlotPath)
	}
}
