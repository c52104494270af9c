package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/identity"
)

// The five Envoy configurations, all derived from the bundled envoy/envoy.yaml
// (by editing its YAML tree, or envoy/envoy-uds.yaml, which a test keeps
// equal to it but for the gRPC cluster), so they share every listener, route,
// timeout, access log and limit and differ only in the authorization step.
const (
	cfgNone    = "none"
	cfgNoop    = "noop"
	cfgNoopUDS = "noop-uds"
	// The no-op over the socket answering as ours does (bench/noop
	// -answer-like-extauthz): what Envoy's handling of ours' answer costs.
	cfgNoopShaped = "noop-shaped"
	cfgOurs       = "ours"
	cfgOursUDS    = "ours-uds"
	cfgOAuth2     = "oauth2-proxy"
	// oauth2-proxy with its own cookie sessions (bench/oauth2cookie.go).
	cfgOAuth2Cookie = "oauth2-proxy-cookie"
)

// envoyName is how the report names a configuration: in full in its tables,
// short on the plot and in sentences.
type envoyName struct{ full, short string }

var envoyConfigNames = map[string]envoyName{
	cfgNone:         {"(i) Envoy, no ext_authz", "(i) no ext_authz"},
	cfgNoop:         {"(ii) Envoy + no-op gRPC ext_authz", "(ii) no-op ext_authz"},
	cfgNoopUDS:      {"(ii-u) Envoy + no-op gRPC ext_authz over a Unix socket (envoy-uds.yaml)", "(ii-u) no-op, socket"},
	cfgNoopShaped:   {"(ii-a) the same, the no-op answering with extauthz's headers", "(ii-a) no-op, ours' answer, socket"},
	cfgOurs:         {"(iii) Envoy + extauthz over TCP (bundled config)", "(iii) extauthz, TCP"},
	cfgOursUDS:      {"(iii-u) Envoy + extauthz over a Unix socket (envoy-uds.yaml)", "(iii-u) extauthz, socket"},
	cfgOAuth2:       {"(iv) Envoy + oauth2-proxy " + oauth2ProxyVersion + " (HTTP ext_authz), bearer JWTs", "(iv) oauth2-proxy, JWT"},
	cfgOAuth2Cookie: {"(iv-c) Envoy + oauth2-proxy " + oauth2ProxyVersion + " (HTTP ext_authz), its cookie sessions", "(iv-c) oauth2-proxy, cookie"},
}

// udsConfigPipe is the socket path envoy/envoy-uds.yaml names.
const udsConfigPipe = "/run/extauthz/grpc.sock"

// withSocket is envoy/envoy-uds.yaml with its socket path replaced by sock.
func withSocket(uds []byte, sock string) ([]byte, error) {
	if !bytes.Contains(uds, []byte(udsConfigPipe)) {
		return nil, fmt.Errorf("envoy-uds.yaml no longer names %s", udsConfigPipe)
	}
	return bytes.ReplaceAll(uds, []byte(udsConfigPipe), []byte(sock)), nil
}

// oauth2ProxyExtAuthz is the ext_authz filter config for oauth2-proxy:
// Envoy's HTTP ext_authz sends the request's method, path (after
// path_prefix: /oauth2/auth/<path>), Host and Authorization to oauth2-proxy;
// 200 allows, anything else is the answer. Failure handling is the bundled
// config's.
const oauth2ProxyExtAuthz = `
"@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
transport_api_version: V3
http_service:
  server_uri: { uri: "http://oauth2-proxy", cluster: oauth2_proxy, timeout: 0.5s }
  path_prefix: /oauth2/auth
  authorization_response:
    allowed_upstream_headers:
      patterns:
        - { prefix: x-auth-request-, ignore_case: true }
failure_mode_allow: false
status_on_error: { code: ServiceUnavailable }
validate_mutations: true
include_peer_certificate: false
`

// envoyConf is one running configuration of the Envoy layer.
type envoyConf struct {
	Key, Name  string
	envoy      *envoytest.Envoy
	authorizer *proc // the ext_authz server behind Envoy; nil for (i)
	// targets are the authenticated requests, rotated through; rejects are
	// requests Envoy must refuse (401/403) when it authenticates.
	targets    []vegeta.Target
	rejects    []vegeta.Target
	checksAuth bool
	identity   string // the email the upstream must receive for targets[0]; "" when nothing passes one
}

// envoyRequests builds n authenticated requests for GET
// http://app.localhost/orders/42: "Authorization: Pomerium <session token>"
// for ours (and, ignored, for (i) and (ii)), or "Authorization: Bearer
// <ID token>" of the same users for oauth2-proxy.
func envoyTargets(url string, auths []string) []vegeta.Target {
	return envoyTargetsWith(url, "Authorization", auths)
}

// envoyTargetsWith is envoyTargets with the credential in header (Authorization
// or Cookie); an empty value sends none.
func envoyTargetsWith(url, header string, values []string) []vegeta.Target {
	ts := make([]vegeta.Target, len(values))
	for i, a := range values {
		h := http.Header{"Host": {appHost}, "Accept": {"application/json"}, "User-Agent": {"bench/1"}}
		if a != "" {
			h[header] = []string{a}
		}
		ts[i] = vegeta.Target{Method: "GET", URL: url + "/orders/42?view=full", Header: h}
	}
	return ts
}

// forge breaks a JWT's signature.
func forge(token string) string {
	i := strings.LastIndexByte(token, '.')
	sig := []byte(token[i+1:])
	if sig[0] == 'A' {
		sig[0] = 'B'
	} else {
		sig[0] = 'A'
	}
	return token[:i+1] + string(sig)
}

// assertCorrect proves the configuration does its job before it is measured,
// so a misconfigured peer cannot "win": an authenticated request reaches the
// echo upstream (200 + X-Bench-Echo) carrying the expected identity, and when
// the configuration authenticates, requests with no or a forged token are
// refused with 401 or 403 without reaching it.
func (c *envoyConf) assertCorrect() error {
	client := c.envoy.Client()
	do := func(t vegeta.Target) (*http.Response, string, error) {
		req, err := t.Request()
		if err != nil {
			return nil, "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp, string(body), nil
	}
	resp, body, err := do(c.targets[0])
	// A 503 is Envoy failing closed when the authorizer did not answer in
	// time: at start, on a machine busy with other tests, the first Checks
	// can be that slow. A few more tries tell that from a broken setup.
	for try := 0; err == nil && resp.StatusCode == http.StatusServiceUnavailable && try < 5; try++ {
		time.Sleep(200 * time.Millisecond)
		resp, body, err = do(c.targets[0])
	}
	if err != nil {
		return fmt.Errorf("%s: authenticated request: %w", c.Name, err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("X-Bench-Echo") != "1" {
		return fmt.Errorf("%s: authenticated request: %s %q, want 200 from the echo upstream", c.Name, resp.Status, body)
	}
	if got := strings.TrimSpace(strings.TrimPrefix(body, "ok")); got != c.identity {
		return fmt.Errorf("%s: the upstream received identity %q, want %q", c.Name, got, c.identity)
	}
	if !c.checksAuth {
		return nil
	}
	for _, r := range c.rejects {
		resp, body, err := do(r)
		if err != nil {
			return fmt.Errorf("%s: unauthenticated request: %w", c.Name, err)
		}
		if (resp.StatusCode != 401 && resp.StatusCode != 403) || resp.Header.Get("X-Bench-Echo") != "" {
			return fmt.Errorf("%s: request with Authorization %q: %s %q, want 401 or 403 from the authorizer",
				c.Name, abbreviate(r.Header.Get("Authorization")), resp.Status, body)
		}
	}
	return nil
}

func abbreviate(s string) string {
	if len(s) > 24 {
		return s[:24] + "..."
	}
	return s
}

func rotating(ts []vegeta.Target) vegeta.Targeter {
	var i atomic.Uint64
	return func(t *vegeta.Target) error {
		*t = ts[(i.Add(1)-1)%uint64(len(ts))]
		return nil
	}
}

// attack runs vegeta and reduces its results to a sample: a 200 is a
// success, anything else (or a transport error) an error.
func attack(ts []vegeta.Target, pacer vegeta.ConstantPacer, workers, maxWorkers int, d time.Duration) sample {
	// vegeta's own client, but one whose connections this run closes when it
	// ends, so no run inherits hundreds of idle connections from the last.
	tr := &http.Transport{
		DialContext:         (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: maxWorkers,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: withoutSeq{tr}, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	a := vegeta.NewAttacker(
		vegeta.Workers(uint64(workers)), vegeta.MaxWorkers(uint64(maxWorkers)), vegeta.MaxBody(0), vegeta.Client(client),
	)
	var lat []time.Duration
	s := sample{Target: float64(pacer.Freq)}
	var first, last time.Time
	for r := range a.Attack(rotating(ts), pacer, d, "") {
		if first.IsZero() || r.Timestamp.Before(first) {
			first = r.Timestamp
		}
		if end := r.Timestamp.Add(r.Latency); end.After(last) {
			last = end
		}
		lat = append(lat, r.Latency)
		s.Requests++
		if r.Code != 200 {
			s.Errors++
		}
	}
	if !first.IsZero() {
		s.Elapsed = last.Sub(first)
	}
	s.setLatencies([][]time.Duration{lat})
	if s.Elapsed > 0 {
		s.Rate = float64(s.Requests-s.Errors) / s.Elapsed.Seconds()
	}
	return s
}

// withoutSeq drops the X-Vegeta-Seq header vegeta sets on every request (a
// sequence number): no client sends one, and it made every
// request unique, so the module's answer cache (docs/module.md), which
// answers exact repeats, never saw the repeated requests the runner means to
// send. Every configuration gets the same requests without it.
type withoutSeq struct{ rt http.RoundTripper }

func (w withoutSeq) RoundTrip(r *http.Request) (*http.Response, error) {
	out := *r // a RoundTripper must not change the request it is given
	out.Header = r.Header.Clone()
	out.Header.Del("X-Vegeta-Seq")
	return w.rt.RoundTrip(&out)
}

// httpClosedLoop is maximum throughput: workers connections, each sending its
// next request as soon as the previous answer arrives.
func httpClosedLoop(ts []vegeta.Target, workers int, d time.Duration) sample {
	return attack(ts, vegeta.ConstantPacer{}, workers, workers, d)
}

// httpConstant is vegeta's constant rate (open loop): requests leave on
// schedule whatever the answers do, from up to maxInFlight connections.
func httpConstant(ts []vegeta.Target, rate float64, workers, maxInFlight int, d time.Duration) sample {
	return attack(ts, vegeta.ConstantPacer{Freq: int(rate + 0.5), Per: time.Second}, workers, maxInFlight, d)
}

// envoyStack is everything the Envoy layer runs: the echo upstream, the three
// authorizers and one Envoy per configuration.
type envoyStack struct {
	mu      sync.Mutex
	envoys  []*envoytest.Envoy
	procs   []*proc
	confs   []*envoyConf
	version string
}

func (s *envoyStack) Close() {
	s.mu.Lock()
	envoys := s.envoys
	s.envoys = nil
	s.mu.Unlock()
	for _, e := range envoys { // Envoys first: they hold connections to the rest
		e.Close()
	}
	stopAll(s.procs...)
}

// errNoEnvoy is returned by startEnvoyStack when no Envoy binary can be found.
var errNoEnvoy = errors.New("no Envoy binary")

// startEnvoyStack starts the echo upstream, the no-op server, ours over TCP
// and over a Unix socket, oauth2-proxy (when oauth2Bin is set) and an Envoy for each configuration,
// with sessions authenticated users.
func startEnvoyStack(ctx context.Context, env *runEnv, oauth2Bin string, sessions int) (_ *envoyStack, err error) {
	// Not the named result: every "return nil, err" would nil it before the
	// deferred Close, which must stop what was started.
	st := &envoyStack{}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	bundledPath, err := envoytest.BundledConfig()
	if err != nil {
		return nil, err
	}
	bundled, err := os.ReadFile(bundledPath)
	if err != nil {
		return nil, err
	}
	bin, err := envoytest.Binary()
	if err != nil {
		if envoytest.InCI() {
			return nil, fmt.Errorf("CI=true but Envoy is required: %w", err)
		}
		return nil, fmt.Errorf("%w: %v", errNoEnvoy, err)
	}
	st.version = envoyVersion(bin)

	echo, echoAddr, err := startEcho(env.bins.Echo)
	if err != nil {
		return nil, err
	}
	st.procs = append(st.procs, echo)
	noop, noopAddr, err := startNoop(env.bins.Noop)
	if err != nil {
		return nil, err
	}
	st.procs = append(st.procs, noop)
	ours, oursAddr, err := startOurs(env)
	if err != nil {
		return nil, err
	}
	st.procs = append(st.procs, ours)
	// The same sidecar over a Unix socket, for Envoy in the same pod, and
	// the no-op server over one too: what the socket itself is worth. The
	// paths are short: sun_path holds about 100 bytes.
	sock := filepath.Join(os.TempDir(), fmt.Sprintf("extauthz-bench-%d.sock", os.Getpid()))
	oursUDS, _, err := startOursAt(env, "unix://"+sock)
	if err != nil {
		return nil, err
	}
	st.procs = append(st.procs, oursUDS)
	noopSock := filepath.Join(os.TempDir(), fmt.Sprintf("noop-bench-%d.sock", os.Getpid()))
	noopUDS, err := startNoopAt(env.bins.Noop, noopSock)
	if err != nil {
		return nil, err
	}
	st.procs = append(st.procs, noopUDS)
	shapedSock := filepath.Join(os.TempDir(), fmt.Sprintf("noop-shaped-%d.sock", os.Getpid()))
	noopShaped, err := startNoopAt(env.bins.Noop, shapedSock, "-answer-like-extauthz", userEmail(0))
	if err != nil {
		return nil, err
	}
	st.procs = append(st.procs, noopShaped)
	udsSrc, err := os.ReadFile(filepath.Join(filepath.Dir(bundledPath), "envoy-uds.yaml"))
	if err != nil {
		return nil, err
	}
	udsConfig, err := withSocket(udsSrc, sock)
	if err != nil {
		return nil, err
	}
	noopUDSConfig, err := withSocket(udsSrc, noopSock)
	if err != nil {
		return nil, err
	}
	shapedConfig, err := withSocket(udsSrc, shapedSock)
	if err != nil {
		return nil, err
	}

	pomerium := make([]string, sessions)
	for i := range pomerium {
		tok, err := env.sec.mint(identity.Claims{Email: userEmail(i), Groups: []string{"engineering"}})
		if err != nil {
			return nil, err
		}
		pomerium[i] = "Pomerium " + tok
	}
	guest, err := env.sec.mint(identity.Claims{Email: guestEmail(0), Groups: []string{"contractors"}})
	if err != nil {
		return nil, err
	}

	noAuthz, err := withoutExtAuthz(bundled)
	if err != nil {
		return nil, fmt.Errorf("removing ext_authz from %s: %w", bundledPath, err)
	}
	type spec struct {
		key        string
		config     []byte // nil: the bundled file itself
		grpcPort   int
		authorizer *proc
		auths      []string // credentials, in header
		header     string   // "" is Authorization
		rejects    []string
		checksAuth bool
		identity   string
		env        []string // Envoy's extra environment
	}
	unusedPort, err := freeAddr()
	if err != nil {
		return nil, err
	}
	specs := []spec{
		{key: cfgNone, config: noAuthz, grpcPort: portOf(unusedPort), auths: pomerium},
		{key: cfgNoop, grpcPort: portOf(noopAddr), authorizer: noop, auths: pomerium},
		{key: cfgNoopUDS, config: noopUDSConfig, grpcPort: portOf(unusedPort), authorizer: noopUDS, auths: pomerium},
		{key: cfgNoopShaped, config: shapedConfig, grpcPort: portOf(unusedPort), authorizer: noopShaped, auths: pomerium,
			identity: userEmail(0)},
		{key: cfgOurs, grpcPort: portOf(oursAddr), authorizer: ours, auths: pomerium, checksAuth: true,
			identity: userEmail(0), rejects: []string{"", forge(pomerium[0]), "Pomerium " + guest}},
		{key: cfgOursUDS, config: udsConfig, grpcPort: portOf(unusedPort), authorizer: oursUDS, auths: pomerium, checksAuth: true,
			identity: userEmail(0), rejects: []string{"", forge(pomerium[0]), "Pomerium " + guest}},
	}
	if oauth2Bin != "" {
		iss, err := newOIDCIssuer(env.dir)
		if err != nil {
			return nil, err
		}
		o2p, o2pAddr, err := startOAuth2Proxy(oauth2Bin, iss)
		if err != nil {
			return nil, err
		}
		st.procs = append(st.procs, o2p)
		bearer := make([]string, sessions)
		for i := range bearer {
			tok, err := iss.mint(userEmail(i))
			if err != nil {
				return nil, err
			}
			bearer[i] = "Bearer " + tok
		}
		cfg, err := withOAuth2Proxy(bundled, oauth2ProxyExtAuthz)
		if err != nil {
			return nil, fmt.Errorf("pointing ext_authz of %s at oauth2-proxy: %w", bundledPath, err)
		}
		specs = append(specs, spec{key: cfgOAuth2, config: cfg, grpcPort: portOf(o2pAddr), authorizer: o2p,
			auths: bearer, checksAuth: true, identity: userEmail(0), rejects: []string{"", forge(bearer[0])}})

		// oauth2-proxy keeps nothing per session in its cookie store (each
		// request decrypts its cookie), so a hundred sessions rotated cost it
		// what a thousand would, and signing in takes tens of ms each.
		n := min(sessions, maxCookieSessions)
		env.logf("Envoy layer: signing %d users in to oauth2-proxy (cookie sessions)", n)
		o2pc, o2pcAddr, cookies, closeProvider, err := startOAuth2ProxyCookie(oauth2Bin, n)
		if err != nil {
			return nil, err
		}
		closeProvider() // sign-in is over: oauth2-proxy reads its cookies alone
		st.procs = append(st.procs, o2pc)
		cfg, err = withOAuth2Proxy(bundled, oauth2ProxyCookieExtAuthz)
		if err != nil {
			return nil, fmt.Errorf("pointing ext_authz of %s at oauth2-proxy: %w", bundledPath, err)
		}
		specs = append(specs, spec{key: cfgOAuth2Cookie, config: cfg, grpcPort: portOf(o2pcAddr), authorizer: o2pc,
			auths: cookies, header: "Cookie", checksAuth: true, identity: userEmail(0), rejects: []string{"", tamper(cookies[0])}})
	}
	if !env.cfg.measuresEnvoy(cfgModule) && !env.cfg.measuresEnvoy(cfgModuleNoCache) {
		// neither module configuration is measured: no module to build
	} else if m, err := prepareModule(env); err != nil {
		fmt.Fprintf(os.Stderr, "bench: without %s: %v\n", envoyConfigNames[cfgModule].full, err)
	} else {
		st.procs = append(st.procs, m.redis)
		for _, c := range []struct {
			key    string
			config []byte
		}{{cfgModule, m.config}, {cfgModuleNoCache, m.noCache}} {
			specs = append(specs, spec{key: c.key, config: c.config, grpcPort: portOf(unusedPort), env: m.env, auths: pomerium,
				checksAuth: true, identity: userEmail(0), rejects: []string{"", forge(pomerium[0]), "Pomerium " + guest}})
		}
	}
	measured := specs[:0]
	for _, sp := range specs {
		if env.cfg.measuresEnvoy(sp.key) {
			measured = append(measured, sp)
		}
	}
	specs = measured
	// Envoys take a second or two to start: start them together.
	confs := make([]*envoyConf, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, sp := range specs {
		path := bundledPath
		if sp.config != nil {
			path = filepath.Join(env.dir, "envoy-"+sp.key+".yaml")
			if err := os.WriteFile(path, sp.config, 0o600); err != nil {
				return nil, err
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := envoytest.Launch(envoytest.Options{ConfigPath: path, GRPCPort: sp.grpcPort, UpstreamPort: portOf(echoAddr), Env: sp.env})
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", envoyConfigNames[sp.key].full, err)
				return
			}
			st.mu.Lock()
			st.envoys = append(st.envoys, e)
			st.mu.Unlock()
			header := sp.header
			if header == "" {
				header = "Authorization"
			}
			c := &envoyConf{Key: sp.key, Name: envoyConfigNames[sp.key].full, envoy: e, authorizer: sp.authorizer,
				targets: envoyTargetsWith(e.URL(), header, sp.auths), checksAuth: sp.checksAuth, identity: sp.identity}
			for _, r := range sp.rejects {
				c.rejects = append(c.rejects, envoyTargetsWith(e.URL(), header, []string{r})...)
			}
			confs[i] = c
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, c := range confs {
		if err := c.assertCorrect(); err != nil {
			return nil, fmt.Errorf("%w\n--- envoy log tail ---\n%s", err, c.envoy.LogTail(20))
		}
		st.confs = append(st.confs, c)
	}
	return st, nil
}

func envoyVersion(bin string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := execOutput(ctx, bin, "--version")
	if err != nil {
		return "unknown"
	}
	// "envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
	s := strings.TrimSpace(out)
	if i := strings.Index(s, "version:"); i >= 0 {
		parts := strings.Split(strings.TrimSpace(s[i+len("version:"):]), "/")
		if len(parts) > 1 {
			return parts[1]
		}
	}
	return s
}
