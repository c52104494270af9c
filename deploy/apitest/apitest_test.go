package apitest

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"

	egv1alpha1 "github.com/envoyproxy/gateway/api/v1alpha1"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istiosecurityv1 "istio.io/client-go/pkg/apis/security/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The manifests live beside this module, in deploy/.
const root = ".."

var manifestDirs = []string{"istio", "envoy-gateway"}

// The sidecar as the shared authz service layout runs it: the Service
// extauthz in namespace extauthz, ext_authz gRPC on 9191, pages on 9292
// (grpc_address and http_address in its config).
const (
	sidecarHost = "extauthz.extauthz.svc.cluster.local"
	grpcPort    = 9191
	pagesPort   = 9292
)

func documents(t *testing.T) []Doc {
	t.Helper()
	docs, err := Documents(root, manifestDirs...)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

func TestEveryManifestDecodesStrictlyIntoItsPublishedAPIType(t *testing.T) {
	for _, d := range documents(t) {
		t.Run(d.String()+" decodes with no unknown field", func(t *testing.T) {
			if _, err := Decode(d); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Strict means strict: a misspelled field anywhere (top level, metadata, or
// deep in a spec; in Istio's proto-backed specs too) fails, as does an
// unknown kind or a duplicated key.
func TestAMisspelledFieldIsRefused(t *testing.T) {
	docs := documents(t)
	for _, tc := range []struct {
		name, file, from, to string
	}{
		{"mesh config: failOpen misspelled in the provider", "istio/meshconfig.yaml", "failOpen:", "failOpn:"},
		{"mesh config: meshConfig in the wrong case", "istio/meshconfig.yaml", "meshConfig:", "meshconfig:"},
		{"Istio AuthorizationPolicy: notPaths misspelled deep in spec", "istio/authorizationpolicy.yaml", "notPaths:", "notPath:"},
		{"Istio AuthorizationPolicy: a misspelled metadata field", "istio/authorizationpolicy.yaml", "namespace: istio-system", "namespase: istio-system"},
		{"Istio VirtualService: prefix misspelled in a match", "istio/virtualservice.yaml", "prefix: /.pomerium/", "prefx: /.pomerium/"},
		{"Istio Gateway: protocol misspelled", "istio/gateway.yaml", "protocol: HTTP", "protocoll: HTTP"},
		{"Envoy Gateway SecurityPolicy: failOpen in the wrong case", "envoy-gateway/securitypolicy.yaml", "failOpen:", "failopen:"},
		{"Envoy Gateway SecurityPolicy: backendRefs misspelled under grpc", "envoy-gateway/securitypolicy.yaml", "backendRefs:", "backendRef5:"},
		{"HTTPRoute: hostnames misspelled", "envoy-gateway/httproutes.yaml", "hostnames:", "hostname:"},
		{"EnvoyProxy: clientCertificateRef misspelled", "envoy-gateway/gateway.yaml", "clientCertificateRef:", "clientCertRef:"},
		{"BackendTLSPolicy: caCertificateRefs misspelled", "envoy-gateway/backendtlspolicy.yaml", "caCertificateRefs:", "caCertificateRef:"},
		{"ReferenceGrant: an unknown kind", "envoy-gateway/referencegrant.yaml", "kind: ReferenceGrant", "kind: ReferenceGrants"},
		{"HTTPRoute: a duplicated key", "envoy-gateway/httproutes.yaml", "  hostnames:\n", "  hostnames: []\n  hostnames:\n"},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			var found bool
			for _, d := range docs {
				if d.File != tc.file || !bytes.Contains(d.Raw, []byte(tc.from)) {
					continue
				}
				found = true
				bad := d
				bad.Raw = bytes.Replace(d.Raw, []byte(tc.from), []byte(tc.to), 1)
				if _, err := Decode(bad); err == nil {
					t.Errorf("%s with %q for %q decodes without an error", d, tc.to, tc.from)
				} else {
					t.Logf("refused as it should be: %v", err)
				}
			}
			if !found {
				t.Fatalf("no document of %s contains %q: the manifest changed, update this case", tc.file, tc.from)
			}
		})
	}
}

// decoded returns every document's decoded object, by kind.
func decoded(t *testing.T) map[string][]any {
	t.Helper()
	out := map[string][]any{}
	for _, d := range documents(t) {
		obj, err := Decode(d)
		if err != nil {
			t.Fatal(err)
		}
		k := typeKey(obj)
		out[k] = append(out[k], obj)
	}
	return out
}

// typeKey names a pointer type with its package path: Istio's and Gateway
// API's Gateway are both *v1.Gateway to %T.
func typeKey(v any) string {
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.PkgPath() + "." + t.Name()
}

func only[T any](t *testing.T, objs map[string][]any) T {
	t.Helper()
	var zero T
	list := objs[typeKey(zero)]
	if len(list) != 1 {
		t.Fatalf("want one %T, have %d", zero, len(list))
	}
	return list[0].(T)
}

func all[T any](objs map[string][]any) []T {
	var zero T
	var out []T
	for _, o := range objs[typeKey(zero)] {
		out = append(out, o.(T))
	}
	return out
}

// The Istio pieces agree: the CUSTOM policy names the mesh's ext_authz gRPC
// provider, which points at the sidecar and fails closed with 503; the
// sidecar's pages are routed to it and exempt from the policy, and nothing
// else is.
func TestIstioWiring(t *testing.T) {
	objs := decoded(t)
	mesh := only[*meshv1alpha1.MeshConfig](t, objs)
	ap := only[*istiosecurityv1.AuthorizationPolicy](t, objs)
	vs := only[*istionetworkingv1.VirtualService](t, objs)

	t.Run("the AuthorizationPolicy is CUSTOM with the mesh's ext_authz gRPC provider", func(t *testing.T) {
		if ap.Spec.GetAction().String() != "CUSTOM" {
			t.Errorf("action %v, want CUSTOM", ap.Spec.GetAction())
		}
		name := ap.Spec.GetProvider().GetName()
		var found bool
		for _, p := range mesh.GetExtensionProviders() {
			if p.GetName() != name {
				continue
			}
			found = true
			g := p.GetEnvoyExtAuthzGrpc()
			if g == nil {
				t.Fatalf("provider %s is not envoyExtAuthzGrpc", name)
			}
			if g.GetService() != sidecarHost || g.GetPort() != grpcPort {
				t.Errorf("provider %s points at %s:%d, want %s:%d", name, g.GetService(), g.GetPort(), sidecarHost, grpcPort)
			}
			if g.GetFailOpen() || g.GetStatusOnError() != "503" {
				t.Errorf("provider %s: failOpen %v, statusOnError %q; want fail closed with 503", name, g.GetFailOpen(), g.GetStatusOnError())
			}
			if g.GetTimeout().AsDuration() <= 0 {
				t.Errorf("provider %s has no timeout", name)
			}
		}
		if !found {
			t.Errorf("the AuthorizationPolicy names provider %q, which meshConfig.extensionProviders lacks", name)
		}
	})

	var pagePrefixes []string
	t.Run("the sidecar's pages and keys are routed to its HTTP listener", func(t *testing.T) {
		for _, r := range vs.Spec.GetHttp() {
			dest := r.GetRoute()
			toSidecar := len(dest) == 1 && dest[0].GetDestination().GetHost() == sidecarHost
			if toSidecar && dest[0].GetDestination().GetPort().GetNumber() != pagesPort {
				t.Errorf("route %s reaches the sidecar on port %d, want its pages on %d", r.GetName(), dest[0].GetDestination().GetPort().GetNumber(), pagesPort)
			}
			for _, m := range r.GetMatch() {
				switch {
				case toSidecar && m.GetUri().GetExact() != "":
					pagePrefixes = append(pagePrefixes, m.GetUri().GetExact())
				case toSidecar && m.GetUri().GetPrefix() != "":
					pagePrefixes = append(pagePrefixes, m.GetUri().GetPrefix()+"*")
				case toSidecar:
					t.Errorf("route %s sends more than the sidecar's paths to it: %v", r.GetName(), m)
				}
			}
		}
		slices.Sort(pagePrefixes)
		want := []string{"/.pomerium", "/.pomerium/*", "/.well-known/pomerium/*"}
		if !slices.Equal(pagePrefixes, want) {
			t.Errorf("paths routed to the sidecar %v, want %v", pagePrefixes, want)
		}
	})
	t.Run("exactly those paths are exempt from the policy, on the hosts it protects", func(t *testing.T) {
		rules := ap.Spec.GetRules()
		if len(rules) != 1 || len(rules[0].GetTo()) != 1 || len(rules[0].GetFrom()) != 0 || len(rules[0].GetWhen()) != 0 {
			t.Fatalf("want one rule with one `to` and no from/when, got %v", rules)
		}
		op := rules[0].GetTo()[0].GetOperation()
		notPaths := slices.Clone(op.GetNotPaths())
		slices.Sort(notPaths)
		if !slices.Equal(notPaths, pagePrefixes) {
			t.Errorf("notPaths %v, want the paths routed to the sidecar %v", notPaths, pagePrefixes)
		}
		if len(op.GetPaths()) != 0 || len(op.GetMethods()) != 0 || len(op.GetNotHosts()) != 0 {
			t.Errorf("the rule narrows the check beyond hosts and the sidecar's paths: %v", op)
		}
		if !slices.Contains(op.GetHosts(), "app.example.com") {
			t.Errorf("the policy's hosts %v lack app.example.com", op.GetHosts())
		}
	})
}

// The Envoy Gateway pieces agree: the SecurityPolicy checks the app's route
// (not the pages' route) over gRPC against the sidecar, failing closed with
// 503; the pages' route reaches the sidecar's HTTP listener; cross-namespace
// references are granted; the gRPC hop is TLS both ways.
func TestEnvoyGatewayWiring(t *testing.T) {
	objs := decoded(t)
	sp := only[*egv1alpha1.SecurityPolicy](t, objs)
	routes := map[string]*gwv1.HTTPRoute{}
	for _, r := range all[*gwv1.HTTPRoute](objs) {
		routes[r.Name] = r
	}

	t.Run("the SecurityPolicy targets the app's route and not the pages' route", func(t *testing.T) {
		var targets []string
		for _, ref := range sp.Spec.TargetRefs {
			if ref.Kind != "HTTPRoute" || ref.Group != gwv1.GroupName {
				t.Errorf("target %v is not an HTTPRoute", ref)
			}
			targets = append(targets, string(ref.Name))
		}
		if !slices.Equal(targets, []string{"app"}) || routes["app"] == nil || routes["pomerium-pages"] == nil {
			t.Errorf("targets %v (routes %v), want the HTTPRoute app only, beside pomerium-pages", targets, routes)
		}
	})
	t.Run("the SecurityPolicy asks the sidecar over gRPC and fails closed with 503", func(t *testing.T) {
		ea := sp.Spec.ExtAuth
		if ea == nil || ea.GRPC == nil || ea.HTTP != nil {
			t.Fatalf("extAuth %v, want grpc only", ea)
		}
		refs := ea.GRPC.BackendRefs
		if len(refs) != 1 || refs[0].Name != "extauthz" || refs[0].Namespace == nil || *refs[0].Namespace != "extauthz" ||
			refs[0].Port == nil || *refs[0].Port != grpcPort {
			t.Errorf("grpc backendRefs %+v, want the Service extauthz/extauthz port %d", refs, grpcPort)
		}
		if ea.FailOpen == nil || *ea.FailOpen || ea.StatusOnError == nil || *ea.StatusOnError != 503 {
			t.Errorf("failOpen %v statusOnError %v, want false and 503", ea.FailOpen, ea.StatusOnError)
		}
		var route string
		for _, ce := range ea.ContextExtensions {
			if ce.Name == "route" && ce.Value != nil {
				route = *ce.Value
			}
		}
		if route != "app" {
			t.Errorf("context extension route=%q, want the sidecar's policy route name app", route)
		}
	})
	t.Run("the pages' route sends the sidecar's paths, and only those, to its HTTP listener", func(t *testing.T) {
		r := routes["pomerium-pages"]
		if r == nil {
			t.Fatal("no HTTPRoute pomerium-pages")
		}
		var paths []string
		for _, rule := range r.Spec.Rules {
			for _, m := range rule.Matches {
				if m.Path == nil || m.Path.Type == nil || *m.Path.Type != gwv1.PathMatchPathPrefix || m.Path.Value == nil {
					t.Fatalf("match %v is not a PathPrefix", m)
				}
				paths = append(paths, *m.Path.Value)
			}
			for _, b := range rule.BackendRefs {
				if b.Name != "extauthz" || b.Port == nil || *b.Port != pagesPort {
					t.Errorf("backend %v, want the Service extauthz port %d", b.BackendObjectReference, pagesPort)
				}
			}
		}
		slices.Sort(paths)
		if want := []string{"/.pomerium", "/.well-known/pomerium"}; !slices.Equal(paths, want) {
			t.Errorf("paths %v, want %v", paths, want)
		}
		if !slices.ContainsFunc(r.Spec.Hostnames, func(h gwv1.Hostname) bool { return h == "app.example.com" }) {
			t.Errorf("hostnames %v lack the app's host", r.Spec.Hostnames)
		}
	})
	t.Run("references into namespace extauthz are granted", func(t *testing.T) {
		rg := only[*gwv1.ReferenceGrant](t, objs)
		var from []string
		for _, f := range rg.Spec.From {
			from = append(from, string(f.Kind)+"/"+string(f.Namespace))
		}
		slices.Sort(from)
		if want := []string{"HTTPRoute/app", "SecurityPolicy/app"}; rg.Namespace != "extauthz" || !slices.Equal(from, want) {
			t.Errorf("ReferenceGrant in %s from %v, want in extauthz from %v", rg.Namespace, from, want)
		}
	})
	t.Run("the gRPC hop is TLS both ways", func(t *testing.T) {
		bt := only[*gwv1.BackendTLSPolicy](t, objs)
		if len(bt.Spec.TargetRefs) != 1 || bt.Spec.TargetRefs[0].Name != "extauthz" || bt.Spec.TargetRefs[0].SectionName == nil ||
			*bt.Spec.TargetRefs[0].SectionName != "grpc" || bt.Namespace != "extauthz" {
			t.Errorf("BackendTLSPolicy targets %v in %s, want the Service extauthz's grpc port", bt.Spec.TargetRefs, bt.Namespace)
		}
		if string(bt.Spec.Validation.Hostname) != sidecarHost {
			t.Errorf("BackendTLSPolicy verifies %s, want %s", bt.Spec.Validation.Hostname, sidecarHost)
		}
		ep := only[*egv1alpha1.EnvoyProxy](t, objs)
		gw := only[*gwv1.Gateway](t, objs)
		if ep.Spec.BackendTLS == nil || ep.Spec.BackendTLS.ClientCertificateRef == nil {
			t.Error("the EnvoyProxy has no client certificate for the sidecar's mutual TLS")
		}
		if pr := gw.Spec.Infrastructure; pr == nil || pr.ParametersRef == nil || pr.ParametersRef.Name != ep.Name ||
			pr.ParametersRef.Kind != "EnvoyProxy" || gw.Namespace != ep.Namespace {
			t.Errorf("the Gateway does not use the EnvoyProxy %s/%s", ep.Namespace, ep.Name)
		}
	})
}

// The guide says these manifests were validated, not run.
func TestTheGuideSaysValidatedNotRun(t *testing.T) {
	docs := documents(t)
	for _, d := range docs {
		if d.Index == 0 && !strings.Contains(string(d.Raw), "not run") {
			t.Errorf("%s: the header comment does not say it was validated, not run", d.File)
		}
	}
}
