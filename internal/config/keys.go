package config

import (
	"reflect"
	"strings"

	"github.com/extauthz/extauthz/internal/policy"
)

// Keys returns every top-level key a config accepts, in the order of the
// Config struct: the yaml tags the decoder reads keys by. docs/reference.md
// documents each one, and a test holds the two together.
func Keys() []string { return yamlKeys(reflect.TypeFor[Config]()) }

// RouteKeys returns every key a route under policy accepts.
func RouteKeys() []string { return yamlKeys(reflect.TypeFor[policy.RouteSpec]()) }

// EnvName is the environment variable that overrides key: its name in upper
// case (POLICY holds base64 of a YAML route list).
func EnvName(key string) string { return strings.ToUpper(key) }

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for _, f := range fieldsOf(t).list {
		keys = append(keys, f.key)
	}
	return keys
}
