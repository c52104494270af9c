package config

import (
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/store"
	"github.com/extauthz/extauthz/internal/testkit"
)

func signingKeyLine(t *testing.T) string {
	t.Helper()
	_, encoded := testkit.SigningKey(t)
	return "signing_key: " + encoded + "\n"
}

func TestStoreKeys(t *testing.T) {
	key := signingKeyLine(t)
	tests := []struct {
		name string
		src  string
		env  map[string]string
		want []string // problems, in order; none: the config loads
	}{
		{
			name: "an unknown storage type is refused where it is written",
			src:  "databroker_storage_type: postgres\n",
			want: []string{`t.yaml:1:26: databroker_storage_type: must be "memory" or "redis", found "postgres"`},
		},
		{
			name: "redis without a connection string is refused at the type",
			src:  key + "databroker_storage_type: redis\n",
			want: []string{`t.yaml:2:26: databroker_storage_connection_string: is required when databroker_storage_type is redis`},
		},
		{
			name: "a shared store without signing_key is refused at the type",
			src:  "databroker_storage_type: redis\ndatabroker_storage_connection_string: redis://r:6379/0\n",
			want: []string{`t.yaml:1:26: signing_key: is required with a shared store`},
		},
		{
			name: "a connection string that does not parse is refused where it is written, without its password",
			src:  key + "databroker_storage_type: redis\ndatabroker_storage_connection_string: redis+sentinel://:hunter2@s1:26379\n",
			want: []string{`t.yaml:3:39: databroker_storage_connection_string: names no primary`},
		},
		{
			name: "a connection string from the environment is refused at its variable",
			src:  key + "databroker_storage_type: redis\n",
			env:  map[string]string{"DATABROKER_STORAGE_CONNECTION_STRING": "memcached://:hunter2@h:1"},
			want: []string{`env: DATABROKER_STORAGE_CONNECTION_STRING: scheme "memcached"`},
		},
		{
			name: "a connection string beside the memory store is refused",
			src:  "databroker_storage_connection_string: redis://r:6379/0\n",
			want: []string{`t.yaml:1:39: databroker_storage_connection_string: is set but databroker_storage_type is memory`},
		},
		{
			name: "a revocation_ttl that is not positive is refused",
			src:  "revocation_ttl: -1h\n",
			want: []string{`t.yaml:1:17: revocation_ttl: must be positive, found -1h0m0s`},
		},
		{
			name: "redis with a connection string and a signing key loads",
			src:  key + "databroker_storage_type: redis\n",
			env:  map[string]string{"DATABROKER_STORAGE_CONNECTION_STRING": "redis://app:hunter2@redis.internal:6380/1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemsOf(t, tt.src, secretAnd(tt.env))
			if len(got) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant %d", strings.Join(got, "\n"), len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d:\n got %s\nwant %s...", i, got[i], w)
				}
				if strings.Contains(got[i], "hunter2") {
					t.Errorf("problem %d repeats the password: %s", i, got[i])
				}
			}
		})
	}
}

func TestStoreDefaultsAndDescription(t *testing.T) {
	t.Run("with nothing set the store is memory and revocations are kept 720h", func(t *testing.T) {
		c := mustParse(t, "", withSecret)
		if c.DatabrokerStorageType != StorageMemory || c.RevocationTTL.Std() != store.DefaultTTL || c.SharedStore() || c.StorageTarget != nil {
			t.Errorf("type %q, ttl %s, shared %v, target %v", c.DatabrokerStorageType, c.RevocationTTL, c.SharedStore(), c.StorageTarget)
		}
		if c.RevocationTTLOrDefault() != 720*time.Hour {
			t.Errorf("RevocationTTLOrDefault = %v", c.RevocationTTLOrDefault())
		}
	})
	t.Run("the store target names the Redis without its password", func(t *testing.T) {
		c := mustParse(t, signingKeyLine(t)+"databroker_storage_type: redis\ndatabroker_storage_connection_string: redis://app:hunter2@redis.internal:6380/1\nrevocation_ttl: 24h\nmax_service_account_lifetime: 1h\ncookie_expire: 1h\n", withSecret)
		d := c.StorageTarget.String()
		if d != "redis://redis.internal:6380/1" || c.RevocationTTL.Std() != 24*time.Hour {
			t.Errorf("store target %q, ttl %s", d, c.RevocationTTL)
		}
		if strings.Contains(d, "hunter2") || strings.Contains(c.String(), "hunter2") {
			t.Errorf("description shows the password:\n%s", d)
		}
		if len(c.Warnings) != 0 {
			t.Errorf("warnings for tokens that cannot outlive the ttl: %v", c.Warnings)
		}
	})
}

func TestStoreWarnsWhenATokenCouldOutliveItsRevocation(t *testing.T) {
	base := signingKeyLine(t) + "databroker_storage_type: redis\ndatabroker_storage_connection_string: redis://r:6379/0\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"an unset max_service_account_lifetime is warned about at revocation_ttl", base + "revocation_ttl: 24h\n",
			[]string{"t.yaml:4:17: revocation_ttl: max_service_account_lifetime is unset"}},
		{"a cookie_expire longer than the ttl is warned about", base + "revocation_ttl: 1h\ncookie_expire: 2h\nmax_service_account_lifetime: 1h\n",
			[]string{"t.yaml:4:17: revocation_ttl: 1h0m0s is shorter than cookie_expire (2h0m0s)"}},
		{"a max_service_account_lifetime longer than the ttl is warned about", base + "max_service_account_lifetime: 8760h\n",
			[]string{"t.yaml: revocation_ttl: 720h0m0s is shorter than max_service_account_lifetime (8760h0m0s)"}},
		{"the memory store is not warned about", "max_service_account_lifetime: 8760h\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.src, withSecret)
			if len(c.Warnings) != len(tt.want) {
				t.Fatalf("warnings: %v, want %d", c.Warnings, len(tt.want))
			}
			for i, w := range tt.want {
				if got := c.Warnings[i].Error(); !strings.HasPrefix(got, w) {
					t.Errorf("warning %d:\n got %s\nwant %s...", i, got, w)
				}
			}
		})
	}
}
