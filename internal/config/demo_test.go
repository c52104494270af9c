package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/testkit"
)

func TestDemoHonoursItsEnvironmentOverrides(t *testing.T) {
	key, encodedKey := testkit.SigningKey(t)
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c *Config)
	}{
		{"SHARED_SECRET replaces the random secret", map[string]string{"SHARED_SECRET": validSecret}, func(t *testing.T, c *Config) {
			if c.SharedSecret != validSecret {
				t.Errorf("SharedSecret = %q, want the environment's", c.SharedSecret)
			}
		}},
		{"SIGNING_KEY replaces the random key", map[string]string{"SIGNING_KEY": encodedKey}, func(t *testing.T, c *Config) {
			if c.Key == nil || c.Key.ID != key.ID {
				t.Errorf("signing key %v, want kid %s", c.Key, key.ID)
			}
		}},
		{"GRPC_ADDRESS and HTTP_ADDRESS move the listeners", map[string]string{"GRPC_ADDRESS": "127.0.0.1:19191", "HTTP_ADDRESS": "127.0.0.1:19292"}, func(t *testing.T, c *Config) {
			if c.GRPCAddress != "127.0.0.1:19191" || c.HTTPAddress != "127.0.0.1:19292" {
				t.Errorf("addresses %s, %s", c.GRPCAddress, c.HTTPAddress)
			}
		}},
		{"an empty SHARED_SECRET counts as unset", map[string]string{"SHARED_SECRET": " "}, func(t *testing.T, c *Config) {
			if c.SharedSecret == "" || c.SharedSecret == " " {
				t.Errorf("SharedSecret = %q, want a random one", c.SharedSecret)
			}
		}},
		{"keys outside DemoEnv keep the demo's values", map[string]string{"COOKIE_NAME": "_other", "POLICY": "W10=", "ADMINISTRATORS": "eve@corp.example"}, func(t *testing.T, c *Config) {
			if c.CookieName != DefaultCookieName || len(c.CompiledPolicy.Routes) != 4 || strings.Join(c.Administrators, ",") != "alice@corp.example" {
				t.Errorf("cookie %q, %d routes, administrators %v", c.CookieName, len(c.CompiledPolicy.Routes), c.Administrators)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DemoFrom(envOf(tt.env))
			if err != nil {
				t.Fatalf("DemoFrom: %v", err)
			}
			tt.check(t, c)
		})
	}
	t.Run("a SHARED_SECRET too short for any config is refused, named as the environment's", func(t *testing.T) {
		_, err := DemoFrom(envOf(map[string]string{"SHARED_SECRET": "c2hvcnQ="}))
		var ps Problems
		if !errors.As(err, &ps) || len(ps) != 1 || ps[0].File != "env" || ps[0].Key != "SHARED_SECRET" {
			t.Fatalf("err = %v, want one problem at env SHARED_SECRET", err)
		}
	})
}
