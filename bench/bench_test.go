package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/internal/envoytest"
)

// TestSmoke runs the whole runner with tiny durations so it cannot rot: every
// layer, workload and configuration is built, started, checked for
// correctness and loaded for a moment, and the report and plot are written.
// No target is asserted: these numbers mean nothing. Envoy parts skip without
// an Envoy binary (fail under CI=true, like internal/envoytest); oauth2-proxy
// is included only when bench/.bin already holds it, or when
// BENCH_OAUTH2_PROXY=1 asks for it to be installed.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	cfg := DefaultConfig()
	cfg.Rounds = 1
	cfg.Duration = 300 * time.Millisecond
	cfg.Warmup = 50 * time.Millisecond
	cfg.GRPCStreams = 4
	cfg.HTTPWorkers = 8
	cfg.MaxInFlight = 64
	cfg.MixedUsers, cfg.PerAdmin, cfg.Sessions, cfg.EnvoySessions = 50, 2, 300, 20
	cfg.GoBench, cfg.Profile = false, false
	// Other packages' tests run beside this one: never wait for quiet.
	cfg.Repeats, cfg.Settle = 0, 0
	cfg.OAuth2Proxy = "if-built"
	if os.Getenv("BENCH_OAUTH2_PROXY") == "1" {
		cfg.OAuth2Proxy = "install"
	}
	dir := t.TempDir()
	cfg.Out = filepath.Join(dir, "benchmarks.md")
	cfg.Command = "go test ./bench -run TestSmoke"
	cfg.Log = testWriter{t}

	timeout := 90 * time.Second
	if cfg.OAuth2Proxy == "install" {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.GRPC) != 3 {
		t.Errorf("gRPC layer measured %d workloads, want 3", len(res.GRPC))
	}
	for _, g := range res.GRPC {
		if len(g.Ours.Max) != 1 || len(g.Noop.Fixed) != 1 || g.Ours.PeakRSS == 0 || g.Ours.Served == 0 {
			t.Errorf("%s: incomplete: %+v %+v", g.Key, g.Ours, g.Noop)
		}
	}
	if res.EnvoySkipped != "" {
		if envoytest.InCI() {
			t.Fatalf("CI=true but the Envoy layer was skipped: %s", res.EnvoySkipped)
		}
		t.Logf("Envoy layer skipped: %s", res.EnvoySkipped)
	} else {
		// none, no-op and ours over TCP and over a Unix socket, the no-op
		// answering as ours over the socket,
		// oauth2-proxy with bearer JWTs and with cookies, the module with
		// its answer cache and without
		want := 10
		if res.OAuth2Skipped != "" {
			want = 8
			t.Logf("oauth2-proxy skipped: %s", res.OAuth2Skipped)
		}
		if len(res.Envoy) != want {
			t.Errorf("Envoy layer measured %d configurations, want %d", len(res.Envoy), want)
		}
		for _, key := range []string{cfgModule, cfgModuleNoCache} {
			if m := res.envoy(key); m == nil || len(m.Runs.Max) != 1 || m.Runs.PeakRSS == 0 {
				t.Errorf("%s was not measured, or Envoy's memory not read: %+v", key, m)
			}
		}
		for _, key := range []string{cfgOursUDS, cfgNoopUDS, cfgNoopShaped} {
			if uds := res.envoy(key); uds == nil || len(uds.Runs.Max) != 1 {
				t.Errorf("%s over a Unix socket was not measured beside TCP: %+v", key, uds)
			}
		}
		// /proc counts CPU in 10 ms ticks: a 300 ms run of a slow
		// configuration may see none, but the fastest one always does.
		if none := res.envoy(cfgNone); none == nil || len(none.Runs.Max) != 1 || none.Runs.Max[0].ProxyCPUPerOp <= 0 {
			t.Errorf("Envoy's CPU per request was not measured: %+v", none)
		}
		if _, err := os.Stat(res.PlotPath); err != nil {
			t.Errorf("plot: %v", err)
		}
	}
	md, err := os.ReadFile(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# Benchmarks", "## Targets", "## gRPC layer", "## Envoy layer", "(a) mixed", "go test ./bench -run TestSmoke"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if len(res.Targets) == 0 {
		t.Error("no targets judged")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// The Envoy configurations are derived from the bundled one and must decode
// as valid v3 bootstraps with the intended filter chains.
func TestEnvoyConfigs(t *testing.T) {
	path, err := envoytest.BundledConfig()
	if err != nil {
		t.Fatal(err)
	}
	bundled, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	none, err := withoutExtAuthz(bundled)
	if err != nil {
		t.Fatal(err)
	}
	o2p, err := withOAuth2Proxy(bundled, oauth2ProxyExtAuthz)
	if err != nil {
		t.Fatal(err)
	}
	o2pCookie, err := withOAuth2Proxy(bundled, oauth2ProxyCookieExtAuthz)
	if err != nil {
		t.Fatal(err)
	}
	udsSrc, err := os.ReadFile(filepath.Join(filepath.Dir(path), "envoy-uds.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	uds, err := withSocket(udsSrc, "/tmp/bench.sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the socket config reaches the bench's socket", func(t *testing.T) {
		b, err := envoytest.DecodeBootstrap(uds)
		if err != nil {
			t.Fatal(err)
		}
		ep := envoytest.Cluster(b, "extauthz_grpc").GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0]
		if got := ep.GetEndpoint().GetAddress().GetPipe().GetPath(); got != "/tmp/bench.sock" {
			t.Errorf("pipe %q, want /tmp/bench.sock", got)
		}
		if _, err := envoytest.RewritePorts(uds, map[int]int{8080: 1, 9901: 2, 9292: 4, 8081: 5}); err != nil {
			t.Error(err)
		}
	})
	for name, src := range map[string][]byte{"none": none, "oauth2-proxy": o2p, "oauth2-proxy-cookie": o2pCookie} {
		b, err := envoytest.DecodeBootstrap(src)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := envoytest.ValidateDeep(b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		hcms, err := envoytest.HCMs(b)
		if err != nil || len(hcms) != 1 {
			t.Fatalf("%s: HCMs = %d, %v", name, len(hcms), err)
		}
		ea, _, err := envoytest.ExtAuthzFilter(hcms[0].Config)
		if err != nil {
			t.Fatal(err)
		}
		switch name {
		case "none":
			if ea != nil {
				t.Errorf("none: ext_authz is still there")
			}
		case "oauth2-proxy", "oauth2-proxy-cookie":
			hs := ea.GetHttpService()
			var cookie bool
			for _, m := range hs.GetAuthorizationRequest().GetAllowedHeaders().GetPatterns() {
				cookie = cookie || (m.GetExact() == "cookie" && m.GetIgnoreCase())
			}
			if want := name == "oauth2-proxy-cookie"; cookie != want {
				t.Errorf("%s: the Cookie header passed to oauth2-proxy = %v, want %v", name, cookie, want)
			}
			if hs == nil || hs.GetPathPrefix() != "/oauth2/auth" || hs.GetServerUri().GetCluster() != "oauth2_proxy" {
				t.Errorf("oauth2-proxy: http_service = %v", hs)
			}
			var found bool
			for _, c := range b.GetStaticResources().GetClusters() {
				if c.GetName() == "extauthz_grpc" {
					t.Error("oauth2-proxy: the gRPC cluster is still there")
				}
				if c.GetName() == "oauth2_proxy" {
					found = true
					if len(c.GetTypedExtensionProtocolOptions()) != 0 {
						t.Error("oauth2-proxy: its cluster still asks for HTTP/2")
					}
					port := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()
					if port != envoytest.DefaultGRPCPort {
						t.Errorf("oauth2-proxy: cluster port %d, want %d (mapped by envoytest)", port, envoytest.DefaultGRPCPort)
					}
				}
			}
			if !found {
				t.Error("oauth2-proxy: no oauth2_proxy cluster")
			}
		}
		// Only the ports envoytest knows: RewritePorts fails on any other.
		if _, err := envoytest.RewritePorts(src, map[int]int{8080: 1, 9901: 2, 9191: 3, 9292: 4, 8081: 5}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestEnvoyConfigsFlag(t *testing.T) {
	tests := []struct {
		name, flag string
		measured   []string
		skipped    []string
		wantErr    string
	}{
		{name: "empty measures every configuration", flag: "", measured: envoyConfigKeys()},
		{name: "a list measures those and the floor", flag: "noop, ours-uds", measured: []string{cfgNone, cfgNoop, cfgOursUDS}, skipped: []string{cfgOurs, cfgModule, cfgOAuth2}},
		{name: "the floor is measured even when not listed", flag: "ours", measured: []string{cfgNone, cfgOurs}},
		{name: "an unknown name is an error that lists the known ones", flag: "ours,tcp", wantErr: `no configuration is called "tcp" (there are `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{EnvoyConfigs: tt.flag}
			err := c.checkEnvoyConfigs()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("checkEnvoyConfigs() = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range tt.measured {
				if !c.measuresEnvoy(k) {
					t.Errorf("%s is not measured", k)
				}
			}
			for _, k := range tt.skipped {
				if c.measuresEnvoy(k) {
					t.Errorf("%s is measured", k)
				}
			}
		})
	}
}

func TestStatusCode(t *testing.T) {
	for _, code := range []int32{0, 7, 16} {
		b, err := proto.Marshal(&authv3.CheckResponse{Status: &status.Status{Code: code, Message: "x"}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := statusCode(b)
		if err != nil || got != int64(code) {
			t.Errorf("statusCode = %d, %v; want %d", got, err, code)
		}
	}
	if got, err := statusCode(nil); got != 0 || err != nil {
		t.Errorf("empty response: %d, %v", got, err)
	}
	if _, err := statusCode([]byte{0x0a, 0x05, 0x08}); err == nil {
		t.Error("truncated response: no error")
	}
}

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
pkg: github.com/extauthz/extauthz/internal/check
BenchmarkDecideWithAssertion/allowed-2         	  500000	      2100 ns/op	     320 B/op	       5 allocs/op
BenchmarkSignAssertion-2   	   30000	     38000 ns/op	    5000 B/op	      60 allocs/op
PASS
`
	got := parseGoBench(out)
	if len(got) != 2 {
		t.Fatalf("parsed %d lines", len(got))
	}
	if b := got[0]; b.Name != "BenchmarkDecideWithAssertion/allowed" || b.NsPerOp != 2100 || b.AllocsPerOp != 5 || b.BytesPerOp != 320 ||
		b.Pkg != "github.com/extauthz/extauthz/internal/check" {
		t.Errorf("parsed %+v", b)
	}
}

func TestWorkloadAllowedAmong(t *testing.T) {
	w := &workload{pool: make([][]byte, 10), allow: []bool{true, true, true, true, true, true, true, true, false, false}}
	for n, want := range map[int]int{0: 0, 8: 8, 9: 8, 10: 8, 25: 8 + 8 + 5, 100: 80} {
		if got := w.allowedAmong(n); got != want {
			t.Errorf("allowedAmong(%d) = %d, want %d", n, got, want)
		}
	}
}

// The report renders from synthetic results, plot included.
func TestReport(t *testing.T) {
	s := func(rate float64, p50 time.Duration) sample {
		x := sample{Requests: 1000, Rate: rate, P50: p50, P99: 4 * p50, P999: 9 * p50, CPUPerOp: 20 * time.Microsecond, Target: rate / 2,
			ProxyCPUPerOp: time.Duration(2e9 / rate)}
		for i := range spectrumQuantiles {
			x.Spectrum = append(x.Spectrum, time.Duration(i+1)*p50)
		}
		return x
	}
	runs := func(name string, rate float64, p50 time.Duration) *serverRuns {
		r := &serverRuns{Name: name, PeakRSS: 30 << 20, EndRSS: 28 << 20}
		for range 3 {
			r.add(loadMax, s(rate, p50))
			r.add(loadFixed, s(rate/2, p50))
			r.add(loadLow, s(rate/4, p50/2))
		}
		return r
	}
	res := &Results{Cfg: DefaultConfig(), Start: time.Now(), End: time.Now().Add(time.Minute), Machine: describeMachine(), EnvoyRate: 5000, EnvoyLowRate: 2500}
	res.GRPC = []*grpcResult{{Key: "mixed", Name: "(a) mixed", Ours: runs("extauthz", 30000, 200*time.Microsecond), Noop: runs("no-op", 33000, 150*time.Microsecond), Rate: 15000}}
	for i, k := range []string{cfgNone, cfgNoop, cfgNoopUDS, cfgOurs, cfgOursUDS, cfgOAuth2, cfgNoopShaped} {
		res.Envoy = append(res.Envoy, &envoyResult{Key: k, Name: envoyConfigNames[k].full, Runs: runs(k, 10000/float64(i+1), time.Duration(i+1)*300*time.Microsecond)})
	}
	res.GoBench = parseGoBench("BenchmarkDecideWithAssertion/allowed-2 100 2100 ns/op 320 B/op 12 allocs/op\n")
	res.judge()
	out := filepath.Join(t.TempDir(), "b.md")
	if err := res.write(out, ""); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(out)
	for _, want := range []string{"**PASS**", "**MISS**: allowed over by 2", "bench-latency.png", "(iv) Envoy + oauth2-proxy",
		"bench-latency-grpc.png", "p99 added over the floor's ≤ 500 µs", "CPU per Check ≤ 1.1× the floor's",
		"(iii-u) Envoy + extauthz over a Unix socket", "Envoy + ours over a Unix socket ≥ Envoy + no-op ext_authz over TCP",
		"(ii-u) Envoy + no-op gRPC ext_authz over a Unix socket",
		// The socket target misses here (ours over the socket at half the
		// no-op's rate): its bound says what the socket did for the no-op.
		"it made the no-op server itself 67% as fast as over TCP",
		"Envoy's CPU per request: 400 µs with the no-op over TCP, 1.00 ms with ours over the socket, 600 µs with the no-op over the socket, 200 µs without ext_authz",
		"The no-op answering with those headers over the socket, doing nothing else, reached 29% of the no-op over TCP (per round 29%, 29%, 29%), and ours 140% of it"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	for _, plot := range []string{"bench-latency.png", "bench-latency-grpc.png"} {
		if fi, err := os.Stat(filepath.Join(filepath.Dir(out), plot)); err != nil || fi.Size() < 1000 {
			t.Errorf("plot %s: %v", plot, err)
		}
	}
	if os.Getenv("BENCH_KEEP_REPORT") != "" {
		_ = os.WriteFile(os.Getenv("BENCH_KEEP_REPORT"), md, 0o644)
		png, _ := os.ReadFile(filepath.Join(filepath.Dir(out), "bench-latency.png"))
		_ = os.WriteFile(os.Getenv("BENCH_KEEP_REPORT")+".png", png, 0o644)
	}
}

// wantText fails t unless got holds every string of want and none of not.
func wantText(t *testing.T, got string, want, not []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("lacks %q:\n%s", w, got)
		}
	}
	for _, w := range not {
		if strings.Contains(got, w) {
			t.Errorf("still has %q:\n%s", w, got)
		}
	}
}

func TestTrimTop(t *testing.T) {
	top := "Showing nodes accounting for 1s, 10% of 10s total\nShowing top 100 nodes out of 300\n      flat  flat%   sum%        cum   cum%\n" +
		"     0     0%     0%      5s 50%  alpha\n     0     0%     0%      4s 40%  beta\n     0     0%     0%      3s 30%  gamma\n"
	for _, tc := range []struct {
		name string
		n    int
		want []string
		not  []string
	}{
		{"two nodes keep the first two and say so", 2, []string{"Showing top 2 nodes out of 300", "alpha", "beta"}, []string{"gamma", "top 100"}},
		{"more nodes than there are keep them all", 10, []string{"alpha", "beta", "gamma"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantText(t, trimTop(top, tc.n), tc.want, tc.not)
		})
	}
}

func TestProfileExcerpt(t *testing.T) {
	prof := "Showing nodes accounting for 1s\n      flat  flat%   sum%        cum   cum%\n" +
		"         0     0%     0%      240ms 44.44%  github.com/extauthz/extauthz/internal/identity.(*SigningKey).Sign\n" +
		"         0     0%     0%      190ms 35.19%  crypto/internal/fips140/ecdsa.Sign[go.shape.interface { BlockSize int; Reset }]\n" +
		"         0     0%     0%      110ms 20.37%  runtime.mallocgc\n"
	r := &Results{GRPC: []*grpcResult{{Key: "sessions", Name: "(c) sessions", Profile: prof}, {Key: "mixed", Name: "(a) mixed", Profile: prof}}}
	for _, tc := range []struct {
		name, key string
		want, not []string
	}{
		{"the cold path quotes signing and allocation", "sessions", []string{"(*SigningKey).Sign` 44.44% (240ms)", "runtime.mallocgc` 20.37%"}, []string{"fips140"}},
		{"the tail quotes allocation, not signing", "mixed", []string{"runtime.mallocgc` 20.37%"}, []string{"SigningKey"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantText(t, r.profileExcerpt(tc.key, funcsFor(tc.key)), tc.want, tc.not)
		})
	}
}

func TestTailSpread(t *testing.T) {
	rounds := func(p99s ...time.Duration) []sample {
		var xs []sample
		for _, d := range p99s {
			xs = append(xs, sample{P99: d})
		}
		return xs
	}
	ms := time.Millisecond
	for _, tc := range []struct {
		name          string
		ours, floor   []sample
		added         time.Duration
		want, notWant []string
	}{
		{"a difference inside the floor's own spread is said to be unresolved",
			rounds(20*ms, 44*ms, 29*ms), rounds(27*ms, 100*ms, 23*ms), 1480 * time.Microsecond,
			[]string{"ranged from 23", "to 100", "ours' from 20", "cannot resolve"}, nil},
		{"a difference beyond the floor's spread is not excused",
			rounds(40*ms, 41*ms), rounds(5*ms, 6*ms), 35 * ms,
			[]string{"ranged from 5"}, []string{"cannot resolve"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantText(t, tailSpread(tc.ours, tc.floor, tc.added), tc.want, tc.notWant)
		})
	}
	t.Run("one round has no spread to quote", func(t *testing.T) {
		if s := tailSpread(rounds(ms), rounds(ms), 0); s != "" {
			t.Errorf("tailSpread = %q, want nothing", s)
		}
	})
}

func TestPortTaken(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"no error is no collision", nil, false},
		{"a bind on a taken port is one", errors.New("echo exited (exit status 1): not ready\n--- echo output ---\necho: listen tcp 127.0.0.1:4242: bind: address already in use"), true},
		{"any other failure is not", errors.New("noop: not ready after 10s: connection refused"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := portTaken(tt.err); got != tt.want {
				t.Errorf("portTaken(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
