// Package apitest validates the Istio and Envoy Gateway manifests in
// deploy/istio and deploy/envoy-gateway without those controllers: every
// document is decoded strictly (an unknown or misspelled field, a duplicate
// key, or an unknown kind is an error) into the Go API types the projects
// publish, the ones their controllers decode the same objects into:
// istio.io/api and istio.io/client-go v1.32.0, sigs.k8s.io/gateway-api
// v1.6.3 and github.com/envoyproxy/gateway's api/v1alpha1 v1.9.1.
//
// It is its own Go module so that these heavy dependencies stay out of the
// product's go.mod; .ci/run runs its tests.
package apitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	egv1alpha1 "github.com/envoyproxy/gateway/api/v1alpha1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istiosecurityv1 "istio.io/client-go/pkg/apis/security/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kind is one API type a manifest may hold.
type kind struct {
	new func() any
	// spec, for Istio's types, is the proto message of .spec, decoded again
	// with protojson: istio.io/api's own JSON unmarshalers allow unknown
	// fields (jsonpb AllowUnknownFields), so the object decode alone would
	// accept a misspelled field inside spec.
	spec func() proto.Message
}

// kinds are the API types accepted, by "apiVersion kind".
var kinds = map[string]kind{
	"security.istio.io/v1 AuthorizationPolicy": {
		func() any { return &istiosecurityv1.AuthorizationPolicy{} },
		func() proto.Message { return &securityapi.AuthorizationPolicy{} }},
	"networking.istio.io/v1 Gateway": {
		func() any { return &istionetworkingv1.Gateway{} },
		func() proto.Message { return &networkingapi.Gateway{} }},
	"networking.istio.io/v1 VirtualService": {
		func() any { return &istionetworkingv1.VirtualService{} },
		func() proto.Message { return &networkingapi.VirtualService{} }},
	"gateway.networking.k8s.io/v1 Gateway":          {func() any { return &gwv1.Gateway{} }, nil},
	"gateway.networking.k8s.io/v1 HTTPRoute":        {func() any { return &gwv1.HTTPRoute{} }, nil},
	"gateway.networking.k8s.io/v1 BackendTLSPolicy": {func() any { return &gwv1.BackendTLSPolicy{} }, nil},
	"gateway.networking.k8s.io/v1 ReferenceGrant":   {func() any { return &gwv1.ReferenceGrant{} }, nil},
	"gateway.envoyproxy.io/v1alpha1 SecurityPolicy": {func() any { return &egv1alpha1.SecurityPolicy{} }, nil},
	"gateway.envoyproxy.io/v1alpha1 EnvoyProxy":     {func() any { return &egv1alpha1.EnvoyProxy{} }, nil},
}

// Doc is one YAML document of a manifest file.
type Doc struct {
	File  string // relative to deploy/
	Index int    // 0-based, in its file
	Raw   []byte
}

func (d Doc) String() string { return fmt.Sprintf("%s#%d", d.File, d.Index) }

// MeshValuesFile is the one manifest that is not a Kubernetes object:
// istiod's Helm values holding meshConfig.
const MeshValuesFile = "istio/meshconfig.yaml"

// Documents reads every YAML document of the .yaml files under root's
// subdirectories dirs, in file order.
func Documents(root string, dirs ...string) ([]Doc, error) {
	var docs []Doc
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(root, dir, "*.yaml"))
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", dir, err)
		}
		sort.Strings(files)
		if len(files) == 0 {
			return nil, fmt.Errorf("no .yaml files in %s", filepath.Join(root, dir))
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("reading manifest: %w", err)
			}
			rel := filepath.ToSlash(filepath.Join(dir, filepath.Base(f)))
			for i, raw := range splitDocuments(b) {
				docs = append(docs, Doc{File: rel, Index: i, Raw: raw})
			}
		}
	}
	return docs, nil
}

// splitDocuments splits a YAML stream at its "---" lines, dropping
// documents that hold only comments.
func splitDocuments(b []byte) [][]byte {
	var out [][]byte
	for _, part := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		if hasContent(part) {
			out = append(out, part)
		}
	}
	return out
}

func hasContent(b []byte) bool {
	for _, line := range strings.Split(string(b), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			return true
		}
	}
	return false
}

// Decode decodes one document strictly into its API type, chosen by its
// apiVersion and kind, and returns it (a *meshv1alpha1.MeshConfig for
// MeshValuesFile).
func Decode(d Doc) (any, error) {
	if d.File == MeshValuesFile {
		return decodeMeshValues(d.Raw)
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(d.Raw, &tm); err != nil {
		return nil, fmt.Errorf("%s: %w", d, err)
	}
	k, ok := kinds[tm.APIVersion+" "+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("%s: apiVersion %q kind %q is not one of the validated API types", d, tm.APIVersion, tm.Kind)
	}
	obj := k.new()
	if err := strictUnmarshal(d.Raw, obj); err != nil {
		return nil, fmt.Errorf("%s (%s %s): %w", d, tm.APIVersion, tm.Kind, err)
	}
	if k.spec != nil {
		var wrapper struct {
			Spec json.RawMessage `json:"spec"`
		}
		if err := yaml.Unmarshal(d.Raw, &wrapper); err != nil {
			return nil, fmt.Errorf("%s: %w", d, err)
		}
		if len(wrapper.Spec) == 0 {
			return nil, fmt.Errorf("%s (%s): no spec", d, tm.Kind)
		}
		if err := protojson.Unmarshal(wrapper.Spec, k.spec()); err != nil {
			return nil, fmt.Errorf("%s (%s %s) spec: %w", d, tm.APIVersion, tm.Kind, err)
		}
	}
	return obj, nil
}

// strictUnmarshal decodes YAML into v as the Kubernetes API server does in
// its strict field validation: duplicate keys and unknown fields are errors,
// and field names match case-sensitively (encoding/json alone would take
// "failopen" for failOpen).
func strictUnmarshal(raw []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return fmt.Errorf("converting YAML: %w", err)
	}
	strictErrs, err := kjson.UnmarshalStrict(j, v)
	if err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	return errors.Join(strictErrs...)
}

// decodeMeshValues reads istiod's Helm values: one key, meshConfig, decoded
// strictly into MeshConfig.
func decodeMeshValues(raw []byte) (*meshv1alpha1.MeshConfig, error) {
	var values struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	}
	if err := strictUnmarshal(raw, &values); err != nil {
		return nil, fmt.Errorf("%s: %w", MeshValuesFile, err)
	}
	if len(values.MeshConfig) == 0 {
		return nil, fmt.Errorf("%s: no meshConfig", MeshValuesFile)
	}
	mc := &meshv1alpha1.MeshConfig{}
	if err := protojson.Unmarshal(values.MeshConfig, mc); err != nil {
		return nil, fmt.Errorf("%s meshConfig: %w", MeshValuesFile, err)
	}
	return mc, nil
}
