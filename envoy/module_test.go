package envoy_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	dmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_modules/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/store/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
)

// moduleFilterName is the HTTP filter that runs the extauthz module; routes
// disable it by this name.
const moduleFilterName = "envoy.filters.http.dynamic_modules"

// envoy-module.yaml is a bootstrap of its own (issue 20): decoded and deeply
// validated, run through `envoy --mode validate` with the module on the
// search path, and held to envoy.yaml for everything but the authorizer, so
// every hardening of the bundled config reaches it.
func TestModuleConfig(t *testing.T) {
	root, err := envoytest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "envoy", "envoy-module.yaml")
	module, err := envoytest.LoadBootstrap(path)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("it decodes into a v3 Bootstrap that passes ValidateAll", func(t *testing.T) {
		if err := envoytest.ValidateDeep(module); err != nil {
			t.Fatalf("ValidateAll: %v", err)
		}
	})

	t.Run("its module filter, route metadata and page routes are wired as the module needs", func(t *testing.T) {
		for _, p := range checkModuleWiring(module) {
			t.Error(p)
		}
	})

	t.Run("it is envoy.yaml but for the authorizer", func(t *testing.T) {
		bundled, err := envoytest.LoadBootstrap(filepath.Join(root, "envoy", "envoy.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		withoutAuthorizer(t, bundled)
		withoutAuthorizer(t, module)
		if !proto.Equal(bundled, module) {
			t.Error("envoy/envoy-module.yaml has drifted from envoy/envoy.yaml beyond the authorizer (filter, per-route settings, route names, extauthz_grpc); copy the change across")
		}
	})

	t.Run("envoy --mode validate accepts it with the module on the search path", func(t *testing.T) {
		bin := envoytest.RequireBinary(t)
		// Validation creates the filter config, so the module loads a config
		// it can serve: the demo's, on a shared store.
		config, _ := testkit.DemoConfig(t, 8080, 9191, 9292,
			"databroker_storage_type: redis\ndatabroker_storage_connection_string: "+redistest.Start(t).URL()+"\n")
		t.Setenv("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", envoytest.ModuleDir(t))
		out, err := envoytest.Validate(bin, envoytest.WriteModuleConfig(t, testkit.WriteFile(t, "config.yaml", config)))
		if err != nil || !strings.Contains(out, "OK") {
			t.Fatalf("%s --mode validate -c envoy/envoy-module.yaml: %v\n%s", bin, err, out)
		}
	})
}

// checkModuleWiring lists what is wrong with how b runs the module: the
// filter (the extauthz module, never unloaded, before the router, enabled,
// told its config file), the page routes (the module disabled, as ext_authz
// is in envoy.yaml) and the app routes (the module enabled, the policy route
// named in metadata as the virtual host's name).
func checkModuleWiring(b *bootstrapv3.Bootstrap) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	hcms, err := envoytest.HCMs(b)
	if err != nil || len(hcms) == 0 {
		return []string{fmt.Sprintf("no http_connection_manager: %v", err)}
	}
	for _, h := range hcms {
		where := "listener " + h.Listener
		filters := h.Config.GetHttpFilters()
		idx := slices.IndexFunc(filters, func(f *hcmv3.HttpFilter) bool { return f.GetName() == moduleFilterName })
		if idx < 0 {
			bad("%s: no %s filter", where, moduleFilterName)
			continue
		}
		if idx != len(filters)-2 || filters[len(filters)-1].GetName() != envoytest.RouterFilterName {
			bad("%s: the module must come right before the router, which is last", where)
		}
		if filters[idx].GetDisabled() {
			bad("%s: the module filter is disabled by default", where)
		}
		if slices.ContainsFunc(filters, func(f *hcmv3.HttpFilter) bool { return f.GetName() == envoytest.ExtAuthzFilterName }) {
			bad("%s: ext_authz beside the module would ask a sidecar that is not listening for Checks", where)
		}
		dm := &dmv3.DynamicModuleFilter{}
		if err := filters[idx].GetTypedConfig().UnmarshalTo(dm); err != nil {
			bad("%s: %v", where, err)
			continue
		}
		if c := dm.GetDynamicModuleConfig(); c.GetName() != envoytest.ModuleName || !c.GetDoNotClose() {
			bad("%s: dynamic_module_config %v, want name %s and do_not_close (a Go runtime cannot be unloaded)", where, c, envoytest.ModuleName)
		}
		settings := &structpb.Struct{}
		if err := dm.GetFilterConfig().UnmarshalTo(settings); err != nil {
			bad("%s: filter_config must be a Struct: %v", where, err)
		} else if got := settings.GetFields()["config"].GetStringValue(); got != envoytest.ModuleConfigPath {
			bad("%s: filter_config config = %q, want %s", where, got, envoytest.ModuleConfigPath)
		}
		for _, vh := range h.Config.GetRouteConfig().GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				problems = append(problems, checkModuleRoute(vh, r)...)
			}
		}
	}
	return problems
}

func checkModuleRoute(vh *routev3.VirtualHost, r *routev3.Route) []string {
	where := fmt.Sprintf("virtual host %s, route %s", vh.GetName(), r.GetName())
	disabled := false
	if a, ok := r.GetTypedPerFilterConfig()[moduleFilterName]; ok {
		fc := &routev3.FilterConfig{}
		if err := a.UnmarshalTo(fc); err != nil {
			return []string{fmt.Sprintf("%s: the module's per-route config must be a FilterConfig: %v", where, err)}
		}
		disabled = fc.GetDisabled()
	}
	name := r.GetMetadata().GetFilterMetadata()["extauthz"].GetFields()["route"].GetStringValue()
	pages := r.GetRoute().GetCluster() == "extauthz_http"
	switch {
	case pages && !disabled:
		return []string{where + ": the sidecar's pages must disable the module (they authenticate the session themselves)"}
	case !pages && disabled:
		return []string{where + ": an app route skips the module"}
	case pages && name != "":
		return []string{where + ": a page route names a policy route"}
	case !pages && vh.GetName() != "catch_all" && name != vh.GetName():
		return []string{fmt.Sprintf("%s: metadata extauthz.route = %q, want the virtual host's name %q", where, name, vh.GetName())}
	}
	return nil
}

// withoutAuthorizer removes from b whatever says who authorizes: the
// ext_authz or module filter, their per-route settings, route metadata (the
// module's route names) and the sidecar's gRPC cluster.
func withoutAuthorizer(t *testing.T, b *bootstrapv3.Bootstrap) {
	t.Helper()
	for _, l := range b.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				h := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig().UnmarshalTo(h) != nil {
					continue
				}
				h.HttpFilters = slices.DeleteFunc(h.HttpFilters, func(hf *hcmv3.HttpFilter) bool {
					return hf.GetName() == moduleFilterName || hf.GetName() == envoytest.ExtAuthzFilterName
				})
				for _, vh := range h.GetRouteConfig().GetVirtualHosts() {
					for _, r := range vh.GetRoutes() {
						delete(r.TypedPerFilterConfig, moduleFilterName)
						delete(r.TypedPerFilterConfig, envoytest.ExtAuthzFilterName)
						if len(r.TypedPerFilterConfig) == 0 {
							r.TypedPerFilterConfig = nil
						}
						r.Metadata = nil
					}
				}
				// Deterministic: the per-route maps must encode alike in both.
				a, err := anypb.New(h)
				if err == nil {
					err = anypb.MarshalFrom(a, h, proto.MarshalOptions{Deterministic: true})
				}
				if err != nil {
					t.Fatal(err)
				}
				f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
			}
		}
	}
	b.StaticResources.Clusters = slices.DeleteFunc(b.StaticResources.Clusters, func(c *clusterv3.Cluster) bool {
		return c.GetName() == "extauthz_grpc"
	})
}
