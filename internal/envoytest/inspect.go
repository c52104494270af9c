package envoytest

import (
	"fmt"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Well-known extension names used in the bundled configs.
const (
	HCMFilterName      = "envoy.filters.network.http_connection_manager"
	ExtAuthzFilterName = "envoy.filters.http.ext_authz"
	RouterFilterName   = "envoy.filters.http.router"
	HTTPProtocolOpts   = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// HCM is one HTTP connection manager found in a bootstrap, with where it is.
type HCM struct {
	Listener string
	Config   *hcmv3.HttpConnectionManager
}

// HCMs returns every HTTP connection manager of the static listeners.
func HCMs(b *bootstrapv3.Bootstrap) ([]HCM, error) {
	var out []HCM
	for _, l := range b.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				tc := f.GetTypedConfig()
				if tc == nil || !tc.MessageIs(&hcmv3.HttpConnectionManager{}) {
					continue
				}
				h := &hcmv3.HttpConnectionManager{}
				if err := tc.UnmarshalTo(h); err != nil {
					return nil, fmt.Errorf("listener %s: %w", l.GetName(), err)
				}
				out = append(out, HCM{Listener: l.GetName(), Config: h})
			}
		}
	}
	return out, nil
}

// ExtAuthzFilter returns the ext_authz HTTP filter config of h and its
// position in the filter chain, or nil and -1.
func ExtAuthzFilter(h *hcmv3.HttpConnectionManager) (*extauthzv3.ExtAuthz, int, error) {
	for i, f := range h.GetHttpFilters() {
		tc := f.GetTypedConfig()
		if tc == nil || !tc.MessageIs(&extauthzv3.ExtAuthz{}) {
			continue
		}
		ea := &extauthzv3.ExtAuthz{}
		if err := tc.UnmarshalTo(ea); err != nil {
			return nil, i, err
		}
		return ea, i, nil
	}
	return nil, -1, nil
}

// ExtAuthzPerRoute decodes the ext_authz entry of a typed_per_filter_config
// map (route, virtual host or route configuration), or returns nil.
func ExtAuthzPerRoute(perFilter map[string]*anypb.Any) (*extauthzv3.ExtAuthzPerRoute, error) {
	a, ok := perFilter[ExtAuthzFilterName]
	if !ok {
		return nil, nil
	}
	pr := &extauthzv3.ExtAuthzPerRoute{}
	if err := a.UnmarshalTo(pr); err != nil {
		return nil, fmt.Errorf("%s per-route config: %w", ExtAuthzFilterName, err)
	}
	return pr, nil
}

// Cluster returns the static cluster called name, or nil.
func Cluster(b *bootstrapv3.Bootstrap, name string) *clusterv3.Cluster {
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

// IsHTTP2 reports whether Envoy speaks HTTP/2 to the cluster's endpoints.
func IsHTTP2(c *clusterv3.Cluster) (bool, error) {
	if a, ok := c.GetTypedExtensionProtocolOptions()[HTTPProtocolOpts]; ok {
		o := &upstreamhttpv3.HttpProtocolOptions{}
		if err := a.UnmarshalTo(o); err != nil {
			return false, err
		}
		if o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil {
			return true, nil
		}
	}
	//nolint:staticcheck // the deprecated field still selects HTTP/2 in Envoy 1.40
	return c.GetHttp2ProtocolOptions() != nil, nil
}

// Endpoint is one socket address of a cluster.
type Endpoint struct {
	Host string
	Port int
}

func (e Endpoint) String() string { return fmt.Sprintf("%s:%d", e.Host, e.Port) }

// Endpoints lists the socket addresses of a cluster's load assignment.
func Endpoints(c *clusterv3.Cluster) []Endpoint {
	var out []Endpoint
	for _, lle := range c.GetLoadAssignment().GetEndpoints() {
		for _, lb := range lle.GetLbEndpoints() {
			if sa := lb.GetEndpoint().GetAddress().GetSocketAddress(); sa != nil {
				out = append(out, Endpoint{Host: sa.GetAddress(), Port: int(sa.GetPortValue())})
			}
		}
	}
	return out
}

// SocketAddress returns host and port of an address, or "" and 0.
func SocketAddress(a *corev3.Address) Endpoint {
	sa := a.GetSocketAddress()
	return Endpoint{Host: sa.GetAddress(), Port: int(sa.GetPortValue())}
}

// RouteNames returns, for every virtual host of every inline route
// configuration, the ext_authz context_extensions["route"] values its routes
// pass, keyed by virtual host name.
func RouteNames(b *bootstrapv3.Bootstrap) (map[string][]string, error) {
	hcms, err := HCMs(b)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, h := range hcms {
		for _, vh := range h.Config.GetRouteConfig().GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				pr, err := ExtAuthzPerRoute(r.GetTypedPerFilterConfig())
				if err != nil {
					return nil, fmt.Errorf("virtual host %s route %s: %w", vh.GetName(), r.GetName(), err)
				}
				if name := pr.GetCheckSettings().GetContextExtensions()["route"]; name != "" {
					out[vh.GetName()] = append(out[vh.GetName()], name)
				}
			}
		}
	}
	return out, nil
}
