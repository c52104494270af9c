package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/store"
	"github.com/extauthz/extauthz/internal/store/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
)

func storeConfig(t *testing.T, extra string) string {
	t.Helper()
	_, signingKey := newSigningKey(t)
	return testkit.WriteFile(t, "store.yaml", fmt.Sprintf("shared_secret: %s\nsigning_key: %s\nmax_service_account_lifetime: 1h\n%s", testSecret, signingKey, extra))
}

func TestRevokeUsage(t *testing.T) {
	cfg := storeConfig(t, "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"without --config it is a usage error", []string{"revoke", "--sid", "s"}, "--config is required"},
		{"without anything to revoke it is a usage error", []string{"revoke", "--config", cfg}, "give one of --sid, --jti or --email"},
		{"with two things to revoke it is a usage error", []string{"revoke", "--config", cfg, "--sid", "s", "--jti", "j"}, "only one of"},
		{"an email that is no address is a usage error", []string{"revoke", "--config", cfg, "--email", "bob"}, "must be an email address"},
		{"an id with a space is a usage error", []string{"revoke", "--config", cfg, "--jti", "a b"}, "spaces or control characters"},
		{"an unknown flag is a usage error", []string{"revoke", "--config", cfg, "--user", "bob"}, "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertUsageError(t, execBin(t, invocation{args: tt.args}), tt.want)
		})
	}
}

func TestRevokeFailures(t *testing.T) {
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	tests := []struct {
		name string
		cfg  string
		env  map[string]string
		want string
		not  string
	}{
		{"with the memory store it exits 1 saying to use revoked_token_ids", storeConfig(t, ""), nil, "revoked_token_ids", ""},
		{"with the store unreachable it exits 1 in one sentence without the password",
			storeConfig(t, "databroker_storage_type: redis\n"),
			map[string]string{"DATABROKER_STORAGE_CONNECTION_STRING": "redis://app:hunter2@" + closed + "/0"},
			"cannot reach the store at redis://" + closed + "/0", "hunter2"},
		{"with a config that has problems it exits 1 naming them", storeConfig(t, "databroker_storage_type: redis\n"), nil,
			"databroker_storage_connection_string: is required", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := execBin(t, invocation{args: []string{"revoke", "--config", tt.cfg, "--sid", "s1"}, env: tt.env})
			if r.code != exitFailure || r.stdout != "" {
				t.Fatalf("want exit 1 and nothing on stdout\n%s", r)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, r.stderr)
			}
			if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
				t.Errorf("stderr has %d lines, want one sentence:\n%s", n+1, r.stderr)
			}
			if tt.not != "" && strings.Contains(r.stderr, tt.not) {
				t.Errorf("stderr shows %q:\n%s", tt.not, r.stderr)
			}
		})
	}
}

func TestRevokeRecordsInRedis(t *testing.T) {
	srv := redistest.Start(t)
	cfg := storeConfig(t, "databroker_storage_type: redis\nrevocation_ttl: 2h\n")
	env := map[string]string{"DATABROKER_STORAGE_CONNECTION_STRING": srv.URL()}
	tests := []struct {
		name string
		flag string
		id   string
		want store.Revocation
	}{
		{"a session id is recorded for every replica", "--sid", "sess-1", store.Revocation{Kind: store.KindSID, ID: "sess-1"}},
		{"a token id is recorded for every replica", "--jti", "tok-1", store.Revocation{Kind: store.KindJTI, ID: "tok-1"}},
		{"a user is recorded by their normalized email", "--email", "Bob@Corp.Example", store.Revocation{Kind: store.KindUser, ID: "bob@corp.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().Truncate(time.Second)
			r := execBin(t, invocation{args: []string{"revoke", "--config", cfg, tt.flag, tt.id}, env: env})
			if r.code != exitOK || !strings.Contains(r.stdout, "revoked") || r.stderr != "" {
				t.Fatalf("want exit 0 saying revoked\n%s", r)
			}
			b, err := store.NewRedis(srv.URL(), store.DefaultTimeouts, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			_, revs, err := b.Load(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, got := range revs {
				if got.Kind == tt.want.Kind && got.ID == tt.want.ID {
					if got.At.Before(before) || got.Expires.Sub(got.At) != 2*time.Hour {
						t.Errorf("recorded at %v until %v, want now and for revocation_ttl (2h)", got.At, got.Expires)
					}
					return
				}
			}
			t.Errorf("%s %s is not in the store: %v", tt.want.Kind, tt.want.ID, revs)
		})
	}
}

func TestValidateWarnsWhenATokenCouldOutliveItsRevocation(t *testing.T) {
	_, signingKey := newSigningKey(t)
	path := testkit.WriteFile(t, "ttl.yaml", fmt.Sprintf("shared_secret: %s\nsigning_key: %s\ndatabroker_storage_type: redis\ndatabroker_storage_connection_string: redis://127.0.0.1:6379/0\nrevocation_ttl: 1h\n", testSecret, signingKey))
	r := execBin(t, invocation{args: []string{"validate", "--config", path}})
	if r.code != exitOK || !strings.Contains(r.stdout, ": ok") {
		t.Fatalf("a warning is not a problem: want exit 0 and ok\n%s", r)
	}
	for _, want := range []string{
		"warning: " + path + ":5:17: revocation_ttl: 1h0m0s is shorter than cookie_expire",
		"warning: " + path + ":5:17: revocation_ttl: max_service_account_lifetime is unset",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}
