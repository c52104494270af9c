package config

import (
	"errors"
	"strings"
	"testing"
)

// unknownKeys parses src and returns the keys its problems call unknown.
func unknownKeys(t *testing.T, src string, lookupEnv func(string) (string, bool)) []string {
	t.Helper()
	_, err := Parse([]byte(src), "keys.yaml", lookupEnv)
	var ps Problems
	if err != nil && !errors.As(err, &ps) {
		t.Fatalf("Parse: %v", err)
	}
	var out []string
	for _, p := range ps {
		if strings.HasPrefix(p.Msg, "unknown key") {
			out = append(out, p.Key)
		}
	}
	return out
}

// TestKeysAreWhatTheDecoderAccepts holds Keys and RouteKeys, which the
// reference's drift test reads, to the keys Parse really accepts.
func TestKeysAreWhatTheDecoderAccepts(t *testing.T) {
	var top, route strings.Builder
	for _, k := range Keys() {
		if k != "policy" {
			top.WriteString(k + ": null\n")
		}
	}
	for _, k := range RouteKeys() {
		route.WriteString("    " + k + ": null\n")
	}
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"every key Keys lists is accepted at the top level", top.String(), nil},
		{"every key RouteKeys lists is accepted in a route", "policy:\n  -\n" + route.String(), nil},
		{"a key Keys does not list is refused at the top level", "no_such_key: 1\n", []string{"no_such_key"}},
		{"a key RouteKeys does not list is refused in a route", "policy:\n  - no_such_route_key: 1\n", []string{"policy[0].no_such_route_key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := unknownKeys(t, tt.src, nil)
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("unknown keys %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("Keys includes policy, whose entries RouteKeys lists", func(t *testing.T) {
		found := false
		for _, k := range Keys() {
			found = found || k == "policy"
		}
		if !found {
			t.Errorf("Keys() = %q", Keys())
		}
	})
}

func TestEveryKeyIsReadFromItsEnvName(t *testing.T) {
	asked := map[string]bool{}
	_, _ = Parse([]byte("{}"), "keys.yaml", func(name string) (string, bool) {
		asked[name] = true
		return "", false
	})
	for _, k := range Keys() {
		t.Run(k+" is overridden by "+EnvName(k), func(t *testing.T) {
			if !asked[EnvName(k)] {
				t.Errorf("Parse never looked up %s; it looked up %v", EnvName(k), asked)
			}
		})
	}
}
