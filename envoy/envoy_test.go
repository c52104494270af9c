package envoy_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/listen/certtest"
)

// bootstrapFiles lists every Envoy bootstrap YAML shipped in envoy/ and
// examples/docker-compose/, relative to the repo root.
func bootstrapFiles(t *testing.T) (root string, files []string) {
	t.Helper()
	root, err := envoytest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"envoy", filepath.Join("examples", "docker-compose")} {
		for _, pat := range []string{"*.yaml", "*.yml"} {
			matches, err := filepath.Glob(filepath.Join(root, dir, pat))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range matches {
				src, err := os.ReadFile(m)
				if err != nil {
					t.Fatal(err)
				}
				// envoy-module.yaml runs the module, not ext_authz: module_test.go
				// validates it, with the module it loads.
				if envoytest.IsBootstrap(src) && filepath.Base(m) != "envoy-module.yaml" {
					rel, _ := filepath.Rel(root, m)
					files = append(files, rel)
				}
			}
		}
	}
	slices.Sort(files)
	for _, want := range []string{"envoy/envoy.yaml", "envoy/envoy-behind-lb.yaml", "envoy/envoy-uds.yaml", "envoy/envoy-mtls.yaml", "examples/docker-compose/envoy.yaml"} {
		if !slices.Contains(files, filepath.FromSlash(want)) {
			t.Errorf("%s is missing or is not an Envoy bootstrap (found: %v)", want, files)
		}
	}
	return root, files
}

func TestBootstrapsDecodeAndValidate(t *testing.T) {
	root, files := bootstrapFiles(t)
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			b, err := envoytest.LoadBootstrap(filepath.Join(root, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := envoytest.ValidateDeep(b); err != nil {
				t.Fatalf("ValidateAll: %v", err)
			}
			for _, problem := range checkWiring(b) {
				t.Error(problem)
			}
		})
	}
}

func TestBootstrapsPassEnvoyValidate(t *testing.T) {
	root, files := bootstrapFiles(t)
	bin, err := envoytest.Binary()
	if err != nil {
		if envoytest.InCI() {
			t.Fatalf("CI=true but Envoy is required: %v", err)
		}
		t.Skipf("skipping envoy --mode validate: %v", err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			out, err := envoytest.Validate(bin, withCertificates(t, filepath.Join(root, f)))
			if err != nil || !strings.Contains(out, "OK") {
				t.Fatalf("%s --mode validate -c %s: %v\n%s", bin, f, err, out)
			}
		})
	}
}

// The demo policy's route names: every one has its own virtual host.
func TestBundledConfigHasDemoRoutes(t *testing.T) {
	root, err := envoytest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"envoy.yaml", "envoy-behind-lb.yaml"} {
		t.Run(f, func(t *testing.T) { checkDemoRoutes(t, filepath.Join(root, "envoy", f)) })
	}
}

func checkDemoRoutes(t *testing.T, path string) {
	b, err := envoytest.LoadBootstrap(path)
	if err != nil {
		t.Fatal(err)
	}
	names, err := envoytest.RouteNames(b)
	if err != nil {
		t.Fatal(err)
	}
	hcms, _ := envoytest.HCMs(b)
	for _, name := range []string{"app", "admin", "wiki", "public"} {
		if got := names[name]; !slices.Equal(got, []string{name}) {
			t.Errorf("virtual host %q passes context_extensions route %v, want [%s]", name, got, name)
		}
		var vh *routev3.VirtualHost
		for _, v := range hcms[0].Config.GetRouteConfig().GetVirtualHosts() {
			if v.GetName() == name {
				vh = v
			}
		}
		want := []string{name + ".localhost", name + ".localhost:*"}
		if vh == nil || !slices.Equal(vh.GetDomains(), want) {
			t.Errorf("virtual host %q: domains %v, want %v", name, vh.GetDomains(), want)
		}
	}
	if ep := envoytest.SocketAddress(b.GetAdmin().GetAddress()); ep.String() != "127.0.0.1:9901" {
		t.Errorf("admin on %s, want 127.0.0.1:9901", ep)
	}
	for cluster, want := range map[string]string{"extauthz_grpc": "127.0.0.1:9191", "extauthz_http": "127.0.0.1:9292", "upstream": "127.0.0.1:8081"} {
		c := envoytest.Cluster(b, cluster)
		if c == nil {
			t.Errorf("no cluster %s", cluster)
			continue
		}
		if eps := envoytest.Endpoints(c); len(eps) != 1 || eps[0].String() != want {
			t.Errorf("cluster %s endpoints %v, want [%s]", cluster, eps, want)
		}
	}
}

// Forwarded headers: envoy.yaml (and the compose demo) are edge proxies that
// trust none, so a client cannot claim https or an address; the behind-lb
// config trusts exactly the balancer in front, and is otherwise envoy.yaml.
func TestForwardedHeaderTrust(t *testing.T) {
	root, err := envoytest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	load := func(t *testing.T, rel string) *bootstrapv3.Bootstrap {
		t.Helper()
		b, err := envoytest.LoadBootstrap(filepath.Join(root, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name, file string
		hops       uint32
	}{
		{"the bundled edge config trusts no forwarded header", "envoy/envoy.yaml", 0},
		{"the compose demo, an edge proxy, trusts no forwarded header", "examples/docker-compose/envoy.yaml", 0},
		{"the config behind a load balancer trusts one hop", "envoy/envoy-behind-lb.yaml", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hcms, err := envoytest.HCMs(load(t, tc.file))
			if err != nil || len(hcms) == 0 {
				t.Fatalf("no HCM: %v", err)
			}
			for _, h := range hcms {
				c := h.Config
				if got := c.GetXffNumTrustedHops(); got != tc.hops {
					t.Errorf("listener %s: xff_num_trusted_hops %d, want %d", h.Listener, got, tc.hops)
				}
				if !c.GetUseRemoteAddress().GetValue() || c.GetOriginalIpDetectionExtensions() != nil || c.GetInternalAddressConfig() != nil {
					t.Errorf("listener %s: trusts forwarded headers some other way", h.Listener)
				}
			}
		})
	}
	t.Run("the config behind a load balancer differs from envoy.yaml only in the trusted hops", func(t *testing.T) {
		src, err := os.ReadFile(filepath.Join(root, "envoy", "envoy.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		const edgeHops = "xff_num_trusted_hops: 0"
		if strings.Count(string(src), edgeHops) != 1 {
			t.Fatalf("envoy.yaml should say %q once", edgeHops)
		}
		// Both decoded the same way, so equal configs are equal messages.
		edge, err := envoytest.DecodeBootstrap([]byte(strings.Replace(string(src), edgeHops, "xff_num_trusted_hops: 1", 1)))
		if err != nil {
			t.Fatal(err)
		}
		if lb := load(t, "envoy/envoy-behind-lb.yaml"); !proto.Equal(edge, lb) {
			t.Error("envoy/envoy-behind-lb.yaml has drifted from envoy/envoy.yaml beyond xff_num_trusted_hops; copy the change across")
		}
	})
}

// The access log must never hold the query of a /.pomerium path (sign-in
// handoffs, the provider's code and state); other paths keep theirs.
func TestAccessLogLeavesOutPageQueries(t *testing.T) {
	root, files := bootstrapFiles(t)
	paths := []struct {
		path      string
		withQuery bool
	}{
		{"/.pomerium/callback?pomerium_handoff=h", false},
		{"/.pomerium/sign_in?pomerium_redirect_uri=https%3A%2F%2Fapp", false},
		{"/.pomerium?x=1", false},
		{"/.pomerium/", false},
		{"/headers?x=1", true},
		{"/.pomeriumx?x=1", true},
		{"/app/.pomerium/callback?x=1", true},
		{"/.well-known/pomerium/jwks.json", true},
	}
	for _, f := range files {
		b, err := envoytest.LoadBootstrap(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		hcms, err := envoytest.HCMs(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			t.Run(fmt.Sprintf("%s logs %s once, query kept: %v", f, p.path, p.withQuery), func(t *testing.T) {
				for _, h := range hcms {
					formats, err := accessLogFormats(h.Config, p.path)
					if err != nil {
						t.Fatal(err)
					}
					if len(formats) != 1 {
						t.Fatalf("listener %s: %d access log lines, want 1", h.Listener, len(formats))
					}
					if got := logsQuery(formats[0]); got != p.withQuery {
						t.Errorf("listener %s: logs the query %v, want %v (format %q)", h.Listener, got, p.withQuery, formats[0])
					}
				}
			})
		}
	}
}

// logsQuery reports whether a text format writes the request's query: any
// operator that writes the path (%REQ(:PATH)%, %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%,
// %PATH%, %PATH(WQ...)%) keeps it, except %PATH(NQ...)%.
func logsQuery(format string) bool {
	for _, m := range pathOperator.FindAllStringSubmatch(format, -1) {
		op, args := m[1], strings.ToUpper(m[2])
		switch {
		case op == "REQ" && strings.Contains(args, "PATH"):
			return true
		case op == "PATH" && !strings.HasPrefix(args, "NQ"):
			return true
		}
	}
	return false
}

var pathOperator = regexp.MustCompile(`%(REQ|PATH)(?:\(([^)]*)\))?(?::\d+)?%`)

// accessLogFormats returns the text format of every access logger of h that
// writes a line for a request to path. It understands the filters the bundled
// configs use and refuses any other, so the test cannot misjudge a config.
func accessLogFormats(h *hcmv3.HttpConnectionManager, path string) ([]string, error) {
	var formats []string
	for i, al := range h.GetAccessLog() {
		logs := true
		if f := al.GetFilter(); f != nil {
			hf := f.GetHeaderFilter()
			if hf == nil {
				return nil, fmt.Errorf("access_log[%d]: filter %T is not understood by this test; extend accessLogFormats", i, f.GetFilterSpecifier())
			}
			m := hf.GetHeader()
			if m.GetName() != ":path" || m.GetStringMatch().GetSafeRegex() == nil {
				return nil, fmt.Errorf("access_log[%d]: only a :path safe_regex header filter is understood by this test", i)
			}
			// Envoy's StringMatcher regex must match the whole value (RE2, as Go's regexp).
			re, err := regexp.Compile(`^(?:` + m.GetStringMatch().GetSafeRegex().GetRegex() + `)$`)
			if err != nil {
				return nil, fmt.Errorf("access_log[%d]: %w", i, err)
			}
			logs = re.MatchString(path) != m.GetInvertMatch()
		}
		if !logs {
			continue
		}
		var stdout streamv3.StdoutAccessLog
		if err := al.GetTypedConfig().UnmarshalTo(&stdout); err != nil {
			return nil, fmt.Errorf("access_log[%d]: only the stdout logger is understood by this test: %w", i, err)
		}
		formats = append(formats, stdout.GetLogFormat().GetTextFormatSource().GetInlineString())
	}
	return formats, nil
}

// Paths that must reach the sidecar's pages without a Check, and paths that
// must be checked, on every virtual host.
var (
	pagePaths    = []string{"/.pomerium", "/.pomerium/", "/.pomerium/impersonate", "/.pomerium/sign_in", "/.well-known/pomerium/jwks.json"}
	checkedPaths = []string{"/", "/headers", "/.pomeriumx", "/.pomerium.evil", "/.well-known/pomeriumx", "/.well-known/openid-configuration", "/admin/.pomerium"}
)

// checkWiring returns every way b departs from how the sidecar must be wired.
func checkWiring(b *bootstrapv3.Bootstrap) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if ep := envoytest.SocketAddress(b.GetAdmin().GetAddress()); !isLoopback(ep.Host) {
		bad("admin listens on %s, want a loopback address", ep)
	}

	hcms, err := envoytest.HCMs(b)
	if err != nil {
		return []string{err.Error()}
	}
	if len(hcms) == 0 {
		return []string{"no http_connection_manager in any static listener"}
	}
	clusterExists := func(name string) bool { return envoytest.Cluster(b, name) != nil }

	for _, h := range hcms {
		c := h.Config
		where := "listener " + h.Listener
		if g := c.GetGenerateRequestId(); g != nil && !g.GetValue() {
			bad("%s: generate_request_id is false; the sidecar needs x-request-id", where)
		}
		if c.GetPreserveExternalRequestId() {
			bad("%s: preserve_external_request_id lets clients choose the request id", where)
		}
		if !c.GetUseRemoteAddress().GetValue() {
			bad("%s: use_remote_address must be true at the edge", where)
		}
		if !c.GetNormalizePath().GetValue() {
			bad("%s: normalize_path must be true", where)
		}
		if !c.GetMergeSlashes() {
			bad("%s: merge_slashes must be true", where)
		}
		switch c.GetPathWithEscapedSlashesAction() {
		case hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT, hcmv3.HttpConnectionManager_REJECT_REQUEST:
		default:
			bad("%s: path_with_escaped_slashes_action %v, want UNESCAPE_AND_REDIRECT or REJECT_REQUEST", where, c.GetPathWithEscapedSlashesAction())
		}
		switch c.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction() {
		case corev3.HttpProtocolOptions_REJECT_REQUEST, corev3.HttpProtocolOptions_DROP_HEADER:
		default:
			bad("%s: headers_with_underscores_action must be REJECT_REQUEST or DROP_HEADER, so x_pomerium_* cannot be smuggled", where)
		}

		// HTTP filters: ext_authz, enabled, before the router, which is last.
		filters := c.GetHttpFilters()
		ea, idx, err := envoytest.ExtAuthzFilter(c)
		switch {
		case err != nil:
			bad("%s: ext_authz: %v", where, err)
			continue
		case ea == nil:
			bad("%s: no %s filter", where, envoytest.ExtAuthzFilterName)
			continue
		}
		if filters[idx].GetName() != envoytest.ExtAuthzFilterName {
			bad("%s: ext_authz filter is named %q; per-route configs are keyed by %q", where, filters[idx].GetName(), envoytest.ExtAuthzFilterName)
		}
		if filters[idx].GetDisabled() {
			bad("%s: the ext_authz filter is disabled by default", where)
		}
		if last := filters[len(filters)-1].GetName(); last != envoytest.RouterFilterName {
			bad("%s: last HTTP filter is %s, want the router", where, last)
		}
		if idx == len(filters)-1 {
			bad("%s: ext_authz must come before the router", where)
		}
		if ea.GetFailureModeAllow() {
			bad("%s: ext_authz failure_mode_allow must be false (fail closed)", where)
		}
		if ea.GetTransportApiVersion() != corev3.ApiVersion_V3 {
			bad("%s: ext_authz transport_api_version %v, want V3", where, ea.GetTransportApiVersion())
		}
		if ea.GetShadowMode() {
			bad("%s: ext_authz shadow_mode never denies", where)
		}
		if ea.GetFilterEnabled() != nil || ea.GetFilterEnabledMetadata() != nil {
			bad("%s: ext_authz filter_enabled* would let requests skip the Check", where)
		}
		if code := ea.GetStatusOnError().GetCode(); code != 0 && int(code) < 400 {
			bad("%s: ext_authz status_on_error %v is not an error", where, code)
		}
		gs := ea.GetGrpcService()
		if gs == nil || gs.GetEnvoyGrpc() == nil {
			bad("%s: ext_authz must use grpc_service.envoy_grpc", where)
		} else {
			if d := gs.GetTimeout().AsDuration(); d <= 0 || d > 5*time.Second {
				bad("%s: ext_authz timeout %v, want a short positive timeout", where, d)
			}
			name := gs.GetEnvoyGrpc().GetClusterName()
			if cl := envoytest.Cluster(b, name); cl == nil {
				bad("%s: ext_authz cluster %q does not exist", where, name)
			} else {
				if h2, err := envoytest.IsHTTP2(cl); err != nil || !h2 {
					bad("%s: ext_authz cluster %q does not speak HTTP/2 (gRPC needs it): %v", where, name, err)
				}
				for _, p := range checkSidecarTLS(cl) {
					bad("%s: ext_authz cluster %q: %s", where, name, p)
				}
			}
		}

		// Routes.
		rc := c.GetRouteConfig()
		if rc == nil {
			bad("%s: routes must be inline (route_config) so they can be checked", where)
			continue
		}
		if pr, err := envoytest.ExtAuthzPerRoute(rc.GetTypedPerFilterConfig()); err != nil || pr.GetDisabled() {
			bad("%s: route configuration disables ext_authz for everything (%v)", where, err)
		}
		// The sidecar's pages cluster: the one cluster that routes skipping the Check go to. No
		// checked route may use it, nor may it be the gRPC cluster, so skipping the Check can
		// never reach an app.
		pagesClusters := map[string]bool{}
		checkedClusters := map[string]bool{}
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				pr, _ := envoytest.ExtAuthzPerRoute(r.GetTypedPerFilterConfig())
				if pr.GetDisabled() {
					pagesClusters[r.GetRoute().GetCluster()] = true
				} else {
					checkedClusters[r.GetRoute().GetCluster()] = true
				}
			}
		}
		var pagesCluster string
		for name := range pagesClusters {
			pagesCluster = name
		}
		if len(pagesClusters) != 1 {
			bad("%s: routes without a Check go to clusters %v, want exactly one (the sidecar's pages)", where, keys(pagesClusters))
		}
		if checkedClusters[pagesCluster] || pagesCluster == gs.GetEnvoyGrpc().GetClusterName() {
			bad("%s: cluster %q serves routes without a Check and must be only the sidecar's pages cluster", where, pagesCluster)
		}
		catchAll := 0
		for _, vh := range rc.GetVirtualHosts() {
			vwhere := fmt.Sprintf("%s virtual host %q", where, vh.GetName())
			isCatchAll := slices.Contains(vh.GetDomains(), "*")
			if isCatchAll {
				catchAll++
			}
			if pr, err := envoytest.ExtAuthzPerRoute(vh.GetTypedPerFilterConfig()); err != nil || pr.GetDisabled() {
				bad("%s: ext_authz disabled for the whole virtual host (%v)", vwhere, err)
			}
			for _, r := range vh.GetRoutes() {
				pr, err := envoytest.ExtAuthzPerRoute(r.GetTypedPerFilterConfig())
				if err != nil {
					bad("%s route %q: %v", vwhere, r.GetName(), err)
					continue
				}
				if r.GetRoute() == nil {
					bad("%s route %q: only cluster routes are expected", vwhere, r.GetName())
					continue
				}
				if cluster := r.GetRoute().GetCluster(); !clusterExists(cluster) {
					bad("%s route %q: cluster %q does not exist", vwhere, r.GetName(), cluster)
				}
				if !pr.GetDisabled() && !isCatchAll && pr.GetCheckSettings().GetContextExtensions()["route"] == "" {
					bad("%s route %q: app routes must pass check_settings.context_extensions.route", vwhere, r.GetName())
				}
			}
			for _, p := range pagePaths {
				r, err := firstMatch(vh, p)
				if err != nil {
					bad("%s: %v", vwhere, err)
					continue
				}
				pr, _ := envoytest.ExtAuthzPerRoute(r.GetTypedPerFilterConfig())
				if r == nil || !pr.GetDisabled() || r.GetRoute().GetCluster() != pagesCluster || pagesCluster == "" {
					bad("%s: %s must go to the sidecar's pages cluster with ext_authz disabled", vwhere, p)
				}
			}
			for _, p := range checkedPaths {
				r, err := firstMatch(vh, p)
				if err != nil {
					bad("%s: %v", vwhere, err)
					continue
				}
				if r == nil {
					continue // no route: Envoy answers 404 itself
				}
				if pr, _ := envoytest.ExtAuthzPerRoute(r.GetTypedPerFilterConfig()); pr.GetDisabled() {
					bad("%s: %s skips the Check (route %q)", vwhere, p, r.GetName())
				}
			}
		}
		if catchAll != 1 {
			bad("%s: want exactly one catch-all virtual host (domains [\"*\"]), found %d", where, catchAll)
		}
	}
	return problems
}

// checkSidecarTLS returns what is wrong with the TLS to the sidecar of a
// cluster that has a transport socket: it must verify the sidecar's
// certificate (a CA and a name) and present a client certificate, or the
// sidecar's grpc_client_ca_file refuses it. A cluster without one talks to a
// sidecar on loopback or over a Unix socket.
func checkSidecarTLS(c *clusterv3.Cluster) []string {
	ts := c.GetTransportSocket()
	if ts == nil {
		return nil
	}
	var up tlsv3.UpstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&up); err != nil {
		return []string{fmt.Sprintf("transport socket %s is not an UpstreamTlsContext: %v", ts.GetName(), err)}
	}
	var problems []string
	ctx := up.GetCommonTlsContext()
	vc := ctx.GetValidationContext()
	if vc.GetTrustedCa() == nil {
		problems = append(problems, "TLS without validation_context.trusted_ca accepts any certificate as the sidecar's")
	}
	if len(vc.GetMatchTypedSubjectAltNames()) == 0 {
		problems = append(problems, "TLS without match_typed_subject_alt_names accepts any certificate the CA signed as the sidecar's")
	}
	if len(ctx.GetTlsCertificates()) == 0 {
		problems = append(problems, "TLS without tls_certificates presents no client certificate, so a sidecar with grpc_client_ca_file refuses it")
	}
	if !slices.Contains(ctx.GetAlpnProtocols(), "h2") {
		problems = append(problems, "TLS without alpn_protocols [h2]: gRPC needs HTTP/2 negotiated")
	}
	return problems
}

// withCertificates returns path itself, or, when the config names Envoy's
// certificate files (/etc/envoy/tls/), a copy naming freshly made ones:
// `envoy --mode validate` reads them.
func withCertificates(t *testing.T, path string) string {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const envoyTLS = "/etc/envoy/tls/"
	if !strings.Contains(string(src), envoyTLS) {
		return path
	}
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test CA")
	ca.Client(t, "envoy").Write(t, dir, "client")
	certtest.WriteFile(t, filepath.Join(dir, "extauthz-ca.crt"), ca.PEM)
	out := filepath.Join(dir, filepath.Base(path))
	if err := os.WriteFile(out, []byte(strings.ReplaceAll(string(src), envoyTLS, dir+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// The Unix-socket and mutual-TLS configs are envoy.yaml but for the
// extauthz_grpc cluster, so every fix to the bundled config reaches them.
func TestTransportConfigsDifferOnlyInTheGRPCCluster(t *testing.T) {
	root, err := envoytest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	load := func(t *testing.T, name string) *bootstrapv3.Bootstrap {
		t.Helper()
		b, err := envoytest.LoadBootstrap(filepath.Join(root, "envoy", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	bundled := load(t, "envoy.yaml")
	for _, tc := range []struct {
		name, file string
		check      func(*clusterv3.Cluster) string
	}{
		{"the Unix socket config reaches the sidecar through a pipe", "envoy-uds.yaml", func(c *clusterv3.Cluster) string {
			eps := c.GetLoadAssignment().GetEndpoints()
			if len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
				return "want exactly one endpoint"
			}
			if p := eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetPipe().GetPath(); p != "/run/extauthz/grpc.sock" {
				return fmt.Sprintf("pipe path %q, want /run/extauthz/grpc.sock", p)
			}
			if c.GetTransportSocket() != nil {
				return "a Unix socket needs no TLS"
			}
			return ""
		}},
		{"the mutual TLS config verifies the sidecar and presents a client certificate", "envoy-mtls.yaml", func(c *clusterv3.Cluster) string {
			if c.GetTransportSocket() == nil {
				return "no transport socket"
			}
			if p := checkSidecarTLS(c); len(p) > 0 {
				return strings.Join(p, "; ")
			}
			if eps := envoytest.Endpoints(c); len(eps) != 1 || eps[0].String() != "127.0.0.1:9191" {
				return fmt.Sprintf("endpoints %v, want [127.0.0.1:9191]", eps)
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := load(t, tc.file)
			c := envoytest.Cluster(b, "extauthz_grpc")
			if c == nil {
				t.Fatal("no extauthz_grpc cluster")
			}
			if msg := tc.check(c); msg != "" {
				t.Error(msg)
			}
			// Put the bundled cluster back: what remains must be envoy.yaml.
			for i, cl := range b.GetStaticResources().GetClusters() {
				if cl.GetName() == "extauthz_grpc" {
					b.StaticResources.Clusters[i] = envoytest.Cluster(bundled, "extauthz_grpc")
				}
			}
			if !proto.Equal(b, bundled) {
				t.Errorf("envoy/%s has drifted from envoy/envoy.yaml beyond the extauthz_grpc cluster; copy the change across", tc.file)
			}
		})
	}
}

// The TLS check must catch a config that would trust any sidecar or present
// no client certificate.
func TestSidecarTLSCheckCatchesMistakes(t *testing.T) {
	src := envoytest.ReadConfig(t, "envoy-mtls.yaml")
	for _, tc := range []struct{ name, old, new, want string }{
		{"no CA to verify the sidecar", "trusted_ca: { filename: /etc/envoy/tls/extauthz-ca.crt }", "trust_chain_verification: ACCEPT_UNTRUSTED", "trusted_ca"},
		{"no name to verify the sidecar", "\n              match_typed_subject_alt_names:\n                - san_type: DNS\n                  matcher: { exact: extauthz.internal }", "", "match_typed_subject_alt_names"},
		{"no client certificate", "\n            tls_certificates:\n              - certificate_chain: { filename: /etc/envoy/tls/client.crt }\n                private_key: { filename: /etc/envoy/tls/client.key }", "", "no client certificate"},
		{"no h2 negotiated", "alpn_protocols: [h2]", "alpn_protocols: [http/1.1]", "alpn_protocols"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(string(src), tc.old) {
				t.Fatalf("mutation does not apply: %q not in envoy-mtls.yaml", tc.old)
			}
			b, err := envoytest.DecodeBootstrap([]byte(strings.Replace(string(src), tc.old, tc.new, 1)))
			if err != nil {
				t.Fatal(err)
			}
			problems := checkWiring(b)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("want a problem mentioning %q, got %v", tc.want, problems)
			}
		})
	}
}

// firstMatch returns the route Envoy picks for a GET of path in vh (nil if
// none). It understands the matchers the bundled configs use and refuses any
// other, so the test cannot silently misjudge a config.
func firstMatch(vh *routev3.VirtualHost, path string) (*routev3.Route, error) {
	for _, r := range vh.GetRoutes() {
		m := r.GetMatch()
		if len(m.GetHeaders()) > 0 || len(m.GetQueryParameters()) > 0 || m.GetRuntimeFraction() != nil ||
			m.GetGrpc() != nil || m.GetTlsContext() != nil || len(m.GetDynamicMetadata()) > 0 || m.GetFilterState() != nil {
			return nil, fmt.Errorf("route %q uses a matcher this test does not understand; extend firstMatch", r.GetName())
		}
		p := path
		if cs := m.GetCaseSensitive(); cs != nil && !cs.GetValue() {
			p = strings.ToLower(p)
		}
		lower := func(s string) string {
			if cs := m.GetCaseSensitive(); cs != nil && !cs.GetValue() {
				return strings.ToLower(s)
			}
			return s
		}
		var ok bool
		switch ps := m.GetPathSpecifier().(type) {
		case *routev3.RouteMatch_Prefix:
			ok = strings.HasPrefix(p, lower(ps.Prefix))
		case *routev3.RouteMatch_Path:
			ok = p == lower(ps.Path)
		case *routev3.RouteMatch_PathSeparatedPrefix:
			pre := lower(ps.PathSeparatedPrefix)
			ok = p == pre || strings.HasPrefix(p, pre+"/")
		default:
			return nil, fmt.Errorf("route %q: path matcher %T is not understood by this test; extend firstMatch", r.GetName(), ps)
		}
		if ok {
			return r, nil
		}
	}
	return nil, nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// The wiring check must catch each of these mistakes in the bundled config.
func TestWiringCheckCatchesMistakes(t *testing.T) {
	src := envoytest.ReadConfig(t, "envoy.yaml")
	b, err := envoytest.DecodeBootstrap(src)
	if err != nil {
		t.Fatal(err)
	}
	if problems := checkWiring(b); len(problems) > 0 {
		t.Fatalf("bundled config has problems: %v", problems)
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"fail open", "failure_mode_allow: false", "failure_mode_allow: true", "failure_mode_allow"},
		{"underscores allowed", "headers_with_underscores_action: REJECT_REQUEST", "headers_with_underscores_action: ALLOW", "headers_with_underscores_action"},
		{"v2 transport", "transport_api_version: V3", "transport_api_version: AUTO", "transport_api_version"},
		{"no request id", "generate_request_id: true", "generate_request_id: false", "generate_request_id"},
		{"client request id", "preserve_external_request_id: false", "preserve_external_request_id: true", "preserve_external_request_id"},
		{"not the edge", "use_remote_address: true", "use_remote_address: false", "use_remote_address"},
		{"no path normalization", "normalize_path: true", "normalize_path: false", "normalize_path"},
		{"grpc over HTTP/1", "envoy_grpc: { cluster_name: extauthz_grpc }", "envoy_grpc: { cluster_name: extauthz_http }", "HTTP/2"},
		{"missing grpc cluster", "envoy_grpc: { cluster_name: extauthz_grpc }", "envoy_grpc: { cluster_name: nope }", "does not exist"},
		{"pages to the app", "match: { path_separated_prefix: /.pomerium }\n                          route: { cluster: extauthz_http", "match: { path_separated_prefix: /.pomerium }\n                          route: { cluster: upstream", "without a Check"},
		{"page prefix swallows the app", "match: { path_separated_prefix: /.pomerium }", "match: { prefix: / }", "skips the Check"},
		{"page route too broad", "match: { path_separated_prefix: /.well-known/pomerium }", "match: { prefix: /.well-known }", "skips the Check"},
		{"no route name", "context_extensions: { route: wiki }", "context_extensions: { other: wiki }", "context_extensions.route"},
		{"admin exposed", "socket_address: { address: 127.0.0.1, port_value: 9901 }", "socket_address: { address: 0.0.0.0, port_value: 9901 }", "admin"},
		{"ext_authz off by default", "- name: envoy.filters.http.ext_authz\n", "- name: envoy.filters.http.ext_authz\n                    disabled: true\n", "disabled by default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := strings.Count(string(src), tc.old); n == 0 {
				t.Fatalf("mutation does not apply: %q not in envoy.yaml", tc.old)
			}
			mutated := strings.Replace(string(src), tc.old, tc.new, 1)
			b, err := envoytest.DecodeBootstrap([]byte(mutated))
			if err != nil {
				t.Fatal(err)
			}
			problems := checkWiring(b)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("want a problem mentioning %q, got %v", tc.want, problems)
			}
		})
	}
	t.Run("unknown field refused", func(t *testing.T) {
		mutated := strings.Replace(string(src), "failure_mode_allow: false", "failure_mode_allow: false\n                      fail_mode_allow: true", 1)
		if _, err := envoytest.DecodeBootstrap([]byte(mutated)); err == nil {
			t.Error("a misspelt field was accepted")
		}
	})
}
