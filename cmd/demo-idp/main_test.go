package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/oidctest"
)

const validConfig = `
issuer: http://idp.localhost:5556
listen: 0.0.0.0:5556
client_id: extauthz
redirect_uris: [http://authenticate.localhost:8080/.pomerium/callback]
users:
  - name: alice
    email: alice@corp.example
    groups: [admins, engineering]
  - id: bob-id
    name: bob
    email: bob@corp.example
`

func secretEnv(k string) string {
	if k == SecretEnv {
		return "demo-client-secret"
	}
	return ""
}

func TestLoadAcceptsTheComposeShape(t *testing.T) {
	opts, err := load([]byte(validConfig), secretEnv)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Issuer != "http://idp.localhost:5556" || opts.Addr != "0.0.0.0:5556" || opts.ClientID != "extauthz" || opts.ClientSecret != "demo-client-secret" {
		t.Errorf("options %+v", opts)
	}
	if len(opts.Users) != 2 {
		t.Fatalf("users %+v", opts.Users)
	}
	if u := opts.Users[0]; u.ID != "alice" || !slices.Equal(u.Groups, []string{"admins", "engineering"}) {
		t.Errorf("alice is %+v: want the subject to default to the name, and her groups", u)
	}
	if u := opts.Users[1]; u.ID != "bob-id" {
		t.Errorf("bob is %+v: want the subject given", u)
	}
}

func TestLoadRefusesBadConfigs(t *testing.T) {
	withOut := func(key string) string {
		var lines []string
		for _, l := range strings.Split(validConfig, "\n") {
			if !strings.HasPrefix(l, key+":") {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n")
	}
	tests := []struct {
		name, config string
		env          func(string) string
		want         string
	}{
		{"an empty file names what is needed", "", secretEnv, "the config is empty"},
		{"a missing issuer is required", withOut("issuer"), secretEnv, "issuer: is required"},
		{"an issuer without a scheme is refused", strings.Replace(validConfig, "http://idp.localhost:5556", "idp.localhost:5556", 1), secretEnv, `issuer: "idp.localhost:5556" is not an http(s) URL`},
		{"an issuer with a query is refused", strings.Replace(validConfig, "5556\nlisten", "5556?x=1\nlisten", 1), secretEnv, "is not an http(s) URL"},
		{"a listen address without a port is refused", strings.Replace(validConfig, "0.0.0.0:5556", "0.0.0.0", 1), secretEnv, `listen: "0.0.0.0" is not HOST:PORT`},
		{"a missing client id is required", withOut("client_id"), secretEnv, "client_id: is required"},
		{"missing redirect URIs are required", withOut("redirect_uris"), secretEnv, "redirect_uris: is required"},
		{"a relative redirect URI is refused", strings.Replace(validConfig, "http://authenticate.localhost:8080/.pomerium/callback", "/callback", 1), secretEnv, `redirect_uris[0]: "/callback"`},
		{"a missing client secret names its variable", validConfig, func(string) string { return "" }, "put it in IDP_CLIENT_SECRET"},
		{"no users is refused", validConfig[:strings.Index(validConfig, "users:")], secretEnv, "users: is required"},
		{"a user without a name is refused", validConfig + "  - email: carol@corp.example\n", secretEnv, "users[2].name: is required"},
		{"a user listed twice is refused", validConfig + "  - name: alice\n    email: alice2@corp.example\n", secretEnv, `users[2].name: "alice" is listed twice`},
		{"a display-name address is refused", strings.Replace(validConfig, "email: bob@corp.example", `email: "Bob <bob@corp.example>"`, 1), secretEnv, "users[1].email"},
		{"a blank group is refused", strings.Replace(validConfig, "[admins, engineering]", `[admins, " "]`, 1), secretEnv, "users[0].groups[1]"},
		{"an unknown key is refused with its line", validConfig + "client_secret: x\n", secretEnv, "field client_secret not found"},
		{"YAML that is not a mapping is refused", "- a\n- b\n", secretEnv, "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load([]byte(tt.config), tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("load: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// The provider announces the configured issuer, not its listening address:
// in compose it listens on 0.0.0.0:5556 and is reached as idp.localhost:5556,
// and the sidecar refuses a discovery document naming another issuer.
func TestServesTheConfiguredIssuerAndUsers(t *testing.T) {
	opts, err := load([]byte(validConfig), secretEnv)
	if err != nil {
		t.Fatal(err)
	}
	opts.Addr = "127.0.0.1:0"
	p := oidctest.Start(t, opts)
	base := "http://" + p.Addr()

	var doc struct {
		Issuer string `json:"issuer"`
		Auth   string `json:"authorization_endpoint"`
	}
	resp, err := http.Get(base + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != "http://idp.localhost:5556" || !strings.HasPrefix(doc.Auth, "http://idp.localhost:5556/") {
		t.Errorf("discovery says issuer %q, authorization_endpoint %q; want both on http://idp.localhost:5556", doc.Issuer, doc.Auth)
	}

	resp, err = http.Get(base + "/login?authRequestID=x")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`value="alice"`, "alice@corp.example", `value="bob"`, `value="approve"`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the login page lacks %s:\n%s", want, page)
		}
	}

	t.Run("the healthcheck passes against it", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"healthcheck", "--url", base + "/.well-known/openid-configuration"}, secretEnv, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "OK (issuer http://idp.localhost:5556)") {
			t.Errorf("healthcheck said %q", out.String())
		}
	})
	t.Run("the healthcheck fails on a page that is not discovery", func(t *testing.T) {
		if err := run(context.Background(), []string{"healthcheck", "--url", base + "/logged-out"}, secretEnv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "not a discovery document") {
			t.Fatalf("healthcheck: %v", err)
		}
	})
}

func TestHealthcheckFailsWhenNothingListens(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	err = run(context.Background(), []string{"healthcheck", "--url", "http://" + addr + "/.well-known/openid-configuration"}, secretEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "asking http://"+addr) {
		t.Fatalf("healthcheck: %v, want a connection error naming the URL", err)
	}
}

func TestRunRefusesBadCommandLines(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(good, []byte(validConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"an unknown flag is a usage error", []string{"--nope"}, true, "flag provided but not defined"},
		{"a stray argument is a usage error", []string{"--config", good, "extra"}, true, `unexpected argument "extra"`},
		{"a missing config file is named", []string{"--config", filepath.Join(dir, "missing.yaml")}, false, "reading the config"},
		{"an address it cannot listen on is reported", []string{"--config", good, "--addr", "256.0.0.1:1"}, false, "starting the provider on 256.0.0.1:1"},
		{"a stray healthcheck argument is a usage error", []string{"healthcheck", "x"}, true, `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, secretEnv, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run: %v, want an error containing %q", err, tt.want)
			}
			if got := errors.As(err, new(usageError)); got != tt.usage {
				t.Errorf("usage error: %v, want %v", got, tt.usage)
			}
		})
	}
}
