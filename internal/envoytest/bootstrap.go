package envoytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	// Every extension the bundled configs name in a typed_config, so that
	// protojson can resolve their Any fields. Add one here when a config
	// starts using a new extension.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_modules/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// YAMLToJSON converts one YAML document (anchors and aliases resolved) to JSON.
func YAMLToJSON(src []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// IsBootstrap reports whether src looks like an Envoy bootstrap: a YAML
// mapping with static_resources or dynamic_resources at the top.
func IsBootstrap(src []byte) bool {
	var top map[string]any
	if err := yaml.Unmarshal(src, &top); err != nil {
		return false
	}
	_, static := top["static_resources"]
	_, dynamic := top["dynamic_resources"]
	return static || dynamic
}

// DecodeBootstrap decodes Envoy bootstrap YAML into the v3 Bootstrap. Unknown
// fields are refused, and every typed_config must name a registered type.
func DecodeBootstrap(src []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := YAMLToJSON(src)
	if err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, b); err != nil {
		return nil, fmt.Errorf("decoding into envoy.config.bootstrap.v3.Bootstrap: %w", err)
	}
	return b, nil
}

// LoadBootstrap reads and decodes an Envoy bootstrap YAML file.
func LoadBootstrap(path string) (*bootstrapv3.Bootstrap, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, err := DecodeBootstrap(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

type validatorAll interface{ ValidateAll() error }

// ValidateDeep runs the protoc-gen-validate rules (ValidateAll) on m and on
// every message packed in an Any inside it, which ValidateAll alone does not
// enter (HTTP filters, per-route configs, protocol options, ...).
func ValidateDeep(m proto.Message) error {
	var errs []error
	var walk func(path string, m protoreflect.Message)
	walk = func(path string, m protoreflect.Message) {
		if a, ok := m.Interface().(*anypb.Any); ok {
			inner, err := a.UnmarshalNew()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
				return
			}
			path = path + "<" + string(inner.ProtoReflect().Descriptor().FullName()) + ">"
			if v, ok := inner.(validatorAll); ok {
				if err := v.ValidateAll(); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", path, err))
				}
			}
			walk(path, inner.ProtoReflect())
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			name := path + "." + string(fd.Name())
			switch {
			case fd.IsList() && fd.Message() != nil:
				l := v.List()
				for i := 0; i < l.Len(); i++ {
					walk(fmt.Sprintf("%s[%d]", name, i), l.Get(i).Message())
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					walk(fmt.Sprintf("%s[%v]", name, k.Interface()), mv.Message())
					return true
				})
			case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
				walk(name, v.Message())
			}
			return true
		})
	}
	if v, ok := m.(validatorAll); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, err)
		}
	}
	walk(string(m.ProtoReflect().Descriptor().Name()), m.ProtoReflect())
	return errors.Join(errs...)
}

// RewritePorts parses an Envoy YAML config and replaces the value of every
// `port_value` field through ports (original -> new). It works on the YAML
// tree, not the text, and fails on a port_value it has no mapping for, so a
// config cannot silently keep a port the test does not control. Anchors and
// aliases are preserved (an aliased node is rewritten once, where it is
// anchored).
func RewritePorts(src []byte, ports map[int]int) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	var errs []error
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Value == "port_value" && v.Kind == yaml.ScalarNode {
					old, err := strconv.Atoi(v.Value)
					if err != nil {
						errs = append(errs, fmt.Errorf("line %d: port_value %q is not a number", v.Line, v.Value))
						continue
					}
					repl, ok := ports[old]
					if !ok {
						errs = append(errs, fmt.Errorf("line %d: port_value %d has no replacement", v.Line, old))
						continue
					}
					v.Value = strconv.Itoa(repl)
					v.Tag = "!!int"
					continue
				}
				walk(v)
			}
		}
		// Alias nodes are not followed: their target is rewritten where it is defined.
	}
	walk(&doc)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return EncodeYAML(&doc)
}

// EncodeYAML renders an edited config the way the bundled ones are written
// (two-space indent).
func EncodeYAML(doc *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
