package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// markdown renders docs/benchmarks.md.
func (r *Results) markdown(plotRel string, hasPlot bool) string {
	c := r.Cfg
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	w("# Benchmarks\n\n")
	w("Everything below was measured by one run of the command that wrote this file, on one machine, on loopback:\n\n")
	w("```sh\n%s\n```\n\n", strings.TrimSpace(c.Command))
	w("Re-run it to refresh the numbers (it rewrites this file and `%s`). With the defaults it takes about %.0f minutes; "+
		"`go run ./bench -h` lists the knobs. A smoke run of the same code (tiny durations, no targets) is part of `go test ./...` "+
		"(`bench/bench_test.go`).\n\n", plotRel, estimate(c).Minutes())

	w("## Machine and run\n\n")
	w("| | |\n|---|---|\n")
	w("| date | %s (run took %s) |\n", r.Start.UTC().Format("2006-01-02 15:04 MST"), r.End.Sub(r.Start).Round(time.Second))
	w("| CPUs (nproc) | %d × %s |\n", r.Machine.CPUs, r.Machine.Model)
	w("| memory | %s |\n", r.Machine.Memory)
	w("| kernel | Linux %s |\n", r.Machine.Kernel)
	w("| Go | %s (builds extauthz, the no-op server, the echo upstream, oauth2-proxy and the runner) |\n", r.Machine.Go)
	w("| Envoy | %s |\n", orDash(r.EnvoyVersion))
	w("| oauth2-proxy | %s |\n", orDash(r.OAuth2Version))
	w("| load average (1/5/15 min) | at start %s, at end %s |\n", r.LoadStart, r.LoadEnd)
	w("| CPU used by other work during the measured runs | %s (`/proc/stat` busy time minus this run's processes) |\n", r.foreignSummary())
	w("| rounds | %d per configuration, interleaved; medians reported |\n", c.Rounds)
	w("| each run | %s (after %s of unmeasured warm-up per server or configuration) |\n", c.Duration, c.Warmup)
	w("| gRPC load | %d connections × %d streams (closed loop); open loop up to %d in flight |\n", c.GRPCConns, c.GRPCStreams, c.MaxInFlight)
	w("| HTTP load | vegeta, %d keep-alive connections (max rate); constant rate up to %d in flight |\n", c.HTTPWorkers, c.MaxInFlight)
	w("| extauthz | `extauthz serve --config <generated> --log-level %s --log-format json` |\n\n", c.LogLevel)

	w("## Targets\n\n")
	w("Judged from the numbers of this run (issues 10 and 19; the targets are for a 2-core machine). Throughput ratios are the " +
		"median of per-round ratios: within a round the configurations run back to back, so each round's ratio is free of " +
		"what drifted between rounds; the per-round values and both medians are shown.\n\n")
	w("%s\n", r.targetTable())
	var bounds []string
	for _, t := range r.Targets {
		if t.Measured && !t.Pass && t.Bound != "" {
			bounds = append(bounds, fmt.Sprintf("- **%s**: %s", t.Name, t.Bound))
		}
	}
	if len(bounds) > 0 {
		w("What bounds the misses:\n\n%s\n\n", strings.Join(bounds, "\n"))
	}

	w("## gRPC layer: Check alone\n\n")
	w("The built `extauthz` binary on a generated config (the routes of the bundled Envoy config) against the floor, " +
		"`bench/noop`: a grpc-go ext_authz server that answers every Check with OK and no headers, with the same gRPC server " +
		"options. The floor decodes each CheckRequest with the generated protobuf code, as any ext_authz server " +
		"built on go-control-plane does; ours reads only the fields it uses straight from the wire " +
		"(`internal/check/wire.go`, held to proto.Unmarshal by a differential test and a fuzz target), which is part " +
		"of what is measured. Each workload gets fresh processes of both. The load generator is grpc-go itself, sending pre-marshalled " +
		"CheckRequests shaped like Envoy's for `GET http://app.localhost/orders/42?view=full` on the `app` route, and " +
		"reading back only the status code, so it spends as little CPU as possible on the two cores it shares with the " +
		"servers. It also checks every answer: ours must allow exactly the share the workload allows, the floor everything.\n\n")
	w("- **max Check/s**: closed loop, %d connections × %d concurrent streams, as fast as answers come.\n", c.GRPCConns, c.GRPCStreams)
	w("- **p50 / p99 / p99.9**: open loop at a fixed rate, half of our median maximum for that workload, the same rate " +
		"for both servers. Request i is due at start + i/rate; a pacer on its own thread, sleeping with nanosleep(2), hands " +
		"each out when due (one by one, as Envoy would send them), and its latency runs from when it was due to its answer, " +
		"so a late pacer, a wait for a free caller and the server all count (no coordinated omission). How late the pacer " +
		"was (p99) is reported beside the p99 target: it is the runner's share of the tail. The runner collects its own " +
		"garbage before each run and at GOGC=400 during it.\n")
	w("- **CPU per Check**: the server's utime+stime (`/proc/<pid>/stat`) during the closed-loop runs ÷ answers; " +
		"**peak RSS**: `VmHWM` of `/proc/<pid>/status` after the workload.\n\n")
	for _, g := range r.GRPC {
		w("- %s: %s.\n", g.Name, g.Shape)
	}
	if len(r.GRPC) > 0 {
		w("\n")
	}
	w("%s\n", r.grpcTable())
	if r.GRPCPlotPath != "" {
		w("![Latency distributions of ours and the floor at the fixed rate, per workload](%s)\n\n", filepath.Base(r.GRPCPlotPath))
	}
	if t := r.resourceTable(); t != "" {
		w("Per workload, extauthz's memory and CPU (its process served only that workload):\n\n%s\n", t)
	}

	for _, key := range []string{"mixed", "sessions"} {
		g := r.grpc(key)
		if g == nil || g.Profile == "" {
			continue
		}
		w("### Where our server's CPU goes under %s\n\n", g.Name)
		w("`bench/profserver` is our Check path built from the same packages as `extauthz serve` (`config.Load`, "+
			"`reload.Build`, `check.New`, the same gRPC server options) with a CPU profile; the runner loads it like the "+
			"closed-loop runs above for %s and prints `go tool pprof -top -cum` of it (sorted by time spent in a function and what it calls). gRPC transport and protobuf decoding "+
			"are included, the load generator is not (it is another process).\n\n```text\n%s\n```\n\n", c.Duration, g.Profile)
	}

	w("## Envoy layer: what users feel\n\n")
	w("A real Envoy (`envoytest.Binary`, started through `internal/envoytest` with only its ports rewritten, " +
		"`--concurrency 2`) in front of one fast upstream (`bench/echo`, Go net/http: answers `200 ok <identity>`), " +
		"loaded over HTTP/1.1 with the vegeta library. The configurations, each derived from the bundled " +
		"`envoy/envoy.yaml` by editing its YAML tree, so listener, routes, timeouts, circuit breakers and the access log are " +
		"the same and only the authorization step differs:\n\n")
	w("- (i) the ext_authz filter removed: the floor;\n")
	w("- (ii) the bundled config with its `extauthz_grpc` cluster on `bench/noop`;\n")
	w("- (ii-u) the same over a Unix socket: `envoy/envoy-uds.yaml` (the bundled config but for the `extauthz_grpc` " +
		"cluster's endpoint, a `pipe`) on `bench/noop -addr unix://...`, to show what the socket itself is worth;\n")
	w("- (ii-a) the same, the no-op answering every Check as extauthz answers the bench's requests " +
		"(`-answer-like-extauthz`: an assertion-sized header and the two claim headers set by overwrite, the " +
		"`authorization` header removed), to show what Envoy's work on that answer costs;\n")
	w("- (iii) the bundled config as shipped, on extauthz (`Authorization: Pomerium <session token>`);\n")
	w("- (iii-u) `envoy/envoy-uds.yaml` on extauthz with `grpc_address: unix://...`;\n")
	w("- (iv) the ext_authz filter switched to an `http_service` on oauth2-proxy %s (`path_prefix: /oauth2/auth`, so it "+
		"is asked `/oauth2/auth/<path>`; `allowed_upstream_headers: x-auth-request-*`), the `extauthz_grpc` cluster "+
		"renamed and switched to HTTP/1.1 with its timeouts and circuit breakers kept. oauth2-proxy runs with "+
		"`--skip-jwt-bearer-tokens --skip-oidc-discovery --oidc-issuer-url=<local issuer> --oidc-public-key-file=<its RSA key> "+
		"--client-id=bench --upstream=static://200 --api-route=^/oauth2/auth/ --set-xauthrequest` and every log off, and "+
		"authenticates `Authorization: Bearer <RS256 ID token>` of the same users;\n", oauth2ProxyVersion)
	w("- (iv-c) the same, with oauth2-proxy in its main mode for browsers: an OIDC client (`--provider=oidc`, PKCE) of an "+
		"OpenID provider in the runner (`internal/oidctest`), each of %d users signed in once through the real "+
		"authorization-code flow, then presenting only the session cookie oauth2-proxy issued (its default cookie store, "+
		"encrypted and signed with its cookie secret), which Envoy passes on (`authorization_request.allowed_headers: cookie`).\n\n",
		min(c.EnvoySessions, maxCookieSessions))
	w("What differs between ours and the peer, so a reader can judge the comparison: Envoy asks ours over gRPC (HTTP/2, " +
		"one protobuf CheckRequest with every header) and oauth2-proxy over HTTP/1.1 (a subrequest with the allowed headers " +
		"only). Ours verifies an HS256 session token (a shared secret) and caches the verified claims and the signed ES256 " +
		"assertion per session; with bearer JWTs oauth2-proxy verifies an RS256 signature (a public key) on every request " +
		"and caches nothing; with cookie sessions it checks its cookie's HMAC and decrypts it on every request (no server-side " +
		"state). Ours also signs an ES256 assertion for the upstream (cached), which oauth2-proxy does not; it passes plain " +
		"X-Auth-Request-* headers instead. The faster of the two oauth2-proxy modes is the one the target compares with.\n\n")
	w("Requests rotate through %d users' tokens. Before every run each configuration is checked: an authenticated request "+
		"gets 200 from the echo upstream carrying the user's email (passed by the authorizer), and in (iii), (iv) and "+
		"(iv-c) requests with no token or a forged one (a tampered cookie) get 401/403 without reaching the upstream.\n\n", c.EnvoySessions)
	w("- **max req/s**: vegeta at maximum rate with %d workers, each on its own keep-alive connection.\n", c.HTTPWorkers)
	if r.EnvoyRate > 0 {
		w("- **p50 / p99 / p99.9**: vegeta at a constant %s, half of (i)'s median maximum, for every configuration; "+
			"\"added over (i)\" is the difference from (i)'s latency at that rate.\n", fmtRate(r.EnvoyRate))
	}
	w("- **Envoy's CPU per request**, **authorizer CPU per request**: Envoy's and the ext_authz server's CPU time during the max-rate runs ÷ requests (the module runs inside Envoy: its CPU is Envoy's).\n\n")
	w("%s\n", r.envoyTable())
	var behind []string
	for _, e := range r.Envoy {
		if got := medianF(e.Runs.Fixed, achieved); got < 0.97*r.EnvoyRate {
			behind = append(behind, fmt.Sprintf("%s answered %s", envoyConfigNames[e.Key].short, fmtRate(got)))
		}
	}
	if len(behind) > 0 {
		w("At %s some configurations cannot keep up on this machine (%s; their maximum is below or near that rate), "+
			"so their latency there is mostly time spent queued: the comparison the targets ask for, but not the "+
			"latency an authorization step adds.\n\n", fmtRate(r.EnvoyRate), strings.Join(behind, ", "))
	}
	if t := r.envoyLowTable(); t != "" {
		w("At %s, %.0f%% of (i)'s maximum, where every configuration has headroom, the same measurement shows the latency "+
			"each authorization step adds without queueing behind it:\n\n%s\n", fmtRate(r.EnvoyLowRate), 100*c.EnvoyLowShare, t)
	}
	if hasPlot {
		w("![Latency through Envoy at fixed rates, per configuration](%s)\n\n", plotRel)
	}

	w("## In-process benchmarks\n\n")
	if r.GoBenchCmd != "" {
		w("```sh\n%s\n```\n\n", r.GoBenchCmd)
	}
	w("%s\n", r.goBenchTable())
	w("`BenchmarkDecideWithAssertion` is the pure decision plus the upstream assertion on the cached path (a session's " +
		"second and later requests on a route); `BenchmarkCheck` is the whole Check handler without the gRPC transport; " +
		"`BenchmarkSignAssertion` is the uncached ES256 signature a session's first request on a route pays.\n\n")
	if r.Profile != "" {
		w("### Where the Check handler's CPU goes, in process\n\n```sh\n%s\n```\n\n```text\n%s\n```\n\n", r.ProfileCmd, r.Profile)
	}

	w("## Every run\n\n")
	w("<details><summary>Each configuration's rounds (the tables above report their medians)</summary>\n\n")
	w("%s\n</details>\n\n", r.roundsTable())

	w("## Reading these numbers\n\n")
	w("- Everything shares the machine's %d CPUs: load generator, Envoy, the upstream, the authorizer and the kernel's "+
		"loopback. Throughput here is therefore CPU per request of the whole path, not a property of one process; the "+
		"comparisons are meaningful because every configuration pays the same for everything but the authorizer.\n", r.Machine.CPUs)
	w("- Before each run the runner waits (up to %s) until the machine is idle, so no process still working off the "+
		"previous run's backlog (oauth2-proxy finishes requests Envoy already gave up on) slows the next configuration; "+
		"a run during which other work used more than %.2f CPUs is repeated (up to %d times).\n", c.Settle, c.MaxForeign, c.Repeats)
	w("- Interleaving: within a round each configuration runs once (the order rotates between rounds), so slow drift " +
		"on the machine (other work, thermal) spreads over all configurations instead of favouring one.\n")
	w("- The gRPC-layer fixed rate is half of *our* maximum (the target's definition), which is below the floor's " +
		"maximum, so the no-op server is lightly loaded at it; the Envoy-layer fixed rate is half of (i)'s maximum for every " +
		"configuration, which an authorizer that cannot sustain it shows as a lower achieved rate and growing latency.\n")
	w("- Ratios near a target can land on either side of it from one run to the next on this machine: read the " +
		"per-round values next to each ratio, and the every-run table below, before reading much into one or two points.\n")
	w("- Latency percentiles are exact (every response's latency is kept and sorted), per run; the table shows the median over rounds.\n")
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// estimate is the rough wall time of a run with c, for the doc.
func estimate(c Config) time.Duration {
	grpcRuns := 3 * 2 * c.Rounds * 2
	envoyRuns := 6 * c.Rounds * 2
	if c.EnvoyLowShare > 0 {
		envoyRuns += 6 * c.Rounds
	}
	return time.Duration(grpcRuns+envoyRuns)*c.Duration + 10*c.Warmup + 90*time.Second
}
