package main

// This file derives the benchmark's Envoy configs from the bundled one:
// without ext_authz (the floor), with oauth2-proxy in its place.

import (
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/extauthz/extauthz/internal/envoytest"
)

// withoutExtAuthz removes the ext_authz HTTP filter from the bundled config.
// The per-route ext_authz settings stay: with no filter to read them they do
// nothing.
func withoutExtAuthz(bundled []byte) ([]byte, error) {
	return editYAML(bundled, func(doc *yaml.Node) error {
		filters, i, err := extAuthzFilter(doc)
		if err != nil {
			return err
		}
		filters.Content = append(filters.Content[:i], filters.Content[i+1:]...)
		return nil
	})
}

// withOAuth2Proxy points the bundled config's ext_authz filter at
// oauth2-proxy over HTTP: the filter's typed_config becomes extAuthz (an
// http_service: oauth2ProxyExtAuthz or oauth2ProxyCookieExtAuthz),
// and the extauthz_grpc cluster becomes the oauth2_proxy cluster on the same
// port (so envoytest maps it like the sidecar's), with the same timeouts and
// circuit breakers but HTTP/1.1 (oauth2-proxy does not speak h2c).
func withOAuth2Proxy(bundled []byte, extAuthz string) ([]byte, error) {
	return editYAML(bundled, func(doc *yaml.Node) error {
		filters, i, err := extAuthzFilter(doc)
		if err != nil {
			return err
		}
		var tc yaml.Node
		if err := yaml.Unmarshal([]byte(extAuthz), &tc); err != nil {
			return err
		}
		if !setKey(filters.Content[i], "typed_config", tc.Content[0]) {
			return errors.New("ext_authz filter has no typed_config")
		}
		clusters := findKey(doc, "clusters")
		if clusters == nil || clusters.Kind != yaml.SequenceNode {
			return errors.New("no clusters")
		}
		for _, c := range clusters.Content {
			if v := mapValue(c, "name"); v == nil || v.Value != "extauthz_grpc" {
				continue
			}
			mapValue(c, "name").Value = "oauth2_proxy"
			deleteKey(c, "typed_extension_protocol_options")
			if la := mapValue(c, "load_assignment"); la != nil {
				if n := mapValue(la, "cluster_name"); n != nil {
					n.Value = "oauth2_proxy"
				}
			}
			return nil
		}
		return errors.New("no extauthz_grpc cluster")
	})
}

func editYAML(src []byte, edit func(*yaml.Node) error) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if err := edit(&doc); err != nil {
		return nil, err
	}
	return envoytest.EncodeYAML(&doc)
}

// extAuthzFilter finds the http_filters sequence and the ext_authz entry in it.
func extAuthzFilter(doc *yaml.Node) (*yaml.Node, int, error) {
	filters := findKey(doc, "http_filters")
	if filters == nil || filters.Kind != yaml.SequenceNode {
		return nil, 0, errors.New("no http_filters")
	}
	for i, f := range filters.Content {
		if v := mapValue(f, "name"); v != nil && v.Value == envoytest.ExtAuthzFilterName {
			return filters, i, nil
		}
	}
	return nil, 0, fmt.Errorf("no %s filter", envoytest.ExtAuthzFilterName)
}

// findKey returns the value of the first mapping key named key, depth first.
func findKey(n *yaml.Node, key string) *yaml.Node {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if v := findKey(c, key); v != nil {
				return v
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
			if v := findKey(n.Content[i+1], key); v != nil {
				return v
			}
		}
	}
	return nil
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func setKey(n *yaml.Node, key string, v *yaml.Node) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content[i+1] = v
			return true
		}
	}
	return false
}

func deleteKey(n *yaml.Node, key string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content = append(n.Content[:i], n.Content[i+2:]...)
			return
		}
	}
}
